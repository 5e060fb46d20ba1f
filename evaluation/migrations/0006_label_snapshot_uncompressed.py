"""Store label snapshots uncompressed on PostgreSQL: numpy columns barely compress, and pglz
spent seconds trying on every 50 MB snapshot."""
from django.db import migrations


def external_storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE evaluation_labelsnapshot ALTER COLUMN data SET STORAGE EXTERNAL")


class Migration(migrations.Migration):

    dependencies = [
        ("evaluation", "0005_label_snapshot"),
    ]

    operations = [
        migrations.RunPython(external_storage, migrations.RunPython.noop, elidable=True),
    ]
