"""The OpenAPI document, made exact: what every operation can answer, in the contract's terms.

drf-spectacular describes success bodies from the serializers; `AutoglueSchema` adds what the
platform layers around every view answer (the tenancy layer, the permission classes, the
JSON-only middleware, the rate limit), each as the contract's `{code, message}` body, declares
`X-Org-ID` where the organization comes from it, and names each operation as the original
contract does. The postprocessing hook writes the paths as the contract does (no trailing slash,
its path parameter names). `tests/conformance/` checks the result against the live server:
a status code the document does not list fails there.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from apps.core.api.pagination import MAX_LIMIT
from apps.core.validators import OPENAPI_PATTERNS

API_PREFIX = "/api/v1"
ERROR_COMPONENT = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}

# The original contract's operationId for each of its operations, by its path template.
# Operations of ours that the contract lacks get a CamelCase form of drf-spectacular's id.
ORIGINAL_OPERATIONS: dict[str, str] = {
    "GET /.well-known/jwks.json": "getJWKS",
    "GET /admin/actions": "ListActions",
    "POST /admin/actions": "CreateAction",
    "DELETE /admin/actions/{actionID}": "DeleteAction",
    "GET /admin/actions/{actionID}": "GetAction",
    "PATCH /admin/actions/{actionID}": "UpdateAction",
    "GET /admin/archer/jobs": "AdminListArcherJobs",
    "POST /admin/archer/jobs": "AdminEnqueueArcherJob",
    "POST /admin/archer/jobs/{id}/cancel": "AdminCancelArcherJob",
    "POST /admin/archer/jobs/{id}/retry": "AdminRetryArcherJob",
    "GET /admin/archer/queues": "AdminListArcherQueues",
    "GET /annotations": "ListAnnotations",
    "POST /annotations": "CreateAnnotation",
    "DELETE /annotations/{id}": "DeleteAnnotation",
    "GET /annotations/{id}": "GetAnnotation",
    "PATCH /annotations/{id}": "UpdateAnnotation",
    "POST /auth/logout": "Logout",
    "POST /auth/refresh": "Refresh",
    "GET /auth/{provider}/callback": "AuthCallback",
    "POST /auth/{provider}/start": "AuthStart",
    "GET /clusters": "ListClusters",
    "POST /clusters": "CreateCluster",
    "DELETE /clusters/{clusterID}": "DeleteCluster",
    "GET /clusters/{clusterID}": "GetCluster",
    "PATCH /clusters/{clusterID}": "UpdateCluster",
    "POST /clusters/{clusterID}/actions/{actionID}/runs": "RunClusterAction",
    "DELETE /clusters/{clusterID}/apps-load-balancer": "DetachAppsLoadBalancer",
    "POST /clusters/{clusterID}/apps-load-balancer": "AttachAppsLoadBalancer",
    "DELETE /clusters/{clusterID}/bastion": "DetachBastionServer",
    "POST /clusters/{clusterID}/bastion": "AttachBastionServer",
    "DELETE /clusters/{clusterID}/captain-domain": "DetachCaptainDomain",
    "POST /clusters/{clusterID}/captain-domain": "AttachCaptainDomain",
    "DELETE /clusters/{clusterID}/control-plane-record-set": "DetachControlPlaneRecordSet",
    "POST /clusters/{clusterID}/control-plane-record-set": "AttachControlPlaneRecordSet",
    "DELETE /clusters/{clusterID}/glueops-load-balancer": "DetachGlueOpsLoadBalancer",
    "POST /clusters/{clusterID}/glueops-load-balancer": "AttachGlueOpsLoadBalancer",
    "DELETE /clusters/{clusterID}/kubeconfig": "ClearClusterKubeconfig",
    "POST /clusters/{clusterID}/kubeconfig": "SetClusterKubeconfig",
    "POST /clusters/{clusterID}/node-pools": "AttachNodePool",
    "DELETE /clusters/{clusterID}/node-pools/{nodePoolID}": "DetachNodePool",
    "GET /clusters/{clusterID}/runs": "ListClusterRuns",
    "GET /clusters/{clusterID}/runs/{runID}": "GetClusterRun",
    "GET /credentials": "ListCredentials",
    "POST /credentials": "CreateCredential",
    "DELETE /credentials/{id}": "DeleteCredential",
    "GET /credentials/{id}": "GetCredential",
    "PATCH /credentials/{id}": "UpdateCredential",
    "POST /credentials/{id}/reveal": "RevealCredential",
    "GET /dns/domains": "ListDomains",
    "POST /dns/domains": "CreateDomain",
    "GET /dns/domains/{domain_id}/records": "ListRecordSets",
    "POST /dns/domains/{domain_id}/records": "CreateRecordSet",
    "DELETE /dns/domains/{id}": "DeleteDomain",
    "GET /dns/domains/{id}": "GetDomain",
    "PATCH /dns/domains/{id}": "UpdateDomain",
    "DELETE /dns/records/{id}": "DeleteRecordSet",
    "GET /dns/records/{id}": "GetRecordSet",
    "PATCH /dns/records/{id}": "UpdateRecordSet",
    "GET /healthz": "HealthCheck",
    "GET /labels": "ListLabels",
    "POST /labels": "CreateLabel",
    "DELETE /labels/{id}": "DeleteLabel",
    "GET /labels/{id}": "GetLabel",
    "PATCH /labels/{id}": "UpdateLabel",
    "GET /load-balancers": "ListLoadBalancers",
    "POST /load-balancers": "CreateLoadBalancer",
    "DELETE /load-balancers/{id}": "DeleteLoadBalancer",
    "GET /load-balancers/{id}": "GetLoadBalancers",
    "PATCH /load-balancers/{id}": "UpdateLoadBalancer",
    "GET /me": "GetMe",
    "PATCH /me": "UpdateMe",
    "GET /me/api-keys": "ListUserAPIKeys",
    "POST /me/api-keys": "CreateUserAPIKey",
    "DELETE /me/api-keys/{id}": "DeleteUserAPIKey",
    "GET /node-pools": "ListNodePools",
    "POST /node-pools": "CreateNodePool",
    "DELETE /node-pools/{id}": "DeleteNodePool",
    "GET /node-pools/{id}": "GetNodePool",
    "PATCH /node-pools/{id}": "UpdateNodePool",
    "GET /node-pools/{id}/annotations": "ListNodePoolAnnotations",
    "POST /node-pools/{id}/annotations": "AttachNodePoolAnnotations",
    "DELETE /node-pools/{id}/annotations/{annotationId}": "DetachNodePoolAnnotation",
    "GET /node-pools/{id}/labels": "ListNodePoolLabels",
    "POST /node-pools/{id}/labels": "AttachNodePoolLabels",
    "DELETE /node-pools/{id}/labels/{labelId}": "DetachNodePoolLabel",
    "GET /node-pools/{id}/servers": "ListNodePoolServers",
    "POST /node-pools/{id}/servers": "AttachNodePoolServers",
    "DELETE /node-pools/{id}/servers/{serverId}": "DetachNodePoolServer",
    "GET /node-pools/{id}/taints": "ListNodePoolTaints",
    "POST /node-pools/{id}/taints": "AttachNodePoolTaints",
    "DELETE /node-pools/{id}/taints/{taintId}": "DetachNodePoolTaint",
    "GET /orgs": "listMyOrgs",
    "POST /orgs": "createOrg",
    "DELETE /orgs/{id}": "deleteOrg",
    "GET /orgs/{id}": "getOrg",
    "PATCH /orgs/{id}": "updateOrg",
    "GET /orgs/{id}/api-keys": "listOrgKeys",
    "POST /orgs/{id}/api-keys": "createOrgKey",
    "DELETE /orgs/{id}/api-keys/{key_id}": "deleteOrgKey",
    "GET /orgs/{id}/members": "listMembers",
    "POST /orgs/{id}/members": "addOrUpdateMember",
    "DELETE /orgs/{id}/members/{user_id}": "removeMember",
    "GET /servers": "ListServers",
    "POST /servers": "CreateServer",
    "DELETE /servers/{id}": "DeleteServer",
    "GET /servers/{id}": "GetServer",
    "PATCH /servers/{id}": "UpdateServer",
    "POST /servers/{id}/reset-hostkey": "ResetServerHostKey",
    "GET /ssh": "ListPublicSshKeys",
    "POST /ssh": "CreateSSHKey",
    "DELETE /ssh/{id}": "DeleteSSHKey",
    "GET /ssh/{id}": "GetSSHKey",
    "GET /ssh/{id}/download": "DownloadSSHKey",
    "GET /taints": "ListTaints",
    "POST /taints": "CreateTaint",
    "DELETE /taints/{id}": "DeleteTaint",
    "GET /taints/{id}": "GetTaint",
    "PATCH /taints/{id}": "UpdateTaint",
    "GET /version": "Version",
}

# What each error status means here (the response's description).
ERROR_MEANINGS = {
    400: "Invalid input: a malformed id, header, query parameter or body (`code` names it)",
    401: "No valid credentials",
    403: "The principal may not do this (role, organization, or platform admin required)",
    404: "Not found (or belongs to another organization)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    415: "The request body is not JSON",
    429: "Too many requests (see Retry-After)",
    502: "An upstream service (Route 53, the identity provider) failed",
    503: "A dependency cannot be reached now (see Retry-After)",
    504: "An upstream service (a cluster's API) did not finish in time",
}

# Statuses some operations answer beyond what their view classes imply, by contract path.
EXTRA_ERRORS: dict[str, set[int]] = {
    "POST /auth/refresh": {401},
    "POST /auth/logout": {401},
    "POST /auth/{provider}/start": {404, 503},
    "GET /auth/{provider}/callback": {401, 403, 404, 503},
    "GET /dns/domains/{id}/plan": {409, 502},
    # The cluster's own API signs the certificate (docs/clusters.md).
    "POST /clusters/{clusterID}/kubeconfigs": {409, 502, 504},
}

# Health probes are exempt from the rate limit (apps.core.middleware).
_RATE_LIMIT_EXEMPT = {"/healthz", "/readyz"}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_PARAM = re.compile(r"\{([^}]+)\}")


def _shape(path: str) -> str:
    """A path with its parameters unnamed, for matching ours with the contract's."""
    return _PARAM.sub("{}", path.rstrip("/") or "/")


def _contract_path(path: str) -> str:
    path = path.rstrip("/") or "/"
    return path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path


_BY_SHAPE: dict[tuple[str, str], tuple[str, str]] = {}
for _key, _operation_id in ORIGINAL_OPERATIONS.items():
    _method, _path = _key.split(" ", 1)
    _BY_SHAPE[(_method, _shape(_path))] = (_path, _operation_id)


def original_operation(method: str, path: str) -> tuple[str, str] | None:
    """The contract's (path template, operationId) for one of our operations, if it has one."""
    return _BY_SHAPE.get((method.upper(), _shape(_contract_path(path))))


def _camel(operation_id: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", operation_id))


def _class_names(classes: Any) -> set[str]:
    names: set[str] = set()
    for cls in classes or ():
        names.update(klass.__name__ for klass in getattr(cls, "__mro__", (cls,)))
    return names


def _may_be_blank(field: Any) -> bool:
    if getattr(field, "allow_blank", False):
        return True
    model = getattr(getattr(getattr(field, "parent", None), "Meta", None), "model", None)
    if model is None or not isinstance(getattr(field, "source", None), str):
        return False
    try:
        return bool(model._meta.get_field(field.source).blank)
    except Exception:  # noqa: BLE001 - not a model field (a property, a method)
        return False


class AutoglueSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the platform's error responses, `X-Org-ID` and the
    contract's operation ids (see the module docstring)."""

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A URL (or e-mail, ...) that may be blank is "" when unset: no longer in its format.
        if isinstance(schema, dict) and "format" in schema and _may_be_blank(field):
            schema.pop("format")
        return schema

    def _insert_field_validators(self, field: Any, schema: dict) -> None:
        super()._insert_field_validators(field, schema)
        for validator in getattr(field, "validators", ()):
            # Validator objects (Django's) may define __eq__ without __hash__: only functions are
            # registered, so only functions are looked up.
            pattern = (
                OPENAPI_PATTERNS.get(validator)
                if callable(validator) and hasattr(validator, "__code__")
                else None
            )
            if pattern is not None and schema.get("type") == "string":
                schema.setdefault("pattern", pattern)
        if "format" in schema and _may_be_blank(field):
            schema.pop("format")  # a validator's format (URLValidator's uri) does not hold for ""

    def _permission_names(self) -> set[str]:
        return _class_names(getattr(self.view, "permission_classes", ()))

    def is_tenant_operation(self) -> bool:
        """The organization comes from `X-Org-ID` (or the org key): the tenancy layer runs."""
        return "HasOrgPermission" in self._permission_names()

    def get_override_parameters(self) -> list:
        parameters = list(super().get_override_parameters())
        if self.is_tenant_operation():
            parameters.append(
                OpenApiParameter(
                    "X-Org-ID",
                    str,
                    OpenApiParameter.HEADER,
                    required=False,
                    description=(
                        "Organization UUID (user credentials). Optional when the user belongs "
                        "to exactly one organization; ignored for an org key/secret pair."
                    ),
                )
            )
        return parameters

    def error_statuses(self) -> set[int]:
        """Every error status this operation can answer, from what runs around and in it."""
        method = self.method.upper()
        path = _contract_path(self.path)
        statuses = self._access_statuses()
        if path not in _RATE_LIMIT_EXEMPT:
            statuses.add(429)
        if _PARAM.search(path):
            statuses |= {400, 404}
        if method in _BODY_METHODS:
            statuses |= {400, 413, 415}
            if self._body_references_objects():
                statuses.add(404)  # a referenced object (ssh_key_id, ...) that is not there
        if method in _WRITE_METHODS and self._permission_names():
            statuses.add(409)  # an integrity conflict no service anticipated is still a 409
        if any(p.get("in") == "query" for p in self._query_parameters()):
            statuses.add(400)
        original = original_operation(method, self.path)
        key = f"{method} {original[0] if original else path}"
        return statuses | EXTRA_ERRORS.get(key, set())

    def _access_statuses(self) -> set[int]:
        """What authentication and the permission classes answer."""
        permissions = self._permission_names()
        statuses: set[int] = set()
        if getattr(self.view, "authentication_classes", None):
            statuses.add(401)  # a credential that is present but wrong
        if permissions & {"IsAuthenticated", "IsUserPrincipal", "IsPlatformAdmin"}:
            statuses.add(401)
        if "HasOrgPermission" in permissions:
            statuses |= {400, 401, 403}  # a malformed X-Org-ID, no principal, not a member/role
        if "HasOrgPathPermission" in permissions:
            statuses |= {400, 401, 403, 404}
        if "IsPlatformAdmin" in permissions:
            statuses.add(403)
        return statuses

    def _body_references_objects(self) -> bool:
        serializer = self.get_request_serializer()
        if isinstance(serializer, type):
            try:
                serializer = serializer()
            except Exception:  # noqa: BLE001 - a serializer needing arguments names no fields
                return False
        fields = getattr(serializer, "fields", None)
        if fields is None or not hasattr(fields, "keys"):
            return False
        return any(name.endswith(("_id", "_ids")) for name in fields)

    def _query_parameters(self) -> list[dict]:
        try:
            return [p for p in self._get_parameters() if isinstance(p, dict)]
        except Exception:  # noqa: BLE001 - a parameter the generator cannot read declares none
            return []

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        declared = self.get_response_serializers()
        # A DELETE annotated with a response serializer (a detach answering the cluster)
        # answers 200 with it; drf-spectacular documents every DELETE as a bare 204. The
        # view's own serializer (an instance, from get_serializer) is no such annotation.
        if (
            self.method.upper() == "DELETE"
            and list(responses) == ["204"]
            and isinstance(declared, type)
        ):
            responses = {"200": self._get_response_for_code(declared, "200", direction=direction)}
        for status in sorted(self.error_statuses()):
            responses.setdefault(
                str(status),
                {
                    "content": {"application/json": {"schema": ERROR_REF}},
                    "description": ERROR_MEANINGS.get(status, "Error"),
                },
            )
        return responses


class GoShapeSerializerExtension(OpenApiSerializerExtension):
    """Responses of `GoShapeMixin` serializers as they are sent: an `omit_if_none` field is
    left out rather than null (so not required), an `empty_if_none` field is "" rather than null
    (so a plain string, whatever format it has when set)."""

    target_class = "apps.core.api.serializers.GoShapeMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction != "response":
            return schema
        properties = schema.get("properties", {})
        omitted = set(getattr(self.target, "omit_if_none", ()))
        emptied = set(getattr(self.target, "empty_if_none", ()))
        for name in omitted | emptied:
            field = properties.get(name)
            if field is None:
                continue
            field.pop("nullable", None)
            if name in emptied:
                field.pop("format", None)
        if "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in omitted]
            if not schema["required"]:
                del schema["required"]
        return schema


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API answers.",
    "properties": {
        "code": {"type": "string", "description": "Machine-readable, e.g. validation_error"},
        "message": {"type": "string", "description": "For people; names the field at fault"},
        "fields": {
            "type": "object",
            "description": "Validation errors only: the messages per field",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["code", "message"],
}


def contract_paths(result: dict, generator: object, request: object, public: bool) -> dict:
    """Paths as the contract writes them: no trailing slash (routes tolerate one), and the
    contract's path parameter names and operationId where it has the operation (a CamelCase id
    otherwise, in the contract's style). A path parameter the path does not have is dropped (an
    annotation naming one is a mistake, never a parameter)."""
    paths: dict[str, dict] = {}
    for path, operations in result["paths"].items():
        path = path.rstrip("/") or "/"
        renamed = path
        for method in operations:
            original = original_operation(method, path)
            if original is not None:
                renamed = API_PREFIX + original[0]
                break
        names = dict(zip(_PARAM.findall(path), _PARAM.findall(renamed), strict=True))
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            original = original_operation(method, path)
            operation["operationId"] = (
                original[1] if original else _camel(operation.get("operationId", ""))
            )
            kept, seen = [], set()
            for parameter in operation.get("parameters", []):
                _declare_bounds(parameter)
                if parameter.get("in") == "path":
                    parameter["name"] = names.get(parameter["name"], parameter["name"])
                    if parameter["name"] not in names.values() or parameter["name"] in seen:
                        continue
                    seen.add(parameter["name"])
                kept.append(parameter)
            if "parameters" in operation:
                operation["parameters"] = kept
        paths.setdefault(renamed, {}).update(operations)
    result["paths"] = paths
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = ERROR_SCHEMA
    _name_colliding_inline_objects(schemas)
    return result


# The routes let any segment reach the view (`[^/]+`, so a malformed id is the view's 400 with
# the original's code rather than an unmatched route); every such segment is an object's UUID.
_ANY_SEGMENT = "^[^/]+$"


def _declare_bounds(parameter: dict[str, Any]) -> None:
    """What the server accepts, stated so generated clients validate before sending: path ids
    are UUIDs, and `limit` (lists and log pages alike) is 1..MAX_LIMIT."""
    schema = parameter.setdefault("schema", {"type": "string"})
    if parameter.get("in") == "path" and schema.get("pattern", _ANY_SEGMENT) == _ANY_SEGMENT:
        schema.pop("pattern", None)
        schema.update({"type": "string", "format": "uuid"})
    elif parameter.get("in") == "query" and parameter.get("name") == "limit":
        schema.update({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})


def _name_colliding_inline_objects(schemas: dict[str, Any]) -> None:
    """Client generators name an inline object property `<Component><Property>`
    (`Cluster.metadata` -> `ClusterMetadata`); where that is already a component's name, the
    generator drops the whole parent. Such inline objects become components of their own."""
    for name, schema in list(schemas.items()):
        for prop, prop_schema in schema.get("properties", {}).items():
            inline = prop_schema.get("type") == "object" and "$ref" not in prop_schema
            generated = name + _camel(prop)
            if inline and generated in schemas:
                component = f"{generated}Map"
                flags = {
                    k: prop_schema.pop(k) for k in ("readOnly", "nullable") if k in prop_schema
                }
                schemas[component] = dict(prop_schema)
                prop_schema.clear()
                prop_schema.update({"allOf": [{"$ref": f"#/components/schemas/{component}"}]})
                prop_schema.update(flags)
