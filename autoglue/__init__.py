"""Autoglue: control plane for K3s clusters on plain cloud servers."""

from autoglue.celery import app as celery_app

__all__ = ["celery_app"]
