"""Models of the dns app."""
