"""Comparison facts (policies, lengths and overlap counts of both summaries), filled for the
existing rows in batches with the historical models and `formats.comparison_facts`."""

import django.db.models.deletion
from django.db import migrations, models

from labeling import formats

BATCH = 5000


def fill_facts(apps, schema_editor):
    """The loop of `ComparisonQuerySet.facts_recompute`, copied: historical models, one query per
    batch for summaries and posts, one UPDATE ... FROM (VALUES ...) per 1,000 rows (bulk_update's
    CASE expressions take about an hour at a million rows)."""
    Comparison = apps.get_model("labeling", "Comparison")
    Summary = apps.get_model("labeling", "Summary")
    Post = apps.get_model("labeling", "Post")
    conn = schema_editor.connection
    q = conn.ops.quote_name
    table = q(Comparison._meta.db_table)
    columns = ("policy_a_id", "policy_b_id", "len_a", "len_b", "overlap_a", "overlap_b")
    sets = ", ".join(f"{q(c)} = v.column{i + 2}" for i, c in enumerate(columns))
    rows = Comparison.objects.using(conn.alias).order_by("pk").values_list("pk", "post_id", "summary_a_id", "summary_b_id")
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last)[:BATCH])
        if not batch:
            return
        last = batch[-1][0]
        summaries = {pk: (pol, text) for pk, pol, text in Summary.objects.using(conn.alias).filter(
            pk__in={i for r in batch for i in r[2:]}).values_list("pk", "policy_id", "text")}
        posts = {pk: (title, text) for pk, title, text in Post.objects.using(conn.alias).filter(
            pk__in={r[1] for r in batch}).values_list("pk", "title", "text")}
        source_words = {pk: formats.words(formats.overlap_source(*post)) for pk, post in posts.items()}
        values = []
        for pk, post_id, a_id, b_id in batch:
            (pa, ta), (pb, tb) = summaries[a_id], summaries[b_id]
            f = formats.comparison_facts(*posts[post_id], ta, tb, source_words=source_words[post_id])
            values.append((pk, pa, pb, f["len_a"], f["len_b"], f["overlap_a"], f["overlap_b"]))
        with conn.cursor() as cur:
            for start in range(0, len(values), 1000):
                chunk = values[start:start + 1000]
                cur.execute(f"UPDATE {table} SET {sets} FROM (VALUES {', '.join(['(%s, %s, %s, %s, %s, %s, %s)'] * len(chunk))}) "
                            f"AS v WHERE {table}.{q('id')} = v.column1", [x for row in chunk for x in row])


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0008_import_jobs_dataset_archive'),
    ]

    operations = [
        migrations.AddField(
            model_name='comparison',
            name='len_a',
            field=models.PositiveIntegerField(editable=False, help_text='Characters of summary A.', null=True),
        ),
        migrations.AddField(
            model_name='comparison',
            name='len_b',
            field=models.PositiveIntegerField(editable=False, help_text='Characters of summary B.', null=True),
        ),
        migrations.AddField(
            model_name='comparison',
            name='overlap_a',
            field=models.PositiveIntegerField(editable=False, help_text='Distinct words summary A shares with the title and post.', null=True),
        ),
        migrations.AddField(
            model_name='comparison',
            name='overlap_b',
            field=models.PositiveIntegerField(editable=False, help_text='Distinct words summary B shares with the title and post.', null=True),
        ),
        migrations.AddField(
            model_name='comparison',
            name='policy_a',
            field=models.ForeignKey(blank=True, editable=False, help_text='Policy of summary A (stored fact).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='labeling.policy'),
        ),
        migrations.AddField(
            model_name='comparison',
            name='policy_b',
            field=models.ForeignKey(blank=True, editable=False, help_text='Policy of summary B (stored fact).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='labeling.policy'),
        ),
        migrations.AddIndex(
            model_name='comparison',
            index=models.Index(condition=models.Q(('policy_a__isnull', True), ('policy_b__isnull', True), ('len_a__isnull', True), ('len_b__isnull', True), ('overlap_a__isnull', True), ('overlap_b__isnull', True), _connector='OR'), fields=['id'], name='comparison_facts_missing'),
        ),
        # after the index: a fill before it would leave the index unusable (indcheckxmin) while any
        # transaction older than the migration is open
        migrations.RunPython(fill_facts, migrations.RunPython.noop, elidable=True),
    ]
