"""URLs of the hybrid-labeling staff pages, mounted at /labeling/routing/ (namespace "labeling")."""
from django.urls import path

from . import views_routing

urlpatterns = [
    path("", views_routing.routing_new, name="routing_new"),
    path("<int:pk>/", views_routing.routing_detail, name="routing_detail"),
]
