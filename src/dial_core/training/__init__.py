"""Training: AC pretraining (DISIR strategy) and ConfidNet."""
