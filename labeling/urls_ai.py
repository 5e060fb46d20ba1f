"""URLs of the AI labeling job pages, mounted at /labeling/ai/ (namespace "labeling")."""
from django.urls import path

from . import views_ai

urlpatterns = [
    path("", views_ai.ai_job_list, name="ai_job_list"),
    path("new/", views_ai.ai_job_launch, name="ai_job_launch"),
    path("jobs/<int:pk>/", views_ai.ai_job_detail, name="ai_job_detail"),
    path("jobs/<int:pk>/progress/", views_ai.ai_job_progress, name="ai_job_progress"),
    path("jobs/<int:pk>/cancel/", views_ai.ai_job_cancel, name="ai_job_cancel"),
    path("jobs/<int:pk>/resume/", views_ai.ai_job_resume, name="ai_job_resume"),
    path("configs/<int:pk>/test/", views_ai.labeler_config_test, name="labeler_config_test"),
    path("configs/<int:pk>/status/", views_ai.labeler_config_status, name="labeler_config_status"),
]
