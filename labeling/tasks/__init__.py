"""Celery tasks of the labeling app (autodiscovered as `labeling.tasks`)."""
from .ai_labeling import *  # noqa: F401,F403
from .imports import *  # noqa: F401,F403
from .connection import *  # noqa: F401,F403
