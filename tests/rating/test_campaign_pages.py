"""Campaigns for staff without the admin: the create page (dataset, filter, overlap, annotators or
group, gold share, guidelines) goes through `campaign_create` and refuses bad input naming the
field; the list and the campaign page show progress and agreement; annotators get the 403 page.
Undo from the history page opens the pair again with the earlier answer filled in."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from labeling.models import Campaign, HumanLabel
from labeling.services.assignments import campaign_create, label_submit, assignment_next, assignment_skip

from .conftest import make_dataset

pytestmark = pytest.mark.django_db


def _form(ds, **over) -> dict:
    data = {"name": "Web campaign", "dataset": ds.pk, "subreddit": "", "without_human_labels": "on", "limit": "",
            "overlap": 2, "annotators": [], "group": "", "gold_share": 0, "guidelines": "Read both."}
    data.update(over)
    return data


def test_create_campaign_from_the_page(client, staff_user, users):
    ds = make_dataset("web", n=5, n_gold=2)
    client.force_login(staff_user)
    assert client.get(reverse("labeling:campaign_new")).status_code == 200
    resp = client.post(reverse("labeling:campaign_new"), _form(
        ds, annotators=[users[0].pk, users[1].pk], limit=3, gold_share=0.25))
    campaign = Campaign.objects.get(name="Web campaign")
    assert resp.status_code == 302 and resp["Location"] == reverse("labeling:quality", args=[campaign.pk])
    assert campaign.overlap == 2 and campaign.guidelines == "Read both." and campaign.created_by == staff_user
    assert set(campaign.annotators.all()) == {users[0], users[1]}
    items = list(campaign.items.select_related("comparison"))
    regular = [i for i in items if not i.is_gold]
    assert len(regular) == 3 and all(i.comparison.gold_choice is None for i in regular)
    assert sum(i.is_gold for i in items) == 1  # 25% of 4
    page = client.get(reverse("labeling:quality", args=[campaign.pk])).content.decode()
    assert 'id="campaign-progress"' in page and "0 / 8 labels" in page
    overview = client.get(reverse("labeling:quality_index")).content.decode()
    assert "Web campaign" in overview and "0 / 8 labels (0%)" in overview


def test_filter_subreddit_and_unlabelled_only_and_a_group(client, staff_user, users):
    ds = make_dataset("filt", n=4)
    first = ds.posts.order_by("pk").first()
    first.subreddit = "cats"
    first.save()
    group = Group.objects.create(name="raters")
    client.force_login(staff_user)
    client.post(reverse("labeling:campaign_new"), _form(ds, name="cats only", subreddit="r/cats", group=group.pk))
    c = Campaign.objects.get(name="cats only")
    assert c.group == group and [i.comparison.post_id for i in c.items.select_related("comparison")] == [first.pk]
    # a pair that has a human label is left out of a new "unlabelled only" campaign
    old = campaign_create(name="old", dataset=ds, annotators=[users[0]])
    lease = assignment_next(campaign=old, user=users[0])
    label_submit(user=users[0], assignment_id=lease.pk, preferred="left")
    labelled = HumanLabel.objects.get().comparison_id
    client.post(reverse("labeling:campaign_new"), _form(ds, name="fresh", annotators=[users[1].pk]))
    fresh = Campaign.objects.get(name="fresh")
    assert labelled not in set(fresh.items.values_list("comparison_id", flat=True))
    assert fresh.items.count() == 3


@pytest.mark.parametrize("over, field, words", [
    ({"name": "dup"}, "name", "already exists"),
    ({"overlap": 0}, "overlap", ""),
    ({"gold_share": 1.5}, "gold_share", ""),
    ({"annotators": []}, None, "Choose annotators or a group"),
    ({"subreddit": "nothing-here"}, None, "No pair of this dataset matches"),
])
def test_bad_input_is_refused_naming_the_field(client, staff_user, users, over, field, words):
    ds = make_dataset("bad", n=2)
    campaign_create(name="dup", dataset=ds, annotators=[users[0]])
    client.force_login(staff_user)
    data = _form(ds, annotators=[users[0].pk])
    data.update(over)
    resp = client.post(reverse("labeling:campaign_new"), data)
    assert resp.status_code == 200
    form = resp.context["form"]
    errors = form.errors.get(field if field else "__all__")
    assert errors and words in " ".join(errors)
    assert Campaign.objects.count() == 1


def test_annotators_get_the_403_page(client, users):
    client.force_login(users[0])
    for url in (reverse("labeling:campaign_new"), reverse("labeling:quality_index")):
        resp = client.get(url)
        assert resp.status_code == 403 and 'id="forbidden"' in resp.content.decode()


def test_history_in_the_rating_page_words_and_undo_from_history(client, users):
    ds = make_dataset("hist", n=3)
    c = campaign_create(name="hist", dataset=ds, annotators=[users[0]], undo_seconds=120)
    a = assignment_next(campaign=c, user=users[0])
    label_submit(user=users[0], assignment_id=a.pk, preferred="right", certainty=2, note_right="too long")
    b = assignment_next(campaign=c, user=users[0])
    assignment_skip(user=users[0], assignment_id=b.pk)
    client.force_login(users[0])
    page = client.get(reverse("labeling:history", args=[c.pk])).content.decode()
    assert "Summary 2 is better</strong>, somewhat" in page and "Summary 2: too long" in page
    assert "Skipped" in page and "Undo my last skip" in page
    assert "summary A" not in page and "Shown left" not in page and "Confidence (1-9)" not in page
    # The summaries as they were shown: Summary 1 is the one that was on the left.
    left = a.item.comparison.summary_a if a.a_shown_first else a.item.comparison.summary_b
    assert page.index(left.text) < page.index("Summary 2 is better")
    # Undo from history takes back the latest (the skip); the rating page shows that pair again.
    resp = client.post(reverse("labeling:pair_undo", args=[c.pk]), {"from": "history"})
    assert resp.status_code == 302 and resp["Location"] == reverse("labeling:rate", args=[c.pk])
    part = client.post(reverse("labeling:pair_next", args=[c.pk])).content.decode()
    assert f'data-assignment="{b.pk}"' in part and "Skip undone" in part


def test_undo_from_history_fills_in_the_earlier_answer(client, users):
    c = campaign_create(name="h2", dataset=make_dataset("h2", n=2), annotators=[users[0]], undo_seconds=120)
    a = assignment_next(campaign=c, user=users[0])
    label_submit(user=users[0], assignment_id=a.pk, preferred="right", certainty=2, note_right="too long")
    client.force_login(users[0])
    assert "Undo my last answer" in client.get(reverse("labeling:history", args=[c.pk])).content.decode()
    client.post(reverse("labeling:pair_undo", args=[c.pk]), {"from": "history"})
    part = client.post(reverse("labeling:pair_next", args=[c.pk])).content.decode()
    assert f'data-assignment="{a.pk}"' in part and "earlier answer is filled in" in part
    assert 'aria-pressed="true"' in part.split('id="choose-right"')[1][:200]
    assert 'value="2" checked' in part and ">too long</textarea>" in part
    # the restore is used once: a later load shows the pair without it
    again = client.post(reverse("labeling:pair_next", args=[c.pk])).content.decode()
    assert "checked" not in again and "too long" not in again
