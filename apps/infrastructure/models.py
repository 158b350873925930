"""Models of the infrastructure app."""
