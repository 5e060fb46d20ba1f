"""Comparison facts (policies, lengths and overlap counts of both summaries), filled for the
existing rows in batches with the historical models and `formats.comparison_facts`."""

import django.db.models.deletion
from django.db import migrations, models

from labeling import formats

BATCH = 5000


def fill_facts(apps, schema_editor):
    Comparison = apps.get_model("labeling", "Comparison")
    Summary = apps.get_model("labeling", "Summary")
    Post = apps.get_model("labeling", "Post")
    db = schema_editor.connection.alias
    last = 0
    while True:
        batch = list(Comparison.objects.using(db).filter(pk__gt=last).order_by("pk")
                     .only("pk", "post_id", "summary_a_id", "summary_b_id")[:BATCH])
        if not batch:
            return
        summaries = {pk: (pol, text) for pk, pol, text in Summary.objects.using(db).filter(
            pk__in={i for c in batch for i in (c.summary_a_id, c.summary_b_id)}).values_list("pk", "policy_id", "text")}
        posts = {pk: (title, text) for pk, title, text in Post.objects.using(db).filter(
            pk__in={c.post_id for c in batch}).values_list("pk", "title", "text")}
        source_words = {pk: formats.words(formats.overlap_source(*post)) for pk, post in posts.items()}
        for c in batch:
            (pa, ta), (pb, tb) = summaries[c.summary_a_id], summaries[c.summary_b_id]
            facts = formats.comparison_facts(*posts[c.post_id], ta, tb, source_words=source_words[c.post_id])
            c.policy_a_id, c.policy_b_id = pa, pb
            c.len_a, c.len_b, c.overlap_a, c.overlap_b = (facts[k] for k in ("len_a", "len_b", "overlap_a", "overlap_b"))
        Comparison.objects.using(db).bulk_update(
            batch, ["policy_a", "policy_b", "len_a", "len_b", "overlap_a", "overlap_b"])
        last = batch[-1].pk


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
        migrations.RunPython(fill_facts, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name='comparison',
            index=models.Index(condition=models.Q(('policy_a__isnull', True), ('policy_b__isnull', True), ('len_a__isnull', True), ('len_b__isnull', True), ('overlap_a__isnull', True), ('overlap_b__isnull', True), _connector='OR'), fields=['id'], name='comparison_facts_missing'),
        ),
    ]
