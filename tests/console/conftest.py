"""Fixtures for the admin console's browser tests (pytest + Playwright, sync API).

- `server`: a keymint per backend (`sqlite`, `postgres`), shared by every test
  of the session; each test works in a tenant of its own (`tenant`).
- `browser`: one Chromium for the session; `page`: a fresh context per test
  that fails the test on console errors, page errors and requests leaving the
  server's origin.

Missing tools (Playwright, axe-playwright-python, /usr/bin/chromium) or a
missing KEYMINT_TEST_POSTGRES_URL skip locally and fail under CI=true.
"""

from __future__ import annotations

import importlib.util
import os
import re
import urllib.parse
from pathlib import Path

import pytest

# tests/console is on sys.path (pytest's default "prepend" import mode, no
# __init__.py here), so the harness module imports by its plain name.
from console_harness import (PAGE_RECORDS, REPO_ROOT, SCREENSHOT_DIR, PageRecord, Server,
                             Tenant)

CHROMIUM = "/usr/bin/chromium"
# --no-sandbox: the tests run as root. The rest keep Chromium from reaching
# out on its own (no network here) and from using a GPU it does not have.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
# Playwright waits up to 30 s by default; a console page that needs more than
# this is broken, and failing sooner keeps a broken run short.
ACTION_TIMEOUT_MS = 10_000
INSTALL_HINT = ("pip install -r .ci/requirements.txt && apt-get install -y chromium "
                "(PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)")


def _under_ci() -> bool:
    return os.environ.get("CI") == "true"


def _missing_tools() -> list[str]:
    missing = [f"python module {name}" for name in ("playwright", "axe_playwright_python")
               if importlib.util.find_spec(name) is None]
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM)
    return missing


def pytest_configure(config):
    # Under CI a missing tool must fail the run, before anything is collected.
    missing = _missing_tools()
    if missing and _under_ci():
        raise pytest.UsageError(f"CI=true but missing {', '.join(missing)}; {INSTALL_HINT}")
    # Each run writes its own record of what the accessibility check found.
    (SCREENSHOT_DIR / "axe-report.jsonl").unlink(missing_ok=True)


def pytest_collection_modifyitems(config, items):
    # Locally it only skips, so a machine without a browser can still run the rest.
    missing = _missing_tools()
    if missing:
        skip = pytest.mark.skip(reason=f"missing {', '.join(missing)}; {INSTALL_HINT}")
        for item in items:
            item.add_marker(skip)


_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item (the `page` fixture reads it) and
    adds the server's last log lines to a failure."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    server = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(server, Server):
        report.sections.append((f"keymint log ({server.backend}, last lines)",
                                server.log_tail()))
    return report



# --------------------------------------------------------------- the server


@pytest.fixture(scope="session")
def keymint_bin() -> Path:
    path = Path(os.environ.get("KEYMINT_BIN", "target/debug/keymint"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not os.access(path, os.X_OK):
        pytest.fail(f"no keymint binary at {path} (cargo build, or set KEYMINT_BIN)",
                    pytrace=False)
    return path


def _postgres_url() -> str:
    url = os.environ.get("KEYMINT_TEST_POSTGRES_URL")
    if not url:
        if _under_ci():
            pytest.fail("CI=true but KEYMINT_TEST_POSTGRES_URL is not set", pytrace=False)
        pytest.skip("KEYMINT_TEST_POSTGRES_URL is not set")
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request, keymint_bin, tmp_path_factory) -> Server:
    """A running keymint over a fresh database of the given backend, shared by
    the whole session (pytest groups the tests by backend, so at most one
    server per backend runs). Tests must not change what others rely on:
    work in a `tenant` of your own."""
    backend = request.param
    postgres_url = _postgres_url() if backend == "postgres" else None
    srv = Server(keymint_bin, backend, tmp_path_factory.mktemp(f"keymint-{backend}"),
                 postgres_url)
    yield srv
    srv.stop()


@pytest.fixture
def tenant(server) -> Tenant:
    """A new tenant and the secret of an admin key in it (TENANT_ADMIN_SCOPES)."""
    slug = server.new_tenant()
    return Tenant(slug=slug, admin_secret=server.admin_key(slug))


# -------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _on_origin(url: str, origin: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == origin


@pytest.fixture
def page(request, browser, server):
    """A page in a fresh context (1280x800, base_url = the server, so
    `page.goto("/console/")` works). At teardown the test fails if the page
    logged a console error or threw, or if anything requested a URL off the
    server's origin (data: and blob: allowed)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=server.origin)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    pg = context.new_page()
    record = PageRecord(origin=server.origin)
    PAGE_RECORDS[pg] = record

    def on_console(msg):
        if msg.type == "error":
            where = msg.location or {}
            record.errors.append(f"console.error: {msg.text} "
                                 f"({where.get('url')}:{where.get('lineNumber')})")

    def on_page_error(err):
        record.errors.append(f"uncaught: {err.name}: {err.message}")

    def on_request(req):
        if not _on_origin(req.url, server.origin):
            record.foreign_requests.append(f"{req.method} {req.url}")

    def on_response(resp):
        # The document check_page judges: the main frame's latest navigation.
        if resp.request.resource_type == "document" and resp.frame == pg.main_frame:
            record.document = resp

    pg.on("console", on_console)
    pg.on("pageerror", on_page_error)
    pg.on("response", on_response)
    # On the context, so workers and popups are watched too.
    context.on("request", on_request)

    yield pg

    call = request.node.stash.get(_REPORTS, {}).get("call")
    if call is not None and call.failed:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOT_DIR / ("FAILED-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
                                 + ".png")
        try:
            pg.screenshot(path=shot, full_page=True)
        except Exception as err:  # a crashed page must not hide the test's own failure
            print(f"no failure screenshot: {err}")
    context.close()
    problems = record.errors + [f"off-origin request: {r}" for r in record.foreign_requests]
    if problems:
        pytest.fail("the page misbehaved:\n  " + "\n  ".join(problems), pytrace=False)
