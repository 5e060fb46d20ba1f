"""URLs of the evaluation dashboards (mounted at /evaluation/, namespace "evaluation")."""
from django.urls import path

from . import views

app_name = "evaluation"
urlpatterns = [
    path("", views.index, name="index"),
    path("alignment/", views.alignment, name="alignment"),
    path("winrates/", views.winrates, name="winrates"),
    path("winrates/cell/", views.winrate_cell, name="winrate_cell"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("annotators/", views.annotators, name="annotators"),
    path("refresh/", views.refresh, name="refresh"),
    path("status/", views.status, name="status"),
    path("export/<slug:page>/<slug:table>.<str:fmt>", views.export, name="export"),
]
