"""URLs of the evaluation dashboards."""
app_name = "evaluation"
urlpatterns: list = []
