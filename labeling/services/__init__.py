"""Writes of the labeling app, one module per concern: imports (file import/export),
queue (campaigns, leases, label submission), ai_labeling (AI labeling jobs). Import from the
submodule, e.g. `from labeling.services.assignments import label_submit`."""
