"""URLs of the evaluation dashboards (mounted at /evaluation/, namespace "evaluation")."""
from django.urls import path

from . import experiment_views, routing_views, views

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
    path("experiments/", experiment_views.experiment_list, name="experiments"),
    path("experiments/new/", experiment_views.experiment_new, name="experiment_new"),
    path("experiments/<int:pk>/", experiment_views.experiment_detail, name="experiment_detail"),
    path("experiments/<int:pk>.json", experiment_views.experiment_json, name="experiment_json"),
    path("calibration/", routing_views.calibration, name="calibration"),
    path("calibration/export.<str:fmt>", routing_views.calibration_export, name="calibration_export"),
    path("routing/", routing_views.routing_dashboard, name="routing"),
    path("routing/export.<str:fmt>", routing_views.routing_export, name="routing_export"),
    path("routing/reports/", routing_views.routing_report_launch, name="routing_report_launch"),
]
