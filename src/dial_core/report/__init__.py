"""Report: figures and tables drawn only from the tidy result tables."""
