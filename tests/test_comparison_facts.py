"""Stored comparison facts (policies, lengths, overlap counts): equal to the `formats` definitions
on every write path (save, bulk_create with ids only, a file import, the fill service after a
raw-SQL NULL), and recomputed when a summary's or post's text changes."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from labeling import formats
from labeling.models import FACT_FIELDS, FACTS_MISSING, Comparison, Dataset, Policy, Post, Summary
from labeling.services.comparison_facts import comparison_facts_fill
from labeling.services.imports import comparisons_import

pytestmark = pytest.mark.django_db

TLDR = Path(__file__).resolve().parent.parent / "data" / "tldr_comparisons_sample.jsonl"


def expected(c: Comparison) -> dict:
    """The facts by their definitions in `formats`, read from the database afresh."""
    post, a, b = Post.objects.get(pk=c.post_id), Summary.objects.get(pk=c.summary_a_id), Summary.objects.get(
        pk=c.summary_b_id)
    source = formats.words(formats.overlap_source(post.title, post.text))
    assert formats.overlap_margin(source, a.text, b.text) == (len(source & formats.words(a.text))
                                                              - len(source & formats.words(b.text)))
    return {"policy_a_id": a.policy_id, "policy_b_id": b.policy_id, "len_a": len(a.text), "len_b": len(b.text),
            "overlap_a": len(source & formats.words(a.text)), "overlap_b": len(source & formats.words(b.text))}


def stored(pk: int) -> dict:
    return Comparison.objects.filter(pk=pk).values(*expected_keys()).get()


def expected_keys() -> list[str]:
    return ["policy_a_id", "policy_b_id", "len_a", "len_b", "overlap_a", "overlap_b"]


def assert_facts(pks) -> None:
    for c in Comparison.objects.filter(pk__in=list(pks)):
        facts = stored(c.pk)
        assert facts == expected(c), c.pk
        # the trivial judges' margins are the differences of the stored facts
        post, a, b = c.post, c.summary_a, c.summary_b
        source = formats.words(formats.overlap_source(post.title, post.text))
        assert formats.overlap_margin(source, a.text, b.text) == facts["overlap_a"] - facts["overlap_b"]
        assert formats.longer_margin(a.text, b.text) == facts["len_a"] - facts["len_b"]


@pytest.fixture
def world():
    ds = Dataset.objects.create(name="facts")
    posts = [Post.objects.create(dataset=ds, external_id=f"p{i}", title=f"My cat Über {i}",
                                 text=f"the cat sat on the mat, don't ask {i} times") for i in range(3)]
    pols = [Policy.objects.create(name=n) for n in ("ref", "sft", "rlaif")]
    texts = ["cat sat", "über cat on mat mat mat", "a dog ran far away from the house", "don't"]
    sums = {(p.pk, k): Summary.objects.create(post=p, policy=pols[k % 3], text=f"{texts[k]} {'x' * (i * k)}")
            for i, p in enumerate(posts) for k in range(4)}
    return {"ds": ds, "posts": posts, "pols": pols, "sums": sums}


def test_comparison_facts_is_the_judges_rule():
    facts = formats.comparison_facts("Hat title", "the cat", "hat cat cat", "dog")
    assert facts == {"len_a": 11, "len_b": 3, "overlap_a": 2, "overlap_b": 0}
    source = formats.words(formats.overlap_source("Hat title", "the cat"))
    assert formats.overlap_margin(source, "hat cat cat", "dog") == facts["overlap_a"] - facts["overlap_b"]
    assert formats.comparison_facts("t", "p", "a", "b", source_words={"a"})["overlap_a"] == 1


def test_save_fills_facts_with_and_without_cached_objects(world, django_assert_max_num_queries):
    p = world["posts"][0]
    s = [world["sums"][(p.pk, k)] for k in range(4)]
    c1 = Comparison.objects.create(post=p, summary_a=s[0], summary_b=s[1])  # cached objects: no extra reads
    c2 = Comparison(post_id=p.pk, summary_a_id=s[1].pk, summary_b_id=s[2].pk)
    with django_assert_max_num_queries(3):  # summaries, post, insert
        c2.save()
    c3, created = Comparison.objects.get_or_create(summary_a_id=s[2].pk, summary_b_id=s[3].pk,
                                                   defaults={"post_id": p.pk})
    assert created
    assert_facts([c1.pk, c2.pk, c3.pk])
    assert c2.len_b == len(s[2].text) and c2.policy_a_id == s[1].policy_id


def test_save_recomputes_when_a_summary_is_swapped_and_not_otherwise(world, django_assert_num_queries):
    p = world["posts"][1]
    s = [world["sums"][(p.pk, k)] for k in range(4)]
    c = Comparison.objects.create(post=p, summary_a=s[0], summary_b=s[1])
    c = Comparison.objects.get(pk=c.pk)
    with django_assert_num_queries(1):  # an unrelated edit reads nothing
        c.gold_choice = 1
        c.save(update_fields=["gold_choice"])
    c.summary_b_id = s[3].pk
    c.save(update_fields=["summary_b"])
    assert_facts([c.pk])
    assert stored(c.pk)["len_b"] == len(s[3].text)


def test_bulk_create_with_ids_only_fills_facts(world, django_assert_max_num_queries):
    objs = [Comparison(post_id=p.pk, summary_a_id=world["sums"][(p.pk, a)].pk, summary_b_id=world["sums"][(p.pk, b)].pk)
            for p in world["posts"] for a, b in itertools.combinations(range(4), 2)]
    with django_assert_max_num_queries(3):  # summaries, posts, one insert
        created = Comparison.objects.bulk_create(objs)
    assert len(created) == 18
    assert not Comparison.objects.filter(len_a__isnull=True).exists()
    assert_facts(c.pk for c in created)


def test_import_fills_facts(tmp_path):
    records = [json.loads(line) for line in itertools.islice(TLDR.open(encoding="utf-8"), 12)]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = comparisons_import(path=path, dataset="facts-import")
    assert result.comparisons_created > 0
    pks = list(Comparison.objects.values_list("pk", flat=True))
    assert len(pks) == result.comparisons_created
    assert not Comparison.objects.filter(FACTS_MISSING).exists()
    assert_facts(pks)


def test_fill_after_raw_sql_nulls(world):
    objs = [Comparison(post_id=p.pk, summary_a_id=world["sums"][(p.pk, a)].pk, summary_b_id=world["sums"][(p.pk, b)].pk)
            for p in world["posts"] for a, b in itertools.combinations(range(4), 2)]
    pks = [c.pk for c in Comparison.objects.bulk_create(objs)]
    table = Comparison._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"UPDATE {table} SET policy_a_id = NULL, policy_b_id = NULL, len_a = NULL, len_b = NULL, "
                    f"overlap_a = NULL, overlap_b = NULL WHERE id IN ({', '.join(['%s'] * len(pks))})", pks)
        cur.execute(f"UPDATE {table} SET overlap_b = NULL WHERE id = %s", [pks[0]])
    assert Comparison.objects.filter(len_a__isnull=True).count() == 18
    # only the given ids, then everything left; batches smaller than the rows
    assert comparison_facts_fill(comparison_ids=pks[:4], batch_size=3) == 4
    assert Comparison.objects.filter(len_a__isnull=True).count() == 14
    assert comparison_facts_fill(batch_size=5) == 14
    assert comparison_facts_fill() == 0
    assert_facts(pks)
    with pytest.raises(ValueError, match="batch_size"):
        comparison_facts_fill(batch_size=0)


def test_summary_and_post_edits_recompute_facts(world):
    p, q = world["posts"][:2]
    sp = [world["sums"][(p.pk, k)] for k in range(4)]
    cs = Comparison.objects.bulk_create([Comparison(post=p, summary_a=sp[0], summary_b=sp[1]),
                                         Comparison(post=p, summary_a=sp[1], summary_b=sp[2]),
                                         Comparison(post=p, summary_a=sp[2], summary_b=sp[3])])
    other = Comparison.objects.create(post=q, summary_a=world["sums"][(q.pk, 0)], summary_b=world["sums"][(q.pk, 1)])
    before_other = stored(other.pk)

    summary = Summary.objects.get(pk=sp[1].pk)
    summary.text = "the mat sat on a cat over there, longer now"
    summary.policy = world["pols"][2]
    summary.save()
    assert stored(cs[0].pk)["len_b"] == len(summary.text) and stored(cs[1].pk)["policy_a_id"] == world["pols"][2].pk
    assert_facts(c.pk for c in cs)

    post = Post.objects.get(pk=p.pk)
    post.text = "far away a dog ran"
    post.save()
    assert_facts(c.pk for c in cs)
    assert stored(cs[1].pk)["overlap_a"] == 2  # of the new text, only "a" (and "cat" of the title) in summary A
    assert stored(other.pk) == before_other


def test_fact_fields_are_the_stored_columns():
    assert {Comparison._meta.get_field(f).attname for f in FACT_FIELDS} == set(expected_keys())


def test_admin_lists_stored_policies_and_shows_facts_read_only(world, client, staff_user):
    p = world["posts"][2]
    a, b = world["sums"][(p.pk, 0)], world["sums"][(p.pk, 2)]
    c = Comparison.objects.create(post=p, summary_a=a, summary_b=b)
    client.force_login(staff_user)
    listing = client.get(reverse("admin:labeling_comparison_changelist"))
    assert listing.status_code == 200
    assert a.policy.name in listing.content.decode() and b.policy.name in listing.content.decode()
    page = client.get(reverse("admin:labeling_comparison_change", args=[c.pk])).content.decode()
    assert f'<div class="readonly">{len(b.text)}</div>' in page
    assert 'name="len_a"' not in page  # shown, not editable
    response = client.post(reverse("admin:labeling_comparison_change", args=[c.pk]),
                           {"post": p.pk, "summary_a": a.pk, "summary_b": world["sums"][(p.pk, 3)].pk,
                            "gold_choice": "", "len_a": "999"})
    assert response.status_code == 302
    assert_facts([c.pk])
    assert stored(c.pk)["len_b"] == len(world["sums"][(p.pk, 3)].text)
    assert stored(c.pk)["len_a"] == len(a.text)  # the posted len_a is ignored
