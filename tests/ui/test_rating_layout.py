"""The rating page at a laptop (1366x768) and a phone (390x844, touch) size in chromium: the post
title, both summaries and the two choice buttons of a typical pair are on screen without scrolling
on first load, after an answer and after an undo; a new pair starts at the top with its notice in
view; touch screens get no keyboard hints; undo of a skip and undo of an answer bring back what
was there."""
from __future__ import annotations

import pytest

from labeling.models import Assignment, HumanLabel
from labeling.services.assignments import campaign_create

from .conftest import LAPTOP, PHONE, in_viewport, log_in, new_page, screenshot, typical_dataset, uncovered

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.slow]

MUST_SEE = ["#post-title", "#summary-left", "#summary-right", "#choose-left", "#choose-right"]


def _current(page) -> int:
    return int(page.locator("article.post").get_attribute("data-assignment"))


def _wait_new_pair(page, before: int) -> None:
    page.wait_for_function(
        "before => { const a = document.querySelector('article.post');"
        " return a && a.dataset.assignment !== String(before); }", arg=before)


def _all_visible(page) -> list[str]:
    """The elements of MUST_SEE that are off-screen or under something else (none, we hope)."""
    return [sel for sel in MUST_SEE if not (in_viewport(page, sel) and uncovered(page, sel))]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size, touch", [(LAPTOP, False), (PHONE, True)], ids=["laptop", "phone"])
def test_typical_pair_fits_the_screen_answer_undo(require_postgres, live_server, browser_page, django_user_model,
                                                  size, touch):
    user = django_user_model.objects.create_user("fit-rater", password="fit-pass-123")
    campaign = campaign_create(name="Fit campaign", dataset=typical_dataset(), annotators=[user], undo_seconds=300)
    page = new_page(browser_page, size, touch=touch)
    tag = "phone" if touch else "laptop"
    log_in(page, live_server.url, "fit-rater", "fit-pass-123")
    page.goto(f"{live_server.url}/labeling/campaigns/{campaign.pk}/")
    page.wait_for_selector("article.post")
    screenshot(page, f"rate-{tag}-first")
    assert _all_visible(page) == []
    assert page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    kbd_shown = page.evaluate("() => [...document.querySelectorAll('kbd')].some(k => k.offsetParent !== null)")
    assert kbd_shown is (not touch)  # key hints on a laptop, none on a touch screen

    # Answer with a certainty and a note. On the phone, scroll down first: the next pair must
    # still start at the top, with the "Saved" notice in view.
    first = _current(page)
    page.check('input[name="certainty"][value="3"]')
    page.click("details.note summary")
    page.fill('textarea[name="note_right"]', "clear and short")
    if touch:
        page.mouse.wheel(0, 600)
        page.tap("#choose-right")
    else:
        page.click("#choose-right")
    _wait_new_pair(page, first)
    page.wait_for_selector("#pair-notice")
    screenshot(page, f"rate-{tag}-after-answer")
    assert page.evaluate("() => window.scrollY") == 0
    assert in_viewport(page, "#pair-notice") and _all_visible(page) == []
    assert page.locator("#pair-notice .key-hint").is_visible() is (not touch)

    # Skip, then undo: the skip is undone (not the answer before it).
    second = _current(page)
    if touch:
        page.tap("#skip-btn")
    else:
        page.keyboard.press("s")
    _wait_new_pair(page, second)
    if touch:
        page.tap("#undo-btn")
    else:
        page.keyboard.press("u")
    page.wait_for_selector("#pair-notice:has-text('Skip undone')")
    assert _current(page) == second
    assert Assignment.objects.get(pk=second).status == "leased"
    assert HumanLabel.objects.filter(assignment__pk=first).exists()
    assert _all_visible(page) == []

    # Undo again: the first answer comes back with its side, certainty and note filled in.
    if touch:
        page.tap("#undo-btn")
    else:
        page.keyboard.press("u")
    page.wait_for_selector("#pair-notice:has-text('earlier answer is filled in')")
    screenshot(page, f"rate-{tag}-after-undo")
    assert _current(page) == first
    assert not HumanLabel.objects.filter(assignment__pk=first).exists()
    assert page.get_attribute("#choose-right", "aria-pressed") == "true"
    assert page.is_checked('input[name="certainty"][value="3"]')
    assert page.input_value('textarea[name="note_right"]') == "clear and short"
    assert page.evaluate("() => window.scrollY") == 0
    assert in_viewport(page, "#pair-notice") and _all_visible(page) == []
    page.context.close()
