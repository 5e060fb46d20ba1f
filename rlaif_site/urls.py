"""Top-level URLs: log-in, home, the three apps, the admin."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from labeling import views as labeling_views

urlpatterns = [
    path("", labeling_views.home, name="home"),
    path("healthz", labeling_views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("labeling/", include("labeling.urls")),
    path("training/", include("training.urls")),
    path("evaluation/", include("evaluation.urls")),
    path("admin/", admin.site.urls),
]
