"""The win-rate dashboard in a real browser (Playwright driving Debian's chromium) against Django's
live server: log in, click a matrix cell (htmx drill-down), switch the judge (htmx form), and see
that a policy name with markup shows as text."""
from __future__ import annotations


import pytest

from evaluation import services
from evaluation.selectors import Filters

pytestmark = [pytest.mark.browser, pytest.mark.slow]




@pytest.mark.django_db(transaction=True)
def test_winrate_drilldown_and_judge_switch(live_server, browser_page, small_world):
    page = browser_page
    services.refresh_dashboard(filters=Filters(), rounds=20)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "ann-pass-123")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/evaluation/winrates/")
    page.wait_for_function("() => window.htmx !== undefined")
    rl, sft = small_world["rl"], small_world["sft"]
    cell = page.locator(f'#winrate-matrix td[data-x="{rl.pk}"][data-y="{sft.pk}"] button')
    assert cell.inner_text() == "70.0%"
    cell.click()
    page.wait_for_selector("#cell-detail table")
    assert page.locator("#cell-detail tbody tr").count() == 6
    assert page.evaluate("() => document.querySelectorAll('b').length") == 0  # "sft-<b>" is text
    assert "sft-<b>" in page.locator("#winrate-matrix").inner_text()

    page.select_option("select[name=judge]", "trivial:longer")  # submits the form through htmx
    page.wait_for_function(
        "() => { const b = document.querySelector('#winrate-matrix td[data-x] button');"
        " return b && location.search.includes('judge=trivial'); }")
    cell = page.locator(f'#winrate-matrix td[data-x="{rl.pk}"][data-y="{sft.pk}"] button')
    page.wait_for_function(
        f"() => document.querySelector('#winrate-matrix td[data-x=\"{rl.pk}\"][data-y=\"{sft.pk}\"] button')"
        ".innerText === '100.0%'")
    assert cell.inner_text() == "100.0%"
