"""The fake's core: HTTP server, routing, OCI request-signature check, fault injection, JSON helpers.

Adding a service (model deployment, logging search, predict, ...) is one new module in this package:

    # tests/fakeoci/modeldeployment.py
    from tests.fakeoci.core import Request, Response, Service, json_response, route

    class ModelDeployment(Service):
        name = "modeldeployment"       # also the folder under the data dir: self.root
        prefix = "/20190101"           # the SDK client's base path

        @route("GET", "/modelDeployments/{modelDeploymentId}", op="GetModelDeployment")
        def get(self, req: Request) -> Response:
            return json_response(200, self.deployments[req.params["modelDeploymentId"]])

`FakeOci` imports every module of this package and instantiates each `Service` subclass it finds, so no
other file needs editing. Patterns: `{name}` matches one path segment, `{name+}` the rest of the path
(object names contain slashes); values arrive URL-decoded in `req.params`, the query in `req.query`.
Routes are tried in registration order; a literal route must be registered before a pattern it
overlaps. Route options: `op` names the operation (fault matching and the request log), `signed=False`
skips the signature check, `sign_body=False` accepts a PUT/POST signed without the body headers (Object
Storage PUTs, as the SDK sends them), `stream_body=True` leaves the body unread for the handler
(`req.body_chunks()` / `req.copy_body(...)`) so big uploads never sit in memory.

Handlers raise `HttpError(status, code, message)` for OCI-shaped errors; `fake.service(Cls)` reaches
another service (e.g. `DataScience.new_work_request` for long-running operations); `req.fault` carries a
matched fault whose kind the core does not act on itself (e.g. "work_request_failed").
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import fcntl
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import random
import re
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.httpfakes import STOP_TIMEOUT_S, FakeHttpServer, is_disconnect

CHUNK = 1 << 20
SOCKET_TIMEOUT_S = 30.0
MAX_CLOCK_SKEW_S = 300.0
JSON_BODY_LIMIT = 16 << 20
BODY_SIGNED_METHODS = frozenset({"PUT", "POST", "PATCH"})
BASE_SIGNED_HEADERS = ("date", "(request-target)", "host")
BODY_SIGNED_HEADERS = ("content-length", "content-type", "x-content-sha256")


SvcT = TypeVar("SvcT", bound="Service")


class HttpError(Exception):
    """An error the fake answers with, shaped like OCI's: {"code": ..., "message": ...}."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# ---------------------------------------------------------------------------------------------- JSON


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def http_date(ts: float | None = None) -> str:
    return email.utils.formatdate(ts if ts is not None else time.time(), usegmt=True)


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    files: list[Path] | None = None  # streamed from disk, one after the other, instead of `body`
    chunks: Iterable[bytes] | None = None  # sent as they come (chunked encoding), e.g. Server-Sent Events
    head: bool = False  # send the headers only (HEAD), content-length still describes the body


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, {"content-type": "application/json", **(headers or {})}, body)


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dict(headers or {}))


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"code": code, "message": message}, headers)


# ------------------------------------------------------------------------------------------ signing


@dataclass(frozen=True)
class TestIdentity:
    """A throwaway OCI API-key identity: an RSA key, its fingerprint and an SDK config file naming it."""

    __test__ = False  # not a pytest class

    tenancy: str
    user: str
    fingerprint: str
    key_file: Path
    config_file: Path
    region: str = "us-ashburn-1"
    profile: str = "DEFAULT"

    @property
    def key_id(self) -> str:
        return f"{self.tenancy}/{self.user}/{self.fingerprint}"

    def public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.public_key()

    @classmethod
    def create(cls, directory: Path, *, region: str = "us-ashburn-1", bits: int = 2048) -> TestIdentity:
        """Write key.pem and config in `directory` (reused when already there, so restarts keep the key)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / "key.pem"
        if key_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            assert isinstance(key, rsa.RSAPrivateKey)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            key_file.touch(mode=0o600)
            key_file.write_bytes(pem)
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
        fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        identity = cls(
            tenancy="ocid1.tenancy.oc1..faketenancy",
            user="ocid1.user.oc1..fakeuser",
            fingerprint=fingerprint,
            key_file=key_file,
            config_file=directory / "config",
            region=region,
        )
        identity.config_file.write_text(
            f"[{identity.profile}]\n"
            f"user={identity.user}\n"
            f"fingerprint={identity.fingerprint}\n"
            f"tenancy={identity.tenancy}\n"
            f"region={identity.region}\n"
            f"key_file={identity.key_file}\n",
            encoding="utf-8",
        )
        return identity


_SIG_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_authorization(value: str) -> dict[str, str]:
    if not value.startswith("Signature "):
        raise HttpError(401, "NotAuthenticated", "the Authorization header is not an HTTP signature")
    return dict(_SIG_PARAM.findall(value[len("Signature ") :]))


def verify_signature(
    method: str,
    target: str,
    headers: Any,
    keys: dict[str, rsa.RSAPublicKey],
    *,
    sign_body: bool,
    clock: Callable[[], float] = time.time,
) -> str:
    """Check a draft-cavage signature as the oci SDK makes it; return the keyId or raise HttpError(401)."""
    auth = headers.get("authorization")
    if not auth:
        raise HttpError(401, "NotAuthenticated", "the request is not signed (no Authorization header)")
    params = parse_authorization(auth)
    if params.get("algorithm") != "rsa-sha256" or params.get("version", "1") != "1":
        raise HttpError(
            401, "NotAuthenticated", f"unsupported signature algorithm {params.get('algorithm')!r}"
        )
    key_id = params.get("keyId", "")
    public_key = keys.get(key_id)
    if public_key is None:
        raise HttpError(401, "NotAuthenticated", f"unknown keyId {key_id!r}")
    signed = params.get("headers", "date").lower().split()
    required = list(BASE_SIGNED_HEADERS)
    if method in BODY_SIGNED_METHODS and sign_body:
        required += BODY_SIGNED_HEADERS
    missing = [h for h in required if h not in signed]
    if missing:
        raise HttpError(401, "NotAuthenticated", f"the signature does not cover: {', '.join(missing)}")
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
            continue
        value = headers.get(name)
        if value is None:
            raise HttpError(401, "NotAuthenticated", f"signed header {name!r} is missing from the request")
        lines.append(f"{name}: {value}")
    try:
        signature = base64.b64decode(params.get("signature", ""), validate=True)
        public_key.verify(signature, "\n".join(lines).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise HttpError(401, "NotAuthenticated", "the request signature does not verify") from exc
    sent = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
    if abs(clock() - sent) > MAX_CLOCK_SKEW_S:
        raise HttpError(401, "NotAuthenticated", f"the date header is more than {MAX_CLOCK_SKEW_S:.0f} s off")
    return key_id


# ------------------------------------------------------------------------------------------- faults


@dataclass(kw_only=True)
class Fault:
    """One fault rule. Kinds the core applies: "status" (answer `status`/`code` instead of the handler),
    "reset" (read `after_bytes` of the body, default half, then reset the connection), "slow" (wait
    `delay_s` first, then serve normally), "lost_answer" (serve the request, then reset the connection
    instead of answering: the client cannot tell whether it happened). Any other kind is handed to the
    handler as `req.fault`.
    `ops=None` matches every operation; `times=None` never runs out; `probability` is per request."""

    kind: str
    ops: frozenset[str] | None = None
    status: int = 503
    code: str = "ServiceUnavailable"
    message: str = "injected fault"
    probability: float = 1.0
    times: int | None = None
    delay_s: float = 0.0
    after_bytes: int | None = None
    fired: int = 0


class FaultPlan:
    """Fault rules, checked in order for each request; the first one that fires wins."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def burst(self, status: int, *, ops: Iterable[str] | None = None, times: int = 3) -> Fault:
        """The next `times` matching requests get `status` (429 TooManyRequests or 503 ServiceUnavailable)."""
        code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(
            status, "Error"
        )
        return self.add(Fault(kind="status", status=status, code=code, ops=_ops(ops), times=times))

    def chaos(self, rate: float, *, ops: Iterable[str] | None = None, seed: int | None = None) -> None:
        """About `rate` of matching requests fail, split evenly between 429, 503 and a reset mid-body."""
        if seed is not None:
            self._rng.seed(seed)
        share = rate / 3
        self.add(Fault(kind="status", status=429, code="TooManyRequests", ops=_ops(ops), probability=share))
        self.add(
            Fault(
                kind="status",
                status=503,
                code="ServiceUnavailable",
                ops=_ops(ops),
                probability=share / (1 - share),
            )
        )
        self.add(Fault(kind="reset", ops=_ops(ops), probability=share / (1 - 2 * share)))

    def pick(self, op: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.ops is not None and op not in rule.ops:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    @staticmethod
    def from_json(data: dict[str, Any]) -> Fault:
        known = {f for f in Fault.__dataclass_fields__ if f != "fired"}
        unknown = set(data) - known
        if unknown or "kind" not in data:
            raise HttpError(
                400, "InvalidParameter", f"a fault needs 'kind' and only: {', '.join(sorted(known))}"
            )
        values = dict(data)
        if values.get("ops") is not None:
            values["ops"] = frozenset(values["ops"])
        return Fault(**values)


def _ops(ops: Iterable[str] | None) -> frozenset[str] | None:
    return None if ops is None else frozenset(ops)


class Throttle:
    """A token bucket shared by every connection: the link speed for `--rate-mbps`."""

    def __init__(self, rate_mbps: float) -> None:
        self.rate = rate_mbps * 1_000_000 / 8  # bytes per second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def spend(self, nbytes: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + nbytes / self.rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


# ------------------------------------------------------------------------------------------ routing


@dataclass(frozen=True)
class RouteSpec:
    method: str
    pattern: str
    op: str
    signed: bool = True
    sign_body: bool = True
    stream_body: bool = False


def route(
    method: str,
    pattern: str,
    *,
    op: str,
    signed: bool = True,
    sign_body: bool = True,
    stream_body: bool = False,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Mark a `Service` method as the handler of `method pattern` (pattern relative to the service prefix)."""

    def mark(fn: Callable[..., Response]) -> Callable[..., Response]:
        specs = getattr(fn, "_fake_routes", [])
        fn._fake_routes = [*specs, RouteSpec(method, pattern, op, signed, sign_body, stream_body)]  # type: ignore[attr-defined]
        return fn

    return mark


def compile_pattern(pattern: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\{\w+\+?\})", pattern):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            out.append(f"(?P<{name[:-1]}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "/?$")


@dataclass
class Route:
    spec: RouteSpec
    regex: re.Pattern[str]
    handler: Callable[[Request], Response]


class Service:
    """Base of a fake OCI service: subclasses set `name` and `prefix` and mark handlers with `@route`."""

    name: ClassVar[str] = ""
    prefix: ClassVar[str] = ""

    def __init__(self, fake: FakeOci) -> None:
        self.fake = fake
        self.root = fake.data_dir / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def routes(self) -> Iterator[Route]:
        for _, member in inspect.getmembers(self, inspect.ismethod):
            for spec in getattr(member, "_fake_routes", []):
                yield Route(spec, compile_pattern(self.prefix + spec.pattern), member)


# ------------------------------------------------------------------------------------------ request


@dataclass
class Request:
    method: str
    target: str  # the raw request target: path and query, as signed
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Any  # email.message.Message: case-insensitive get()
    op: str
    fake: FakeOci
    key_id: str | None = None
    fault: Fault | None = None
    body: bytes = b""
    _handler: _Handler | None = None
    _remaining: int = 0

    @property
    def content_length(self) -> int:
        return int(self.headers.get("content-length") or 0)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise HttpError(400, "InvalidParameter", f"the body is not JSON: {exc}") from exc

    def body_chunks(self, limit: int | None = None) -> Iterator[memoryview]:
        """The unread body (stream_body routes), in chunks; stops after `limit` bytes when given."""
        assert self._handler is not None
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        todo = self._remaining if limit is None else min(limit, self._remaining)
        while todo > 0:
            n = self._handler.rfile.readinto(view[: min(CHUNK, todo)])  # type: ignore[attr-defined]
            if not n:
                raise ConnectionError("client closed the connection mid-body")
            todo -= n
            self._remaining -= n
            if self.fake.throttle is not None:
                self.fake.throttle.spend(n)
            yield view[:n]

    def copy_body(self, out: BinaryIO, *hashers: Any) -> int:
        total = 0
        for chunk in self.body_chunks():
            out.write(chunk)
            for h in hashers:
                h.update(chunk)
            total += len(chunk)
        return total

    def splice_body(self, fd: int) -> int:
        """Move the unread body into file descriptor `fd` within the kernel (Linux splice: no copy through
        Python), for benchmarks where the fake's own CPU would otherwise compete with the client's."""
        assert self._handler is not None
        if not hasattr(os, "splice"):
            with os.fdopen(os.dup(fd), "wb") as out:
                return self.copy_body(out)
        sock = self._handler.connection
        read_end, write_end = os.pipe()
        total = 0
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_end, 1031, CHUNK)  # F_SETPIPE_SZ
            while self._remaining:
                try:
                    n = os.splice(sock.fileno(), write_end, min(CHUNK, self._remaining))
                except BlockingIOError:  # the socket has a timeout, so it is non-blocking underneath
                    if not select.select([sock], [], [], SOCKET_TIMEOUT_S)[0]:
                        raise TimeoutError("the client stopped sending the body") from None
                    continue
                if not n:
                    raise ConnectionError("client closed the connection mid-body")
                self._remaining -= n
                moved = 0
                while moved < n:
                    moved += os.splice(read_end, fd, n - moved)
                total += n
                if self.fake.throttle is not None:
                    self.fake.throttle.spend(n)
        finally:
            os.close(read_end)
            os.close(write_end)
        return total

    def drain(self) -> None:
        for _ in self.body_chunks():
            pass


@dataclass(frozen=True)
class LoggedRequest:
    op: str
    method: str
    path: str
    query: dict[str, str]
    status: int
    body_bytes: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    # Unbuffered: bodies go from recv_into straight to their file (a buffered reader halves throughput);
    # header lines are read byte by byte, which costs little next to a part.
    rbufsize = 0
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fake keeps its own log
        pass

    def do_GET(self) -> None:
        self.server.fake.dispatch(self)

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_GET


class _Server(FakeHttpServer):
    """The fake's server: its errors and its stopping flag are the fake's own (`fake.errors` fails the
    test; `fake.stopping` also ends slow faults early)."""

    def __init__(self, address: tuple[str, int], fake: FakeOci) -> None:
        self.fake = fake
        super().__init__(address, _Handler, name="fakeoci", errors=fake.errors, stopping=fake.stopping)


# ------------------------------------------------------------------------------------------- server


class FakeOci:
    """The loopback fake: one port serves every registered service.

    `start()` binds 127.0.0.1 (port 0 = any free port) and serves on a daemon thread; `stop()` shuts it
    down. `endpoint` is what SDK clients take as `service_endpoint`; `trust(identity)` registers a key.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        namespace: str = "testns",
        region: str = "us-ashburn-1",
        rate_mbps: float | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.region = region
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self.faults = FaultPlan(seed)
        self.throttle = Throttle(rate_mbps) if rate_mbps else None
        self.fast_digests = False  # benchmarks: see ObjectStorage._receive
        self.keep_bodies = True  # benchmarks: False drops bodies once received (ObjectStorage._receive)
        # Object Storage refuses a commit whose parts but the last are smaller (oci_runtime/upload.py, sources);
        # tests of the multipart logic on KiB-sized data lower it on purpose (tests/test_upload.py).
        self.min_part_size = 10 << 20
        self.clock = clock
        self.log: list[LoggedRequest] = []
        self._in_flight = 0
        self.errors: list[str] = []  # handler exceptions; the pytest fixture fails the test on any
        self.stopping = threading.Event()  # set by stop(): slow faults end early, disconnects are expected
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._services: dict[type[Service], Service] = {}
        self._routes: list[Route] = []
        for cls in discover_services():
            self.add_service(cls)

    # -- setup
    def add_service(self, cls: type[Service]) -> Service:
        svc = cls(self)
        self._services[cls] = svc
        self._routes.extend(svc.routes())
        return svc

    def service(self, cls: type[SvcT]) -> SvcT:
        svc = self._services[cls]
        assert isinstance(svc, cls)
        return svc

    def trust(self, identity: TestIdentity) -> None:
        self.keys[identity.key_id] = identity.public_key()

    def ocid(self, kind: str) -> str:
        return f"ocid1.{kind}.oc1.iad.{uuid.uuid4().hex}"

    # -- lifecycle
    @property
    def port(self) -> int:
        assert self._server is not None, "the fake is not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeOci:
        self.stopping.clear()
        self._server = _Server(("127.0.0.1", port), self).start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop listening, end every open connection (a slow fault stops waiting) and wait for their
        threads, so no request of this test is still being answered while the next one runs."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout)

    def __enter__(self) -> FakeOci:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observing
    def requests(self, op: str | None = None) -> list[LoggedRequest]:
        with self._log_lock:
            return [r for r in self.log if op is None or r.op == op]

    def _record(self, req: Request, status: int, body_bytes: int) -> None:
        with self._log_lock:
            self.log.append(LoggedRequest(req.op, req.method, req.path, req.query, status, body_bytes))

    # -- dispatch
    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for r in self._routes:
            m = r.regex.match(path)
            if m is None:
                continue
            if r.spec.method != method:
                path_matched = True
                continue
            return r, {k: unquote(v) for k, v in m.groupdict().items()}
        if path_matched:
            raise HttpError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
        raise HttpError(404, "NotAuthorizedOrNotFound", f"no fake route for {method} {path}")

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being served (e.g. after killing a client mid-request)."""
        deadline = time.monotonic() + timeout
        while self._in_flight:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fake still serves {self._in_flight} requests after {timeout} s")
            time.sleep(0.01)

    def dispatch(self, h: _Handler) -> None:
        with self._log_lock:
            self._in_flight += 1
        try:
            self._dispatch(h)
        finally:
            with self._log_lock:
                self._in_flight -= 1

    def _dispatch(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        req = Request(
            method=h.command,
            target=h.path,
            path=split.path,
            params={},
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=h.headers,
            op="Unknown",
            fake=self,
            _handler=h,
        )
        req._remaining = req.content_length
        body_in = req._remaining
        try:
            if (h.headers.get("transfer-encoding") or "").lower() == "chunked":
                raise HttpError(411, "LengthRequired", "chunked transfer encoding is not supported")
            response = self._control(req) if req.path.startswith("/_fake/") else self._serve(req)
            if req.fault is not None and req.fault.kind == "lost_answer":
                self._reset(req, Fault(kind="reset", after_bytes=0))
        except HttpError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        except _Reset:
            self._record(req, 0, body_in - req._remaining)
            return
        except Exception as exc:
            if is_disconnect(exc):  # the client left mid-body, or the fake is stopping
                h.close_connection = True
                return
            # a bug in a handler (an OSError of its own files too): answer 500, keep it for the test to see
            self.errors.append(f"{req.op} {req.method} {req.path}: {exc!r}")
            response = error_response(500, "InternalServerError", f"fake handler error: {exc!r}")
        if req._remaining:
            # unread body (an early error): read it off so the connection can be reused
            try:
                req.drain()
            except (ConnectionError, TimeoutError, OSError):
                h.close_connection = True
                return
        self._record(req, response.status, body_in)
        try:
            self._send(h, response)
        except OSError as exc:
            if not is_disconnect(exc):
                raise
            h.close_connection = True  # the client left before the answer (e.g. it timed out): routine

    def _serve(self, req: Request) -> Response:
        route_, params = self._match(req.method, req.path)
        req.params, req.op = params, route_.spec.op
        if route_.spec.signed:
            req.key_id = verify_signature(
                req.method,
                req.target,
                req.headers,
                self.keys,
                sign_body=route_.spec.sign_body,
                clock=self.clock,
            )
        if not route_.spec.stream_body:
            if req._remaining > JSON_BODY_LIMIT:
                raise HttpError(413, "RequestEntityTooLarge", f"bodies of {req.op} are limited to 16 MiB")
            req.body = b"".join(bytes(c) for c in req.body_chunks())
            if route_.spec.signed and route_.spec.sign_body and req.method in BODY_SIGNED_METHODS:
                digest = base64.b64encode(hashlib.sha256(req.body).digest()).decode()
                if req.headers.get("x-content-sha256") != digest:
                    raise HttpError(401, "NotAuthenticated", "x-content-sha256 does not match the body")
        fault = self.faults.pick(req.op)
        if fault is not None:
            if fault.kind == "slow":
                if self.stopping.wait(fault.delay_s):
                    raise ConnectionAbortedError("the fake is stopping")
            elif fault.kind == "status":
                raise HttpError(fault.status, fault.code, fault.message)
            elif fault.kind == "reset":
                self._reset(req, fault)
            else:
                req.fault = fault
        return route_.handler(req)

    def _reset(self, req: Request, fault: Fault) -> None:
        keep = fault.after_bytes if fault.after_bytes is not None else req._remaining // 2
        for _ in req.body_chunks(limit=keep):
            pass
        assert req._handler is not None
        sock = req._handler.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        req._handler.close_connection = True
        sock.close()
        raise _Reset

    def _send(self, h: _Handler, response: Response) -> None:
        if response.chunks is not None:
            self._send_chunked(h, response)
            return
        files = response.files
        size = sum(f.stat().st_size for f in files) if files is not None else len(response.body)
        h.send_response(response.status)
        headers = {"opc-request-id": uuid.uuid4().hex, "content-length": str(size), **response.headers}
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command == "HEAD" or response.head or response.status in (204, 304):
            return
        if files is None:
            if self.throttle is not None:
                self.throttle.spend(size)
            h.wfile.write(response.body)
            return
        for path in files:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    if self.throttle is not None:
                        self.throttle.spend(len(chunk))
                    h.wfile.write(chunk)

    @staticmethod
    def _send_chunked(h: _Handler, response: Response) -> None:
        assert response.chunks is not None
        h.send_response(response.status)
        headers = {"opc-request-id": uuid.uuid4().hex, **response.headers, "transfer-encoding": "chunked"}
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        for chunk in response.chunks:
            if chunk:
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    # -- control API (unsigned, for a fake started on its own): faults and the request log
    def _control(self, req: Request) -> Response:
        req.op = "FakeControl"
        req.body = b"".join(bytes(c) for c in req.body_chunks(limit=JSON_BODY_LIMIT))
        if req.path == "/_fake/faults" and req.method == "POST":
            data = req.json()
            faults = [
                self.faults.add(FaultPlan.from_json(f)) for f in (data if isinstance(data, list) else [data])
            ]
            return json_response(200, {"added": len(faults)})
        if req.path == "/_fake/faults" and req.method == "DELETE":
            self.faults.clear()
            return empty_response()
        if req.path == "/_fake/requests" and req.method == "GET":
            return json_response(200, [r.__dict__ for r in self.requests(req.query.get("op"))])
        raise HttpError(404, "NotAuthorizedOrNotFound", f"no control route {req.method} {req.path}")


class _Reset(Exception):
    pass


def discover_services() -> list[type[Service]]:
    """Every Service subclass defined in this package's modules, in module-name order."""
    package = __name__.rsplit(".", 1)[0]
    found: list[type[Service]] = []
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in {"core", "fixtures"}:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Service) and obj is not Service and obj.__module__ == module.__name__:
                found.append(obj)
    return found
