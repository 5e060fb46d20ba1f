"""The rating page in a real browser (Playwright driving Debian's chromium) against Django's live
server on PostgreSQL: log in, rate three pairs with the keyboard, skip one, undo one, and check
the rows; the left/right order is recorded and mapped back; a `<script>` summary shows as text."""
from __future__ import annotations

import os

import pytest

from labeling.models import Assignment, HumanLabel
from labeling.services.assignments import campaign_create

from .conftest import make_dataset

XSS = "<script>window.__pwned = 1</script> a summary with markup"

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.slow]




def _current(page) -> int:
    return int(page.locator("article.post").get_attribute("data-assignment"))


def _press_and_wait_new_pair(page, key: str, before: int) -> None:
    page.keyboard.press(key)
    page.wait_for_function(
        "before => { const a = document.querySelector('article.post');"
        " return a && a.dataset.assignment !== String(before); }",
        arg=before,
    )


@pytest.mark.django_db(transaction=True)
def test_rate_skip_undo_with_keyboard(require_postgres, live_server, browser_page, django_user_model):
    page = browser_page
    user = django_user_model.objects.create_user("browser-rater", password="browser-pass-123")
    campaign = campaign_create(name="Browser campaign", dataset=make_dataset("browser", n=6, summary_text=XSS),
                               annotators=[user], undo_seconds=120)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "browser-rater")
    page.fill("#id_password", "browser-pass-123")
    page.click("form.login button[type=submit]")
    page.click("text=My campaigns")
    page.click(f"#campaigns >> text={campaign.name}")
    page.wait_for_selector("article.post")
    if os.environ.get("RATING_SCREENSHOT_DIR"):  # for reviewers: what the annotator sees
        page.screenshot(path=os.path.join(os.environ["RATING_SCREENSHOT_DIR"], "rating-page.png"), full_page=True)

    # The <script> summary is shown as text and did not run (htmx would run an unescaped one).
    assert "<script>window.__pwned = 1</script>" in page.inner_text("body")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#summary-left h3").inner_text() == "Summary 1"

    pressed: dict[int, str] = {}
    for key, sure in (("1", "r"), ("2", None), ("1", "q")):
        before = _current(page)
        if sure:
            page.keyboard.press(sure)
        pressed[before] = key
        _press_and_wait_new_pair(page, key, before)
    assert page.inner_text("#my-done") == "3"

    skipped = _current(page)
    _press_and_wait_new_pair(page, "s", skipped)

    page.keyboard.press("u")  # u after s takes back the skip: the skipped pair is shown again
    page.wait_for_selector("#pair-notice:has-text('Skip undone')")
    assert _current(page) == skipped
    _press_and_wait_new_pair(page, "s", skipped)  # skip it again

    page.keyboard.press("u")  # undoes that skip ...
    page.wait_for_selector("#pair-notice:has-text('Skip undone')")
    page.keyboard.press("u")  # ... and then the third answer, which shows that pair again
    page.wait_for_selector("#pair-notice:has-text('earlier answer')")
    third = list(pressed)[2]
    assert _current(page) == third
    assert page.inner_text("#my-done") == "2"

    labels = {lb.assignment.pk: lb for lb in HumanLabel.objects.select_related("assignment").filter(campaign=campaign)}
    assert set(labels) == set(list(pressed)[:2])
    expected_conf = {list(pressed)[0]: "definitely", list(pressed)[1]: None}
    for pk, label in labels.items():
        a = Assignment.objects.get(pk=pk)
        assert label.a_shown_first == a.a_shown_first
        left_is_a = a.a_shown_first
        chose_left = pressed[pk] == "1"
        assert label.choice == (0 if chose_left == left_is_a else 1)
        if expected_conf[pk] == "definitely":
            assert label.confidence == (1 if label.choice == 0 else 9)
        else:
            assert label.confidence is None
    assert Assignment.objects.get(pk=skipped).status == "leased"  # its skip was undone
    assert Assignment.objects.get(pk=third).status == "leased"
    assert not HumanLabel.objects.filter(assignment__pk=third).exists()

    # Answer the undone pair again with the button; the new answer is stored once.
    page.click("#choose-right")
    page.wait_for_function(f"() => document.querySelector('article.post')?.dataset.assignment !== '{third}'")
    assert HumanLabel.objects.filter(campaign=campaign).count() == 3
    # Readable at a laptop width: the two summaries sit side by side.
    left, right = page.locator("#summary-left").bounding_box(), page.locator("#summary-right").bounding_box()
    assert left["x"] + left["width"] <= right["x"] and abs(left["y"] - right["y"]) < 2
