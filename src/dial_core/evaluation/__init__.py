"""Evaluation: metrics and the simulated interactive protocols that produce tidy tables."""
