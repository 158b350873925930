"""Fixtures shared with the accounts tests: real access tokens for the API."""

from apps.accounts.tests.support import bearer_client, signing_key  # noqa: F401
