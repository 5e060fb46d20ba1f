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

    page.select_option("select[name=judge]", "humans")  # a second switch: the URL stays clean
    page.wait_for_function("() => location.search.includes('judge=humans')")
    search = page.evaluate("() => location.search")
    assert search.count("judge=") == 1 and search.count("dataset=") == 1, search


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


NO_PAGE_SCROLL = """() => {
  const doc = document.documentElement;
  const wide = [...document.querySelectorAll('body *')].filter(el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > doc.clientWidth + 1 && !el.closest('.table-wrap');
  }).map(el => el.tagName + '.' + el.className);
  return {scroll: doc.scrollWidth - doc.clientWidth, wide: wide.slice(0, 5)};
}"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width,height", [(1366, 768), (390, 844)])
def test_verdict_badge_in_view_and_no_horizontal_page_scroll(live_server, browser_page, small_world, staff_user,
                                                            width, height):
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    services.refresh_dashboard(filters=Filters(), rounds=20)
    _login(page, live_server.url, "staff", "staff-pass-123")
    page.goto(f"{live_server.url}/evaluation/alignment/")
    badge = page.locator("#table-alignment .badge.bad").first
    assert badge.inner_text() == "no better than a trivial judge"
    box = badge.bounding_box()
    assert box and 0 <= box["x"] and box["x"] + box["width"] <= width and 0 <= box["y"] and box["y"] + box["height"] <= height
    legend = page.locator("#legend-alignment")
    assert "beats trivial judges" in legend.inner_text()
    for path in ("alignment", "winrates", "leaderboard", "annotators", "winrates/?judge=trivial:longer"):
        page.goto(f"{live_server.url}/evaluation/{path}")
        page.wait_for_load_state("load")
        if path == "winrates":
            page.locator("#winrate-matrix td[data-x] button").first.click()
            page.wait_for_selector("#cell-detail table")
        state = page.evaluate(NO_PAGE_SCROLL)
        assert state["scroll"] <= 0, (path, width, state)
