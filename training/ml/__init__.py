"""Training algorithms and model helpers; plain Python, no Django."""
