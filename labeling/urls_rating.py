"""URLs of the human rating pages (campaign queue, rating, progress), mounted at /labeling/.

JSON endpoints for scripts and `bench/labeling_load.py`: `api/campaigns/<id>/next` and
`api/assignments/<id>/submit` (see `labeling/views_rating.py`).
"""
from django.urls import path

from . import views_campaigns as vc
from . import views_rating as v

urlpatterns = [
    path("campaigns/", v.campaign_list, name="campaign_list"),
    path("campaigns/<int:pk>/", v.rate, name="rate"),
    path("campaigns/<int:pk>/history/", v.my_history, name="history"),
    path("campaigns/<int:pk>/next/", v.pair_next, name="pair_next"),
    path("campaigns/<int:pk>/undo/", v.pair_undo, name="pair_undo"),
    path("campaigns/<int:cpk>/assignments/<int:pk>/submit/", v.pair_submit, name="pair_submit"),
    path("campaigns/<int:cpk>/assignments/<int:pk>/skip/", v.pair_skip, name="pair_skip"),
    path("quality/", vc.campaign_overview, name="quality_index"),
    path("campaigns/new/", vc.campaign_new, name="campaign_new"),
    path("quality/<int:pk>/", v.campaign_stats, name="quality"),
    path("api/campaigns/<int:pk>/next", v.api_next, name="api_next"),
    path("api/assignments/<int:pk>/submit", v.api_submit, name="api_submit"),
]
