"""Maintenance services: backups and restores, sweepers, scheduled ticks."""

from apps.maintenance.services.backups import (
    BackupError,
    BackupInfo,
    Verified,
    backup_create,
    backup_prune,
    backup_restore,
    backup_verify,
    backups_list,
)
from apps.maintenance.services.schedule import (
    SCHEDULES,
    backup_start_now,
    maintenance_tick,
    tick_subject,
)
from apps.maintenance.services.sweeps import (
    api_keys_sweep,
    job_records_purge,
    keys_expiring,
    refresh_tokens_purge,
    tables_vacuum,
)

__all__ = [
    "SCHEDULES",
    "BackupError",
    "BackupInfo",
    "Verified",
    "api_keys_sweep",
    "backup_create",
    "backup_prune",
    "backup_start_now",
    "backup_restore",
    "backup_verify",
    "backups_list",
    "job_records_purge",
    "keys_expiring",
    "maintenance_tick",
    "refresh_tokens_purge",
    "tables_vacuum",
    "tick_subject",
]
