"""Tasks every installation has."""

import logging
import uuid

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(name="core.ping", soft_time_limit=10, time_limit=15)
def ping() -> str:
    """Proves a worker is consuming: returns "pong"."""
    return "pong"


@shared_task(name="core.org_data_key_rotate", soft_time_limit=3300, time_limit=3600)
def org_data_key_rotate(organization_id: str | None) -> dict:
    """Give an organization (None: the platform) a new data key version and re-encrypt its
    secrets in batches, logging progress; then schedule the clean-up of unused old versions.
    Safe to run twice: a run after a crash resumes the unfinished rotation onto the same
    version."""
    from apps.core.crypto import rotation

    org_id = uuid.UUID(organization_id) if organization_id else None
    scope = str(org_id) if org_id else "platform"

    def progress(stage: str, done: int, total: int) -> None:
        logger.info(
            "data key rotation progress",
            extra={"scope": scope, "stage": stage, "done": done, "total": total},
        )

    result = rotation.org_data_key_rotate(organization_id=org_id, progress=progress)
    data_keys_prune.apply_async(
        args=[organization_id], countdown=settings.AUTOGLUE_DATA_KEY_CACHE_SECONDS + 10
    )
    return {"total": result.total, "done": result.done, "failures": len(result.failures)}


@shared_task(name="core.data_keys_prune", soft_time_limit=3300, time_limit=3600)
def data_keys_prune(organization_id: str | None) -> list[int]:
    """Re-encrypt stragglers written under old versions by processes with a stale key cache,
    then delete the old data key versions nothing references. Idempotent."""
    from apps.core.crypto import rotation

    org_id = uuid.UUID(organization_id) if organization_id else None
    rotation.secrets_reencrypt(organization_id=org_id)
    return rotation.data_keys_prune(organization_id=org_id)


@shared_task(name="core.master_key_rotate", soft_time_limit=3300, time_limit=3600)
def master_key_rotate() -> dict:
    """Re-wrap every data key with the active master key (see `manage.py encrypt`)."""
    from apps.core.crypto import rotation

    result = rotation.master_key_rotate(
        progress=lambda stage, done, total: logger.info(
            "master key rotation progress", extra={"done": done, "total": total}
        )
    )
    return {"total": result.total, "done": result.done, "failures": len(result.failures)}
