"""URLs of the training pages (new run, run page, live progress)."""
app_name = "training"
urlpatterns: list = []
