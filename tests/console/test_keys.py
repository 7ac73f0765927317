"""The console's key pages, from the user's side: sign in, the keys list
(search, filters, load more, bulk revoke), the create form, the key page
(rotate, revoke) and what a keys:self user sees. Every effect is checked
through the admin API too. Each test runs on both backends (the `server`
fixture) in a tenant of its own (`tenant`)."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime, timedelta, timezone

from console_harness import check_page, expect, forgive_refusals, http

SECRET = re.compile(r"^[a-z][a-z0-9]{0,9}_[0-9A-Za-z]{38}$")


# ------------------------------------------------------------------ helpers


def sign_in(page, secret: str, landing: str = "Keys"):
    """Signs in through the form and waits for the landing page's heading."""
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"#/sign-in$"))
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"#/keys$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(landing)
    # The first page of the list is in.
    expect(page.get_by_text(re.compile(r"^\d+ keys? shown"))).to_be_visible()


def admin_token(server, secret: str) -> str:
    return server.token(secret, audience=server.admin_audience)


def api(server, token: str, method: str, path: str, json=None):
    status, body, _ = server.call(method, f"/api/v1{path}", token, json=json)
    return status, body


def create_keys(server, token: str, specs) -> list[dict]:
    """Creates keys through the API; each spec is a create body."""
    made = []
    for spec in specs:
        status, body = api(server, token, "POST", "/keys", spec)
        assert status == 201, f"create {spec}: {status} {body}"
        made.append(body)
    return made


def exchange_status(server, secret: str) -> int:
    """The status of POST /api/v1/token with this secret (no audience asked)."""
    resp = http("POST", f"{server.origin}/api/v1/token",
                {"Authorization": f"ApiKey {secret}", "Content-Type": "application/json"}, b"{}")
    return resp.status


def rows(page):
    return page.locator("table.stack tbody tr")


def row_of(page, name: str):
    return rows(page).filter(has=page.get_by_role("link", name=name, exact=True))


def load_all(page, expected: int):
    """Clicks "Load more" until it is gone; checks the pages were 50 long."""
    shown = 50 if expected > 50 else expected
    expect(rows(page)).to_have_count(shown)
    more = page.get_by_role("button", name="Load more")
    while shown < expected:
        more.click()
        shown = min(shown + 50, expected)
        expect(rows(page)).to_have_count(shown)
    expect(more).to_be_hidden()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def storage_dump(page) -> str:
    return page.evaluate(
        "() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")


# -------------------------------------------------------------------- flows


def test_sign_in_with_the_bootstrap_key_lands_on_keys(page, server):
    sign_in(page, server.bootstrap)

    header = page.locator("header#top")
    # The bootstrap key's own view, to compare the header against.
    root = server.root_token()
    status, view = api(server, root, "GET", f"/keys/{_client_id(root)}")
    assert status == 200, view
    summary = header.locator("summary")
    expect(summary).to_contain_text(view["name"])
    expect(summary).to_contain_text("default")
    summary.click()
    who = header.locator(".who-list")
    expect(who).to_be_visible()
    for scope in ("admin:keys:write", "admin:settings", "admin:audit", "admin:tenants",
                  "admin:signing-keys", "keys:self", "tokens:introspect"):
        expect(who).to_contain_text(scope)
    summary.click()
    expect(row_of(page, view["name"])).to_have_count(1)
    check_page(page, "keys-list")


def _client_id(token: str) -> str:
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["client_id"]


def test_create_a_key_with_a_preset_shows_the_secret_once(page, server, tenant):
    sign_in(page, tenant.admin_secret)
    page.get_by_role("link", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create key")

    page.get_by_label("Name", exact=True).fill("billing export")
    page.get_by_label("Description").fill("Nightly export job")
    scopes = page.get_by_label("Scopes", exact=True)
    scopes.fill("read:billing")
    scopes.press("Enter")
    scopes.fill("write:reports,")
    expect(page.get_by_role("button", name="Remove read:billing")).to_be_visible()
    expect(page.get_by_role("button", name="Remove write:reports")).to_be_visible()
    # A chip is removable from the keyboard.
    page.get_by_role("button", name="Remove write:reports").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Remove write:reports")).to_have_count(0)
    expiry = page.get_by_role("group", name="Expires")
    expiry.get_by_label("30 days").check()
    check_page(page, "key-create")

    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Key “billing export” created")
    box = page.locator(".secret-box")
    expect(box).to_contain_text("will not be shown again")
    expect(box.get_by_role("button", name="Copy secret")).to_be_visible()
    secret = box.locator("code.secret").inner_text().strip()
    assert SECRET.match(secret), secret
    expect(page.get_by_role("link", name="Open the key page")).to_be_visible()
    check_page(page, "key-created")

    # The secret works, and the key is what the form said.
    assert exchange_status(server, secret) == 200
    token = admin_token(server, tenant.admin_secret)
    status, listed = api(server, token, "GET", "/keys?q=billing%20export")
    assert status == 200 and len(listed["items"]) == 1, listed
    view = listed["items"][0]
    assert view["scopes"] == ["read:billing"]
    assert view["description"] == "Nightly export job"
    lifetime = parse_time(view["expires_at"]) - parse_time(view["created_at"])
    assert abs(lifetime.total_seconds() - 30 * 86400) < 5, lifetime

    # Reload: the secret is gone from the page, the URL and the storages.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create key")
    assert secret not in page.content()
    assert secret not in page.url
    assert secret not in storage_dump(page)


def test_search_filter_and_load_more_across_120_keys(page, server, tenant):
    token = admin_token(server, tenant.admin_secret)
    specs = [{"name": f"alpha-{i:03d}", "owner": "alice", "scopes": ["read:a"]} for i in range(60)]
    specs += [{"name": f"beta-{i:03d}", "owner": "bob", "scopes": ["read:b"]} for i in range(60, 120)]
    made = create_keys(server, token, specs)
    revoked = [k["id"] for k in made[60:67]]
    status, body = api(server, token, "POST", "/keys/revoke", {"ids": revoked})
    assert status == 200 and len(body["revoked"]) == 7, body

    sign_in(page, tenant.admin_secret)
    # 120 keys and the tenant's admin key.
    load_all(page, 121)
    expect(page.get_by_text("121 keys shown.")).to_be_visible()

    search = page.get_by_label("Search")
    search.fill("ALPHA-05")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"q=ALPHA-05"))
    load_all(page, 10)
    for name in (f"alpha-{i:03d}" for i in range(50, 60)):
        expect(row_of(page, name)).to_have_count(1)
    check_page(page, "keys-search")

    search.fill("")
    page.get_by_label("Status").select_option("revoked")
    expect(page).to_have_url(re.compile(r"status=revoked"))
    load_all(page, 7)
    expect(rows(page).locator(".badge")).to_have_text(["revoked"] * 7)

    page.get_by_label("Status").select_option("")
    expect(page).not_to_have_url(re.compile(r"status="))
    page.get_by_label("Owner").fill("bob")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"owner=bob"))
    load_all(page, 60)
    expect(rows(page).filter(has_text="alpha-")).to_have_count(0)


def test_bulk_revoke_three_with_a_reason(page, server, tenant):
    token = admin_token(server, tenant.admin_secret)
    made = create_keys(server, token, [{"name": f"batch-{i}", "scopes": ["read:x"]} for i in range(5)])
    chosen = made[:3]
    sign_in(page, tenant.admin_secret)
    for key in chosen:
        page.get_by_label(f"Select {key['name']}", exact=True).check()
    page.get_by_role("button", name="Revoke selected (3)").click()
    dialog = page.get_by_role("dialog", name="Revoke 3 keys?")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason (kept in the audit log)").fill("laptop stolen")
    dialog.get_by_role("button", name="Revoke").click()
    expect(dialog).to_have_count(0)
    for key in chosen:
        expect(row_of(page, key["name"]).locator(".badge")).to_have_text("revoked")
    for key in made[3:]:
        expect(row_of(page, key["name"]).locator(".badge")).to_have_text("active")

    for key in chosen:
        status, view = api(server, token, "GET", f"/keys/{key['id']}")
        assert status == 200, view
        assert view["status"] == "revoked" and view["revoked_reason"] == "laptop stolen", view
    status, events = api(server, token, "GET", "/audit-events?action=key.revoked&limit=50")
    assert status == 200, events
    ours = [e for e in events["items"] if e["target_id"] in {k["id"] for k in chosen}]
    assert len(ours) == 3, events
    assert len({e["request_id"] for e in ours}) == 1 and ours[0]["request_id"], ours


def test_rotate_with_a_grace_period(page, server, tenant):
    token = admin_token(server, tenant.admin_secret)
    status, created = api(server, token, "POST", "/keys", {"name": "rotating", "scopes": ["read:x"]})
    assert status == 201, created
    old_secret = created["key"]
    sign_in(page, tenant.admin_secret)
    row_of(page, "rotating").get_by_role("link", name="rotating").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("rotating")
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()

    page.get_by_role("button", name="Rotate secret").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Grace period (seconds)").fill("6")
    dialog.get_by_role("button", name="Rotate").click()
    box = page.locator(".secret-box")
    expect(box).to_contain_text("will not be shown again")
    expect(box.get_by_role("button", name="Copy secret")).to_be_visible()
    new_secret = box.locator("code.secret").inner_text().strip()
    assert SECRET.match(new_secret) and new_secret != old_secret
    expect(page.locator(".rotation-note")).to_contain_text("previous secret keeps working until")

    status, view = api(server, token, "GET", f"/keys/{created['id']}")
    assert status == 200 and view["previous_expires_at"], view
    grace_ends = parse_time(view["previous_expires_at"])
    assert datetime.now(timezone.utc) < grace_ends, "the page took longer than the grace"
    assert exchange_status(server, old_secret) == 200
    assert exchange_status(server, new_secret) == 200
    # The rotation is in the key's activity, newest first.
    expect(page.locator(".key-activity tbody tr").first).to_contain_text("key.rotated")
    check_page(page, "key-page")

    time.sleep(max(0.0, (grace_ends - datetime.now(timezone.utc)).total_seconds()) + 1.0)
    assert exchange_status(server, old_secret) == 401
    assert exchange_status(server, new_secret) == 200
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("rotating")
    assert new_secret not in page.content()
    assert new_secret not in storage_dump(page)


def test_a_keys_self_user_sees_and_changes_only_its_own_keys(page, server, tenant):
    token = admin_token(server, tenant.admin_secret)
    # The tenant's admin lacks keys:self (no caller grants a reserved scope it
    # lacks): the root admin makes the developer's key.
    dev_secret = server.admin_key(tenant.slug, scopes=("keys:self", "read:things"),
                                  name="dev key", owner="dev@example.com")
    own = create_keys(server, token, [
        {"name": "dev-a", "owner": "dev@example.com", "scopes": ["read:things"]},
        {"name": "dev-b", "owner": "dev@example.com", "scopes": ["read:things"]}])
    other = create_keys(server, token, [{"name": "ops-only", "owner": "ops", "scopes": ["read:things"]}])[0]

    sign_in(page, dev_secret, landing="My keys")
    load_all(page, 3)
    for name in ("dev key", "dev-a", "dev-b"):
        expect(row_of(page, name)).to_have_count(1)
    expect(row_of(page, "ops-only")).to_have_count(0)
    expect(page.get_by_label("Owner")).to_have_count(0)

    # Someone else's key is not there for them, even by its address.
    page.goto(f"/console/#/keys/{other['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Key not found")
    assert forgive_refusals(page, 404, rf"/api/v1/keys/{other['id']}") == 1

    page.goto(f"/console/#/keys/{own[0]['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("dev-a")
    expect(page.get_by_role("button", name="Revoke")).to_be_visible()
    for absent in ("Edit", "Rotate secret", "Delete"):
        expect(page.get_by_role("button", name=absent)).to_have_count(0)

    # Create a key of its own: no owner field, only its own non-admin scopes.
    page.goto("/console/#/keys/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("Create a key of your own")
    expect(page.get_by_label("Owner")).to_have_count(0)
    page.get_by_label("Name", exact=True).fill("dev laptop")
    scopes = page.get_by_label("Scopes", exact=True)
    scopes.fill("admin:audit")
    scopes.press("Enter")
    expect(page.locator('[data-field="scopes"] .field-error')).to_contain_text("admin scope")
    scopes.fill("read:things")
    scopes.press("Enter")
    expect(page.get_by_role("button", name="Remove read:things")).to_be_visible()
    page.get_by_role("group", name="Expires").get_by_label("7 days").check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Key “dev laptop” created")
    secret = page.locator(".secret-box code.secret").inner_text().strip()
    assert exchange_status(server, secret) == 200

    page.get_by_role("link", name="Open the key page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("dev laptop")
    expect(page.get_by_role("heading", name="Activity")).to_have_count(0)
    page.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason (kept in the audit log)").fill("not needed")
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.locator(".key-status .badge")).to_have_text("revoked")
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)

    status, listed = api(server, token, "GET", "/keys?q=dev%20laptop")
    assert status == 200 and len(listed["items"]) == 1, listed
    view = listed["items"][0]
    assert view["owner"] == "dev@example.com", view
    assert view["status"] == "revoked" and view["revoked_reason"] == "not needed", view
    assert exchange_status(server, secret) == 401


def test_validation_errors_appear_next_to_their_fields(page, server, tenant):
    sign_in(page, tenant.admin_secret)
    page.goto("/console/#/keys/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("Create key")
    page.get_by_label("Name", exact=True).fill("bad input")

    scopes = page.get_by_label("Scopes", exact=True)
    scopes.fill("has space")
    scopes.press("Enter")
    scope_error = page.locator('[data-field="scopes"] .field-error')
    expect(scope_error).to_be_visible()
    expect(scope_error).to_contain_text("no spaces")
    expect(scopes).to_have_attribute("aria-invalid", "true")
    scopes.fill("")

    page.get_by_label("IP allow-list").fill("10.0.0.0/8\n10.0.0.1/8")
    page.get_by_label("Max token TTL").fill("7200")
    page.get_by_role("button", name="Create key").click()
    # Checked here first: the TTL is out of range.
    expect(page.locator('[data-field="max_token_ttl_s"] .field-error')).to_contain_text("30 to 3600")
    page.get_by_label("Max token TTL").fill("")
    page.get_by_role("button", name="Create key").click()
    # The server's answer, under the field it names.
    allow_error = page.locator('[data-field="ip_allowlist"] .field-error')
    expect(allow_error).to_be_visible()
    expect(allow_error).to_contain_text("host bits")
    expect(page.get_by_label("IP allow-list")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("IP allow-list")).to_be_focused()
    assert forgive_refusals(page, 400, r"/api/v1/keys\b") == 1
    check_page(page, "key-create-errors")

    token = admin_token(server, tenant.admin_secret)
    status, listed = api(server, token, "GET", "/keys?q=bad%20input")
    assert status == 200 and listed["items"] == [], listed


def test_expiry_presets_follow_the_tenants_policy(page, server, tenant):
    token = admin_token(server, tenant.admin_secret)
    status, body = api(server, token, "PATCH", "/settings", {"max_key_lifetime_s": 60 * 86400})
    assert status == 200, body
    sign_in(page, tenant.admin_secret)
    page.goto("/console/#/keys/new")
    expiry = page.get_by_role("group", name="Expires")
    expect(expiry).to_contain_text("The tenant allows at most 60 days")
    for allowed in ("7 days", "30 days", "60 days", "On a date"):
        expect(expiry.get_by_label(allowed)).to_be_enabled()
    for refused in ("90 days", "1 year", "Never"):
        radio = expiry.get_by_label(refused)
        expect(radio).to_be_disabled()
    expect(expiry.locator("label", has_text="1 year")).to_contain_text("longer than the tenant allows")
    expect(expiry.locator("label", has_text="Never")).to_contain_text("the tenant sets a maximum lifetime")
    # The longest allowed preset is chosen; the date picker stops at the limit.
    expect(expiry.get_by_label("60 days")).to_be_checked()
    expiry.get_by_label("On a date").check()
    date = page.get_by_label("Expiry date")
    expect(date).to_be_visible()
    limit = datetime.now().astimezone() + timedelta(days=60)
    expect(date).to_have_attribute("max", re.compile(
        "|".join(d.strftime("%Y-%m-%d") for d in (limit - timedelta(minutes=5), limit))))


def test_editing_metadata_sends_a_merge_patch(page, server, tenant):
    """The key page edits metadata as a JSON object; a member deleted in the
    text is removed on the server (sent as null in the merge patch), a
    nested change keeps its siblings."""
    token = admin_token(server, tenant.admin_secret)
    key, = create_keys(server, token, [{
        "name": "meta", "metadata": {"team": "data", "env": "prod", "contact": {"mail": "a@x", "pager": "1"}}}])
    sign_in(page, tenant.admin_secret)
    page.goto(f"/console/#/keys/{key['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("meta")
    # The key's entry in the status list, as its tokens name it.
    entry = key["status_list"]
    expect(page.get_by_text(f"index {entry['idx']} of {entry['uri']}")).to_be_visible()
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Metadata").fill(json.dumps({"team": "data", "contact": {"mail": "b@x", "pager": "1"}}))
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("b@x").first).to_be_visible()
    status, body = api(server, token, "GET", f"/keys/{key['id']}")
    assert status == 200
    assert body["metadata"] == {"team": "data", "contact": {"mail": "b@x", "pager": "1"}}
