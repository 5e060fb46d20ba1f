"""The labeling app's data: datasets, posts, summaries, comparisons, human labels,
annotation campaigns with their queue, and AI labeler configs, jobs and labels.

Invariants live in the database (unique and check constraints), not only in Python:
a comparison's two summaries differ and are stored in canonical order (summary_a_id <
summary_b_id), so there is one row per unordered pair; choices are 0 (summary A) or 1 (B);
confidences are on OpenAI's 9-point scale.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import F, Q

from . import formats


text_digest = formats.text_digest  # sha256 of a text: unique indexes on long texts stay short


class TaskKind(models.TextChoices):
    SUMMARIZATION = "summarization", "Summarization"
    DIALOGUE = "dialogue", "Dialogue"
    HARMLESS = "harmless", "Dialogue (harmlessness)"


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.SUMMARIZATION)
    source = models.TextField(blank=True, help_text="Where the data came from (file, URL, commit).")
    license = models.TextField(blank=True, help_text="License and attribution text.")
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="Archived (kept with its labels, left out of new work) instead of deleted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def clean(self) -> None:
        """A dataset with posts may switch between the dialogue tasks (helpful <-> harmless), not
        between dialogue and summarization: its posts are in one format or the other."""
        super().clean()
        if not self.pk or not self.task:
            return
        before = Dataset.objects.filter(pk=self.pk).values_list("task", flat=True).first()
        dialogue = formats.is_dialogue_task(before or self.task)
        if dialogue != formats.is_dialogue_task(self.task) and self.posts.exists():
            allowed = " or ".join(t for t in TaskKind.values if formats.is_dialogue_task(t) == dialogue)
            raise ValidationError({"task": f"this dataset's posts are {before} data: its task can be {allowed}, "
                                           f"not {self.task}"})

    def __str__(self) -> str:
        return self.name


class Post(models.Model):
    """A text to summarize (subreddit, title, text) or, for dialogue tasks, a dialogue context."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="posts")
    external_id = models.CharField(max_length=200)
    subreddit = models.CharField(max_length=200, blank=True)
    title = models.TextField(blank=True)
    text = models.TextField()
    content_sha256 = models.CharField(
        max_length=64, editable=False, db_index=True,
        help_text="sha256 of subreddit, title and text: finds the same post imported under another id.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="post_unique_external_id"),
        ]

    @staticmethod
    def content_digest(subreddit: str, title: str, text: str) -> str:
        return formats.post_digest(subreddit, title, text)

    def save(self, *args, **kwargs):
        """Also recomputes the stored facts of this post's comparisons when its content changed
        (the overlap judge reads the title and text), in the same transaction."""
        self.content_sha256 = self.content_digest(self.subreddit, self.title, self.text)
        if self.pk is None:
            super().save(*args, **kwargs)
            return
        using = kwargs.get("using") or router.db_for_write(Post, instance=self)
        with transaction.atomic(using=using):
            before = Post.objects.using(using).filter(pk=self.pk).values_list("content_sha256", flat=True).first()
            super().save(*args, **kwargs)
            if before is not None and before != self.content_sha256:
                Comparison.objects.using(using).filter(post_id=self.pk).facts_recompute()

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title[:60]}"


class PolicyKind(models.TextChoices):
    REFERENCE = "reference", "Human reference"
    IMPORTED = "imported", "Imported model"
    SFT = "sft", "Our SFT policy"
    RLHF = "rlhf", "Our RLHF policy"
    RLAIF = "rlaif", "Our RLAIF policy"
    DIRECT_RLAIF = "direct_rlaif", "Our direct-RLAIF policy"


class Policy(models.Model):
    """Who wrote a summary: a human reference, an imported model, or one of our trained policies."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=PolicyKind.choices, default=PolicyKind.IMPORTED)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class Summary(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="summaries")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="summaries")
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64, editable=False)
    is_reference = models.BooleanField(
        default=False, help_text="A reference summary for supervised fine-tuning."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["post", "policy", "text_sha256"], name="summary_unique_text_per_post_policy"
            ),
            models.CheckConstraint(condition=~Q(text=""), name="summary_text_not_empty"),
        ]

    def save(self, *args, **kwargs):
        """Also recomputes the stored facts of the comparisons using this summary when its text or
        policy changed, in the same transaction."""
        self.text_sha256 = text_digest(self.text)
        if self.pk is None:
            super().save(*args, **kwargs)
            return
        using = kwargs.get("using") or router.db_for_write(Summary, instance=self)
        with transaction.atomic(using=using):
            before = Summary.objects.using(using).filter(pk=self.pk).values_list("policy_id", "text_sha256").first()
            super().save(*args, **kwargs)
            if before is not None and before != (self.policy_id, self.text_sha256):
                Comparison.objects.using(using).filter(
                    Q(summary_a_id=self.pk) | Q(summary_b_id=self.pk)).facts_recompute()

    def __str__(self) -> str:
        return f"{self.policy}: {self.text[:60]}"


# A comparison's facts: what the dashboards group by (policies) and the trivial judges compare
# (lengths, overlaps), stored so that no aggregate joins the summaries or reads a text.
FACT_FIELDS = ("policy_a", "policy_b", "len_a", "len_b", "overlap_a", "overlap_b")
FACT_COLUMNS = ("policy_a_id", "policy_b_id", "len_a", "len_b", "overlap_a", "overlap_b")
FACTS_MISSING = Q(policy_a__isnull=True) | Q(policy_b__isnull=True) | Q(len_a__isnull=True) | Q(
    len_b__isnull=True) | Q(overlap_a__isnull=True) | Q(overlap_b__isnull=True)


def _facts_compute(rows: Iterable[tuple[int, int, int, int]], using: str, summaries: dict | None = None,
                   posts: dict | None = None) -> dict[int, tuple[int, int, int, int, int, int]]:
    """{key: (policy_a_id, policy_b_id, len_a, len_b, overlap_a, overlap_b)} for rows of (key, post
    id, summary A id, summary B id). Summaries ({id: (policy id, text)}) and posts ({id: (title,
    text)}) not given come in one query each; each post's word set is computed once. A row whose
    summary or post does not exist is left out (its insert fails on the foreign key anyway)."""
    rows, summaries, posts = list(rows), dict(summaries or {}), dict(posts or {})
    need_s = {i for r in rows for i in r[2:]} - summaries.keys()
    need_p = {r[1] for r in rows} - posts.keys()
    if need_s:
        summaries.update((pk, (pol, text)) for pk, pol, text in Summary.objects.using(using).filter(
            pk__in=need_s).values_list("pk", "policy_id", "text"))
    if need_p:
        posts.update((pk, (title, text)) for pk, title, text in Post.objects.using(using).filter(
            pk__in=need_p).values_list("pk", "title", "text"))
    source_words: dict[int, set[str]] = {}
    out = {}
    for key, post_id, a_id, b_id in rows:
        a, b, post = summaries.get(a_id), summaries.get(b_id), posts.get(post_id)
        if a is None or b is None or post is None:
            continue
        if post_id not in source_words:
            source_words[post_id] = formats.words(formats.overlap_source(*post))
        f = formats.comparison_facts(*post, a[1], b[1], source_words=source_words[post_id])
        out[key] = (a[0], b[0], f["len_a"], f["len_b"], f["overlap_a"], f["overlap_b"])
    return out


def _facts_set(comparisons: list[Comparison], using: str) -> None:
    """Set the facts of each comparison in place; related objects cached on it are used as they are."""
    summaries, posts = {}, {}
    for c in comparisons:
        for name in ("summary_a", "summary_b"):
            if Comparison._meta.get_field(name).is_cached(c) and getattr(c, name) is not None:
                summaries[getattr(c, name).pk] = (getattr(c, name).policy_id, getattr(c, name).text)
        if Comparison._meta.get_field("post").is_cached(c) and c.post is not None:
            posts[c.post.pk] = (c.post.title, c.post.text)
    facts = _facts_compute(((n, c.post_id, c.summary_a_id, c.summary_b_id) for n, c in enumerate(comparisons)),
                           using, summaries, posts)
    for n, values in facts.items():
        for name, value in zip(FACT_COLUMNS, values):
            setattr(comparisons[n], name, value)


def _facts_write(using: str, facts: dict[int, tuple]) -> None:
    """Store {comparison id: facts} in one UPDATE ... FROM unnest(arrays) on PostgreSQL, else one
    UPDATE ... FROM (VALUES ...) per 1,000 rows (SQLite >= 3.33). Not `bulk_update`: its CASE per
    column and row took 78 s for 20,000 rows on PostgreSQL, this 1.2 s."""
    conn = connections[using]
    q = conn.ops.quote_name
    table = q(Comparison._meta.db_table)
    sets = ", ".join(f"{q(c)} = v.column{i + 2}" for i, c in enumerate(FACT_COLUMNS))
    items = list(facts.items())
    with conn.cursor() as cur:
        if conn.vendor == "postgresql":
            columns = [[pk for pk, _ in items]] + [[row[i] for _, row in items] for i in range(len(FACT_COLUMNS))]
            cur.execute(f"UPDATE {table} SET {sets} FROM unnest({', '.join(['%s::bigint[]'] * len(columns))}) "
                        f"AS v({', '.join(f'column{i + 1}' for i in range(len(columns)))}) "
                        f"WHERE {table}.{q('id')} = v.column1", columns)
            return
        for start in range(0, len(items), 1000):
            chunk = items[start:start + 1000]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            cur.execute(f"UPDATE {table} SET {sets} FROM (VALUES {values}) AS v WHERE {table}.{q('id')} = v.column1",
                        [x for pk, row in chunk for x in (pk, *row)])


class ComparisonQuerySet(models.QuerySet):
    """Comparisons whose writes keep the stored facts filled."""

    def bulk_create(self, objs: Iterable[Comparison], *args, **kwargs) -> list[Comparison]:
        """Fills the missing facts of the new objects first (two queries), then inserts them."""
        objs = list(objs)
        _facts_set([o for o in objs if o.facts_missing()], self.db)
        return super().bulk_create(objs, *args, **kwargs)

    def facts_recompute(self, *, batch_size: int = 5000) -> int:
        """Recompute and store the facts of these comparisons from their summaries and posts, in
        batches of `batch_size` (each in its own transaction); returns how many were written."""
        qs = self.order_by("pk").values_list("pk", "post_id", "summary_a_id", "summary_b_id")
        done, last = 0, 0
        while True:
            with transaction.atomic(using=self.db):
                batch = list(qs.filter(pk__gt=last)[:batch_size])
                if not batch:
                    return done
                facts = _facts_compute(batch, self.db)
                _facts_write(self.db, facts)
            done, last = done + len(facts), batch[-1][0]


class Comparison(models.Model):
    """Two different summaries of one post; one row per unordered pair (summary_a_id < summary_b_id).

    Its facts (policies, lengths and overlap counts of both summaries; NULL = not computed yet) are
    filled by `save()` and `bulk_create`, recomputed when a summary's text or policy or a post's
    content is saved, and `services.comparison_facts.comparison_facts_fill` fills rows written by
    raw SQL."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comparisons")
    summary_a = models.ForeignKey(Summary, on_delete=models.CASCADE, related_name="+")
    summary_b = models.ForeignKey(Summary, on_delete=models.CASCADE, related_name="+")
    gold_choice = models.SmallIntegerField(
        null=True, blank=True, help_text="Known answer (0 = A, 1 = B) when used as a gold pair."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    policy_a = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 editable=False, help_text="Policy of summary A (stored fact).")
    policy_b = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 editable=False, help_text="Policy of summary B (stored fact).")
    len_a = models.PositiveIntegerField(null=True, editable=False, help_text="Characters of summary A.")
    len_b = models.PositiveIntegerField(null=True, editable=False, help_text="Characters of summary B.")
    overlap_a = models.PositiveIntegerField(
        null=True, editable=False, help_text="Distinct words summary A shares with the title and post.")
    overlap_b = models.PositiveIntegerField(
        null=True, editable=False, help_text="Distinct words summary B shares with the title and post.")

    objects = ComparisonQuerySet.as_manager()

    class Meta:
        indexes = [
            # small (empty once filled): lets comparison_facts_fill find rows written by raw SQL at once
            models.Index(fields=["id"], condition=FACTS_MISSING, name="comparison_facts_missing"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(summary_a__lt=F("summary_b")), name="comparison_canonical_distinct_pair"
            ),
            models.UniqueConstraint(fields=["summary_a", "summary_b"], name="comparison_unique_pair"),
            models.CheckConstraint(
                condition=Q(gold_choice__isnull=True) | Q(gold_choice__in=[0, 1]),
                name="comparison_gold_choice_0_1",
            ),
        ]

    @classmethod
    def from_db(cls, db, field_names, values):
        obj = super().from_db(db, field_names, values)
        obj._facts_of = obj._facts_key()
        return obj

    def _facts_key(self) -> tuple:
        return tuple(self.__dict__.get(k) for k in ("post_id", "summary_a_id", "summary_b_id"))

    def facts_missing(self) -> bool:
        return any(getattr(self, c) is None for c in FACT_COLUMNS)

    def save(self, *args, **kwargs):
        """Fills the facts when missing or when the post or a summary changed since loading."""
        if self.facts_missing() or getattr(self, "_facts_of", None) != self._facts_key():
            _facts_set([self], kwargs.get("using") or router.db_for_write(Comparison, instance=self))
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], *FACT_FIELDS}
        super().save(*args, **kwargs)
        self._facts_of = self._facts_key()

    def __str__(self) -> str:
        return f"Comparison {self.pk} (post {self.post_id})"


class HumanLabel(models.Model):
    """One human's preference on one comparison, stored against the canonical A/B order."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="human_labels")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="labels"
    )
    worker_id = models.CharField(max_length=200, blank=True, help_text="External labeller id (imports).")
    campaign = models.ForeignKey(
        "Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="labels"
    )
    choice = models.SmallIntegerField(help_text="0 = summary A preferred, 1 = summary B.")
    confidence = models.SmallIntegerField(
        null=True, blank=True, help_text="OpenAI's 9-point scale: 1 = surely A, 9 = surely B."
    )
    a_shown_first = models.BooleanField(
        null=True, blank=True, help_text="Whether summary A was shown first (left); null if unknown."
    )
    time_taken_s = models.FloatField(null=True, blank=True)
    note_a = models.TextField(blank=True)
    note_b = models.TextField(blank=True)
    import_key = models.CharField(
        max_length=300, null=True, blank=True, unique=True,
        help_text="Source record key of an imported label; makes re-imports idempotent.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(choice__in=[0, 1]), name="humanlabel_choice_0_1"),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=1, confidence__lte=9),
                name="humanlabel_confidence_1_9",
            ),
            models.CheckConstraint(
                condition=Q(annotator__isnull=False) | ~Q(worker_id=""), name="humanlabel_has_annotator"
            ),
            models.UniqueConstraint(
                fields=["comparison", "annotator", "campaign"],
                condition=Q(annotator__isnull=False),
                name="humanlabel_one_per_annotator_campaign",
            ),
        ]
        indexes = [models.Index(fields=["created_at"])]

    @property
    def who(self) -> str:
        return self.annotator.get_username() if self.annotator_id else self.worker_id

    def __str__(self) -> str:
        return f"{self.who} on {self.comparison_id}: {'AB'[self.choice]}"


class HarmlessnessLabel(models.Model):
    """A human's judgment of one response on its own: harmless or harmful (the paper's harmless
    rate is the share of a policy's responses judged harmless). Imported (`import_harmlessness`)."""

    summary = models.ForeignKey(Summary, on_delete=models.CASCADE, related_name="harmlessness_labels",
                                help_text="The response judged (its policy is the one rated).")
    worker_id = models.CharField(max_length=200, help_text="External labeller id.")
    harmless = models.BooleanField()
    import_key = models.CharField(max_length=300, unique=True,
                                  help_text="Source record key; makes re-imports idempotent.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.worker_id} on response {self.summary_id}: {'harmless' if self.harmless else 'harmful'}"


# --- Campaigns and the annotation queue -----------------------------------------------------


class Campaign(models.Model):
    name = models.CharField(max_length=200, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="campaigns")
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Distinct annotators wanted per pair.")
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="campaigns")
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.SET_NULL,
        help_text="Members of this group may also annotate.",
    )
    guidelines = models.TextField(blank=True)
    gold_share = models.FloatField(default=0.0, help_text="Share of gold pairs mixed in (0..1).")
    lease_seconds = models.PositiveIntegerField(default=600)
    undo_seconds = models.PositiveIntegerField(default=30)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(
                condition=Q(gold_share__gte=0) & Q(gold_share__lte=1), name="campaign_gold_share_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignItem(models.Model):
    """A comparison in a campaign. `n_done` counts submitted labels (kept by the queue service)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="campaign_items")
    is_gold = models.BooleanField(default=False)
    n_done = models.PositiveSmallIntegerField(default=0)
    flagged = models.BooleanField(default=False, help_text="Flagged for review.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "comparison"], name="campaignitem_unique"),
        ]
        indexes = [models.Index(fields=["campaign", "n_done"])]


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """One annotator's lease on one campaign item; at most one per item and annotator."""

    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=12, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    a_shown_first = models.BooleanField(help_text="Summary A shown on the left.")
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    label = models.OneToOneField(
        HumanLabel, null=True, blank=True, on_delete=models.SET_NULL, related_name="assignment"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_one_per_item_annotator"),
        ]
        indexes = [models.Index(fields=["annotator", "status"]), models.Index(fields=["status", "expires_at"])]


# --- AI labeler ------------------------------------------------------------------------------


class LabelerBackend(models.TextChoices):
    LOCAL = "local", "Local transformers model"
    OPENAI = "openai", "OpenAI-compatible HTTP server"


class LabelerConfig(models.Model):
    name = models.CharField(max_length=200, unique=True)
    backend = models.CharField(max_length=20, choices=LabelerBackend.choices, default=LabelerBackend.LOCAL)
    model = models.CharField(max_length=500, help_text="Hugging Face name, local path, or served model name.")
    base_url = models.CharField(max_length=500, blank=True, help_text="OpenAI-compatible server URL.")
    api_key_env = models.CharField(
        max_length=100, blank=True, default="OPENAI_API_KEY", help_text="Environment variable with the API key."
    )
    preamble = models.CharField(
        max_length=20, choices=[("base", "Base"), ("detailed", "Detailed")], default="base"
    )
    shots = models.PositiveSmallIntegerField(default=0)
    exemplar_selection = models.CharField(
        max_length=20, choices=[("fixed", "Fixed"), ("random", "Random per config")], default="fixed"
    )
    chain_of_thought = models.BooleanField(default=False)
    self_consistency_n = models.PositiveSmallIntegerField(default=1)
    temperature = models.FloatField(default=0.0, help_text="Rationale sampling temperature (self-consistency).")
    both_orders = models.BooleanField(default=True)
    use_chat_template = models.BooleanField(default=False)
    max_prompt_tokens = models.PositiveIntegerField(default=2048)
    batch_size = models.PositiveIntegerField(default=16)
    extra = models.JSONField(default=dict, blank=True)
    is_noise = models.BooleanField(
        default=False, help_text="A random-weight model for demos and tests: its labels are noise."
    )
    reachable = models.BooleanField(
        null=True, blank=True, help_text="Last connection test from a gpu worker: could it reach the server or model?")
    reachability_detail = models.CharField(max_length=300, blank=True, help_text="What the last connection test found.")
    reachability_checked_at = models.DateTimeField(null=True, blank=True)
    exemplars = models.JSONField(
        default=list, blank=True,
        help_text="The few-shot exemplars, part of the config's identity: [{comparison, preferred}] in prompt "
                  "order, chosen once from human-labelled pairs when the config first labels, then used by every "
                  "job. Clear it to choose again.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(self_consistency_n__gte=1), name="labelerconfig_sc_n_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobPhase(models.TextChoices):
    """Where a job is within its status: written by the worker at each transition."""

    QUEUED = "queued", "Queued"
    LOADING = "loading", "Loading model"
    RUNNING = "running", "Running"
    SAVING = "saving", "Saving"
    DONE = "done", "Done"


class AILabelingJob(models.Model):
    config = models.ForeignKey(LabelerConfig, on_delete=models.PROTECT, related_name="jobs")
    comparisons = models.ManyToManyField(Comparison, blank=True, related_name="+")
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    phase = models.CharField(max_length=12, choices=JobPhase.choices, default=JobPhase.QUEUED,
                             help_text="Queued, loading model, running, saving, done.")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    tokens_processed = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of a worker on this job (the sweeper's clock).")
    recoveries = models.PositiveIntegerField(
        default=0, help_text="Times the sweeper found the job's workers lost and queued it again.")
    log = models.TextField(blank=True, help_text="Lifecycle events: started, lost, recovered, resumed.")

    class Meta:
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"AI labeling job {self.pk} ({self.config})"


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    LEASED = "leased", "Leased"
    DONE = "done", "Done"


class AIChunk(models.Model):
    """A unit of work of an AI labeling job that any `gpu` worker can lease: the job's comparisons
    with ids in [first_comparison_id, last_comparison_id]. A lease expires unless its worker's
    heartbeat extends it, so a dead worker's chunk returns to the pool by itself."""

    job = models.ForeignKey(AILabelingJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_comparison_id = models.BigIntegerField()
    last_comparison_id = models.BigIntegerField()
    size = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    leased_by = models.CharField(max_length=200, blank=True, help_text="Worker and lease token.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Leases taken; more than one means a worker was lost.")
    scored = models.PositiveIntegerField(
        default=0, help_text="Pairs of the current lease scored so far, not yet committed (live progress).")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="aichunk_unique_index"),
            models.CheckConstraint(condition=Q(first_comparison_id__lte=F("last_comparison_id")),
                                   name="aichunk_range_ordered"),
            models.CheckConstraint(condition=~Q(status="leased") | Q(lease_expires_at__isnull=False),
                                   name="aichunk_lease_has_expiry"),
        ]
        indexes = [models.Index(fields=["job", "status", "lease_expires_at"])]

    def __str__(self) -> str:
        return f"chunk {self.index} of job {self.job_id}"


class AILabel(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="ai_labels")
    config = models.ForeignKey(LabelerConfig, on_delete=models.CASCADE, related_name="labels")
    job = models.ForeignKey(AILabelingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="labels")
    p_a = models.FloatField(
        null=True, blank=True, help_text="Averaged probability that summary A is preferred; null on failure."
    )
    p_a_ab = models.FloatField(null=True, blank=True, help_text="p(A) with A shown first.")
    p_a_ba = models.FloatField(null=True, blank=True, help_text="p(A) with B shown first.")
    consistent = models.BooleanField(null=True, blank=True, help_text="Both orders prefer the same summary.")
    rationales = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False, help_text="The post was truncated to fit.")
    error = models.TextField(blank=True, help_text="Why no probability could be read (label then not usable).")
    score_method = models.CharField(
        max_length=60, blank=True,
        help_text="How P(1), P(2) were read: logits (local model), top_logprobs, echo (exact prompt logprobs) "
                  "or logit_bias (answer restricted); '+'-joined when the orders or samples differ.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "config"], name="ailabel_one_per_comparison_config"),
            models.CheckConstraint(
                condition=Q(p_a__isnull=True) | (Q(p_a__gte=0) & Q(p_a__lte=1)), name="ailabel_p_a_in_0_1"
            ),
        ]


# --- Hybrid labeling: trust signals and routed picks ------------------------------------------


class AILabelTrust(models.Model):
    """Trust signals of one AI label (`labeling.judges.trust`), written with the label and
    refreshed when another config labels the same pair (agreement between configs)."""

    label = models.OneToOneField(AILabel, primary_key=True, on_delete=models.CASCADE, related_name="trust")
    margin = models.FloatField(null=True, blank=True, help_text="|p(A) - 0.5|; null for a failed label.")
    consistent = models.BooleanField(null=True, blank=True, help_text="Both orders prefer the same summary.")
    order_gap = models.FloatField(null=True, blank=True, help_text="|p(A | A first) - p(A | B first)|.")
    n_other_configs = models.PositiveSmallIntegerField(default=0, help_text="Other configs with a usable label.")
    config_agreement = models.FloatField(
        null=True, blank=True, help_text="Share of the other configs' verdicts equal to this one (ties half).")
    sample_p_a = models.JSONField(default=list, blank=True, help_text="p(A) of each self-consistency sample.")
    sample_spread = models.FloatField(null=True, blank=True, help_text="Std of the samples' p(A) (n > 1).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI label trust signals"
        verbose_name_plural = "AI label trust signals"


class RoutingPick(models.Model):
    """A comparison put in a campaign because its AI label was among the least trustworthy, and why.
    Shown to staff only: annotators never see the AI's choice."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="routing_picks")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="+")
    config = models.ForeignKey(LabelerConfig, null=True, on_delete=models.SET_NULL, related_name="+")
    criterion = models.CharField(max_length=20)
    rank = models.PositiveIntegerField(help_text="1 = least trustworthy.")
    risk = models.FloatField(null=True, blank=True, help_text="0..1, higher = less trusted; null = no usable label.")
    reason = models.TextField()

    class Meta:
        ordering = ["campaign", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "comparison"], name="routingpick_unique"),
        ]


class ImportJob(models.Model):
    """One uploaded file's import (admin "Import file"): its status, counts and error, written by
    whoever runs it (the request for small files, a worker on queue "default" for large ones)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file_name = models.CharField(max_length=255, help_text="The name of the uploaded file.")
    path = models.CharField(max_length=500, help_text="Where the upload waits on the server (never shown on a page).")
    size_bytes = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=20, default="comparisons")
    fmt = models.CharField(max_length=20, blank=True)
    dataset = models.CharField(max_length=200, blank=True, help_text="Target dataset name (empty: from the file).")
    make_pairs = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    counts = models.JSONField(default=dict, blank=True, help_text="What the import created and found.")
    error = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    error_field = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    recoveries = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"import {self.pk}: {self.file_name} ({self.status})"

