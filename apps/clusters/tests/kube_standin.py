"""A stand-in of a Kubernetes API server's CertificateSigningRequest and ClusterRoleBinding
endpoints, on loopback, over mutual TLS with a throwaway cluster CA (the network edge of
apps.clusters.kube).

It speaks the real request and response shapes (certificates.k8s.io/v1 objects, `Status`
bodies with `reason` and `code`, 201 on create, 409 `AlreadyExists`, 422 `Invalid`), checks what
the real API checks for the `kubernetes.io/kube-apiserver-client` signer (a parsable CSR, the
usages it permits, `expirationSeconds` of at least 600, mutually exclusive Approved/Denied
conditions) and signs like kube-controller-manager: the CSR's subject, a client-auth certificate
from the cluster CA, valid for `expirationSeconds` (capped by `max_duration`).

`mode`: "sign" (the default), "deny" (another approver denies each new CSR before ours
approves), "fail" (the signer marks it Failed), "never" (approved, never signed: a cluster
whose controller-manager does not sign), "forbidden" (every call 403, stored credentials not
authorised).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CSR_PREFIX = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CRB_PREFIX = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
PERMITTED_USAGES = {"digital signature", "key encipherment", "client auth"}


# A name the server certificate also carries (tests resolve it as they need).
STANDIN_NAME = "kube.autoglue.test"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class ClusterCA:
    """A throwaway cluster CA, with the server's certificate and an admin client's."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3s-client-ca-standin")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        subject: x509.Name,
        public_key: Any,
        seconds: int,
        *,
        server: bool = False,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(seconds=seconds))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName(STANDIN_NAME)]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class StandIn:
    """The server; `kubeconfig()` is the admin kubeconfig Autoglue stores for the cluster."""

    def __init__(
        self,
        tmp: Path,
        *,
        mode: str = "sign",
        max_duration: int = 365 * 86400,
        ignore_expiration: bool = False,
        misissue: str = "",
        delay: float = 0.0,
        on_csr: Callable[[], None] | None = None,
    ):
        self.mode = mode
        self.max_duration = max_duration
        # A signer that predates `expirationSeconds` (before 1.22) issues for max_duration.
        self.ignore_expiration = ignore_expiration
        # A broken or hostile signer: "key" certifies another key, "subject" another name.
        self.misissue = misissue
        # A slow API: seconds before every answer.
        self.delay = delay
        # Called (in the server's thread) while a CSR is being created: what the caller holds
        # while it waits on us.
        self.on_csr = on_csr
        self.ca = ClusterCA()
        self.csrs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.bindings: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = self.ca.issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            server_key.public_key(),
            86400,
            server=True,
        )
        self.admin_key = ec.generate_private_key(ec.SECP256R1())
        self.admin_cert = self.ca.issue(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "system:admin"),
                ]
            ),
            self.admin_key.public_key(),
            86400,
        )
        folder = Path(tempfile.mkdtemp(dir=tmp))
        (folder / "server.pem").write_bytes(_pem(server_cert))
        (folder / "server.key").write_bytes(_key_pem(server_key))
        (folder / "ca.pem").write_bytes(_pem(self.ca.cert))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "server.pem", folder / "server.key")
        context.load_verify_locations(folder / "ca.pem")
        # Clients authenticate by certificate or, without one, by bearer token (`self.token`).
        context.verify_mode = ssl.CERT_OPTIONAL
        self.token = "CANARY-standin-token-" + uuid.uuid4().hex
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> StandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, server: str | None = None, *, token: str | None = None) -> str:
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "default",
                        "cluster": {
                            "server": server or self.url,
                            "certificate-authority-data": b64(_pem(self.ca.cert)),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "default",
                        "user": {"token": token}
                        if token
                        else {
                            "client-certificate-data": b64(_pem(self.admin_cert)),
                            "client-key-data": b64(_key_pem(self.admin_key)),
                        },
                    }
                ],
                "contexts": [
                    {"name": "default", "context": {"cluster": "default", "user": "default"}}
                ],
                "current-context": "default",
            }
        )

    # --- the API -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any, peer: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append((method, path))
            if self.mode == "forbidden":
                return 403, _status(403, "Forbidden", f'User "{peer}" cannot {method.lower()} here')
            if path == "/version":
                return 200, {"gitVersion": "v1.31.4+k3s1", "user": peer}
            if path.startswith(CRB_PREFIX):
                return self._binding(method, path, body)
            if path == CSR_PREFIX and method == "POST":
                return self._create_csr(body, peer)
            if path.startswith(CSR_PREFIX + "/"):
                name, _, sub = path[len(CSR_PREFIX) + 1 :].partition("/")
                obj = self.csrs.get(name)
                if obj is None:
                    return 404, _status(
                        404, "NotFound", f'certificatesigningrequests "{name}" not found'
                    )
                if method == "GET" and not sub:
                    return 200, obj
                if method == "DELETE" and not sub:
                    del self.csrs[name]
                    self.deleted.append(name)
                    return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
                if method == "PUT" and sub == "approval":
                    return self._approve(obj, body)
            return 404, _status(404, "NotFound", "the server could not find the requested resource")

    def _binding(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if path == CRB_PREFIX and method == "POST":
            return self._create_binding(body)
        found = self.bindings.get(path[len(CRB_PREFIX) + 1 :])
        if method != "GET" or found is None:
            return 404, _status(404, "NotFound", "clusterrolebindings not found")
        return 200, found

    def _create_binding(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["metadata"]["name"]
        if name in self.bindings:
            return 409, _status(
                409, "AlreadyExists", f'clusterrolebindings "{name}" already exists'
            )
        self.bindings[name] = body
        return 201, body

    def _create_csr(self, body: dict[str, Any], peer: str) -> tuple[int, dict[str, Any]]:
        if self.on_csr is not None:
            self.on_csr()
        spec = body.get("spec") or {}
        name = (body.get("metadata") or {}).get("name", "")
        if name in self.csrs:
            return 409, _status(409, "AlreadyExists", "already exists")
        try:
            x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
        except ValueError:
            return 422, _status(422, "Invalid", "spec.request: Invalid value: unparsable CSR")
        usages = set(spec.get("usages") or [])
        seconds = spec.get("expirationSeconds")
        if spec.get("signerName") != "kubernetes.io/kube-apiserver-client":
            return 422, _status(422, "Invalid", "spec.signerName: unsupported here")
        if "client auth" not in usages or not usages <= PERMITTED_USAGES:
            return 422, _status(422, "Invalid", "spec.usages: not permitted for this signer")
        if seconds is not None and (not isinstance(seconds, int) or seconds < 600):
            return 422, _status(
                422,
                "Invalid",
                "spec.expirationSeconds: may not specify a duration less than 600 seconds",
            )
        obj = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {
                **body.get("metadata", {}),
                "uid": str(uuid.uuid4()),
                "resourceVersion": "1",
                "creationTimestamp": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            # The API fills in who asked, as the real one does.
            "spec": {
                **spec,
                "username": peer,
                "groups": ["system:masters", "system:authenticated"],
            },
            "status": {},
        }
        if self.mode == "deny":
            obj["status"] = {
                "conditions": [
                    {"type": "Denied", "status": "True", "reason": "PolicyDenied", "message": "no"}
                ]
            }
        self.csrs[name] = obj
        return 201, obj

    def _approve(self, obj: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("kind") != "CertificateSigningRequest":
            return 400, _status(400, "BadRequest", "the body is not a CertificateSigningRequest")
        old = {c["type"] for c in obj["status"].get("conditions", [])}
        new = {c["type"] for c in (body.get("status") or {}).get("conditions", [])}
        if "Approved" in new and "Denied" in old:
            return 422, _status(
                422,
                "Invalid",
                "status.conditions: Approved and Denied conditions are mutually exclusive",
            )
        obj["status"]["conditions"] = [
            *obj["status"].get("conditions", []),
            *[c for c in body["status"]["conditions"] if c["type"] not in old],
        ]
        if self.mode == "fail":
            obj["status"]["conditions"].append(
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "SignerValidationFailure",
                    "message": "x",
                }
            )
        elif self.mode == "sign":
            csr = x509.load_pem_x509_csr(base64.b64decode(obj["spec"]["request"]))
            asked = None if self.ignore_expiration else obj["spec"].get("expirationSeconds")
            seconds = min(asked or self.max_duration, self.max_duration)
            subject, public_key = csr.subject, csr.public_key()
            if self.misissue == "key":
                public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
            elif self.misissue == "subject":
                subject = x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "someone-else"),
                    ]
                )
            cert = self.ca.issue(subject, public_key, seconds)
            obj["status"]["certificate"] = base64.b64encode(_pem(cert)).decode()
        return 200, obj


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            cert = self.connection.getpeercert()  # type: ignore[attr-defined]
            subject = dict(item[0] for item in (cert or {}).get("subject", ()))
            if not cert:
                if self.headers.get("Authorization") != f"Bearer {standin.token}":
                    self._answer(401, _status(401, "Unauthorized", "Unauthorized"))
                    return
                subject = {"commonName": "system:serviceaccount:kube-system:autoglue"}
            time.sleep(standin.delay)
            code, answer = standin.handle(
                self.command, self.path, body, subject.get("commonName", "")
            )
            self._answer(code, answer)

        def _answer(self, code: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: the tests read `standin.calls`."""

    return Handler
