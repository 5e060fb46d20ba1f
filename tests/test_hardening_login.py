"""Issue 11, item 5: log-ins are throttled (django-axes, on by default): after AXES_FAILURE_LIMIT wrong
passwords for one user from one address, that user and address are locked out, even with the
right password; other addresses and other users are not; a success before the limit resets it."""
from __future__ import annotations

import pytest
from django.conf import settings as live_settings
from django.test import RequestFactory
from django.urls import reverse

from rlaif_site.security import client_ip

pytestmark = pytest.mark.django_db

PASSWORD = "right-pass-123"


@pytest.fixture
def user(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True)


def _login(client, password: str, ip: str = "10.0.0.1", url: str = "login", username: str = "staff"):
    return client.post(reverse(url), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_throttling_is_on_by_default():
    assert live_settings.AXES_ENABLED is True
    assert live_settings.AXES_FAILURE_LIMIT >= 1
    assert live_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert "axes.middleware.AxesMiddleware" == live_settings.MIDDLEWARE[-1]


def test_lockout_after_the_limit_even_with_the_right_password(client, user, settings):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert _login(client, "wrong").status_code == 200  # the form again, with its error
    locked = _login(client, "wrong")
    assert locked.status_code == 429 and b"Too many failed log-ins" in locked.content
    right = _login(client, PASSWORD)
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    # the same user from another address, and another user from this address, are not locked
    assert _login(client, PASSWORD, ip="10.0.0.2").status_code == 302
    client.logout()


def test_other_users_from_the_same_address_are_not_locked(client, user, django_user_model, settings):
    django_user_model.objects.create_user("other", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "wrong")
    assert _login(client, PASSWORD, username="other").status_code == 302


def test_admin_login_is_throttled_too(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "wrong", url="admin:login")
    assert _login(client, PASSWORD, url="admin:login").status_code == 429


def test_a_success_resets_the_count(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200
    assert _login(client, PASSWORD).status_code == 302


def test_unlock_by_staff_command(client, user, settings):
    from django.core.management import call_command

    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 429
    call_command("axes_reset_username", "staff")
    assert _login(client, PASSWORD).status_code == 302


def test_client_address_behind_trusted_proxies(settings):
    rf = RequestFactory()
    request = rf.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.9.9.9"  # no proxy: a client-written header is ignored
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "1.2.3.4"  # what our proxy appended, not what the client claimed
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"
