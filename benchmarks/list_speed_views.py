"""The floor the list endpoints are measured against: the same page, read with raw SQL.

Each view here sits behind the same middleware, the same authentication class and the same
tenancy and role check as the real list (`IsAuthenticated`, `HasOrgPermission`), and answers
the same JSON array (list_speed.py checks that the bodies are equal before timing anything).
What it leaves out is everything between the database cursor and the response: the ORM's model
instances and the serializers. Rows become dicts straight from the cursor and go to the same
renderer.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.db import connection
from django.urls import re_path
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.permissions import HasOrgPermission
from apps.core.tenancy import get_tenant
from autoglue.urls import urlpatterns as project_urlpatterns

SERVER_COLUMNS = (
    "id, organization_id, hostname, public_ip_address, private_ip_address, ssh_user, ssh_port, "
    "ssh_key_id, role, status, created_at, updated_at"
)
LB_COLUMNS = (
    "id, organization_id, name, kind, public_ip_address, private_ip_address, created_at, updated_at"
)
SCHED_COLUMNS = "id, organization_id, key, value, created_at, updated_at"
TAINT_COLUMNS = "id, organization_id, key, value, effect, created_at, updated_at"


def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _server(row: dict[str, Any]) -> dict[str, Any]:
    if row["public_ip_address"] is None:
        del row["public_ip_address"]
    return row


def _load_balancer(row: dict[str, Any]) -> dict[str, Any]:
    row["public_ip_address"] = row["public_ip_address"] or ""
    row["private_ip_address"] = row["private_ip_address"] or ""
    return row


def _by_id(sql: str, ids: set[Any]) -> dict[Any, dict[str, Any]]:
    if not ids:
        return {}
    return {row["id"]: row for row in _rows(sql, [list(ids)])}


class _RawList(APIView):
    permission_classes = [IsAuthenticated, HasOrgPermission]

    def get(self, request: Request) -> Response:
        return Response(self.page(get_tenant(request).organization.pk))

    def page(self, org_id: Any) -> list[dict[str, Any]]:
        raise NotImplementedError


class RawServerList(_RawList):
    """GET /api/v1/servers, as raw SQL."""

    def page(self, org_id: Any) -> list[dict[str, Any]]:
        rows = _rows(
            f"SELECT {SERVER_COLUMNS} FROM infrastructure_server "  # noqa: S608 - constant
            "WHERE organization_id = %s ORDER BY created_at DESC",
            [org_id],
        )
        return [_server(row) for row in rows]


def _pools_of(cluster_ids: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """Node pools per cluster, each with its servers, labels, taints and annotations."""
    links = _rows(
        "SELECT l.cluster_id, p.id, p.organization_id, p.name, p.role, p.created_at, "
        "p.updated_at FROM clusters_clusternodepool l JOIN clusters_nodepool p "
        "ON p.id = l.node_pool_id WHERE l.cluster_id = ANY(%s) ORDER BY p.created_at DESC",
        [cluster_ids],
    )
    pool_ids = list({row["id"] for row in links})
    nested: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    for name, table, fk, columns in (
        ("servers", "infrastructure_server", "server", SERVER_COLUMNS),
        ("labels", "clusters_label", "label", SCHED_COLUMNS),
        ("taints", "clusters_taint", "taint", TAINT_COLUMNS),
        ("annotations", "clusters_annotation", "annotation", SCHED_COLUMNS),
    ):
        through = f"clusters_nodepool{fk}"
        qualified = ", ".join(f"t.{column.strip()}" for column in columns.split(","))
        per_pool: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for row in _rows(
            f"SELECT l.node_pool_id AS _pool, {qualified} FROM {through} l "  # noqa: S608
            f"JOIN {table} t ON t.id = l.{fk}_id WHERE l.node_pool_id = ANY(%s) "
            "ORDER BY t.created_at DESC",
            [pool_ids],
        ):
            pool = row.pop("_pool")
            per_pool[pool].append(_server(row) if name == "servers" else row)
        nested[name] = per_pool
    pools: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in links:
        cluster_id = row.pop("cluster_id")
        pool = {k: row[k] for k in ("id", "organization_id", "name", "role")}
        for name in ("servers", "labels", "taints", "annotations"):
            pool[name] = nested[name].get(row["id"], [])
        pool["created_at"], pool["updated_at"] = row["created_at"], row["updated_at"]
        pools[cluster_id].append(pool)
    return pools


class RawClusterList(_RawList):
    """GET /api/v1/clusters (as a role that does not see join secrets), as raw SQL."""

    def page(self, org_id: Any) -> list[dict[str, Any]]:
        clusters = _rows(
            "SELECT id, name, captain_domain_id, control_plane_record_set_id, "
            "apps_load_balancer_id, glueops_load_balancer_id, bastion_server_id, provider, "
            "region, status, last_error, docker_image, docker_tag, created_at, updated_at "
            "FROM clusters_cluster WHERE organization_id = %s ORDER BY created_at DESC",
            [org_id],
        )
        ids = [row["id"] for row in clusters]
        domains = _by_id(
            "SELECT id, organization_id, domain_name, zone_id, status, last_error, "
            "credential_id, created_at, updated_at FROM dns_domain WHERE id = ANY(%s)",
            {row["captain_domain_id"] for row in clusters} - {None},
        )
        record_sets = _by_id(
            "SELECT r.id, r.domain_id, r.name, r.type, r.ttl, r.values, r.fingerprint, "
            "r.status, r.last_error, r.owner, r.created_at, r.updated_at, d.domain_name "
            "FROM dns_recordset r JOIN dns_domain d ON d.id = r.domain_id WHERE r.id = ANY(%s)",
            {row["control_plane_record_set_id"] for row in clusters} - {None},
        )
        lbs = _by_id(
            f"SELECT {LB_COLUMNS} FROM infrastructure_loadbalancer WHERE id = ANY(%s)",  # noqa: S608
            {row["apps_load_balancer_id"] for row in clusters}
            | {row["glueops_load_balancer_id"] for row in clusters} - {None},
        )
        bastions = _by_id(
            f"SELECT {SERVER_COLUMNS} FROM infrastructure_server WHERE id = ANY(%s)",  # noqa: S608
            {row["bastion_server_id"] for row in clusters} - {None},
        )
        metadata: dict[Any, dict[str, str]] = defaultdict(dict)
        for row in _rows(
            "SELECT cluster_id, key, value FROM clusters_clustermetadata "
            "WHERE cluster_id = ANY(%s) ORDER BY key",
            [ids],
        ):
            metadata[row["cluster_id"]][row["key"]] = row["value"]
        pools = _pools_of(ids)
        page = []
        for row in clusters:
            item: dict[str, Any] = {"id": row["id"], "name": row["name"]}
            if row["captain_domain_id"]:
                item["captain_domain"] = domains[row["captain_domain_id"]]
            record_set = record_sets.get(row["control_plane_record_set_id"])
            if record_set is not None:
                rs = {k: v for k, v in record_set.items() if k != "domain_name"}
                # jsonb arrives as text (Django registers a text loader for it).
                rs["values"] = json.loads(rs["values"])
                item["control_plane_record_set"] = rs
                zone = record_set["domain_name"]
                item["control_plane_fqdn"] = (
                    zone if rs["name"] in ("", "@") else f"{rs['name']}.{zone}"
                )
            for field in ("apps_load_balancer", "glueops_load_balancer"):
                lb = lbs.get(row[f"{field}_id"])
                if lb is not None:
                    item[field] = _load_balancer(dict(lb))
            bastion = bastions.get(row["bastion_server_id"])
            if bastion is not None:
                item["bastion_server"] = _server(dict(bastion))
            item["cluster_provider"] = row["provider"]
            for field in ("region", "status", "last_error"):
                item[field] = row[field]
            item["node_pools"] = pools.get(row["id"], [])
            item["docker_image"], item["docker_tag"] = row["docker_image"], row["docker_tag"]
            item["metadata"] = metadata.get(row["id"], {})
            item["created_at"], item["updated_at"] = row["created_at"], row["updated_at"]
            page.append(item)
        return page


urlpatterns = [
    re_path(r"^bench/raw/servers$", RawServerList.as_view()),
    re_path(r"^bench/raw/clusters$", RawClusterList.as_view()),
    *project_urlpatterns,
]
