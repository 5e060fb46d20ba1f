"""The one staff guard of the site's own pages.

Log-in is enforced for every page by ``LoginRequiredMiddleware``; on top of it a staff page
refuses a logged-in non-staff user with the site's 403 page (``PermissionDenied``), never the
admin's log-in page. Use ``@staff_required`` on a view, or ``ensure_staff`` where the rule depends
on an argument (an export of a staff-only table).
"""
from __future__ import annotations

from functools import wraps
from typing import Callable

from django.core.exceptions import PermissionDenied

DEFAULT_MESSAGE = "This page is for staff."


def ensure_staff(user, message: str = DEFAULT_MESSAGE) -> None:
    """Raise PermissionDenied (403) unless ``user`` is an active staff member."""
    if not (getattr(user, "is_active", False) and getattr(user, "is_staff", False)):
        raise PermissionDenied(message)


def staff_required(view: Callable | None = None, *, message: str = DEFAULT_MESSAGE):
    """Decorator: ``@staff_required`` or ``@staff_required(message="...")``."""

    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(request, *args, **kwargs):
            ensure_staff(request.user, message)
            return fn(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
