"""URLs of the AI labeling job pages."""
urlpatterns: list = []
