"""One HTTPS server on 127.0.0.1 serving ARM Network, Resource Graph and Logs Ingestion stand-ins."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from . import policyexemptions
from .aml import AmlStore, aml_route
from .arm import NetworkStore, Operation, key_of, nsg_id
from .auth import DEFAULT_TOKEN, StaticTokenCredential
from .eventgrid import LOCAL_DEVELOPER, EventGridTopic, Principal
from .faults import FaultInjector, RequestInfo
from .graph import GraphStore
from .ingestion import DEFAULT_DCR_ID, IngestionStore
from .rbac import Rbac, split_token
from .tags import handle as handle_tags
from .tags import route as tags_route
from .tls import CertFiles, make_self_signed, server_context
from .validation import ArmError

_ANY = object()
DEFAULT_TENANT = "00000000-0000-0000-0000-00000000cafe"


@dataclass
class RequestRecord:
    method: str
    path: str
    kind: str  # route kind, e.g. "arm.get"
    resource: str  # "nsg" | "rule" | "nsgs" | "rules" | "operation" | "graph" | "ingest" | "unknown"
    status: int | None  # None while in flight or when the connection was dropped
    authorized: bool
    api_version: str | None = None  # the request's ?api-version= (clients must pin theirs)


@dataclass
class Route:
    kind: str
    resource: str
    params: dict[str, str]


def retry_headers(seconds: float, *, lro: bool = False) -> dict[str, str]:
    """Headers telling the client how long to wait.

    Whole seconds (>= 1) -> ``Retry-After: N``. Sub-second values (fast tests):

    * error responses (429/5xx faults): ``Retry-After: 0.05`` -- azure-core parses floats, and a POST is only
      retried on 429 when a ``Retry-After`` header is present at all;
    * LRO responses: ``retry-after-ms: N`` instead, because the generated mgmt SDKs deserialize the LRO
      ``Retry-After`` as ``int`` (``"0.01"`` raises ValueError) and azure-core treats ``Retry-After: 0`` as
      "absent", falling back to the client's ``polling_interval`` (default 30 s).
    """
    if float(seconds).is_integer() and seconds >= 1:
        return {"Retry-After": str(int(seconds))}
    if lro:
        return {"retry-after-ms": str(max(1, round(seconds * 1000)))}
    return {"Retry-After": f"{max(0.0, seconds):g}"}


def route(method: str, path: str) -> Route | None:
    """Map a request to a route kind. Path segments compare case-insensitively (like ARM)."""
    parts = [unquote(p) for p in path.split("/") if p]
    low = [p.lower() for p in parts]
    n = len(parts)
    m = method.upper()
    if (pe := policyexemptions.route(m, parts)) is not None:
        return Route(*pe)
    arm_kind = {"GET": "arm.get", "PUT": "arm.put", "DELETE": "arm.delete"}.get(m, "arm.other")
    if (ml := aml_route(m, parts, low)) is not None:
        return Route(*ml)
    if n >= 2 and low[0] == "subscriptions":
        sub = parts[1]
        # /subscriptions/{sub}/providers/Microsoft.Network/...
        if n >= 4 and low[2] == "providers" and low[3] == "microsoft.network":
            if n == 5 and low[4] == "networksecuritygroups":
                return Route("arm.list" if m == "GET" else "arm.other", "nsgs", {"sub": sub})
            if n == 8 and low[4] == "locations" and low[6] in ("operations", "operationresults"):
                return Route(
                    "lro.poll",
                    "operation" if low[6] == "operations" else "operationresult",
                    {"sub": sub, "loc": parts[5], "op": parts[7]},
                )
        if (
            n >= 7
            and low[2] == "resourcegroups"
            and low[4] == "providers"
            and low[5] == "microsoft.network"
            and low[6] == "networksecuritygroups"
        ):
            p = {"sub": sub, "rg": parts[3]}
            if n == 7:
                return Route("arm.list" if m == "GET" else "arm.other", "nsgs", p)
            p["name"] = parts[7]
            if n == 8:
                return Route(arm_kind, "nsg", p)
            if n == 9 and low[8] == "securityrules":
                return Route("arm.list" if m == "GET" else "arm.other", "rules", p)
            if n == 9 and low[8] == "defaultsecurityrules":
                return Route("arm.list" if m == "GET" else "arm.other", "defaultrules", p)
            if n == 10 and low[8] in ("securityrules", "defaultsecurityrules"):
                p["rule"] = parts[9]
                return Route(arm_kind, "rule" if low[8] == "securityrules" else "defaultrule", p)
    tags_params = tags_route(parts, low)
    if tags_params is not None:
        return Route("tags", "tags", tags_params)
    if n == 3 and low == ["providers", "microsoft.resourcegraph", "resources"]:
        return Route("graph", "graph", {})
    if n == 4 and low[0] == "datacollectionrules" and low[2] == "streams":
        return Route("ingest", "ingest", {"dcr": parts[1], "stream": parts[3]})
    return None


class _DropConnection(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], azure: LocalAzure, ssl_ctx: ssl.SSLContext | None) -> None:
        self.azure = azure
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:  # runs in the per-connection thread
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle + the client's delayed ACK
        # add ~40 ms to every response on loopback, which would dominate every latency we measure.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_ctx is not None:
            try:
                request.settimeout(30)
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        try:
            super().finish_request(request, client_address)
        finally:
            if request is not None and self.ssl_ctx is not None:
                with contextlib.suppress(OSError):
                    request.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "localazure/1.0"
    _rec: RequestRecord | None = None
    _kind: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        if self.server.azure.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # --- helpers ---
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = dict(headers or {})
        if self._kind == "graph" and "x-ms-user-quota-remaining" not in headers:
            headers.update(self.server.azure.graph.quota_headers(count=False)[0])
        if self._rec is not None:
            self._rec.status = status  # before the client can see the response
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-correlation-request-id", str(uuid.uuid4()))
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _DropConnection

    # --- dispatch ---
    def _dispatch(self) -> None:
        azure = self.server.azure
        self._rec = None
        self._kind = None
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body()
        r = route(self.command, split.path)
        kind = r.kind if r else "unknown"
        self._kind = kind
        resource = r.resource if r else "unknown"
        auth_header = self.headers.get("Authorization", "")
        principal = azure.principal_for(auth_header)
        authorized = principal is not None
        self._rec = RequestRecord(self.command, split.path, kind, resource, None, authorized, query.get("api-version"))
        azure._record(self._rec)
        info = RequestInfo(self.command, split.path, kind, query, body)
        if r and "name" in r.params:
            info.nsg_id = nsg_id(r.params["sub"], r.params["rg"], r.params["name"])
            info.rule_name = r.params.get("rule")
        try:
            try:
                azure.network.settle()
                if not authorized:
                    present = "Authorization" in self.headers
                    raise ArmError(
                        401,
                        "AuthenticationFailed",
                        "Authentication failed. The 'Authorization' header is "
                        + (
                            "provided in an invalid format or the token is invalid."
                            if present
                            else "missing."
                        ),
                        {
                            "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/'
                            f'{azure.tenant_id}", error="invalid_token"'
                        },
                    )
                azure.rbac.check(auth_header, self.command, split.path, kind, body)
                taken = azure.faults.take(info)
                for fault in taken:
                    if fault.latency_ms:
                        time.sleep(fault.latency_ms / 1000.0)
                    if fault.before is not None:
                        fault.before(azure, info)
                    if fault.drop:
                        self._drop()
                    if fault.status is not None:
                        headers = {}
                        if fault.retry_after is not None:
                            headers.update(retry_headers(fault.retry_after))
                        self._send(fault.status, fault.error_body(), headers)
                        return
                if r is None:
                    raise ArmError(
                        404,
                        "InvalidResourceType"
                        if split.path.lower().startswith("/subscriptions")
                        else "NotFound",
                        f"No route for {self.command} {split.path} in localazure.",
                    )
                handler = getattr(azure, f"_h_{kind.replace('.', '_')}", None)
                if handler is None:
                    raise ArmError(
                        405,
                        "MethodNotAllowed",
                        f"The requested method {self.command} is not allowed on {split.path}.",
                    )
                status, out, headers = handler(self, r, query, body)
                for fault in taken:  # concurrent edits "between read and write" (FaultInjector.after)
                    if getattr(fault, "after", None) is not None:
                        fault.after(azure, info)
                if kind in ("arm.put", "arm.delete") and status < 300 and status != 204:
                    azure._publish(self, r, principal)
                self._send(status, out, headers)
            except ArmError as err:
                self._send(err.status, err.body(), err.headers)
            except _DropConnection:
                raise
            except Exception as err:  # pragma: no cover - bug in the stand-in
                self._send(
                    500, {"error": {"code": "InternalServerError", "message": f"localazure bug: {err!r}"}}
                )
                raise
        except _DropConnection:
            pass

    def base_url(self) -> str:
        return f"https://{self.headers.get('Host') or self.server.azure.host_port}"


class LocalAzure:
    """All stand-ins behind one HTTPS port. Use :func:`localazure.start` or ``with LocalAzure(...) as azure``.

    Public attributes: ``url``, ``ca_path``, ``token``, ``credential()``, ``network`` (NSG store), ``graph``,
    ``ingestion``, ``faults``, ``requests`` (list of :class:`RequestRecord`), ``dcr_id``, ``stream``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        tenant_id: str = DEFAULT_TENANT,
        page_size: int = 50,
        lro_polls: int = 1,
        lro_retry_after: float | None = 0.01,
        lro_auto_complete_s: float = 2.0,
        dcr_id: str = DEFAULT_DCR_ID,
        schema_path: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        graph_enforce_quota: bool = False,
        tls: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.tenant_id = tenant_id
        self.page_size = page_size
        self.lro_retry_after = lro_retry_after
        self.verbose = verbose
        self.network = NetworkStore(lro_polls=lro_polls, lro_auto_complete_s=lro_auto_complete_s)
        self.graph = GraphStore(self._all_nsg_bodies, tenant_id=tenant_id, enforce_quota=graph_enforce_quota)
        self.ingestion = IngestionStore(data_dir=data_dir)
        self.aml = AmlStore(self.graph, page_size=page_size)
        self.dcr_id = dcr_id
        self.stream = self.ingestion.add_schema(dcr_id, schema_path)
        self.faults = FaultInjector()
        self.rbac = Rbac()
        self.policy_exemptions = policyexemptions.install(self)
        self._h_policyexemption = policyexemptions.handler(self)
        self.event_grid = EventGridTopic(tenant_id)
        self._principals: dict[str, Principal] = {}
        self.requests: list[RequestRecord] = []
        self._req_lock = threading.Lock()
        self._tls = tls
        self._certs: CertFiles | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    def start(self) -> LocalAzure:
        ctx = None
        if self._tls:
            self._certs = make_self_signed()
            ctx = server_context(self._certs)
        self._httpd = _Server((self.host, self.port), self, ctx)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"localazure:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._certs is not None:
            shutil.rmtree(self._certs.directory, ignore_errors=True)
            self._certs = None

    def __enter__(self) -> LocalAzure:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:51234`` (no trailing slash)."""
        return f"{'https' if self._tls else 'http'}://{self.host_port}"

    @property
    def ca_path(self) -> str | None:
        """PEM file of the self-signed certificate; pass as ``connection_verify=``."""
        return self._certs.cert_path if self._certs else None

    def credential(self) -> StaticTokenCredential:
        return StaticTokenCredential(self.token)

    # --- client factories ---
    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """kwargs every SDK client needs: ``connection_verify`` plus fast retry/polling settings."""
        kw: dict[str, Any] = {
            "connection_verify": self.ca_path,
            "retry_backoff_factor": 0.01,
            "retry_backoff_max": 1,
            "polling_interval": 0.01,
        }
        kw.update(overrides)
        return kw

    def network_client(self, subscription_id: str, credential: Any = None, **kw: Any) -> Any:
        from azure.mgmt.network import NetworkManagementClient

        return NetworkManagementClient(
            credential or self.credential(), subscription_id, base_url=self.url, **self.client_kwargs(**kw)
        )

    def graph_client(self, credential: Any = None, **kw: Any) -> Any:
        from azure.mgmt.resourcegraph import ResourceGraphClient

        return ResourceGraphClient(
            credential or self.credential(), base_url=self.url, **self.client_kwargs(**kw)
        )

    def ingestion_client(self, credential: Any = None, **kw: Any) -> Any:
        from azure.monitor.ingestion import LogsIngestionClient

        kwargs = self.client_kwargs(**kw)
        kwargs.pop("polling_interval", None)
        return LogsIngestionClient(endpoint=self.url, credential=credential or self.credential(), **kwargs)

    # --- seeding / inspection ---
    def seed_nsg(
        self, body: dict[str, Any], *, subscription: str | None = None, resource_group: str | None = None
    ) -> str:
        """Insert an NSG from an ARM body (no validation); returns its id. Default rules are generated."""
        return self.network.seed(body, subscription=subscription, resource_group=resource_group)

    def seed_nic(self, row: dict[str, Any]) -> dict[str, Any]:
        """Add a network interface row (ARM body or Graph row) for Resource Graph queries."""
        return self.graph.seed_nic(row)

    def seed_file(self, path: str | os.PathLike[str]) -> int:
        """Load ``[nsg, ...]`` or ``{"nsgs": [...], "nics": [...], "publicIps": [...]}``; returns items "
        "loaded."""
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if isinstance(doc, list):
            doc = {"nsgs": doc}
        count = 0
        for body in doc.get("nsgs", []):
            self.seed_nsg(body)
            count += 1
        for row in doc.get("nics", []):
            self.graph.seed("nic", row)
            count += 1
        for row in doc.get("publicIps", []):
            self.graph.seed("publicip", row)
            count += 1
        return count

    def get_nsg(self, resource_id: str) -> dict[str, Any] | None:
        with self.network.lock:
            nsg = self.network.get(key_of(resource_id))
            return self.network.render(nsg) if nsg else None

    def nsgs(self) -> list[dict[str, Any]]:
        return self._all_nsg_bodies()

    def _all_nsg_bodies(self) -> list[dict[str, Any]]:
        with self.network.lock:
            items = sorted(self.network.nsgs.values(), key=lambda n: n.seq)
            return [self.network.render(n) for n in items]

    def update_nsg(
        self, resource_id: str, fn: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """Change an NSG behind the client's back (``fn`` edits the ARM body); the etag changes."""
        return self.network.mutate(resource_id, fn)

    def bump_etag(self, resource_id: str) -> str:
        return self.update_nsg(resource_id, lambda body: None)["etag"]

    def delete_nsg(self, resource_id: str) -> bool:
        with self.network.lock:
            return self.network.nsgs.pop(key_of(resource_id), None) is not None

    def ingested(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Rows accepted by the Logs Ingestion stand-in (all streams when ``stream`` is None)."""
        return self.ingestion.read(stream)

    # --- counters ---
    def app_settings(self, **extra: str) -> dict[str, str]:
        """Environment for NSG Guard in explicit local mode, pointed at this server."""
        return {
            "NSG_GUARD_AUTH": "local", "NSG_GUARD_LOCAL_TOKEN": self.token,
            "NSG_GUARD_CA_BUNDLE": str(self.ca_path), "ARM_ENDPOINT": self.url,
            "LOGS_INGESTION_ENDPOINT": self.url, "LOGS_DCR_IMMUTABLE_ID": self.dcr_id,
            "LOGS_STREAM_NAME": self.stream, **extra,
        }

    def add_principal(self, token: str, principal: Principal) -> StaticTokenCredential:
        """Accept another bearer token, acting as ``principal`` (who Event Grid events name as the actor)."""
        self._principals[token] = principal
        return StaticTokenCredential(token)

    def principal_for(self, authorization: str) -> Principal | None:
        if not authorization.startswith("Bearer "):
            return None
        token = split_token(authorization[len("Bearer "):])[0]
        if token == self.token:
            return LOCAL_DEVELOPER
        return self._principals.get(token)

    def _publish(self, h: Any, r: Route, principal: Principal | None) -> None:
        p = r.params
        if r.resource not in ("nsg", "rule") or principal is None:
            return
        resource_id = nsg_id(p["sub"], p["rg"], p["name"])
        operation = "Microsoft.Network/networkSecurityGroups"
        if r.resource == "rule":
            resource_id += f"/securityRules/{p['rule']}"
            operation += "/securityRules"
        operation += "/delete" if h.command == "DELETE" else "/write"
        self.event_grid.publish(resource_id=resource_id, subscription=p["sub"], operation=operation,
                                delete=h.command == "DELETE", method=h.command,
                                url=f"https://management.azure.com{h.path}", principal=principal)

    def _record(self, rec: RequestRecord) -> None:
        with self._req_lock:
            self.requests.append(rec)

    def count(
        self,
        kind: str | None = None,
        *,
        method: str | None = None,
        resource: str | None = None,
        path_contains: str | None = None,
        status: int | object | None = _ANY,
    ) -> int:
        """Number of requests received (including faulted/failed ones) matching all given filters.

        ``status=None`` counts dropped connections (no response was sent).
        """
        with self._req_lock:
            recs = list(self.requests)
        return sum(
            1
            for r in recs
            if (kind is None or r.kind == kind)
            and (method is None or r.method == method.upper())
            and (resource is None or r.resource == resource)
            and (path_contains is None or path_contains.lower() in r.path.lower())
            and (status is _ANY or r.status == status)
        )

    @property
    def counter(self) -> Counter[tuple[str, str]]:
        """``Counter`` keyed by (method, route kind)."""
        with self._req_lock:
            return Counter((r.method, r.kind) for r in self.requests)

    def reset(self) -> None:
        """Forget requests and faults (state is kept)."""
        with self._req_lock:
            self.requests.clear()
        self.faults.reset()

    # --- handlers ---
    _h_tags = handle_tags  # the Tags API on an NSG (localazure/tags.py)

    def _lro_headers(
        self, h: _Handler, op: Operation, api_version: str, with_location: bool
    ) -> dict[str, str]:
        base = (
            f"{h.base_url()}/subscriptions/{op.subscription}"
            f"/providers/Microsoft.Network/locations/{op.location}"
        )
        q = f"?api-version={quote(api_version)}"
        headers = {"Azure-AsyncOperation": f"{base}/operations/{op.id}{q}"}
        if with_location:
            headers["Location"] = f"{base}/operationResults/{op.id}{q}"
        if self.lro_retry_after is not None:
            headers.update(retry_headers(self.lro_retry_after, lro=True))
        return headers

    @staticmethod
    def _api_version(query: dict[str, str]) -> str:
        v = query.get("api-version")
        if not v:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        return v

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArmError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: {err}",
            ) from None

    def _h_arm_get(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        self._api_version(query)
        p = r.params
        with self.network.lock:
            nsg = self.network.require(p["sub"], p["rg"], p["name"])
            if r.resource == "nsg":
                return 200, self.network.render(nsg), {}
            return 200, self.network.require_rule(nsg, p["rule"], default=r.resource == "defaultrule"), {}

    def _h_arm_put(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        api = self._api_version(query)
        p = r.params
        if r.resource == "defaultrule":
            raise ArmError(405, "MethodNotAllowed", "Default security rules cannot be modified.")
        data = self._json(body)
        with self.network.lock:
            if r.resource == "nsg":
                status, nsg, op = self.network.put_nsg(p["sub"], p["rg"], p["name"], data, api)
                out = self.network.render(nsg)
            else:
                status, nsg, op = self.network.put_rule(p["sub"], p["rg"], p["name"], p["rule"], data)
                out = self.network.render_rule(nsg, nsg.rules[p["rule"].lower()])
        return status, out, self._lro_headers(h, op, api, with_location=False)

    def _h_arm_delete(
        self, h: _Handler, r: Route, query: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict]:
        api = self._api_version(query)
        p = r.params
        if r.resource == "defaultrule":
            raise ArmError(405, "MethodNotAllowed", "Default security rules cannot be deleted.")
        if r.resource == "nsg":
            op = self.network.delete_nsg(p["sub"], p["rg"], p["name"])
        else:
            op = self.network.delete_rule(p["sub"], p["rg"], p["name"], p["rule"])
        if op is None:
            return 204, None, {}
        return 202, None, self._lro_headers(h, op, api, with_location=True)

    def _h_arm_list(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        api = self._api_version(query)
        p = r.params
        with self.network.lock:
            if r.resource == "nsgs":
                items = self.network.list(p["sub"], p.get("rg"))
            else:
                nsg = self.network.require(p["sub"], p["rg"], p["name"])
                if r.resource == "rules":
                    items = [self.network.render_rule(nsg, x) for x in nsg.rules.values()]
                else:
                    items = self.network.render_defaults(nsg)
        try:
            start = int(query.get("$skiptoken") or query.get("$skipToken") or 0)
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The $skiptoken is invalid.") from None
        page = items[start : start + self.page_size]
        out: dict[str, Any] = {"value": page}
        if start + self.page_size < len(items):
            path = urlsplit(h.path).path
            out["nextLink"] = (
                f"{h.base_url()}{path}?api-version={quote(api)}&$skiptoken={start + self.page_size}"
            )
        return 200, out, {}

    def _h_lro_poll(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        self._api_version(query)
        op = self.network.poll(r.params["op"])
        headers = {}
        if op.status == "InProgress" and self.lro_retry_after is not None:
            headers.update(retry_headers(self.lro_retry_after, lro=True))
        if r.resource == "operationresult":  # the Location URL: 202 while running, then 204 / the error
            if op.status == "InProgress":
                return 202, None, {**headers, "Location": f"{h.base_url()}{h.path}"}
            if op.fail:
                raise ArmError(400, op.fail[0], op.fail[1])
            return 204, None, {}
        out: dict[str, Any] = {"status": op.status}
        if op.fail and op.status == "Failed":
            out["error"] = {"code": op.fail[0], "message": op.fail[1]}
        return 200, out, headers

    def _h_graph(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        if h.command != "POST":
            raise ArmError(405, "MethodNotAllowed", "Use POST for Resource Graph queries.")
        headers, over = self.graph.quota_headers()
        try:
            self._api_version(query)
            if over:
                raise ArmError(
                    429,
                    "RateLimiting",
                    "Please provide below info when asking for support: too many requests.",
                    retry_headers(max(1, int(headers["x-ms-user-quota-resets-after"].split(":")[-1]))),
                )
            return 200, self.graph.query(self._json(body),
                                         row_filter=self.rbac.row_filter(h.headers.get("Authorization", ""))), headers
        except ArmError as err:
            err.headers = {**headers, **err.headers}
            raise

    def _h_aml(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        return self.aml.handle(self, h, r.resource, r.params, query, body)

    def _h_ingest(self, h: _Handler, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        if h.command != "POST":
            raise ArmError(405, "MethodNotAllowed", "Use POST to upload logs.")
        self._api_version(query)
        self.ingestion.ingest(r.params["dcr"], r.params["stream"], body, h.headers.get("Content-Encoding"))
        return 204, None, {}


def start(**kwargs: Any) -> LocalAzure:
    """Start a :class:`LocalAzure` (``port=0`` = ephemeral) and return it; use it as a context manager."""
    return LocalAzure(**kwargs).start()
