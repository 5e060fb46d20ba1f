"""Views of the labeling app that are not rating pages: home and health check."""
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .selectors import datasets as selectors


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"datasets": selectors.dataset_list_with_counts()})


@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
