"""Reads of the human rating pages: which campaigns a user may rate, the pair to show, progress,
history, and the staff quality report (throughput, agreement with the majority, gold accuracy,
flagged pairs).

The quality arithmetic (`agreement_report`) is plain Python over (annotator, item, choice)
tuples, so it can be tested without a database.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .. import formats
from ..models import Assignment, AssignmentStatus, Campaign, CampaignItem, HumanLabel


def campaign_list_rateable(user) -> QuerySet[Campaign]:
    """Active campaigns the user may rate: listed as an annotator or a member of the campaign's group."""
    User = get_user_model()
    listed = Campaign.annotators.through.objects.filter(campaign_id=OuterRef("pk"), user_id=user.pk)
    in_group = User.groups.through.objects.filter(group_id=OuterRef("group_id"), user_id=user.pk)
    return Campaign.objects.filter(is_active=True).filter(Exists(listed) | Exists(in_group))


def campaign_get_rateable(user, pk: int) -> Campaign | None:
    """The active campaign `pk` if the user may rate it, else None (one plain query: hot path)."""
    User = get_user_model()
    sql = (
        f"SELECT * FROM {Campaign._meta.db_table} c WHERE c.id = %s AND c.is_active AND ("
        f"EXISTS (SELECT 1 FROM {Campaign.annotators.through._meta.db_table} t WHERE t.campaign_id = c.id AND t.user_id = %s)"
        f" OR EXISTS (SELECT 1 FROM {User.groups.through._meta.db_table} g WHERE g.group_id = c.group_id AND g.user_id = %s))"
    )
    return next(iter(Campaign.objects.raw(sql, [pk, user.pk, user.pk])), None)


def assignment_pair_payload(assignment_id: int) -> dict:
    """The post and the two summaries in the order shown, for the JSON API (one plain query)."""
    from django.db import connection

    from ..models import Comparison, Post, Summary

    with connection.cursor() as cur:
        cur.execute(
            "SELECT a.a_shown_first, p.subreddit, p.title, p.text, sa.text, sb.text "
            f"FROM {Assignment._meta.db_table} a JOIN {CampaignItem._meta.db_table} i ON i.id = a.item_id "
            f"JOIN {Comparison._meta.db_table} cmp ON cmp.id = i.comparison_id "
            f"JOIN {Post._meta.db_table} p ON p.id = cmp.post_id "
            f"JOIN {Summary._meta.db_table} sa ON sa.id = cmp.summary_a_id "
            f"JOIN {Summary._meta.db_table} sb ON sb.id = cmp.summary_b_id WHERE a.id = %s",
            [assignment_id],
        )
        a_first, subreddit, title, text, summary_a, summary_b = cur.fetchone()
    left, right = (summary_a, summary_b) if a_first else (summary_b, summary_a)
    return {"post": {"subreddit": subreddit, "title": title, "text": text}, "left": {"text": left}, "right": {"text": right}}


def _count(qs: QuerySet, group_field: str) -> Coalesce:
    return Coalesce(
        Subquery(qs.order_by().values(group_field).annotate(n=Count("pk")).values("n"), output_field=IntegerField()),
        Value(0),
    )


def campaign_list_for_annotator(user) -> QuerySet[Campaign]:
    """The user's campaigns with n_items, n_needed (items x overlap), n_done (all labels) and my_done."""
    mine = HumanLabel.objects.filter(campaign=OuterRef("pk"), annotator_id=user.pk)
    done = CampaignItem.objects.filter(campaign=OuterRef("pk")).order_by().values("campaign")
    return (
        campaign_list_rateable(user)
        .select_related("dataset")
        .annotate(
            n_items=_count(CampaignItem.objects.filter(campaign=OuterRef("pk")), "campaign"),
            n_done=Coalesce(Subquery(done.annotate(s=Sum("n_done")).values("s"), output_field=IntegerField()), Value(0)),
            my_done=_count(mine, "campaign"),
        )
        .order_by("-created_at")
    )


def assignment_get_pair(assignment_id: int) -> Assignment:
    """An assignment with its post and both summaries (one query)."""
    return Assignment.objects.select_related(
        "item__comparison__post", "item__comparison__summary_a", "item__comparison__summary_b"
    ).get(pk=assignment_id)


def assignment_shown_order(assignment: Assignment):
    """(left summary, right summary) as the annotator sees them."""
    c = assignment.item.comparison
    return (c.summary_a, c.summary_b) if assignment.a_shown_first else (c.summary_b, c.summary_a)


@dataclass
class Progress:
    my_done: int
    my_skipped: int
    done: int
    needed: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.needed) if self.needed else 100


def campaign_progress(*, campaign: Campaign, user) -> Progress:
    """My answered and skipped counts and the campaign's labels done / needed (two queries)."""
    mine = Assignment.objects.filter(item__campaign=campaign, annotator_id=user.pk).aggregate(
        done=Count("pk", filter=Q(status=AssignmentStatus.SUBMITTED)),
        skipped=Count("pk", filter=Q(status=AssignmentStatus.SKIPPED)),
    )
    items = CampaignItem.objects.filter(campaign=campaign).aggregate(n=Count("pk"), done=Sum("n_done"))
    return Progress(mine["done"], mine["skipped"], items["done"] or 0, (items["n"] or 0) * campaign.overlap)


def assignment_history(*, campaign: Campaign, user, limit: int = 100) -> QuerySet[Assignment]:
    """The user's finished assignments in this campaign, newest first, with label and post."""
    return (
        Assignment.objects.filter(
            item__campaign=campaign, annotator_id=user.pk,
            status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED],
        )
        .select_related("label", "item__comparison__post", "item__comparison__summary_a",
                        "item__comparison__summary_b")
        .order_by("-finished_at", "-pk")[:limit]
    )


@dataclass
class HistoryRow:
    """One finished pair as the annotator saw it: "Summary 1" is the one shown on the left."""

    assignment_id: int
    finished_at: object
    title: str
    summary_1: str
    summary_2: str
    skipped: bool
    chosen: int | None = None  # 1 or 2, in screen order
    certainty: str = ""  # "slightly" .. "definitely", or "" when not given
    seconds: float | None = None
    note_1: str = ""
    note_2: str = ""


def assignment_history_rows(*, campaign: Campaign, user, limit: int = 100) -> list[HistoryRow]:
    """`assignment_history` in the rating page's words and order (Summary 1/2 as shown, certainty words)."""
    from ..services.assignments import CERTAINTY_LABELS, answer_as_shown

    rows = []
    for a in assignment_history(campaign=campaign, user=user, limit=limit):
        c = a.item.comparison
        first, second = (c.summary_a, c.summary_b) if a.a_shown_first else (c.summary_b, c.summary_a)
        row = HistoryRow(a.pk, a.finished_at, c.post.title, first.text, second.text,
                         skipped=a.status == AssignmentStatus.SKIPPED)
        if a.label is not None:
            shown = answer_as_shown(a.label, a.a_shown_first)
            row.chosen = 1 if shown["preferred"] == "left" else 2
            row.certainty = CERTAINTY_LABELS.get(shown["certainty"], "")
            row.seconds = a.label.time_taken_s
            row.note_1, row.note_2 = shown["note_left"], shown["note_right"]
        rows.append(row)
    return rows


def assignment_undoable(*, campaign: Campaign, user, now=None) -> Assignment | None:
    """The latest answer or skip the user may still undo (younger than `campaign.undo_seconds`)."""
    from datetime import timedelta

    from django.utils import timezone

    now = now or timezone.now()
    return (
        Assignment.objects.filter(
            item__campaign=campaign, annotator_id=user.pk,
            status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED],
            finished_at__gte=now - timedelta(seconds=campaign.undo_seconds),
        ).order_by("-finished_at", "-pk").first()
    )


# --- quality report ---------------------------------------------------------------------------


@dataclass
class AnnotatorStats:
    annotator: str
    n_labels: int = 0
    n_skipped: int = 0
    seconds_per_label: float | None = None  # formats.TIME_PER_LABEL
    labels_per_hour: float | None = None
    agree: int = 0
    agree_n: int = 0
    gold_correct: int = 0
    gold_n: int = 0
    times: list[float] = field(default_factory=list, repr=False)

    @property
    def agreement(self) -> float | None:
        return self.agree / self.agree_n if self.agree_n else None

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_n if self.gold_n else None


def agreement_report(
    labels: Iterable[tuple[str, int, int]], gold: dict[int, int] | None = None
) -> dict[str, AnnotatorStats]:
    """Per annotator: agreement with the majority of the *other* annotators of each item
    (items where the others tie or nobody else answered are left out) and accuracy on gold items.

    `labels` holds (annotator, item id, choice); `gold` maps item id -> known choice.
    """
    gold = gold or {}
    by_item: dict[int, list[tuple[str, int]]] = defaultdict(list)
    stats: dict[str, AnnotatorStats] = {}
    for who, item, choice in labels:
        by_item[item].append((who, choice))
        s = stats.setdefault(who, AnnotatorStats(who))
        s.n_labels += 1
        if item in gold:
            s.gold_n += 1
            s.gold_correct += int(choice == gold[item])
    for answers in by_item.values():
        totals = Counter(c for _, c in answers)
        for who, choice in answers:
            others = totals.copy()
            others[choice] -= 1
            majority = formats.majority_choice(others[0], others[1])
            if majority is None:
                continue
            stats[who].agree_n += 1
            stats[who].agree += int(choice == majority)
    return stats


def campaign_quality(campaign: Campaign) -> dict:
    """The staff report: per-annotator rows, flagged items, overall counts."""
    rows = list(
        HumanLabel.objects.filter(campaign=campaign)
        .values_list("annotator__username", "comparison_id", "choice", "time_taken_s", "created_at")
    )
    items = {
        comparison_id: (item_id, is_gold, gold_choice)
        for item_id, comparison_id, is_gold, gold_choice in CampaignItem.objects.filter(campaign=campaign)
        .values_list("pk", "comparison_id", "is_gold", "comparison__gold_choice")
    }
    gold = {items[c][0]: items[c][2] for c in items if items[c][1] and items[c][2] is not None}
    stats = agreement_report(((who, items[c][0], ch) for who, c, ch, _, _ in rows if c in items), gold)
    spans: dict[str, list] = defaultdict(list)
    for who, _, _, t, created in rows:
        if t is not None:
            stats[who].times.append(t)
        spans[who].append(created)
    for who, s in stats.items():
        if s.times:
            s.seconds_per_label = formats.seconds_per_label(sum(map(formats.capped_seconds, s.times)), len(s.times))
            s.labels_per_hour = formats.labels_per_hour(s.seconds_per_label)
    for who, n in (
        Assignment.objects.filter(item__campaign=campaign, status=AssignmentStatus.SKIPPED)
        .values_list("annotator__username").annotate(n=Count("pk"))
    ):
        stats.setdefault(who, AnnotatorStats(who)).n_skipped = n
    flagged = list(
        CampaignItem.objects.filter(campaign=campaign, flagged=True)
        .select_related("comparison__post")
        .prefetch_related("comparison__human_labels__annotator")
        .order_by("pk")[:200]
    )
    for item in flagged:
        item.campaign_labels = [lb for lb in item.comparison.human_labels.all() if lb.campaign_id == campaign.pk]
    totals = CampaignItem.objects.filter(campaign=campaign).aggregate(
        n=Count("pk"), done=Sum("n_done"), gold=Count("pk", filter=Q(is_gold=True)),
        flagged=Count("pk", filter=Q(flagged=True)),
    )
    return {
        "annotators": sorted(stats.values(), key=lambda s: -s.n_labels),
        "flagged": flagged,
        "totals": totals,
        "needed": (totals["n"] or 0) * campaign.overlap,
        "time_rule": formats.TIME_PER_LABEL,
    }


def campaign_candidates(*, dataset, subreddit: str = "", without_human_labels: bool = False,
                        limit: int | None = None, leave_gold: bool = False) -> list[int]:
    """Comparison ids of a dataset for a new campaign, in id order: of one subreddit, without any
    human label yet, at most `limit`; gold pairs left out when they are to be mixed in apart."""
    from ..models import Comparison

    qs = Comparison.objects.filter(post__dataset=dataset)
    if subreddit:
        qs = qs.filter(post__subreddit__iexact=subreddit.removeprefix("r/"))
    if without_human_labels:
        qs = qs.exclude(human_labels__isnull=False)
    if leave_gold:
        qs = qs.filter(gold_choice__isnull=True)
    ids = qs.order_by("pk").values_list("pk", flat=True)
    return list(ids[:limit] if limit else ids)


def campaign_get(*, campaign_id: int) -> Campaign | None:
    """Any campaign (active or not) with its dataset and group, for the staff pages; None if there is none."""
    return Campaign.objects.select_related("dataset", "group").filter(pk=campaign_id).first()


def campaign_annotator_names(campaign: Campaign) -> list[str]:
    """The usernames listed on the campaign, sorted."""
    return list(campaign.annotators.order_by("username").values_list("username", flat=True))


def campaign_overview() -> list[Campaign]:
    """Every campaign, newest first, with n_items, n_done (labels) and n_flagged for the staff list."""
    done = CampaignItem.objects.filter(campaign=OuterRef("pk")).order_by().values("campaign")
    campaigns = list(
        Campaign.objects.select_related("dataset", "group").annotate(
            n_items=_count(CampaignItem.objects.filter(campaign=OuterRef("pk")), "campaign"),
            n_done=Coalesce(Subquery(done.annotate(s=Sum("n_done")).values("s"), output_field=IntegerField()), Value(0)),
            n_flagged=_count(CampaignItem.objects.filter(campaign=OuterRef("pk"), flagged=True), "campaign"),
        ).order_by("-created_at")
    )
    for c in campaigns:
        c.n_needed = c.n_items * c.overlap
        c.percent = round(100 * c.n_done / c.n_needed) if c.n_needed else 100
    return campaigns


def overall_agreement(annotators) -> tuple[int, int]:
    """(answers agreeing with the others' majority, answers compared) over a quality report's rows."""
    return sum(s.agree for s in annotators), sum(s.agree_n for s in annotators)
