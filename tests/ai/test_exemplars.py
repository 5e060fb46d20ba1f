"""Fixed exemplars are part of a labeler config's identity (chosen once, stored, shown in the
admin, used by every job), and each AI label records how its probabilities were read. The
labeler is the OpenAI-compatible backend against the loopback server of test_http_backend."""
from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.judges.openai_http import OpenAIHTTPBackend
from labeling.judges.prompts import EXAMPLES_END
from labeling.models import (
    AILabel, Comparison, Dataset, HumanLabel, JobStatus, LabelerBackend, LabelerConfig, Policy, Post, Summary,
)
from labeling.services import ai_labeling

from .test_http_backend import server  # noqa: F401  (the loopback completions server fixture)

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.postgres]


@pytest.fixture
def labelled(require_postgres, staff_user):
    """Eight comparisons; the last four carry a human label (the exemplar candidates)."""
    ds = Dataset.objects.create(name="exemplar-test")
    pa, pb = Policy.objects.create(name="short"), Policy.objects.create(name="long")
    out = []
    for i in range(8):
        post = Post.objects.create(dataset=ds, external_id=f"p{i}", subreddit="cats", title=f"Title {i}",
                                   text=f"Cat {i} sat on the mat. " * (1 + i))
        s1 = Summary.objects.create(post=post, policy=pa, text=f"Cat {i} sat.")
        s2 = Summary.objects.create(post=post, policy=pb, text=f"A cat numbered {i} sat on a mat.")
        a, b = sorted([s1, s2], key=lambda s: s.pk)
        out.append(Comparison.objects.create(post=post, summary_a=a, summary_b=b))
    for c in out[4:]:
        HumanLabel.objects.create(comparison=c, annotator=staff_user, choice=0)
    return out


@pytest.fixture
def http_config(server):  # noqa: F811
    return LabelerConfig.objects.create(name="http-2shot", backend=LabelerBackend.OPENAI, model="m",
                                        base_url=server.url, shots=2, max_prompt_tokens=0)


def _exemplar_part(prompt: str) -> str:
    return prompt.split(EXAMPLES_END)[0]


def test_two_jobs_use_the_same_stored_exemplars(labelled, http_config, server, client, staff_user):  # noqa: F811
    backend = OpenAIHTTPBackend(server.url, "m")
    job1 = ai_labeling.ai_labeling_job_create(config=http_config, comparisons=labelled[:2], enqueue=False)
    job1 = ai_labeling.ai_labeling_job_run(job_id=job1.pk, backend=backend)
    assert job1.status == JobStatus.DONE and job1.done == 2
    http_config.refresh_from_db()
    stored = http_config.exemplars
    assert len(stored) == 2 and all(e["preferred"] == 1 for e in stored)
    assert {e["comparison"] for e in stored} <= {c.pk for c in labelled[4:]}
    first_prompts = {_exemplar_part(r["prompt"]) for r in server.requests}
    assert len(first_prompts) == 1

    # A second job over other comparisons, including the pairs the first job chose as exemplars:
    # before, its pool left out its own comparisons and so it picked other exemplars.
    server.requests.clear()
    job2 = ai_labeling.ai_labeling_job_create(config=http_config, comparisons=labelled[2:], enqueue=False)
    job2 = ai_labeling.ai_labeling_job_run(job_id=job2.pk, backend=backend)
    assert {_exemplar_part(r["prompt"]) for r in server.requests} == first_prompts
    http_config.refresh_from_db()
    assert http_config.exemplars == stored
    # An exemplar pair is not labelled with its own answer in the prompt: a recorded failure.
    leaked = AILabel.objects.filter(config=http_config, comparison_id__in=[e["comparison"] for e in stored])
    assert leaked.count() == 2 and all("fixed exemplars" in label.error for label in leaked)
    assert job2.done == 4 and job2.failed == 2

    # The admin shows them on the config's page.
    client.force_login(staff_user)
    page = client.get(reverse("admin:labeling_labelerconfig_change", args=[http_config.pk])).content.decode()
    for e in stored:
        assert f"comparison {e['comparison']}</a> (Summary 1 preferred)" in page


def test_each_label_records_how_it_was_scored(labelled, server):  # noqa: F811
    config = LabelerConfig.objects.create(name="http-0shot", backend=LabelerBackend.OPENAI, model="m",
                                          base_url=server.url, max_prompt_tokens=0)
    backend = OpenAIHTTPBackend(server.url, "m")
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=labelled[:2], enqueue=False)
    ai_labeling.ai_labeling_job_run(job_id=job.pk, backend=backend)
    server.drop_token = "2"  # now "2" falls out of the top logprobs: read exactly with echo
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=labelled[2:4], enqueue=False)
    ai_labeling.ai_labeling_job_run(job_id=job.pk, backend=backend)
    methods = dict(AILabel.objects.filter(config=config).values_list("comparison_id", "score_method"))
    assert [methods[c.pk] for c in labelled[:4]] == ["top_logprobs", "top_logprobs", "echo", "echo"]
    assert all(label.p_a is not None for label in AILabel.objects.filter(config=config))
