"""URLs of the human rating pages (campaign queue, rating, progress)."""
urlpatterns: list = []
