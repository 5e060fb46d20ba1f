"""Issue 11, item 7: no GET reaches a 5xx. Every URL pattern of the site (the admin aside) is
requested as staff; the GET parameters each view reads are found by recording the keys it looks up
in request.GET (plus the parameters the pages document), and each is then sent odd values: huge
and tiny dates, NUL, negative, non-numeric, over-long, judge ids that are not numbers."""
from __future__ import annotations

import re

import pytest
from django.http import QueryDict
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labeling.models import AILabelingJob, Campaign, LabelerConfig
from tests.evaluation.conftest import _empty_django_cache, small_world  # noqa: F401  (fixtures)
from training.models import TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.slow]

ODD = ["9999-12-31", "0001-01-01", "a\x00b", "-1", "abc", "9" * 30, "x" * 3000, "config:abc",
       "config:99999999999999999999"]


def _patterns(resolver=None, prefix=""):
    for p in (resolver or get_resolver()).url_patterns:
        if isinstance(p, URLResolver):
            if str(p.pattern).startswith("admin"):
                continue
            ns = f"{prefix}{p.namespace}:" if p.namespace else prefix
            yield from _patterns(p, ns)
        elif isinstance(p, URLPattern) and p.name:
            yield prefix + p.name, re.findall(r"<(?:(\w+):)?(\w+)>", str(p.pattern))


class _Recorder:
    """Records the keys views look up in request.GET."""

    def __init__(self, monkeypatch):
        self.keys: set[str] = set()
        for name in ("get", "__getitem__", "__contains__", "getlist"):
            original = getattr(QueryDict, name)

            def spy(qd, key, *args, _original=original, **kwargs):
                self.keys.add(key)
                return _original(qd, key, *args, **kwargs)

            monkeypatch.setattr(QueryDict, name, spy)


@pytest.fixture
def world(require_postgres, small_world, staff_user, monkeypatch):  # noqa: F811
    from evaluation import tasks

    monkeypatch.setattr(tasks.refresh_dashboard_task, "delay", lambda *a, **k: None)
    monkeypatch.setattr(tasks.refresh_dashboard_task, "apply_async", lambda *a, **k: None)
    campaign: Campaign = small_world["campaign"]
    campaign.annotators.add(staff_user)
    run = TrainingRun.objects.create(kind="sft", dataset=small_world["dataset"], hyperparameters={})
    job = AILabelingJob.objects.create(config=small_world["good"])
    config: LabelerConfig = small_world["good"]
    rl, sft = small_world["rl"], small_world["sft"]
    return {"pk": [campaign.pk, run.pk, job.pk, config.pk, small_world["dataset"].pk], "cpk": [campaign.pk],
            "page": ["alignment", "winrates", "leaderboard", "annotators"], "fmt": ["csv", "json"],
            "table": ["alignment", "winrates", "leaderboard", "annotators"],
            "valid": {"x": str(rl.pk), "y": str(sft.pk), "dataset": "small", "judge": "humans"}}


def _urls(world) -> list[str]:
    out = []
    for name, args in _patterns():
        if not args:
            out.append(reverse(name))
            continue
        names = [a for _, a in args]
        if names == ["page", "table", "fmt"]:
            out += [reverse(name, kwargs={"page": p, "table": p, "fmt": f}) for p in world["page"] for f in world["fmt"]]
        elif names == ["fmt"]:
            out += [reverse(name, kwargs={"fmt": f}) for f in world["fmt"]]
        elif names == ["cpk", "pk"]:
            out.append(reverse(name, kwargs={"cpk": world["cpk"][0], "pk": 1}))
        elif names == ["pk"]:
            out += [reverse(name, kwargs={"pk": pk}) for pk in sorted(set(world["pk"]))]
        else:  # a new URL shape: fail loudly so the fuzzer is taught about it
            raise AssertionError(f"teach the fuzzer the arguments of {name}: {names}")
    return out


def test_no_get_parameter_reaches_a_5xx(client, world, staff_user, monkeypatch):
    client.force_login(staff_user)
    client.raise_request_exception = False  # a view's exception becomes the 500 a user would get
    recorder = _Recorder(monkeypatch)
    failures, tried = [], 0
    for url in _urls(world):
        recorder.keys.clear()
        first = client.get(url, {"_probe": "1"})
        if first.status_code >= 500:
            failures.append((url, {}, first.status_code))
        if first.status_code == 405:  # POST only
            continue
        client.get(url, world["valid"])  # valid values may lead the view further (more keys read)
        base = {k: v for k, v in world["valid"].items() if k in recorder.keys}
        for param in sorted(recorder.keys - {"_probe"}):
            for value in ODD:
                tried += 1
                response = client.get(url, {**base, param: value})
                if response.status_code >= 500:
                    failures.append((url, param, repr(value)[:40], response.status_code))
    assert tried > 200
    assert failures == [], "\n".join(map(str, failures))
