"""Celery tasks of the dns app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task

from apps.dns import services


@shared_task(name="dns.reconcile_tick", soft_time_limit=60, time_limit=90, ignore_result=True)
def reconcile_tick() -> int:
    """Queue reconciles for the domains that need one (django-celery-beat row "dns-reconcile")."""
    return services.dns_reconcile_tick()
