"""Short-lived client certificates from a cluster's own API (docs/clusters.md, "Kubeconfigs that
expire"): the Kubernetes CertificateSigningRequest API, reached with the cluster's stored admin
kubeconfig. A small client, so tests meet it at the network edge (a stand-in of the CSR
endpoints on loopback, apps/clusters/tests/kube_standin.py).

Every value of the stored kubeconfig that reaches HTTP is checked first: the server URL is
`https` to a host Autoglue may connect to (the outbound target rules of SSH: no metadata
service, no link-local, the operator's deny-list; loopback only where the SSH rules allow it),
the CA and the client credentials must parse. Any failure of the cluster's API is a
`KubeAPIError` with a machine code and an HTTP status for the API answer (502/504), never an
unhandled exception.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from apps.core.validators import validate_hostname, validate_target_ip

SIGNER = "kubernetes.io/kube-apiserver-client"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
BINDING_PATH = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
# Groups carried in the certificate's O, each bound once per cluster to a built-in ClusterRole.
ACCESS_GROUPS = {"admin": "autoglue:cluster-admins", "view": "autoglue:viewers"}
ACCESS_ROLES = {"admin": "cluster-admin", "view": "view"}
# One HTTP call to the cluster's API: connect and read.
HTTP_TIMEOUT_SECONDS = 10
# The shortest expirationSeconds the CertificateSigningRequest API accepts.
MIN_LIFETIME_SECONDS = 600
MAX_KUBECONFIG_BYTES = 256 * 1024


class KubeAPIError(Exception):
    """The cluster's API could not give a certificate: `status` and `code` are the answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class KubeconfigInvalid(Exception):
    """The stored admin kubeconfig cannot be used (a message without any of its secrets)."""


@dataclass(frozen=True)
class AdminAccess:
    """What the stored admin kubeconfig says about reaching the cluster's API."""

    server: str
    ca_pem: bytes
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None


@dataclass(frozen=True)
class SignedCertificate:
    name: str
    certificate_pem: bytes
    key_pem: bytes
    username: str
    groups: tuple[str, ...]
    expires_at: datetime


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigInvalid(f"{what} is not base64") from None


def _current(items: Any, name: str, what: str) -> dict[str, Any]:
    """The entry named `name` in a kubeconfig list (`clusters`, `users`), or the only one."""
    entries = [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []
    chosen = [e for e in entries if e.get("name") == name] if name else entries[:1]
    body = chosen[0].get(what) if chosen else None
    if not isinstance(body, dict):
        raise KubeconfigInvalid(f"no {what} entry")
    return body


def validate_server_url(server: str) -> str:
    """An https URL to a host Autoglue may connect to (see the module docstring)."""
    parts = urlsplit(server)
    if parts.scheme != "https":
        raise KubeconfigInvalid("the server URL must be https")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise KubeconfigInvalid("the server URL must hold no credentials, query or fragment")
    host = parts.hostname or ""
    if not host:
        raise KubeconfigInvalid("the server URL has no host")
    try:
        port = parts.port or 443
    except ValueError:
        raise KubeconfigInvalid("the server URL's port is not valid") from None
    try:
        validate_target_ip(host)
        return server.rstrip("/")
    except ValidationError as exc:
        if _is_ip(host):
            raise KubeconfigInvalid(f"the server address {exc.messages[0]}") from None
    try:
        validate_hostname(host)
        # Every address the name has now must be one we may reach (a name pointing at the
        # metadata service is refused like the address itself).
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (ValidationError, OSError):
        raise KubeconfigInvalid("the server host is not a valid, resolvable name") from None
    for address in addresses:
        try:
            validate_target_ip(str(address).split("%")[0])
        except ValidationError as exc:
            raise KubeconfigInvalid(
                f"the server host resolves to an address that {exc.messages[0]}"
            ) from None
    return server.rstrip("/")


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def admin_access(kubeconfig: str) -> AdminAccess:
    """The stored admin kubeconfig's current context, checked (KubeconfigInvalid if not)."""
    if not kubeconfig.strip():
        raise KubeconfigInvalid("the cluster has no kubeconfig")
    if len(kubeconfig) > MAX_KUBECONFIG_BYTES:
        raise KubeconfigInvalid("the kubeconfig is too large")
    try:
        document = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        raise KubeconfigInvalid("the kubeconfig is not YAML") from None
    if not isinstance(document, dict):
        raise KubeconfigInvalid("the kubeconfig is not a mapping")
    context_name = str(document.get("current-context") or "")
    context: dict[str, Any] = {}
    if context_name:
        context = _current(document.get("contexts"), context_name, "context")
    cluster = _current(document.get("clusters"), str(context.get("cluster") or ""), "cluster")
    user = _current(document.get("users"), str(context.get("user") or ""), "user")
    server = validate_server_url(str(cluster.get("server") or ""))
    ca_pem = _b64(cluster.get("certificate-authority-data", ""), "certificate-authority-data")
    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise KubeconfigInvalid("certificate-authority-data holds no certificate") from None
    if "client-certificate-data" in user:
        cert = _b64(user.get("client-certificate-data"), "client-certificate-data")
        key = _b64(user.get("client-key-data", ""), "client-key-data")
        try:
            x509.load_pem_x509_certificate(cert)
            serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError):
            raise KubeconfigInvalid("the client certificate or key does not parse") from None
        return AdminAccess(server=server, ca_pem=ca_pem, client_cert_pem=cert, client_key_pem=key)
    token = str(user.get("token") or "")
    if not token or any(c in token for c in "\r\n"):
        raise KubeconfigInvalid("the user has neither a client certificate nor a token")
    return AdminAccess(server=server, ca_pem=ca_pem, token=token)


class _CheckedPeerHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that checks the address it actually reached, after connecting and
    before any byte is sent: a name checked in validate_server_url may resolve elsewhere by
    the time we connect (DNS rebinding). TLS still verifies the certificate against the name."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        try:
            validate_target_ip(str(sock.getpeername()[0]).split("%")[0])
        except (ValidationError, OSError):
            sock.close()
            raise NewConnectionError(
                self, "the server's address is not one Autoglue may connect to"
            ) from None
        return sock


class _CheckedPeerHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedPeerHTTPSConnection


class CheckedPeerAdapter(HTTPAdapter):
    """requests' adapter with `_CheckedPeerHTTPSConnection` for every https connection."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": _CheckedPeerHTTPSPool,
        }


class KubeClient:
    """Calls to one cluster's API with its admin credentials. Use as a context manager: the
    CA and the client key live in a private temporary folder only while it is open."""

    def __init__(self, access: AdminAccess, *, total_seconds: float | None = None) -> None:
        self.access = access
        # One deadline for every call of this client (time.monotonic()), so an issue never
        # takes longer than `total_seconds`, however the calls' own timeouts add up.
        self.deadline = None if total_seconds is None else time.monotonic() + total_seconds
        self._session = requests.Session()
        self._session.mount("https://", CheckedPeerAdapter())
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> KubeClient:
        self._folder = tempfile.TemporaryDirectory(prefix="autoglue-kube-")
        folder = self._folder.name
        ca = os.path.join(folder, "ca.pem")
        _write_private(ca, self.access.ca_pem)
        self._session.verify = ca
        if self.access.client_cert_pem and self.access.client_key_pem:
            cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            _write_private(cert, self.access.client_cert_pem)
            _write_private(key, self.access.client_key_pem)
            self._session.cert = (cert, key)
        elif self.access.token:
            self._session.headers["Authorization"] = f"Bearer {self.access.token}"
        self._session.headers["Accept"] = "application/json"
        # Never a proxy from the environment: the stored credentials go to the server only.
        self._session.trust_env = False
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()
        if self._folder is not None:
            self._folder.cleanup()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; the decoded JSON body, or KubeAPIError (409 is the caller's to read:
        answered as `None`)."""
        try:
            response = self._session.request(
                method,
                self.access.server + path,
                json=body,
                timeout=self._timeout(),
                allow_redirects=False,
            )
        except requests.Timeout:
            if self.deadline is not None and time.monotonic() >= self.deadline - 0.1:
                raise KubeAPIError(
                    504, "csr_timeout", "the cluster did not answer within the time allowed"
                ) from None
            raise KubeAPIError(
                502, "cluster_api_unreachable", "the cluster's API timed out"
            ) from None
        except requests.RequestException as exc:
            raise KubeAPIError(
                502,
                "cluster_api_unreachable",
                f"the cluster's API cannot be reached ({type(exc).__name__})",
            ) from None
        if response.status_code == 409:
            return None
        if response.status_code in (401, 403):
            raise KubeAPIError(
                502,
                "cluster_api_refused",
                f"the cluster's API refused the stored admin credentials ({response.status_code})",
            )
        if not 200 <= response.status_code < 300:
            raise KubeAPIError(
                502, "cluster_api_error", f"the cluster's API answered {response.status_code}"
            )
        try:
            return response.json()
        except ValueError:
            raise KubeAPIError(
                502, "cluster_api_error", "the cluster's API answered no JSON"
            ) from None

    def _timeout(self) -> float:
        """This call's timeout: HTTP_TIMEOUT_SECONDS, or what is left before the deadline."""
        if self.deadline is None:
            return HTTP_TIMEOUT_SECONDS
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise KubeAPIError(
                504, "csr_timeout", "the cluster did not answer within the time allowed"
            )
        return min(HTTP_TIMEOUT_SECONDS, left)

    def ensure_bindings(self) -> list[str]:
        """The two ClusterRoleBindings the groups need, created once; the names of those
        created now (for the audit). One already there (409) must bind exactly our group to
        exactly our role, else 502 `cluster_binding_mismatch`: a binding of the same name
        granting something else (or to someone else) would make our certificates mean other
        rights than we say."""
        created = []
        for access, group in ACCESS_GROUPS.items():
            name = group.replace(":", "-")
            role_ref = {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": ACCESS_ROLES[access],
            }
            subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]
            answer = self.call(
                "POST",
                BINDING_PATH,
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {
                        "name": name,
                        "labels": {"app.kubernetes.io/managed-by": "autoglue"},
                    },
                    "roleRef": role_ref,
                    "subjects": subjects,
                },
            )
            if answer is not None:
                created.append(name)
                continue
            existing = self.call("GET", f"{BINDING_PATH}/{name}") or {}
            if existing.get("roleRef") != role_ref or _plain_subjects(existing) != subjects:
                raise KubeAPIError(
                    502,
                    "cluster_binding_mismatch",
                    f"the cluster's ClusterRoleBinding {name} does not bind {group} to "
                    f"{ACCESS_ROLES[access]} alone; fix or delete it",
                )
        return created

    def sign(
        self,
        *,
        username: str,
        access: str,
        lifetime_seconds: int,
        wait_seconds: float,
        identity: str = "",
    ) -> SignedCertificate:
        """A new key pair and a certificate for it, signed by the cluster: create the CSR,
        approve it, wait for the certificate, delete the CSR."""
        group = ACCESS_GROUPS[access]
        # A second O naming who asked by a stable id (`autoglue:user:<uuid>`): the CN is an
        # e-mail address, which can change hands. Bound to nothing, so it grants nothing.
        groups = (group, f"autoglue:{identity}") if identity else (group,)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name(
                    [
                        *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                        x509.NameAttribute(NameOID.COMMON_NAME, username),
                    ]
                )
            )
            .sign(key, hashes.SHA256())
        )
        name = f"autoglue-{uuid.uuid4().hex[:20]}"
        obj = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "autoglue"}},
            "spec": {
                "request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
                "signerName": SIGNER,
                "expirationSeconds": lifetime_seconds,
                "usages": ["client auth"],
            },
        }
        created = self.call("POST", CSR_PATH, obj)
        if not isinstance(created, dict):
            raise KubeAPIError(502, "cluster_api_error", "the signing request was not created")
        created.setdefault("status", {})["conditions"] = [
            {
                "type": "Approved",
                "status": "True",
                "reason": "AutoglueApproved",
                "message": "short-lived kubeconfig issued by Autoglue",
            }
        ]
        try:
            try:
                self.call("PUT", f"{CSR_PATH}/{name}/approval", created)
            except KubeAPIError:
                # Refused because someone else denied it first? Then say that.
                _raise_if_refused(self.call("GET", f"{CSR_PATH}/{name}") or {})
                raise
            pem = self._wait_for_certificate(name, wait_seconds)
        finally:
            self._delete_quietly(name)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise KubeAPIError(
                502, "cluster_api_error", "the cluster issued no valid certificate"
            ) from None
        _check_issued(certificate, csr=csr, lifetime_seconds=lifetime_seconds)
        return SignedCertificate(
            name=name,
            certificate_pem=pem,
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            username=username,
            groups=groups,
            expires_at=certificate.not_valid_after_utc,
        )

    def _wait_for_certificate(self, name: str, wait_seconds: float) -> bytes:
        deadline = time.monotonic() + wait_seconds
        while True:
            current = self.call("GET", f"{CSR_PATH}/{name}") or {}
            status = current.get("status") or {}
            _raise_if_refused(current)
            if status.get("certificate"):
                try:
                    return base64.b64decode(status["certificate"], validate=True)
                except (binascii.Error, ValueError):
                    raise KubeAPIError(
                        502, "cluster_api_error", "the certificate is not base64"
                    ) from None
            if time.monotonic() >= deadline:
                raise KubeAPIError(
                    504,
                    "csr_timeout",
                    f"the cluster issued no certificate within {wait_seconds:g} s; is its "
                    "kube-controller-manager signing kube-apiserver-client requests?",
                )
            time.sleep(0.25)

    def _delete_quietly(self, name: str) -> None:
        # The CSR holds no secret (a public key); leaving one behind is untidy, not unsafe.
        with suppress(KubeAPIError):
            self.call("DELETE", f"{CSR_PATH}/{name}")


# Clock skew and the signer's backdating of not-before: how much longer than asked a
# certificate may live.
LIFETIME_SLACK_SECONDS = 300


def _check_issued(
    certificate: x509.Certificate, *, csr: x509.CertificateSigningRequest, lifetime_seconds: int
) -> None:
    """Refuse a certificate that is not the one asked for: one living longer than asked (a
    signer that ignores `expirationSeconds`, before Kubernetes 1.22, or capped differently),
    one for another key, or one naming someone or some group else. Such a certificate is
    never handed out: it cannot be revoked."""
    latest = datetime.now(UTC) + timedelta(seconds=lifetime_seconds + LIFETIME_SLACK_SECONDS)
    if certificate.not_valid_after_utc > latest:
        raise KubeAPIError(
            502,
            "csr_lifetime_ignored",
            "the cluster issued a certificate living longer than asked (its signer ignores "
            "expirationSeconds); nothing was handed out",
        )
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = csr.public_key().public_bytes(serialization.Encoding.DER, spki)
    theirs = certificate.public_key().public_bytes(serialization.Encoding.DER, spki)
    if ours != theirs or _names(certificate.subject) != _names(csr.subject):
        raise KubeAPIError(
            502,
            "csr_certificate_mismatch",
            "the cluster issued a certificate for another key or name; nothing was handed out",
        )


def _plain_subjects(binding: dict[str, Any]) -> list[dict[str, Any]]:
    """A binding's subjects without the empty `namespace` some servers add to Group subjects."""
    subjects = binding.get("subjects")
    if not isinstance(subjects, list):
        return []
    return [
        {k: v for k, v in s.items() if not (k == "namespace" and not v)}
        if isinstance(s, dict)
        else s
        for s in subjects
    ]


def _names(subject: x509.Name) -> tuple[list[str], list[str]]:
    """The subject's common names and organizations (the user and groups Kubernetes reads),
    compared by value: a signer may re-encode the string types."""
    values = lambda oid: [str(a.value) for a in subject.get_attributes_for_oid(oid)]  # noqa: E731
    return values(NameOID.COMMON_NAME), sorted(values(NameOID.ORGANIZATION_NAME))


def _raise_if_refused(csr: dict[str, Any]) -> None:
    """KubeAPIError `csr_denied` when the CSR carries a Denied or Failed condition."""
    for condition in (csr.get("status") or {}).get("conditions") or []:
        kind = condition.get("type")
        if kind in ("Denied", "Failed") and condition.get("status") == "True":
            reason = str(condition.get("reason") or "")[:64]
            raise KubeAPIError(
                502, "csr_denied", f"the cluster {kind.lower()} the signing request ({reason})"
            )


def _write_private(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


@contextmanager
def kube_client(kubeconfig: str) -> Iterator[KubeClient]:
    """A client for the cluster whose stored admin kubeconfig this is."""
    with KubeClient(admin_access(kubeconfig)) as client:
        yield client


def kubeconfig_document(
    *, cluster_name: str, server: str, ca_pem: bytes, signed: SignedCertificate
) -> str:
    """The kubeconfig handed to the person: the cluster's server and CA from the stored one,
    the new certificate and key."""
    user = f"{signed.username}@{cluster_name}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": base64.b64encode(signed.certificate_pem).decode(),
                    "client-key-data": base64.b64encode(signed.key_pem).decode(),
                },
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
    }
    return str(yaml.safe_dump(document, sort_keys=False))
