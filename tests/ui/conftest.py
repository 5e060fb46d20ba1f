"""Helpers of the layout tests: typical TL;DR pairs from the shipped data, log-in, viewport checks."""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from labeling.models import Comparison, Dataset, Policy, Post, Summary

DATA = Path(__file__).resolve().parents[2] / "data" / "tldr_comparisons_sample.jsonl"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def typical_dataset(name: str = "typical", n: int = 6) -> Dataset:
    """`n` real comparisons whose post, title and summary lengths are closest to the sample's medians."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").split("\n") if line.strip()]
    med = {k: statistics.median(len(r[k]) for r in rows) for k in ("post", "title", "summary_a", "summary_b")}

    def distance(r: dict) -> float:
        return sum(abs(len(r[k]) - m) / m for k, m in med.items())

    seen, picked = set(), []
    for r in sorted(rows, key=distance):
        if r["post_id"] not in seen:
            seen.add(r["post_id"])
            picked.append(r)
        if len(picked) == n:
            break
    ds = Dataset.objects.create(name=name, source=str(DATA.name))
    pa, _ = Policy.objects.get_or_create(name="typical-a")
    pb, _ = Policy.objects.get_or_create(name="typical-b")
    for r in picked:
        post = Post.objects.create(dataset=ds, external_id=r["post_id"], subreddit=r["subreddit"], title=r["title"],
                                   text=r["post"])
        a = Summary.objects.create(post=post, policy=pa, text=r["summary_a"])
        b = Summary.objects.create(post=post, policy=pb, text=r["summary_b"])
        Comparison.objects.create(post=post, summary_a=a, summary_b=b)
    return ds


def new_page(browser_page, size: dict, *, touch: bool = False):
    """A page in a fresh context of the fixture's browser at `size` (a phone: touch, mobile)."""
    browser = browser_page.context.browser
    ctx = browser.new_context(viewport=size, has_touch=touch, is_mobile=touch,
                              device_scale_factor=1)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    return page


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form.login button[type=submit]")
    page.wait_for_load_state()


def in_viewport(page, selector: str) -> bool:
    """The element's whole box is inside the viewport (not scrolled off, not clipped at an edge)."""
    return page.evaluate(
        """sel => { const el = document.querySelector(sel); if (!el) return false;
            const r = el.getBoundingClientRect();
            return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
                && r.bottom <= window.innerHeight && r.right <= window.innerWidth; }""",
        selector,
    )


def uncovered(page, selector: str) -> bool:
    """Nothing (a sticky bar, a menu) lies over the element's corners and centre."""
    return page.evaluate(
        """sel => { const el = document.querySelector(sel); if (!el) return false;
            const r = el.getBoundingClientRect();
            const pts = [[r.left + 3, r.top + 3], [r.right - 3, r.top + 3], [r.left + 3, r.bottom - 3],
                         [r.right - 3, r.bottom - 3], [(r.left + r.right) / 2, (r.top + r.bottom) / 2]];
            return pts.every(([x, y]) => { const hit = document.elementFromPoint(x, y);
                                           return hit && (hit === el || el.contains(hit)); }); }""",
        selector,
    )


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def screenshot(page, name: str) -> None:
    """Screenshots for reviewers when UI_SCREENSHOT_DIR is set (what a user sees at each width)."""
    folder = os.environ.get("UI_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
