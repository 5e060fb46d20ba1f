"""Hybrid labeling pages in a real browser (Playwright, Debian's chromium): the calibration section
arrives by htmx on the alignment page and draws its reliability diagram; the Routing dashboard draws
its curves; no script errors."""
from __future__ import annotations

import pytest

from .conftest import make_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_calibration_section_and_routing_chart_render(live_server, browser_page, staff_user):
    from labeling.services.routing import trust_signals_backfill

    w = make_world(name="br")
    trust_signals_backfill()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "staff")
    page.fill("input[name=password]", "staff-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    page.goto(f"{live_server.url}/evaluation/alignment/?dataset=br")
    page.wait_for_selector("#table-calibration")
    page.wait_for_function("() => { const c = document.getElementById('reliability-chart'); return c && c._chart; }")
    assert w["cfg_a"].name in page.locator("#table-calibration").inner_text()

    page.goto(f"{live_server.url}/evaluation/routing/?dataset=br&config={w['cfg_a'].name}&criterion=margin")
    page.wait_for_function("() => { const c = document.getElementById('routing-chart'); return c && c._chart; }")
    n_sets = page.evaluate("() => document.getElementById('routing-chart')._chart.data.datasets.length")
    assert n_sets == 9  # three curves, each with its band's two edges
    assert page.locator("#table-routing tbody tr").count() == 21
    assert errors == []
