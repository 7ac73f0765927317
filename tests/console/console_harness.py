"""The console tests' harness: a real keymint process, a tiny admin API client
and the checks every console page must pass (`check_page`).

The pytest fixtures that build these live in conftest.py; page-flow tests
import `check_page` (and, if they need them, the constants) from here.
"""

from __future__ import annotations

import base64
import collections
import json as jsonlib
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:  # re-exported for page-flow tests; conftest skips (or fails under CI) without it
    from playwright.sync_api import expect
except ImportError:
    expect = None

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "target" / "console-screenshots"

# Scopes a tenant's own administrator holds (the tenant-wide ones; the
# `default`-only scopes admin:tenants and admin:signing-keys are refused
# elsewhere). admin:keys:write implies read.
TENANT_ADMIN_SCOPES = ("admin:keys:write", "admin:settings", "admin:audit")

# Security events (TOML layered over the defaults by --config): receivers on
# this machine over plain http, looked for often, retried fast and given up
# after two attempts, so a test sees a delivery succeed, fail and be replayed
# within seconds.
EVENTS_TOML = """\
[events]
allowed_networks = ["127.0.0.0/8"]
poll_interval_ms = 250
timeout_ms = 2000
max_attempts = 2
backoff_base_ms = 200
backoff_max_s = 1
"""

# How long a server may take from exec to "listening" (PostgreSQL migrations
# on a busy 2-core machine included).
START_TIMEOUT_S = 60
LOG_TAIL_LINES = 100

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# The human log line is `... listening port=43123`; JSON logs say "port":43123.
PORT_FIELD = re.compile(r"""\bport"?[=:]\s*(\d+)""")
BOOTSTRAP_MARKER = "bootstrap admin key: "


# ---------------------------------------------------------------- HTTP client


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Tests look at redirects themselves (e.g. /console -> /console/)."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class HttpResponse:
    status: int
    headers: object  # http.client.HTTPMessage: case-insensitive .get()
    body: bytes

    def json(self):
        return jsonlib.loads(self.body) if self.body else None


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
         timeout: float = 30) -> HttpResponse:
    """One request; any status comes back as a response, redirects are not followed."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:  # 3xx (not followed), 4xx, 5xx
        try:
            return HttpResponse(err.code, err.headers, err.read())
        finally:
            err.close()


class ApiClient:
    """keymint's token endpoint and admin API (/api/v1/*), stdlib only.

    `bootstrap` is the secret of the system tenant's bootstrap key, which holds
    every reserved scope: it creates tenants and their administrators.
    """

    def __init__(self, origin: str, bootstrap: str):
        self.origin = origin
        self.bootstrap = bootstrap
        self.issuer = origin
        self.admin_audience = f"{origin}/api"
        self._root_token: tuple[str, float] | None = None

    def token(self, secret: str, audience: str | None = None, scope: str | None = None,
              expires_in: int | None = None) -> str:
        """Exchanges an API key for a JWT (a key holding only reserved scopes
        gets the admin audience by default). Fails the test on refusal."""
        body = {k: v for k, v in
                (("audience", audience), ("scope", scope), ("expires_in", expires_in))
                if v is not None}
        resp = http("POST", f"{self.origin}/api/v1/token",
                    {"Authorization": f"ApiKey {secret}", "Content-Type": "application/json"},
                    jsonlib.dumps(body).encode())
        assert resp.status == 200, f"token exchange: {resp.status} {resp.body!r}"
        return resp.json()["access_token"]

    def call(self, method: str, path: str, token: str, json=None, tenant: str | None = None):
        """An admin API request; returns (status, parsed JSON or None, headers)."""
        headers = {"Authorization": f"Bearer {token}"}
        if tenant is not None:
            headers["X-Tenant"] = tenant
        body = None
        if json is not None:
            headers["Content-Type"] = "application/json"
            body = jsonlib.dumps(json).encode()
        resp = http(method, f"{self.origin}{path}", headers, body)
        is_json = "json" in (resp.headers.get("Content-Type") or "")
        return resp.status, (resp.json() if is_json else None), resp.headers

    def root_token(self) -> str:
        """An admin token of the bootstrap key, reused until close to expiry."""
        now = time.monotonic()
        if self._root_token is None or self._root_token[1] < now:
            token = self.token(self.bootstrap, audience=self.admin_audience, expires_in=3600)
            self._root_token = (token, now + 3000)
        return self._root_token[0]

    def new_tenant(self) -> str:
        """A new tenant with a random slug, so a test disturbs no other; returns the slug."""
        slug = f"t-{secrets.token_hex(6)}"
        status, body, _ = self.call("POST", "/api/v1/tenants", self.root_token(),
                                    json={"slug": slug, "name": f"Console test {slug}"})
        assert status == 201, f"create tenant {slug}: {status} {body}"
        return slug

    def admin_key(self, tenant: str, scopes=TENANT_ADMIN_SCOPES, **fields) -> str:
        """Creates a key in `tenant` (root admin, X-Tenant) and returns its secret.
        `fields` adds create-body members (name, owner, expires_in_s, ...)."""
        body = {"name": "console test admin", "scopes": list(scopes), **fields}
        status, created, _ = self.call("POST", "/api/v1/keys", self.root_token(),
                                       json=body, tenant=tenant)
        assert status == 201, f"create key in {tenant}: {status} {created}"
        return created["key"]


@dataclass(frozen=True)
class Tenant:
    """A tenant of a test's own and the secret of an administrator key in it."""

    slug: str
    admin_secret: str


# ----------------------------------------------------------------- the server


def _master_key_file(directory: Path) -> Path:
    """The server's master key: standard base64 of 32 random bytes, mode 0600."""
    path = directory / "master.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return path


class PostgresDatabase:
    """A database of its own on the server named by KEYMINT_TEST_POSTGRES_URL."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.name = f"km_console_{secrets.token_hex(6)}"
        self._psql(f"CREATE DATABASE {self.name}")
        parts = urllib.parse.urlsplit(admin_url)
        self.url = urllib.parse.urlunsplit(parts._replace(path=f"/{self.name}"))

    def drop(self):
        # FORCE: a connection the server left behind must not keep it alive.
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def _psql(self, sql: str):
        subprocess.run(["psql", self.admin_url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       check=True, capture_output=True, text=True, timeout=60)


# ---------------------------------------------------- events and leak reports


class Receiver:
    """A receiver of security events on 127.0.0.1: answers every POST with
    `status` (202 by default) and keeps what came (`received()`: dicts of
    path, headers with lower-case names, body). Stop it with `close()`;
    `Receiver(port=p)` listens on a port chosen earlier (see `free_port`)."""

    def __init__(self, status: int = 202, port: int = 0):
        self.status = status
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    outer.requests.append({"path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body.decode("utf-8", "replace")})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet: pytest shows failures only
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/events"
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name=f"receiver-{self.port}").start()

    def received(self) -> list[dict]:
        with self._lock:
            return list(self.requests)

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (now): a receiver that is down."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_claims(jwt: str) -> dict:
    """The claims of a SET as received (not verified: the tests only read them)."""
    payload = jwt.split(".")[1]
    return jsonlib.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class LeakSender:
    """A code host that reports leaked secrets: an ECDSA P-256 key the
    server trusts (leaks.sender_keys) and the signature of a report body
    (base64 DER over the raw bytes), as `POST /api/v1/leaks` wants it."""

    key_id = "console-tests"

    def __init__(self):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._hash = hashes.SHA256()
        self._ecdsa = ec.ECDSA
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def toml(self) -> str:
        return ("[leaks]\nsender_keys = [{ key_identifier = "
                f"{jsonlib.dumps(self.key_id)}, key = {jsonlib.dumps(self.public_pem)} }}]\n")

    def report(self, origin: str, items: list[dict]) -> HttpResponse:
        """POSTs a signed report of `items` ({token, type, url, source})."""
        body = jsonlib.dumps(items).encode()
        signature = base64.b64encode(self._key.sign(body, self._ecdsa(self._hash))).decode()
        return http("POST", f"{origin}/api/v1/leaks",
                    {"Content-Type": "application/json",
                     "Github-Public-Key-Identifier": self.key_id,
                     "Github-Public-Key-Signature": signature}, body)


def _leak_sender() -> "LeakSender | None":
    try:
        return LeakSender()
    except ImportError:  # no `cryptography`: leak-report flows skip
        return None


# One per test session; every server trusts it.
LEAK_SENDER = _leak_sender()


class Server(ApiClient):
    """`keymint serve` on a random loopback port over a fresh database,
    configured (`--config`) with EVENTS_TOML and, when `cryptography` is
    there, LEAK_SENDER's key as a trusted leak reporter.

    Both output pipes are drained by threads for the life of the process (a
    full pipe would block the server); the last lines are kept for failure
    reports (`log_tail`).
    """

    def __init__(self, binary: Path, backend: str, workdir: Path,
                 postgres_url: str | None = None, env: dict[str, str] | None = None):
        """`postgres_url`: the server to make a database on (backend postgres);
        `env`: extra settings, e.g. {"KEYMINT__SIGNING__ALG": "EdDSA"}."""
        self.backend = backend
        self.workdir = workdir
        self.database = PostgresDatabase(postgres_url) if postgres_url else None
        self._lines: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._cond = threading.Condition()
        self._port: int | None = None
        self._bootstrap: str | None = None
        self._open_streams = 2
        config = workdir / "console-tests.toml"
        config.write_text(EVENTS_TOML + (LEAK_SENDER.toml() if LEAK_SENDER else ""))
        args = [str(binary), "serve", "--bind", "127.0.0.1:0", "--print-bootstrap-key",
                "--data-dir", str(workdir), "--config", str(config)]
        if self.database:
            args += ["--database-url", self.database.url]
        child_env = {**os.environ,
                     "RUST_LOG": "info",
                     "KEYMINT__LOG__FORMAT": "human",  # the port is read from its log line
                     "KEYMINT__METRICS__BIND": "127.0.0.1:0",
                     "KEYMINT__LIMITS__ADMIN_PER_S": "100000",  # many tests, one server
                     "KEYMINT_MASTER_KEY_FILE": str(_master_key_file(workdir)),
                     **(env or {})}
        # Settings from the caller's shell must not reach the server under test
        # (the database is ours; the bootstrap secret must come on stdout).
        child_env.pop("DATABASE_URL", None)
        child_env.pop("KEYMINT_BOOTSTRAP_KEY_FILE", None)
        try:
            self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=child_env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, errors="replace")
        except BaseException:
            self._drop_database()
            raise
        for stream, name in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr")):
            threading.Thread(target=self._drain, args=(stream, name), daemon=True,
                             name=f"keymint-{backend}-{name}").start()
        try:
            self._wait_until_started()
        except BaseException:
            self.stop()
            raise
        super().__init__(f"http://127.0.0.1:{self._port}", self._bootstrap)
        self.port = self._port
        self.console_url = f"{self.origin}/console/"

    def _drain(self, stream, name: str):
        for raw in stream:
            line = ANSI_ESCAPE.sub("", raw.rstrip("\n"))
            with self._cond:
                if name == "stdout" and line.startswith(BOOTSTRAP_MARKER):
                    self._bootstrap = line[len(BOOTSTRAP_MARKER):].strip()
                    line = BOOTSTRAP_MARKER + "<redacted>"
                elif name == "stderr" and "listening" in line and self._port is None:
                    found = PORT_FIELD.search(line)
                    if found:
                        self._port = int(found.group(1))
                self._lines.append(f"[{name}] {line}")
                self._cond.notify_all()
        with self._cond:
            self._open_streams -= 1
            self._cond.notify_all()

    def _wait_until_started(self):
        """Until the port and the bootstrap secret are known, or the process is gone."""
        with self._cond:
            self._cond.wait_for(lambda: (self._port and self._bootstrap) or not self._open_streams,
                                timeout=START_TIMEOUT_S)
        if not (self._port and self._bootstrap):
            code = self.proc.poll()
            why = f"exited ({code})" if code is not None else f"not ready in {START_TIMEOUT_S} s"
            raise RuntimeError(f"keymint ({self.backend}) {why}; its output:\n{self.log_tail()}")

    def log_tail(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def stop(self):
        """SIGTERM (graceful shutdown), SIGKILL if it hangs; then drop the database."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drop_database()

    def _drop_database(self):
        if self.database:
            self.database.drop()
            self.database = None


# --------------------------------------------------------- the page contract

REQUIRED_CSP_SOURCES = {"default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
                        "frame-ancestors": "'none'"}
EXACT_SECURITY_HEADERS = {"x-content-type-options": "nosniff",
                          "referrer-policy": "no-referrer",
                          "cache-control": "no-cache"}


def csp_directives(value: str) -> dict[str, list[str]]:
    """`a x y; b z` -> {"a": ["x", "y"], "b": ["z"]} (names lower-cased)."""
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out.setdefault(words[0].lower(), words[1:])
    return out


def security_header_problems(headers) -> list[str]:
    """What is wrong with a console document's headers (`headers.get` is
    case-insensitive: an HTTPMessage, or a dict with lower-case names)."""
    problems = []
    csp = headers.get("content-security-policy")
    if not csp:
        problems.append("no Content-Security-Policy")
    else:
        directives = csp_directives(csp)
        for name, source in REQUIRED_CSP_SOURCES.items():
            if source not in directives.get(name, []):
                problems.append(f"CSP lacks `{name} {source}`: {csp}")
        for word in ("unsafe-inline", "unsafe-eval"):
            if word in csp:
                problems.append(f"CSP allows {word}: {csp}")
    for name, want in EXACT_SECURITY_HEADERS.items():
        got = headers.get(name)
        if got != want:
            problems.append(f"{name}: want {want!r}, got {got!r}")
    return problems


@dataclass
class PageRecord:
    """What the `page` fixture saw: the main frame's last document response,
    console errors and page errors, requests leaving the server's origin."""

    origin: str
    document: object | None = None  # playwright Response
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


# page -> PageRecord, filled by the `page` fixture; weak so closed pages go.
PAGE_RECORDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

_axe = None


def _run_axe(page) -> list[dict]:
    """axe-core's violations on the current DOM.

    Playwright's evaluate runs through the DevTools protocol, which the page's
    CSP (script-src 'self', no unsafe-eval) does not govern, so axe runs with
    the server's policy untouched (checked: the same page's own eval() is
    refused meanwhile).
    """
    global _axe
    if _axe is None:
        from axe_playwright_python.sync_playwright import Axe  # pinned; bundles axe-core
        _axe = Axe()
    return _axe.run(page).response["violations"]


def _record_axe(name, violations):
    """Every violation, of any impact, one JSON line per page checked in
    target/console-screenshots/axe-report.jsonl, for the record of what
    the accessibility check reported (moderate and minor ones do not fail)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    summary = [{"id": v["id"], "impact": v.get("impact"), "nodes": len(v["nodes"])}
               for v in violations]
    with open(SCREENSHOT_DIR / "axe-report.jsonl", "a", encoding="utf-8") as out:
        out.write(jsonlib.dumps({"page": name, "violations": summary}) + "\n")


def check_page(page, name: str):
    """The checks every console page passes, then screenshots.

    - the document was served with the security headers of the contract;
    - axe-core finds no `serious` or `critical` violation;
    - screenshots: target/console-screenshots/<name>-1280.png (1280x800) and
      <name>-390.png (390x844), both full page; the viewport is restored.
    """
    __tracebackhide__ = True  # a failure points at the test's call, not in here
    record = PAGE_RECORDS.get(page)
    assert record is not None, "check_page needs the `page` fixture's page"
    assert record.document is not None, "no document was loaded in this page"
    problems = security_header_problems(record.document.all_headers())
    assert not problems, f"{name}: {record.document.url}:\n  " + "\n  ".join(problems)

    violations = _run_axe(page)
    _record_axe(name, violations)
    bad = [v for v in violations if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations (axe-core):\n" + "\n".join(
        f"  {v['id']} ({v['impact']}): {v['help']} -> "
        + ", ".join(" ".join(map(str, n["target"])) for n in v["nodes"])
        for v in bad)

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.screenshot(path=SCREENSHOT_DIR / f"{name}-1280.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=SCREENSHOT_DIR / f"{name}-390.png", full_page=True)
    finally:
        page.set_viewport_size(viewport)


def forgive_refusals(page, status: int, path: str) -> int:
    """Drops, from what the `page` fixture fails on, the console errors
    Chromium logs for fetch() answers of `status` at `path` (a regex): a
    refusal the page expects and shows ("Failed to load resource" is logged
    for every 4xx, handled or not). Returns how many there were, so a test
    can assert that exactly the expected refusal happened."""
    pattern = re.compile(rf"status of {status} .*{path}")
    record = PAGE_RECORDS[page]
    kept = [e for e in record.errors if not pattern.search(e)]
    dropped = len(record.errors) - len(kept)
    record.errors[:] = kept
    return dropped
