"""URLs of the labeling app: the rating pages (urls_rating) and AI labeling jobs (urls_ai)."""
from django.urls import include, path

app_name = "labeling"

urlpatterns = [
    path("", include("labeling.urls_rating")),
    path("ai/", include("labeling.urls_ai")),
    path("routing/", include("labeling.urls_routing")),
]
