"""The console's shell as served: redirects, headers, hashed assets, and the
first page a visitor without a session sees. Page flows live elsewhere."""

import re
import urllib.parse
from html.parser import HTMLParser

from console_harness import check_page, expect, http, security_header_problems

ONE_YEAR_S = 365 * 24 * 3600
ASSET_PATH = re.compile(r"^/console/assets/(?P<hash>[^/]+)/(?P<file>.+)$")


class _ModuleScripts(HTMLParser):
    """Collects the src of every <script type="module">."""

    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("type") == "module" and attrs.get("src"):
            self.srcs.append(attrs["src"])


def _module_script_paths(server) -> list[str]:
    """The absolute paths of the shell's module scripts."""
    resp = http("GET", server.console_url)
    assert resp.status == 200, resp.status
    parser = _ModuleScripts()
    parser.feed(resp.body.decode())
    assert parser.srcs, f"no <script type=module src=...> in {resp.body[:500]!r}"
    return [urllib.parse.urlsplit(urllib.parse.urljoin(server.console_url, src)).path
            for src in parser.srcs]


def _entry_asset(server) -> tuple[str, str]:
    """(hash, file) of the shell's first module script."""
    path = _module_script_paths(server)[0]
    found = ASSET_PATH.match(path)
    assert found, f"{path} is not under /console/assets/<hash>/"
    return found["hash"], found["file"]


def _max_age(cache_control: str) -> int:
    found = re.search(r"\bmax-age=(\d+)", cache_control)
    return int(found.group(1)) if found else -1


def test_console_without_slash_redirects_permanently(server):
    resp = http("GET", f"{server.origin}/console")
    assert resp.status == 308, resp.status
    location = resp.headers.get("Location")
    assert urllib.parse.urljoin(f"{server.origin}/console", location) == server.console_url


def test_shell_is_html_with_the_security_headers(server):
    resp = http("GET", server.console_url)
    assert resp.status == 200, resp.status
    assert resp.headers.get("Content-Type", "").startswith("text/html")
    problems = security_header_problems(resp.headers)
    assert not problems, "\n".join(problems)


def test_module_scripts_are_hashed_and_immutable(server):
    for path in _module_script_paths(server):
        assert ASSET_PATH.match(path), f"{path} is not under /console/assets/<hash>/"
        resp = http("GET", f"{server.origin}{path}")
        assert resp.status == 200, f"{path}: {resp.status}"
        assert resp.headers.get("Content-Type", "").startswith("text/javascript"), \
            f"{path}: {resp.headers.get('Content-Type')}"
        cache = resp.headers.get("Cache-Control", "")
        assert "immutable" in cache and _max_age(cache) >= ONE_YEAR_S, f"{path}: {cache!r}"


def test_an_asset_under_a_wrong_hash_is_not_found(server):
    digest, file = _entry_asset(server)
    wrong = "0" * len(digest) if digest != "0" * len(digest) else "1" * len(digest)
    resp = http("GET", f"{server.origin}/console/assets/{wrong}/{file}")
    assert resp.status == 404, resp.status


def test_paths_with_dot_dot_are_not_found(server):
    digest, file = _entry_asset(server)
    base = f"/console/assets/{digest}"
    # Sent as written (urllib does not normalise): each would reach a real
    # file if the server resolved the dots.
    for path in (f"{base}/../{digest}/{file}",
                 f"{base}/./../{digest}/{file}",
                 f"{base}/../../index.html",
                 f"{base}/../../../Cargo.toml"):
        resp = http("GET", f"{server.origin}{path}")
        assert resp.status == 404, f"{path}: {resp.status}"
    # Encoded dots may be refused as bad input instead; never served.
    for path in (f"{base}/%2e%2e/{digest}/{file}", f"{base}/..%2f..%2f..%2fCargo.toml"):
        resp = http("GET", f"{server.origin}{path}")
        assert resp.status in (400, 404), f"{path}: {resp.status}"


def test_without_a_session_the_console_opens_on_sign_in(page):
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/#/sign-in$"))
    form = page.locator("form").filter(has=page.get_by_label("API key"))
    expect(form).to_be_visible()
    check_page(page, "sign-in")


def test_keyboard_alone_signs_in_and_moves_between_pages(page, server):
    """No mouse: the key field has focus on arrival, Enter signs in, Tab
    reaches every control with a visible focus ring, Enter follows links."""
    page.goto("/console/")
    key = page.get_by_label("API key")
    expect(key).to_be_focused()
    page.keyboard.type(server.bootstrap)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keys", level=1)).to_be_visible()

    # Walk forward with Tab until "Create key" has focus; each stop shows focus.
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {text: el.textContent.trim(), tag: el.tagName,
                    ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
        }""")
        assert focused["ring"], f"no visible focus on {focused}"
        if focused["tag"] == "A" and focused["text"] == "Create key":
            break
    else:
        raise AssertionError("Tab never reached the Create key link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create key", level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/keys/new$"))

    # The skip link (first in the page) moves focus to the content.
    skip = page.get_by_role("link", name="Skip to content")
    skip.focus()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_an_advanced_key_signs_in_without_sending_its_secret(page, server):
    """An advanced key signs the exchange in the browser (WebCrypto HMAC,
    DESIGN §6): the request carries the signature headers, never the secret."""
    slug = server.new_tenant()
    status, created, _ = server.call(
        "POST", "/api/v1/keys", server.root_token(), tenant=slug,
        json={"name": "signed admin", "scopes": ["admin:keys:read"], "security_level": "advanced"})
    assert status == 201, created
    secret, key_id = created["key"], created["id"]

    sent = []
    page.on("request", lambda req: sent.append(req) if req.url.endswith("/api/v1/token") else None)
    page.goto("/console/")
    page.get_by_label("API key").fill(secret)
    page.get_by_label("This is an advanced (signed-request) key").check()
    page.get_by_label("Key id").fill(key_id)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Keys", level=1)).to_be_visible()
    expect(page.locator(".who-name")).to_have_text("signed admin")

    assert len(sent) == 1
    request = sent[0]
    headers = request.all_headers()
    assert headers["authorization"].startswith("KM-HMAC-SHA256 ")
    assert headers["x-keymint-key-id"] == key_id
    everything = " ".join(f"{k}: {v}" for k, v in headers.items()) + (request.post_data or "")
    assert secret not in everything
    assert secret not in page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))")
