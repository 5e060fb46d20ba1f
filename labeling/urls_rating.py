"""URLs of the human rating pages (campaign queue, rating, progress), mounted at /labeling/.

JSON endpoints for scripts and `bench/labeling_load.py`: `api/campaigns/<id>/next` and
`api/assignments/<id>/submit` (see `labeling/views_rating.py`).
"""
from django.urls import path

from . import views_campaigns
from . import views_rating

urlpatterns = [
    path("campaigns/", views_rating.campaign_list, name="campaign_list"),
    path("campaigns/<int:pk>/", views_rating.rate, name="rate"),
    path("campaigns/<int:pk>/history/", views_rating.my_history, name="history"),
    path("campaigns/<int:pk>/next/", views_rating.pair_next, name="pair_next"),
    path("campaigns/<int:pk>/undo/", views_rating.pair_undo, name="pair_undo"),
    path("campaigns/<int:cpk>/assignments/<int:pk>/submit/", views_rating.pair_submit, name="pair_submit"),
    path("campaigns/<int:cpk>/assignments/<int:pk>/skip/", views_rating.pair_skip, name="pair_skip"),
    path("quality/", views_campaigns.campaign_overview, name="quality_index"),
    path("campaigns/new/", views_campaigns.campaign_new, name="campaign_new"),
    path("quality/<int:pk>/", views_rating.campaign_stats, name="quality"),
    path("api/campaigns/<int:pk>/next", views_rating.api_next, name="api_next"),
    path("api/assignments/<int:pk>/submit", views_rating.api_submit, name="api_submit"),
]
