"""URLs of the hybrid-labeling staff pages, mounted at /labeling/routing/ (namespace "labeling")."""
from django.urls import path

from . import views_routing as v

urlpatterns = [
    path("", v.routing_new, name="routing_new"),
    path("<int:pk>/", v.routing_detail, name="routing_detail"),
]
