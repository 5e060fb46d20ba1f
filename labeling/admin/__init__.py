"""Admin pages of the labeling app, one module per concern."""
from . import ai, campaigns, core, routing  # noqa: F401  (registers the ModelAdmins)
