"""The operator console: Django's admin with Autoglue's own site (dashboard, sign-in)."""
