"""Data keys: lazily created per organization (and one scope for the platform), wrapped by a
master key, unwrapped at most once per cache lifetime per process.

Lookups go through a bounded in-process cache keyed by data-key id, so decrypting N secrets of
one organization in a request costs at most one key query (two while a rotation is half done).
A key created inside a transaction is cached only after that transaction commits: caching it
earlier could let a rolled-back key encrypt later data, which would then be unreadable.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.dispatch import receiver

from apps.core.crypto.envelope import b64d, b64e, build_aad, open_sealed, seal
from apps.core.crypto.errors import CryptoError, KeyUnavailableError
from apps.core.crypto.master import KEY_BYTES, MasterKeyRing

PLATFORM_SCOPE = "platform"
CACHE_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class DataKeyMaterial:
    """An unwrapped data key. Its repr shows ids only."""

    id: uuid.UUID
    organization_id: uuid.UUID | None
    version: int
    key: bytes = field(repr=False)

    @property
    def scope(self) -> str:
        return scope_label(self.organization_id)


def scope_label(organization_id: uuid.UUID | str | None) -> str:
    """The AAD's scope part: `org:<uuid>` or `platform`."""
    return f"org:{organization_id}" if organization_id else PLATFORM_SCOPE


def master_keys() -> MasterKeyRing:
    """The configured master keys (settings.AUTOGLUE_MASTER_KEYS, parsed at boot)."""
    return settings.AUTOGLUE_MASTER_KEYS


# --- Wrapping ---------------------------------------------------------------------------------


def _wrap_aad(
    data_key_id: uuid.UUID, organization_id: uuid.UUID | None, version: int, master_key_id: str
) -> bytes:
    return build_aad(
        "autoglue-data-key",
        "ag1",
        str(data_key_id),
        scope_label(organization_id),
        str(version),
        master_key_id,
    )


def wrap_data_key(
    *,
    key: bytes,
    data_key_id: uuid.UUID,
    organization_id: uuid.UUID | None,
    version: int,
    master_key_id: str,
    ring: MasterKeyRing | None = None,
) -> str:
    """Encrypt a data key under one master key, bound to the row it will be stored in."""
    ring = ring or master_keys()
    master = ring.get(master_key_id)
    if master is None:
        raise KeyUnavailableError(f"Master key {master_key_id!r} is not configured.")
    aad = _wrap_aad(data_key_id, organization_id, version, master_key_id)
    return b64e(seal(master, key, aad))


def unwrap_data_key(
    *,
    data_key_id: uuid.UUID,
    organization_id: uuid.UUID | None,
    version: int,
    master_key_id: str,
    wrapped_key: str,
    ring: MasterKeyRing | None = None,
) -> bytes:
    """Decrypt a stored data key with the master key that wrapped it (never "the active one")."""
    ring = ring or master_keys()
    master = ring.get(master_key_id)
    if master is None:
        raise KeyUnavailableError(
            f"Data key {data_key_id} is wrapped by master key {master_key_id!r}, which is not "
            "configured (AUTOGLUE_MASTER_KEYS)."
        )
    aad = _wrap_aad(data_key_id, organization_id, version, master_key_id)
    key = open_sealed(master, b64d(wrapped_key), aad, what=f"Data key {data_key_id}")
    if len(key) != KEY_BYTES:
        raise CryptoError(f"Data key {data_key_id} has the wrong length.")
    return key


def material_from_row(row) -> DataKeyMaterial:
    key = unwrap_data_key(
        data_key_id=row.id,
        organization_id=row.organization_id,
        version=row.version,
        master_key_id=row.master_key_id,
        wrapped_key=row.wrapped_key,
    )
    return DataKeyMaterial(
        id=row.id, organization_id=row.organization_id, version=row.version, key=key
    )


# --- The cache --------------------------------------------------------------------------------


class _KeyCache:
    """Bounded LRU of unwrapped data keys (by id) and of each scope's active key id, with a TTL,
    shared by the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: OrderedDict[uuid.UUID, tuple[float, DataKeyMaterial]] = OrderedDict()
        self._active: OrderedDict[str, tuple[float, uuid.UUID]] = OrderedDict()

    @staticmethod
    def ttl() -> float:
        return float(getattr(settings, "AUTOGLUE_DATA_KEY_CACHE_SECONDS", 60))

    def _get(self, table: OrderedDict, key):
        entry = table.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del table[key]
            return None
        table.move_to_end(key)
        return entry[1]

    def _put(self, table: OrderedDict, key, value) -> None:
        ttl = self.ttl()
        if ttl <= 0:
            return
        table[key] = (time.monotonic() + ttl, value)
        table.move_to_end(key)
        while len(table) > CACHE_MAX_ENTRIES:
            table.popitem(last=False)

    def get(self, data_key_id: uuid.UUID) -> DataKeyMaterial | None:
        with self._lock:
            return self._get(self._keys, data_key_id)

    def get_active(self, scope: str) -> DataKeyMaterial | None:
        with self._lock:
            active_id = self._get(self._active, scope)
            return None if active_id is None else self._get(self._keys, active_id)

    def put(self, materials: list[DataKeyMaterial], *, active: DataKeyMaterial | None) -> None:
        with self._lock:
            for material in materials:
                self._put(self._keys, material.id, material)
            if active is not None:
                self._put(self._active, active.scope, active.id)

    def forget_scope(self, scope: str) -> None:
        with self._lock:
            self._active.pop(scope, None)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._active.clear()


_cache = _KeyCache()
# Ids of keys this thread created in a transaction that has not committed yet: never cached.
_pending = threading.local()


def clear_key_cache() -> None:
    """Forget every unwrapped key in this process (tests, and after a configuration change)."""
    _cache.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting in ("AUTOGLUE_MASTER_KEYS", "AUTOGLUE_DATA_KEY_CACHE_SECONDS"):
        clear_key_cache()


def _pending_ids() -> set[uuid.UUID]:
    ids = getattr(_pending, "ids", None)
    if ids is None:
        ids = _pending.ids = set()
    elif ids and not connection.in_atomic_block:
        # Outside any transaction every key this thread created has committed (and was cached
        # by its on_commit hook) or was rolled back; neither needs remembering.
        ids.clear()
    return ids


def _remember(rows: list, *, pending: set[uuid.UUID]) -> list[DataKeyMaterial]:
    materials = [material_from_row(row) for row in rows]
    cacheable = [m for m in materials if m.id not in pending]
    if cacheable:
        newest = max(materials, key=lambda m: m.version)
        _cache.put(cacheable, active=newest if newest.id not in pending else None)
    return materials


# --- Lookups ----------------------------------------------------------------------------------


def data_key_for_decrypt(data_key_id: uuid.UUID) -> DataKeyMaterial:
    """The unwrapped data key with this id. On a cache miss, one query loads every version of
    that key's scope, so values written under the previous version cost nothing extra."""
    from apps.core.models import DataKey

    material = _cache.get(data_key_id)
    if material is not None:
        return material
    pending = _pending_ids()
    # Every version of the key's scope, the platform's (organization NULL) included: `IN` would
    # never match NULL, and caching one old version alone would make it the scope's "active" one.
    target = DataKey.objects.filter(pk=data_key_id)
    same_org = Exists(target.filter(organization_id=OuterRef("organization_id")))
    same_platform = Q(organization_id__isnull=True) & Exists(
        target.filter(organization_id__isnull=True)
    )
    rows = list(
        DataKey.objects.filter(Q(pk=data_key_id) | same_org | same_platform).only(
            "id", "organization_id", "version", "master_key_id", "wrapped_key"
        )
    )
    for material in _remember(rows, pending=pending):
        if material.id == data_key_id:
            return material
    raise KeyUnavailableError(f"Data key {data_key_id} does not exist.")


def data_key_for_encrypt(organization_id: uuid.UUID | None) -> DataKeyMaterial:
    """The active (newest) data key of an organization, or of the platform when None; created on
    first use."""
    from apps.core.models import DataKey

    material = _cache.get_active(scope_label(organization_id))
    if material is not None:
        return material
    pending = _pending_ids()
    for _attempt in range(3):
        # `organization=` rather than `organization_id=`: the same SQL (IS NULL for the
        # platform), and the form the type checker accepts None for.
        rows = list(DataKey.objects.filter(organization=organization_id))
        if rows:
            materials = _remember(rows, pending=pending)
            return max(materials, key=lambda m: m.version)
        try:
            return data_key_create(organization_id=organization_id, version=1)
        except IntegrityError:
            # Another process created version 1 first (or the organization does not exist;
            # the next round tells which).
            continue
    raise CryptoError(f"Could not create a data key for scope {scope_label(organization_id)}.")


def data_key_create(*, organization_id: uuid.UUID | None, version: int) -> DataKeyMaterial:
    """Insert a new data key version wrapped by the active master key. Raises IntegrityError if
    that version exists. Cached once the surrounding transaction commits."""
    from apps.core.models import DataKey

    ring = master_keys()
    material = DataKeyMaterial(
        id=uuid.uuid4(),
        organization_id=organization_id,
        version=version,
        key=os.urandom(KEY_BYTES),
    )
    row = DataKey(
        id=material.id,
        organization_id=organization_id,
        version=version,
        master_key_id=ring.active_id,
        wrapped_key=wrap_data_key(
            key=material.key,
            data_key_id=material.id,
            organization_id=organization_id,
            version=version,
            master_key_id=ring.active_id,
            ring=ring,
        ),
    )
    pending = _pending_ids()
    with transaction.atomic():
        row.save(force_insert=True)
        pending.add(material.id)

        def promote() -> None:
            pending.discard(material.id)
            _cache.put([material], active=material)

        transaction.on_commit(promote)
    return material
