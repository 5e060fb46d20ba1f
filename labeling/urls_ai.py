"""URLs of the AI labeling job pages, mounted at /labeling/ai/ (namespace "labeling")."""
from django.urls import path

from . import views_ai as v

urlpatterns = [
    path("", v.ai_job_list, name="ai_job_list"),
    path("new/", v.ai_job_launch, name="ai_job_launch"),
    path("jobs/<int:pk>/", v.ai_job_detail, name="ai_job_detail"),
    path("jobs/<int:pk>/progress/", v.ai_job_progress, name="ai_job_progress"),
    path("jobs/<int:pk>/cancel/", v.ai_job_cancel, name="ai_job_cancel"),
    path("jobs/<int:pk>/resume/", v.ai_job_resume, name="ai_job_resume"),
    path("configs/<int:pk>/test/", v.labeler_config_test, name="labeler_config_test"),
    path("configs/<int:pk>/status/", v.labeler_config_status, name="labeler_config_status"),
]
