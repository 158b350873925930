"""Business logic of the clusters app: attaching things to node pools and clusters, cluster
writes, metadata, the action catalogue and cluster runs.

Cluster writes follow one rule (inventory §10.6): each touches only its own columns with an
`.update()` scoped by id AND organization, also setting `status=pre_pending` and clearing
`last_error`; zero rows means the cluster is gone (404), so a write never resurrects a cluster
deleted concurrently and never undoes a sibling write. An unknown cluster is 404 `not_found`,
the original's code on every cluster route.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from apps.audit import events as audit_events
from apps.audit import services as audit
from apps.audit.signals import audit_row_updated, audit_rows_attached
from apps.clusters import kube
from apps.clusters.models import (
    Action,
    Annotation,
    Cluster,
    ClusterMetadata,
    ClusterNodePool,
    ClusterRun,
    Label,
    NodePool,
    NodePoolAnnotation,
    NodePoolLabel,
    NodePoolServer,
    NodePoolTaint,
    Taint,
)
from apps.clusters.selectors import cluster_secrets
from apps.core.api.errors import APIError, bad_request, conflict, not_found
from apps.core.cache import cache_down
from apps.core.middleware import rate_hit
from apps.core.tenancy import parse_uuid
from apps.dns.models import Domain, RecordSet
from apps.infrastructure.models import LoadBalancer, Server
from apps.orgs.models import Organization

# ---------------------------------------------------------------------------------------------
# Node pool attachments


@dataclass(frozen=True)
class Attachable:
    """What a node pool can hold in a set: the target model, its join model and its names."""

    model: type[models.Model]
    through: type[models.Model]
    fk: str  # the join model's field pointing at the target
    ids_field: str  # the request field carrying the ids
    noun: str
    # The original's code for a malformed id in the detach route's path (DELETE
    # /node-pools/{id}/<kind>/{itemId}): it named only the taint's differently.
    invalid_id_code: str = "id_required"

    @property
    def not_found_code(self) -> str:
        return f"{self.noun}_not_found"


ATTACHABLES: dict[str, Attachable] = {
    "servers": Attachable(Server, NodePoolServer, "server", "server_ids", "server"),
    "labels": Attachable(Label, NodePoolLabel, "label", "label_ids", "label"),
    "annotations": Attachable(
        Annotation, NodePoolAnnotation, "annotation", "annotation_ids", "annotation"
    ),
    "taints": Attachable(Taint, NodePoolTaint, "taint", "taint_ids", "taint", "taintId_required"),
}


def _parse_ids(raw_ids: Sequence[Any], field: str) -> list[uuid.UUID]:
    """Every id as a UUID, in order and without duplicates; 400 naming the first bad one (the
    original's code for it, `bad_request`)."""
    parsed: list[uuid.UUID] = []
    for index, raw in enumerate(raw_ids):
        try:
            parsed.append(uuid.UUID(str(raw)))
        except (TypeError, ValueError, AttributeError):
            raise bad_request("bad_request", f"{field}[{index}] is not a UUID") from None
    return list(dict.fromkeys(parsed))


def _lock_node_pool(node_pool: NodePool) -> None:
    # Holding the pool's row lock for the rest of the transaction: a concurrent delete waits,
    # and a pool deleted before we got here is a clean 404 rather than a foreign-key error.
    locked = NodePool.objects.select_for_update().filter(
        pk=node_pool.pk, organization_id=node_pool.organization_id
    )
    if not list(locked.values_list("pk", flat=True)):
        raise not_found("node_pool_not_found", "node pool not found")


@transaction.atomic
def node_pool_attach(*, node_pool: NodePool, kind: str, ids: Sequence[Any]) -> int:
    """Attach a set of servers/labels/annotations/taints to a node pool, all or nothing.

    Every id must be a UUID (400 naming the bad one) of an object in the pool's organization
    (404 naming the missing one, also for another org's id). Bastion servers never join a node
    pool (400 `server_not_node`). Already attached ids are kept; returns how many were new.
    """
    spec = ATTACHABLES[kind]
    if not ids:
        raise bad_request("nothing_to_attach", f"{spec.ids_field}: nothing to attach")
    wanted = _parse_ids(ids, spec.ids_field)
    _lock_node_pool(node_pool)
    targets = spec.model._default_manager.filter(
        organization_id=node_pool.organization_id, pk__in=wanted
    )
    if kind == "servers":
        # Lock the servers (in id order, so two attaches cannot deadlock) before trusting their
        # role: a concurrent PATCH to bastion (server_update locks the same row) then either
        # sees this membership or is seen here.
        targets = targets.select_for_update().order_by("pk")
    found = {obj.pk: obj for obj in targets}
    for pk in wanted:
        if pk not in found:
            raise not_found(spec.not_found_code, f"{spec.noun} {pk} not found")
    if kind == "servers":
        for pk in wanted:
            if cast(Server, found[pk]).role == Server.Role.BASTION:  # spec.model is Server
                raise bad_request(
                    "server_not_node", f"server {pk} is a bastion and cannot join a node pool"
                )
    existing = set(
        spec.through._default_manager.filter(
            node_pool_id=node_pool.pk, **{f"{spec.fk}_id__in": wanted}
        ).values_list(f"{spec.fk}_id", flat=True)
    )
    rows = [
        spec.through(
            organization_id=node_pool.organization_id,
            node_pool_id=node_pool.pk,
            **{f"{spec.fk}_id": pk},
        )
        for pk in wanted
        if pk not in existing
    ]
    try:
        # ignore_conflicts: a concurrent attach of the same id is not an error, it is the same
        # set.
        with transaction.atomic():
            spec.through._default_manager.bulk_create(rows, ignore_conflicts=True)
            # The foreign keys are checked at commit; check them now, so a target deleted
            # since it was read here (its delete committed while this check waited on its row)
            # fails in this block and answers as if it had been gone before: 404 naming it.
            connection.check_constraints()
    except IntegrityError:
        still = set(spec.model._default_manager.filter(pk__in=wanted).values_list("pk", flat=True))
        gone = [pk for pk in wanted if pk not in still]
        if not gone:
            raise
        raise not_found(spec.not_found_code, f"{spec.noun} {gone[0]} not found") from None
    audit_rows_attached(rows)
    return len(rows)


@transaction.atomic
def node_pool_detach(*, node_pool: NodePool, kind: str, item_id: str) -> None:
    """Detach one server/label/annotation/taint. Idempotent, as in the original: detaching
    something not attached (absent, or another organization's) changes nothing and succeeds."""
    spec = ATTACHABLES[kind]
    pk = parse_uuid(item_id, code=spec.invalid_id_code, what=f"{spec.noun}Id")
    # The pool first, as attach and delete take it: two detaches of one row then run one after
    # the other, and the second finds nothing to delete (and records nothing).
    _lock_node_pool(node_pool)
    spec.through._default_manager.filter(
        node_pool_id=node_pool.pk,
        organization_id=node_pool.organization_id,
        **{f"{spec.fk}_id": pk},
    ).delete()


@transaction.atomic
def node_pool_item_delete(*, kind: str, item: Label | Annotation | Taint) -> None:
    """Delete a label, annotation or taint, detaching it from every node pool first under the
    pools' locks, so a concurrent detach or pool delete and this delete record each membership's
    removal once between them. `kind` is its ATTACHABLES key."""
    _memberships_release(kind, item)
    # The full row lock last: it waits for attaches already inserting a row that refers to the
    # item (they hold other pools' locks and wait on nothing of ours) and stops new ones, so the
    # memberships they made are seen and go too, rather than failing the delete at commit.
    list(type(item)._default_manager.select_for_update().filter(pk=item.pk).values_list("pk"))
    item.delete()


def label_delete(*, label: Label) -> None:
    """Delete a label and its node-pool memberships (see node_pool_item_delete)."""
    node_pool_item_delete(kind="labels", item=label)


def annotation_delete(*, annotation: Annotation) -> None:
    """Delete an annotation and its node-pool memberships (see node_pool_item_delete)."""
    node_pool_item_delete(kind="annotations", item=annotation)


def taint_delete(*, taint: Taint) -> None:
    """Delete a taint and its node-pool memberships (see node_pool_item_delete)."""
    node_pool_item_delete(kind="taints", item=taint)


# ---------------------------------------------------------------------------------------------
# Clusters


def _bootstrap_token() -> str:
    """A kubeadm-style bootstrap token, `<6 hex>.<16 hex>`."""
    return f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"


def cluster_create(
    *,
    organization: Organization,
    name: str,
    provider: str = "",
    region: str = "",
    docker_image: str = "",
    docker_tag: str = "",
) -> Cluster:
    """Create a cluster in `pre_pending` with a fresh join token and certificate key."""
    return Cluster.objects.create(
        organization=organization,
        name=name,
        provider=provider,
        region=region,
        docker_image=docker_image,
        docker_tag=docker_tag,
        random_token=_bootstrap_token(),
        certificate_key=secrets.token_hex(32),
    )


def _cluster_write(*, organization: Organization, cluster_id: uuid.UUID, **columns: Any) -> None:
    """Write exactly `columns` (plus the needs-validation reset) or 404 if the cluster is gone.
    `update()` sends no signals, so the audit entry is written here, in the same transaction."""
    rows = Cluster.objects.filter(pk=cluster_id, organization_id=organization.pk)
    with transaction.atomic():
        before = rows.select_for_update().first()
        updated = rows.update(
            **columns,
            status=Cluster.Status.PRE_PENDING,
            last_error="",
            updated_at=timezone.now(),
        )
        if not updated:
            raise not_found("not_found", "cluster not found")
        audit_row_updated(before, rows.get())


def _cluster_exists(*, organization: Organization, cluster_id: uuid.UUID) -> None:
    if not Cluster.objects.filter(pk=cluster_id, organization_id=organization.pk).exists():
        raise not_found("not_found", "cluster not found")


UPDATABLE_COLUMNS = frozenset({"name", "provider", "region", "docker_image", "docker_tag"})


def cluster_update(
    *, organization: Organization, cluster_id: uuid.UUID, changes: Mapping[str, Any]
) -> None:
    """PATCH: write only the given fields. An empty PATCH changes nothing (not even status)."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if not changes:
        _cluster_exists(organization=organization, cluster_id=cluster_id)
        return
    _cluster_write(organization=organization, cluster_id=cluster_id, **changes)


def cluster_attach_captain_domain(
    *, organization: Organization, cluster_id: uuid.UUID, domain_id: uuid.UUID
) -> None:
    """Point the cluster at a DNS domain of its organization (404 `domain_not_found`)."""
    if not Domain.objects.for_org(organization).filter(pk=domain_id).exists():
        raise not_found("domain_not_found", "domain not found")
    _cluster_write(organization=organization, cluster_id=cluster_id, captain_domain_id=domain_id)


def cluster_attach_record_set(
    *, organization: Organization, cluster_id: uuid.UUID, record_set_id: uuid.UUID
) -> None:
    """Use a record set as the control-plane name; it must sit in a domain of this organization
    (404 `recordset_not_found`)."""
    exists = RecordSet.objects.filter(
        pk=record_set_id,
        organization_id=organization.pk,
        domain__organization_id=organization.pk,
    ).exists()
    if not exists:
        raise not_found("recordset_not_found", "record set not found")
    _cluster_write(
        organization=organization,
        cluster_id=cluster_id,
        control_plane_record_set_id=record_set_id,
    )


LOAD_BALANCER_COLUMNS = {"apps": "apps_load_balancer_id", "glueops": "glueops_load_balancer_id"}


def cluster_attach_load_balancer(
    *, organization: Organization, cluster_id: uuid.UUID, which: str, load_balancer_id: uuid.UUID
) -> None:
    """Set the apps or the GlueOps load balancer (404 `lb_not_found`)."""
    if not LoadBalancer.objects.for_org(organization).filter(pk=load_balancer_id).exists():
        raise not_found("lb_not_found", "load balancer not found")
    _cluster_write(
        organization=organization,
        cluster_id=cluster_id,
        **{LOAD_BALANCER_COLUMNS[which]: load_balancer_id},
    )


@transaction.atomic
def cluster_attach_bastion(
    *, organization: Organization, cluster_id: uuid.UUID, server_id: uuid.UUID
) -> None:
    """Set the bastion: a server of this organization (404 `server_not_found`) whose role is
    bastion (400 `server_not_bastion`)."""
    # The server row stays locked until commit, so a concurrent PATCH of its role (which locks
    # the same row, see server_update) sees this cluster or is seen by this check.
    server = (
        Server.objects.for_org(organization)
        .select_for_update()
        .filter(pk=server_id)
        .only("role")
        .first()
    )
    if server is None:
        raise not_found("server_not_found", "server not found")
    if server.role != Server.Role.BASTION:
        raise bad_request("server_not_bastion", f"server {server_id} is not a bastion server")
    _cluster_write(organization=organization, cluster_id=cluster_id, bastion_server_id=server_id)


DETACHABLE_COLUMNS = frozenset(
    {
        "captain_domain_id",
        "control_plane_record_set_id",
        "apps_load_balancer_id",
        "glueops_load_balancer_id",
        "bastion_server_id",
    }
)


def cluster_detach(*, organization: Organization, cluster_id: uuid.UUID, column: str) -> None:
    """Clear one reference column (captain domain, record set, a load balancer, the bastion)."""
    if column not in DETACHABLE_COLUMNS:
        raise ValueError(f"not detachable: {column}")
    _cluster_write(organization=organization, cluster_id=cluster_id, **{column: None})


def _memberships_release(kind: str, target: models.Model) -> None:
    """Remove a server's, label's, annotation's or taint's node-pool memberships under each
    pool's lock (pk order, as attach and detach take them), before the target row goes. A pool
    deleted or a detach of the same row at the same moment removes the same membership rows;
    holding the pool's lock first means only one of them finds (and so records the detach of)
    each row."""
    spec = ATTACHABLES[kind]
    memberships = spec.through._default_manager.filter(
        organization_id=target.organization_id,  # type: ignore[attr-defined]
        **{f"{spec.fk}_id": target.pk},
    )
    pool_ids = sorted(set(memberships.values_list("node_pool_id", flat=True)))
    if not pool_ids:
        return
    list(
        NodePool.objects.select_for_update()
        .filter(pk__in=pool_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    memberships.delete()


def cluster_release_references(
    *,
    server: Server | None = None,
    load_balancer: LoadBalancer | None = None,
    domain: Domain | None = None,
    record_set: RecordSet | None = None,
) -> int:
    """Detach a server, load balancer, domain or record set that is about to be deleted from
    every cluster using it, putting those clusters back to `pre_pending` with no last error,
    exactly as an API detach does. Returns how many cluster references were cleared.

    Call it inside the deleting transaction, just before the delete. The foreign keys are also
    SET NULL, so a reference added after this call cannot block the delete; it only keeps its
    status. A domain also releases the clusters using one of its record sets (they cascade).
    """
    targets: list[tuple[str, Server | LoadBalancer | Domain | RecordSet, dict[str, Any]]] = []
    if server is not None:
        targets.append(("bastion_server_id", server, {"bastion_server_id": server.pk}))
    if load_balancer is not None:
        for column in LOAD_BALANCER_COLUMNS.values():
            targets.append((column, load_balancer, {column: load_balancer.pk}))
    if domain is not None:
        targets.append(("captain_domain_id", domain, {"captain_domain_id": domain.pk}))
        targets.append(
            (
                "control_plane_record_set_id",
                domain,
                {"control_plane_record_set__domain_id": domain.pk},
            )
        )
    if record_set is not None:
        targets.append(
            (
                "control_plane_record_set_id",
                record_set,
                {"control_plane_record_set_id": record_set.pk},
            )
        )
    if server is not None:
        _memberships_release("servers", server)
    released = 0
    for column, target, lookup in targets:
        released += Cluster.objects.filter(organization_id=target.organization_id, **lookup).update(
            **{column: None},
            status=Cluster.Status.PRE_PENDING,
            last_error="",
            updated_at=timezone.now(),
        )
    return released


@transaction.atomic
def cluster_set_kubeconfig(
    *, organization: Organization, cluster_id: uuid.UUID, kubeconfig: str
) -> None:
    """Store (or, with "", clear) the kubeconfig, encrypted at rest.

    Saved through the model rather than `.update()` so the encrypted field sees its row (its
    ciphertext may be bound to it); the row lock keeps the write as narrow and as safe against
    a concurrent delete as the other cluster writes.
    """
    cluster = (
        Cluster.objects.select_for_update()
        .filter(pk=cluster_id, organization_id=organization.pk)
        .only("id", "organization_id")
        .first()
    )
    if cluster is None:
        raise not_found("not_found", "cluster not found")
    cluster.kubeconfig = kubeconfig
    cluster.status = Cluster.Status.PRE_PENDING
    cluster.last_error = ""
    cluster.save(update_fields=["kubeconfig", "status", "last_error", "updated_at"])


@transaction.atomic
def cluster_attach_node_pool(
    *, organization: Organization, cluster_id: uuid.UUID, node_pool_id: uuid.UUID
) -> None:
    """Add a node pool of this organization to the cluster (404 `nodepool_not_found`)."""
    if not NodePool.objects.for_org(organization).filter(pk=node_pool_id).exists():
        raise not_found("nodepool_not_found", "node pool not found")
    # The status write first: it locks the cluster row, so a concurrent delete cannot slip
    # between the check and the insert.
    _cluster_write(organization=organization, cluster_id=cluster_id)
    rows = [
        ClusterNodePool(organization=organization, cluster_id=cluster_id, node_pool_id=node_pool_id)
    ]
    ClusterNodePool.objects.bulk_create(rows, ignore_conflicts=True)
    audit_rows_attached(rows)


@transaction.atomic
def cluster_detach_node_pool(
    *, organization: Organization, cluster_id: uuid.UUID, node_pool_id: uuid.UUID
) -> None:
    """Remove a node pool from the cluster (404 only if the cluster is missing). Idempotent, as
    in the original: a node pool that is not attached is simply not there afterwards either."""
    _cluster_write(organization=organization, cluster_id=cluster_id)
    ClusterNodePool.objects.filter(
        organization_id=organization.pk, cluster_id=cluster_id, node_pool_id=node_pool_id
    ).delete()


# ---------------------------------------------------------------------------------------------
# Cluster metadata


def normalize_metadata_key(key: str) -> str:
    return key.strip().lower()


def cluster_metadata_create(*, cluster: Cluster, key: str, value: str) -> ClusterMetadata:
    """Store a key/value on a cluster; the key is trimmed and lowercased, unique per cluster
    (409 `conflict`)."""
    key = normalize_metadata_key(key)
    try:
        with transaction.atomic():
            return ClusterMetadata.objects.create(
                organization_id=cluster.organization_id,
                cluster=cluster,
                key=key,
                value=value.strip(),
            )
    except IntegrityError:
        raise conflict("conflict", f"key: metadata key {key!r} already exists") from None


def cluster_metadata_update(
    *, item: ClusterMetadata, key: str | None = None, value: str | None = None
) -> ClusterMetadata:
    """Change a metadata entry's key and/or value (409 `conflict` on a duplicate key)."""
    if key is not None:
        item.key = normalize_metadata_key(key)
    if value is not None:
        item.value = value.strip()
    try:
        with transaction.atomic():
            item.save(update_fields=["key", "value", "updated_at"])
    except IntegrityError:
        raise conflict("conflict", f"key: metadata key {item.key!r} already exists") from None
    return item


# ---------------------------------------------------------------------------------------------
# Action catalogue


def _action_conflicts(*, label: str | None, make_target: str | None, exclude: Any = None) -> None:
    others = Action.objects.exclude(pk=exclude) if exclude else Action.objects.all()
    if label is not None and others.filter(label=label).exists():
        raise conflict("action_exists", f"label: an action labelled {label!r} already exists")
    if make_target is not None and others.filter(make_target=make_target).exists():
        raise conflict(
            "action_exists", f"make_target: an action for {make_target!r} already exists"
        )


def _save_action(action: Action, **kwargs: Any) -> Action:
    try:
        with transaction.atomic():
            action.save(**kwargs)
    except IntegrityError:
        # Lost a race with a concurrent create: say which field, as the check above would have.
        _action_conflicts(label=action.label, make_target=action.make_target, exclude=action.pk)
        raise
    return action


def action_create(*, label: str, description: str, make_target: str) -> Action:
    """Add an action to the catalogue; label and make target are unique (409 `action_exists`)."""
    _action_conflicts(label=label, make_target=make_target)
    return _save_action(Action(label=label, description=description, make_target=make_target))


def action_update(*, action: Action, changes: Mapping[str, str]) -> Action:
    """Change an action's label, description and/or make target (409 on a duplicate)."""
    _action_conflicts(
        label=changes.get("label"), make_target=changes.get("make_target"), exclude=action.pk
    )
    for field, value in changes.items():
        setattr(action, field, value)
    return _save_action(action)


# ---------------------------------------------------------------------------------------------
# Cluster runs


def _active_run_conflict(cluster: Cluster) -> Exception:
    active = (
        ClusterRun.objects.filter(cluster=cluster, status__in=ClusterRun.ACTIVE_STATUSES)
        .only("id", "status")
        .first()
    )
    run_id = active.pk if active else "unknown"
    state = active.status if active else "active"
    return conflict("run_active", f"cluster already has an active run {run_id} ({state})")


def cluster_run_create(*, cluster: Cluster, action: Action) -> ClusterRun:
    """Queue a run of `action` on `cluster`. A cluster has at most one queued or running run:
    a second request is 409 `run_active` naming the active run. The partial unique index
    decides races, so two concurrent requests give exactly one run.

    The run's `cluster_action` job is recorded in the same transaction and sent after commit
    (apps.clusters.runs).
    """
    from apps.clusters.runs import cluster_run_enqueue

    if ClusterRun.objects.filter(cluster=cluster, status__in=ClusterRun.ACTIVE_STATUSES).exists():
        raise _active_run_conflict(cluster)
    try:
        with transaction.atomic():
            run = ClusterRun.objects.create(
                organization_id=cluster.organization_id,
                cluster=cluster,
                action_ref=action,
                action=action.make_target,
                status=ClusterRun.Status.QUEUED,
            )
            cluster_run_enqueue(run=run)
            return run
    except IntegrityError:
        raise _active_run_conflict(cluster) from None


def cluster_run_cancel(*, run: ClusterRun) -> ClusterRun:
    """Cancel a queued or running run: a queued one ends `canceled` at once; a running one is
    stopped within a heartbeat (channel closed, remote process group and containers stopped)
    and then ends `canceled`. A finished run is 409 `run_finished`."""
    from apps.jobs.models import JobRun
    from apps.jobs.services import JobStateError, job_request_cancel

    if run.status not in ClusterRun.ACTIVE_STATUSES:
        raise conflict("run_finished", f"run is already {run.status}")
    job = (
        JobRun.objects.filter(subject_type=JobRun.SubjectType.CLUSTER_RUN, subject_id=run.pk)
        .order_by("-queued_at")
        .first()
    )
    if job is None:
        # A run queued before jobs existed: nothing will ever pick it up.
        ClusterRun.objects.filter(pk=run.pk, status__in=ClusterRun.ACTIVE_STATUSES).update(
            status=ClusterRun.Status.CANCELED, error="canceled", finished_at=timezone.now()
        )
    else:
        try:
            job_request_cancel(job=job)
        except JobStateError as exc:
            raise conflict("run_finished", str(exc)) from None
    run.refresh_from_db()
    return run


# --- Short-lived kubeconfigs (docs/clusters.md, "Kubeconfigs that expire") ---------------------


@dataclass(frozen=True)
class IssuedKubeconfig:
    kubeconfig: str
    username: str
    groups: tuple[str, ...]
    access: str
    expires_at: datetime
    # For the audit entry: the CSR's name, the ClusterRoleBindings created on the way.
    csr: str = ""
    bindings_created: tuple[str, ...] = ()


def _kubeconfig_rate_check(*, requester: str, cluster: Cluster) -> None:
    """429 `rate_limited` past KUBECONFIG_ISSUE_RATE_LIMIT for this requester and cluster.
    Counted in Redis with the other rate limits; with the cache down it fails open, as they do."""
    if cache_down():
        return
    try:
        usages = rate_hit(
            [(f"kubeconfig:{requester}:{cluster.pk}", settings.KUBECONFIG_ISSUE_RATE_LIMIT)]
        ).usages
    except Exception:  # noqa: BLE001 - fail open, as the other rate limits do (they log)
        return
    if any(usage.exceeded for usage in usages):
        raise APIError(
            429, "rate_limited", "too many kubeconfigs asked for this cluster; try again later"
        )


def cluster_kubeconfig_issue(
    *,
    cluster: Cluster,
    username: str,
    requester: str,
    access: str,
    lifetime_seconds: int,
    not_after: float | None = None,
) -> IssuedKubeconfig:
    """A kubeconfig whose client certificate names `username` (CN) and the group of `access`
    (O), and expires after `lifetime_seconds`: signed by the cluster itself through the
    CertificateSigningRequest API with the stored admin kubeconfig (apps.clusters.kube). The
    two ClusterRoleBindings the groups need are created on the way if missing. Audited as a
    kubeconfig read, without any key material; nothing is stored."""
    if access not in kube.ACCESS_GROUPS:
        raise bad_request("validation_error", "access: must be admin or view")
    if not_after is not None:
        # A certificate cannot be revoked: it never outlives the key that asked for it.
        left = int(not_after - time.time())
        if left < kube.MIN_LIFETIME_SECONDS:
            raise bad_request(
                "validation_error",
                "lifetime_seconds: the API key asking expires in less than "
                f"{kube.MIN_LIFETIME_SECONDS} s, the shortest lifetime",
            )
        lifetime_seconds = min(lifetime_seconds, left)
    attempt = {
        "kind": "short_lived",
        "access": access,
        "username": username,
        "requester": requester,
        "lifetime_seconds": lifetime_seconds,
    }
    try:
        _kubeconfig_rate_check(requester=requester, cluster=cluster)
        issued = _kubeconfig_sign(
            cluster=cluster,
            username=username,
            requester=requester,
            access=access,
            lifetime_seconds=lifetime_seconds,
        )
    except APIError as exc:
        # Every attempt is audited, refused ones with the reason (outside any transaction
        # here: the API route is not atomic, so the entry stays).
        audit.audit_object_event(
            event=audit_events.SECRET_KUBECONFIG,
            obj=cluster,
            metadata={**attempt, "outcome": "refused", "code": exc.error_code},
        )
        raise
    audit.audit_object_event(
        event=audit_events.SECRET_KUBECONFIG,
        obj=cluster,
        metadata={
            **attempt,
            "outcome": "issued",
            "expires_at": issued.expires_at.isoformat(),
            "csr": issued.csr,
            # ClusterRoleBindings Autoglue created in the cluster on this occasion.
            "bindings_created": list(issued.bindings_created),
        },
    )
    return issued


def _kubeconfig_sign(
    *, cluster: Cluster, username: str, requester: str, access: str, lifetime_seconds: int
) -> IssuedKubeconfig:
    """The network part of cluster_kubeconfig_issue: APIError for every failure."""
    stored = cluster_secrets(cluster=cluster)["kubeconfig"]
    try:
        access_info = kube.admin_access(stored)
        # One deadline for every call: the wait for the certificate and one more call.
        total = settings.KUBECONFIG_CSR_WAIT_SECONDS + kube.HTTP_TIMEOUT_SECONDS
        with kube.KubeClient(access_info, total_seconds=total) as client:
            bindings_created = client.ensure_bindings()
            signed = client.sign(
                username=username,
                access=access,
                lifetime_seconds=lifetime_seconds,
                wait_seconds=settings.KUBECONFIG_CSR_WAIT_SECONDS,
                identity=requester,
            )
    except kube.KubeconfigInvalid as exc:
        raise conflict("kubeconfig_invalid", f"the cluster's stored kubeconfig: {exc}") from None
    except kube.KubeAPIError as exc:
        raise APIError(exc.status, exc.code, exc.message) from None
    document = kube.kubeconfig_document(
        cluster_name=cluster.name or str(cluster.pk),
        server=access_info.server,
        ca_pem=access_info.ca_pem,
        signed=signed,
    )
    return IssuedKubeconfig(
        kubeconfig=document,
        username=username,
        groups=signed.groups,
        access=access,
        expires_at=signed.expires_at,
        csr=signed.name,
        bindings_created=tuple(bindings_created),
    )
