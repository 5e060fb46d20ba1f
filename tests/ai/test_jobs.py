"""AI labeling jobs in Django on PostgreSQL: configs from JSON/YAML, job creation enqueues on
commit to queue "gpu", chunked runs that resume after a crash and write each label exactly once,
the staff-only job pages and admin launch page, and the shell commands."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.judges.labeler import PairResult
from labeling.models import (
    AILabel, AILabelingJob, Comparison, Dataset, HumanLabel, JobStatus, LabelerConfig, Policy, Post, Summary,
)
from labeling.services import ai_labeling

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def comparisons(require_postgres):
    ds = Dataset.objects.create(name="tldr-test")
    pa, pb = Policy.objects.create(name="ref"), Policy.objects.create(name="ppo")
    out = []
    for i in range(6):
        post = Post.objects.create(dataset=ds, external_id=f"p{i}", subreddit="cats", title=f"Title {i}",
                                   text=f"My cat number {i} sat on the mat and would not move. " * (1 + i % 3))
        s1 = Summary.objects.create(post=post, policy=pa, text=f"Cat {i} sat.")
        s2 = Summary.objects.create(post=post, policy=pb, text=f"A cat numbered {i} refused to move from a mat.")
        a, b = sorted([s1, s2], key=lambda s: s.pk)
        out.append(Comparison.objects.create(post=post, summary_a=a, summary_b=b))
    return out


@pytest.fixture
def tiny_config(tiny_models, require_postgres):
    return LabelerConfig.objects.create(name="tiny-test", model=str(tiny_models["causal_lm"]), batch_size=2,
                                        max_prompt_tokens=512, is_noise=True)


def test_shipped_configs_load_with_tiny_local_under_artifact_root(settings, tmp_path, require_postgres):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    configs = ai_labeling.labeler_configs_load(overrides={"tiny-local": {"batch_size": 4}})
    by_name = {c.name: c for c in configs}
    tiny = by_name["tiny-local"]
    assert tiny.model == str(tmp_path / "artifacts" / "tiny-gpt2")
    assert tiny.is_noise and tiny.backend == "local" and tiny.batch_size == 4
    assert any(c.backend == "openai" and c.base_url.startswith("http") for c in configs)
    assert any(c.backend == "local" and c.use_chat_template and not c.is_noise for c in configs)
    # Loading again updates, never duplicates.
    ai_labeling.labeler_configs_load()
    assert LabelerConfig.objects.filter(name="tiny-local").count() == 1
    assert LabelerConfig.objects.get(name="tiny-local").batch_size == 8


def test_bad_config_file_names_file_and_field_and_writes_nothing(tmp_path, require_postgres):
    good = {"name": "ok-one", "model": "x"}
    path = tmp_path / "labelers.yaml"
    path.write_text("- name: ok-two\n  model: y\n- name: broken\n  model: z\n  shots: -3\n", encoding="utf-8")
    (tmp_path / "good.json").write_text(json.dumps(good), encoding="utf-8")
    with pytest.raises(ai_labeling.LabelerConfigFileError, match=r"labelers.yaml: config 'broken': shots"):
        ai_labeling.labeler_configs_load(paths=[tmp_path / "good.json", path])
    assert not LabelerConfig.objects.exists()
    path.write_text("- name: typo\n  model: z\n  preambel: base\n", encoding="utf-8")
    with pytest.raises(ai_labeling.LabelerConfigFileError, match=r"config #1 \('typo'\): unknown field\(s\) \['preambel'\]"):
        ai_labeling.labeler_configs_load(paths=[path])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": "x",\n "model": }', encoding="utf-8")
    with pytest.raises(ai_labeling.LabelerConfigFileError, match=r"bad.json: line 2: invalid JSON"):
        ai_labeling.labeler_configs_load(paths=[bad_json])
    with pytest.raises(CommandError, match="unknown field"):
        call_command("load_labeler_configs", str(path))


def test_job_create_enqueues_on_commit_to_gpu_queue(comparisons, tiny_config, monkeypatch,
                                                    django_capture_on_commit_callbacks):
    from labeling.tasks import ai_labeling as tasks

    sent = []
    monkeypatch.setattr(tasks.run_ai_labeling_job, "apply_async", lambda **kw: sent.append(kw))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:4])
    assert sent == [] and len(callbacks) == 1  # nothing before the commit
    callbacks[0]()
    assert sent == [{"args": [job.pk], "queue": "gpu"}]
    assert job.total == 4 and job.status == JobStatus.QUEUED and job.comparisons.count() == 4
    assert tasks.run_ai_labeling_job.acks_late is True
    assert tasks.run_ai_labeling_job.reject_on_worker_lost is True


class Crash(Exception):
    pass


def test_interrupted_job_resumes_and_writes_each_label_exactly_once(comparisons, tiny_config):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons, enqueue=False)
    seen = []

    def crash_after_first_chunk(j):
        seen.append(j.done)
        raise Crash("worker killed")

    with pytest.raises(Crash):
        ai_labeling.ai_labeling_job_run(job_id=job.pk, chunk_size=2, on_chunk=crash_after_first_chunk)
    job.refresh_from_db()
    assert seen == [2] and job.status == JobStatus.RUNNING and AILabel.objects.count() == 2
    first_two = set(AILabel.objects.values_list("comparison_id", flat=True))

    # The task is redelivered: the run resumes after the committed chunk.
    from labeling.tasks.ai_labeling import run_ai_labeling_job

    run_ai_labeling_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.done == 6 and job.failed == 0 and job.total == 6
    labels = AILabel.objects.filter(config=tiny_config)
    assert labels.count() == 6
    assert sorted(labels.values_list("comparison_id", flat=True)) == sorted(c.pk for c in comparisons)
    assert first_two <= set(labels.values_list("comparison_id", flat=True))
    assert job.tokens_processed == sum(l.prompt_tokens for l in labels) > 0
    for label in labels:
        assert 0 <= label.p_a <= 1 and label.p_a_ab is not None and label.p_a_ba is not None
        assert label.p_a == pytest.approx((label.p_a_ab + label.p_a_ba) / 2)
        assert label.consistent == ((label.p_a_ab > 0.5) == (label.p_a_ba > 0.5))

    # Running a finished job again, or a second job for the same comparisons, writes nothing new.
    ai_labeling.ai_labeling_job_run(job_id=job.pk)
    job2 = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons, enqueue=False)
    job2 = ai_labeling.ai_labeling_job_run(job_id=job2.pk)
    assert job2.status == JobStatus.DONE and job2.done == 6 and AILabel.objects.count() == 6


def test_a_chunk_written_twice_stays_one_label_each(comparisons, tiny_config):
    """Two workers finishing the same chunk (a redelivery race): the database keeps one label."""
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    results = [PairResult(key=c.pk, p_a=0.6, p_a_ab=0.7, p_a_ba=0.5, consistent=True, prompt_tokens=10)
               for c in comparisons[:2]]
    ai_labeling._write_chunk(job.pk, tiny_config, results)
    job = ai_labeling._write_chunk(job.pk, tiny_config, results)
    assert AILabel.objects.count() == 2 and job.done == 2 and job.tokens_processed == 20


def test_failures_are_recorded_per_label_and_job_fails_clearly(comparisons, tiny_config, tmp_path):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:1], enqueue=False)
    results = [PairResult(key=comparisons[0].pk, error="answer token(s) ['2'] not among the top 5 logprobs")]
    job = ai_labeling._write_chunk(job.pk, tiny_config, results)
    label = AILabel.objects.get()
    assert label.p_a is None and "not among" in label.error
    assert job.failed == 1 and job.done == 0 and job.errors[0]["comparison"] == comparisons[0].pk

    missing = LabelerConfig.objects.create(name="missing-model", model=str(tmp_path / "nope"))
    bad = ai_labeling.ai_labeling_job_create(config=missing, comparisons=comparisons[:1], enqueue=False)
    bad = ai_labeling.ai_labeling_job_run(job_id=bad.pk)
    assert bad.status == JobStatus.FAILED and "does not exist" in bad.errors[-1]["error"]


def test_few_shot_exemplars_come_from_human_labelled_pairs_outside_the_job(comparisons, tiny_config, staff_user):
    for c, choice in zip(comparisons[4:], (0, 1)):
        HumanLabel.objects.create(comparison=c, annotator=staff_user, choice=choice)
    tiny_config.shots = 2
    tiny_config.save()
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    ex = ai_labeling._job_exemplars(job)
    assert [e.preferred for e in ex] == [1, 2]
    assert ex[0].first == comparisons[4].summary_a.text and "TITLE: Title 4" in ex[0].text
    job = ai_labeling.ai_labeling_job_run(job_id=job.pk)
    assert job.status == JobStatus.DONE and job.done == 2
    tiny_config.shots = 3
    tiny_config.save()
    job3 = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[2:4], enqueue=False)
    job3 = ai_labeling.ai_labeling_job_run(job_id=job3.pk)
    assert job3.status == JobStatus.FAILED and "only 2 labelled pairs" in job3.errors[-1]["error"]


def test_job_pages_are_staff_only_and_show_progress_and_noise(client, comparisons, tiny_config, staff_user, annotator):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    urls = [reverse("labeling:ai_job_list"), reverse("labeling:ai_job_launch"),
            reverse("labeling:ai_job_detail", args=[job.pk]), reverse("labeling:ai_job_progress", args=[job.pk])]
    assert all(u.startswith("/labeling/ai/") for u in urls)
    client.force_login(annotator)
    assert all(client.get(u).status_code == 403 for u in urls)
    assert client.post(reverse("labeling:ai_job_cancel", args=[job.pk])).status_code == 403
    client.logout()
    assert client.get(urls[0]).status_code == 302  # to the log-in page
    client.force_login(staff_user)
    page = client.get(urls[2]).content.decode()
    assert "labels are noise" in page and 'hx-get="%s"' % urls[3] in page and 'hx-trigger="every 2s"' in page
    ai_labeling.ai_labeling_job_run(job_id=job.pk)
    partial = client.get(urls[3]).content.decode()
    assert "2 / 2 (100.0%)" in partial and "hx-trigger" not in partial  # polling stops when done
    assert "labels/s" in partial
    assert client.get(urls[0]).status_code == 200


def test_launch_form_creates_a_job_and_csrf_is_enforced(comparisons, tiny_config, staff_user, monkeypatch,
                                                        django_capture_on_commit_callbacks):
    from django.test import Client

    from labeling.tasks import ai_labeling as tasks

    sent = []
    monkeypatch.setattr(tasks.run_ai_labeling_job, "apply_async", lambda **kw: sent.append(kw))
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff_user)
    data = {"config": tiny_config.pk, "dataset": comparisons[0].post.dataset_id, "limit": 3, "only_unlabeled": "on"}
    assert csrf_client.post(reverse("labeling:ai_job_launch"), data).status_code == 403
    client = Client()
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("labeling:ai_job_launch"), data)
    job = AILabelingJob.objects.get()
    assert resp.status_code == 302 and resp.url == reverse("labeling:ai_job_detail", args=[job.pk])
    assert job.total == 3 and job.created_by == staff_user and sent == [{"args": [job.pk], "queue": "gpu"}]
    # Admin launch page: same form inside the admin, explicit comparison ids.
    assert client.get(reverse("admin:labeling_ailabelingjob_launch") + f"?config={tiny_config.pk}").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("admin:labeling_ailabelingjob_launch"),
                           {"config": tiny_config.pk, "comparison_ids": f"{comparisons[4].pk}, {comparisons[5].pk}"})
    assert resp.status_code == 302
    assert set(AILabelingJob.objects.latest("pk").comparisons.values_list("pk", flat=True)) == {comparisons[4].pk, comparisons[5].pk}
    for name in ("labelerconfig", "ailabelingjob", "ailabel"):
        assert client.get(reverse(f"admin:labeling_{name}_changelist")).status_code == 200


def test_label_with_ai_command(comparisons, tiny_config, capsys):
    call_command("label_with_ai", config="tiny-test", dataset="tldr-test", limit=4, chunk_size=2)
    out = capsys.readouterr()
    assert "4/4" in out.out and "done: 4 labelled, 0 failed" in out.out and "noise" in out.err
    assert AILabel.objects.count() == 4
    call_command("label_with_ai", config="tiny-test")  # only the two left
    assert AILabel.objects.count() == 6
    with pytest.raises(CommandError, match="no labeler config 'nope'"):
        call_command("label_with_ai", config="nope")


def test_a_new_job_retries_failed_labels_of_an_earlier_job(comparisons, tiny_config):
    old = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    ai_labeling._write_chunk(old.pk, tiny_config, [PairResult(key=comparisons[0].pk, error="server down"),
                                           PairResult(key=comparisons[1].pk, p_a=0.4, p_a_ab=0.4, p_a_ba=0.4,
                                                      consistent=True)])
    # Within the same job a failure is not retried (no endless loop) ...
    assert list(ai_labeling._pending(old)) == []
    new = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    assert [c.pk for c in ai_labeling._pending(new)] == [comparisons[0].pk]
    new = ai_labeling.ai_labeling_job_run(job_id=new.pk)
    assert new.status == JobStatus.DONE and new.done == 2 and new.failed == 0
    assert AILabel.objects.filter(config=tiny_config).count() == 2
    assert AILabel.objects.get(comparison=comparisons[0]).error == ""
    assert AILabel.objects.get(comparison=comparisons[1]).p_a == 0.4  # a good label stays
