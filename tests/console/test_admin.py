"""The console's administration pages, from the user's side: Try it,
settings (with the lock-out refusal), the audit log, tenants, signing keys,
and a session that expires. Each flow runs on both backends in a tenant of
its own; effects are checked through the admin API too."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from datetime import datetime

import pytest

from console_harness import Server, check_page, expect, forgive_refusals, http

# ------------------------------------------------------------------ helpers


def sign_in(page, secret: str):
    """Signs in on the console's own form and waits for the first page."""
    page.goto("/console/")
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#top .who")).to_be_visible()
    expect(page.locator("#page-title")).not_to_have_text("Sign in")


def open_nav(page, label: str):
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
    expect(page.locator("#page-title")).to_be_visible()


def admin_token(server, tenant) -> str:
    return server.token(tenant.admin_secret, audience=server.admin_audience)


def settings_of(server, slug: str) -> dict:
    status, body, _ = server.call("GET", "/api/v1/settings", server.root_token(), tenant=slug)
    assert status == 200, (status, body)
    return body


def field_box(scope, label: str):
    """The .field wrapper (inside `scope`) of the control labelled `label`."""
    page = getattr(scope, "page", scope)
    return scope.locator(".field").filter(has=page.get_by_label(label, exact=True))


def all_events(server, slug: str, **query) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {**query, "limit": "200", **({"cursor": cursor} if cursor else {})}
        qs = "&".join(f"{k}={v}" for k, v in params.items())
        status, body, _ = server.call("GET", f"/api/v1/audit-events?{qs}", server.root_token(),
                                      tenant=slug)
        assert status == 200, (status, body)
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


# ------------------------------------------------------------------- Try it


def test_try_it_exchanges_a_key_and_decodes_the_token(page, server, tenant):
    token = admin_token(server, tenant)
    status, created, _ = server.call("POST", "/api/v1/keys", token,
                                     json={"name": "try me", "scopes": ["orders:read", "orders:write"]})
    assert status == 201, created
    sign_in(page, tenant.admin_secret)
    open_nav(page, "Try it")
    expect(page.locator("#page-title")).to_have_text("Try it")

    page.get_by_label("API key").fill(created["key"])
    page.get_by_label("Scope").fill("orders:read")
    page.get_by_label("Expires in (seconds)").fill("120")
    page.get_by_role("button", name="Get a token").click()

    result = page.locator(".try-result")
    expect(result.get_by_role("heading", name="Token issued")).to_be_visible()
    claims = json.loads(result.locator("pre.jwt-claims").inner_text())
    header = json.loads(result.locator("pre.jwt-header").inner_text())
    assert claims["client_id"] == created["id"]
    assert claims["aud"] == f"urn:keymint:tenant:{tenant.slug}"
    assert claims["scope"] == "orders:read"
    assert claims["tid"] == tenant.slug
    assert claims["exp"] - claims["iat"] == 120
    assert header["typ"] == "at+jwt" and header["kid"]
    expect(result.locator('[data-prop="token_type"]')).to_have_text("Bearer")
    expect(result.locator('[data-prop="expires_in"]')).to_have_text("120 s")
    expect(result.locator('[data-prop="scope"]')).to_have_text("orders:read")
    expect(result.locator('[data-prop="exp"]')).to_contain_text(re.compile(r"\(in [12] min\)"))
    raw = result.locator("code.token").inner_text()
    assert raw.count(".") == 2
    expect(result.get_by_role("button", name="Copy token")).to_be_visible()
    # The key is gone from the input, and was never stored or put in the URL.
    expect(page.get_by_label("API key")).to_have_value("")
    stored = page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert created["key"] not in stored and raw not in stored
    assert created["key"] not in page.url
    check_page(page, "try-it")

    # OAuth errors appear next to the field they are about.
    cases = [
        ({"Scope": "orders:delete"}, "Scope", "invalid_scope"),
        ({"Audience": "https://nowhere.example"}, "Audience", "invalid_target"),
    ]
    for values, label, code in cases:
        page.get_by_label("API key").fill(created["key"])
        page.get_by_label("Scope").fill("")
        for name, value in values.items():
            page.get_by_label(name).fill(value)
        page.get_by_role("button", name="Get a token").click()
        expect(field_box(page, label).locator(".field-error")).to_contain_text(code)
        expect(page.get_by_label("API key")).to_have_value("")
    page.get_by_label("Audience").fill("")
    page.get_by_label("API key").fill("km_" + "A" * 32 + "000000")
    page.get_by_role("button", name="Get a token").click()
    expect(field_box(page, "API key").locator(".field-error")).to_contain_text("invalid_client")
    expect(page.get_by_label("API key")).to_have_value("")
    assert forgive_refusals(page, 400, r"/api/v1/token\b") == 2
    assert forgive_refusals(page, 401, r"/api/v1/token\b") == 1


# ----------------------------------------------------------------- Settings


def test_settings_save_changes_and_refuse_a_lock_out_until_forced(page, server, tenant):
    sign_in(page, tenant.admin_secret)
    open_nav(page, "Settings")
    form = page.locator("form.settings-form")
    ttl = page.get_by_label("Default token lifetime (seconds)")
    expect(ttl).to_have_value("900")
    expect(field_box(page, "Default token lifetime (seconds)").locator(".reading")).to_have_text("= 15 min.")
    check_page(page, "settings")

    # A plain change: only the changed member is sent.
    patches = []
    page.on("request", lambda r: patches.append(r.post_data)
            if r.method == "PATCH" and r.url.endswith("/api/v1/settings") else None)
    ttl.fill("600")
    expect(field_box(page, "Default token lifetime (seconds)").locator(".reading")).to_have_text("= 10 min.")
    page.get_by_label("Allowed IP ranges").fill("127.0.0.0/8\n::1/128")
    form.get_by_role("button", name="Save changes").click()
    expect(page.locator("#notices")).to_contain_text("Saved")
    assert json.loads(patches[-1]) == {"default_token_ttl_s": 600,
                                       "allowed_ip_ranges": ["127.0.0.0/8", "::1/128"]}
    saved = settings_of(server, tenant.slug)
    assert saved["default_token_ttl_s"] == 600
    assert saved["allowed_ip_ranges"] == ["127.0.0.0/8", "::1/128"]

    # A value the server refuses: the error sits under its field.
    page.get_by_label("Maximum token lifetime (seconds)").fill("5000")
    form.get_by_role("button", name="Save changes").click()
    expect(field_box(page, "Maximum token lifetime (seconds)").locator(".field-error")) \
        .to_contain_text("30 to 3600")
    form.get_by_role("button", name="Discard changes").click()
    expect(page.get_by_label("Maximum token lifetime (seconds)")).to_have_value("3600")
    assert forgive_refusals(page, 400, r"/api/v1/settings\b") == 1

    # A lock-out: explained, nothing saved.
    page.get_by_label("Require an IP allow-list on every key").check()
    form.get_by_role("button", name="Save changes").click()
    lockout = page.locator(".lockout")
    expect(lockout).to_contain_text("would lock out the key you are signed in with")
    expect(lockout).to_contain_text("has none")
    expect(lockout).not_to_contain_text('"force"')
    assert settings_of(server, tenant.slug)["require_ip_allowlist"] is False
    check_page(page, "settings-lockout")

    # Forcing asks again; cancelling that saves nothing.
    lockout.get_by_role("button", name="Save anyway (force)").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Lock yourself out?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert settings_of(server, tenant.slug)["require_ip_allowlist"] is False

    lockout.get_by_role("button", name="Save anyway (force)").click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, save and lock me out").click()
    expect(page.locator("#notices")).to_contain_text("Saved with force")
    assert json.loads(patches[-1]) == {"require_ip_allowlist": True, "force": True}
    assert settings_of(server, tenant.slug)["require_ip_allowlist"] is True
    expect(lockout).to_be_hidden()
    assert forgive_refusals(page, 422, r"/api/v1/settings\b") == 1


# ---------------------------------------------------------------- Audit log


def test_audit_log_filters_and_loads_more(page, server, tenant):
    root = server.root_token()
    ids = []
    for i in range(55):
        status, created, _ = server.call("POST", "/api/v1/keys", root, tenant=tenant.slug,
                                         json={"name": f"audit {i}", "owner": "audit-test"})
        assert status == 201, created
        ids.append(created["id"])
    status, body, _ = server.call("POST", "/api/v1/keys/revoke", root, tenant=tenant.slug,
                                  json={"ids": ids[:3], "reason": "audit test"})
    assert status == 200 and sorted(body["revoked"]) == sorted(ids[:3]), body
    total = len(all_events(server, tenant.slug))
    assert total > 55

    sign_in(page, tenant.admin_secret)
    open_nav(page, "Audit log")
    rows = page.locator("table.audit-table tbody tr")
    expect(rows).to_have_count(50)
    expect(page.get_by_text("50 events shown, more available.")).to_be_visible()
    # The newest event first: the bulk revoke.
    expect(rows.first).to_contain_text("key.revoked")
    check_page(page, "audit")

    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(total)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # Details open on demand.
    first_details = rows.first.locator("details")
    first_details.locator("summary").click()
    expect(first_details.locator("pre")).to_contain_text('"reason": "audit test"')

    # Filter by action: the filter goes into the hash, only those rows remain.
    page.get_by_label("Action").select_option("key.revoked")
    expect(page).to_have_url(re.compile(r"#/audit\?action=key\.revoked$"))
    expect(rows).to_have_count(3)
    for i in range(3):
        expect(rows.nth(i).locator("td").nth(1)).to_have_text("key.revoked")
        expect(rows.nth(i).locator("td").nth(2)).to_have_text("success")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # Narrower still: one key's events, across actions.
    page.get_by_label("Key id").fill(ids[0])
    page.get_by_label("Action").select_option("")  # a new action applies the filters at once
    expect(page).to_have_url(re.compile(rf"#/audit\?key_id={ids[0]}$"))
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("key.revoked")
    expect(rows.nth(1)).to_contain_text("key.created")

    # A reload keeps the filters (they live in the URL).
    page.reload()
    expect(page.get_by_label("Key id")).to_have_value(ids[0])
    expect(rows).to_have_count(2)

    # A time window after everything: nothing.
    page.get_by_label("Key id").fill("")
    page.get_by_label("Since").fill("2099-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No events match.")).to_be_visible()
    assert re.search(r"since=(2098-12-31|2099-01-0[12])T", page.url), page.url


# ------------------------------------------------------------------ Tenants


def test_tenants_create_rename_act_in_and_back(page, server):
    slug = f"c-{secrets.token_hex(5)}"
    sign_in(page, server.bootstrap)
    open_nav(page, "Tenants")
    expect(page.locator("#page-title")).to_have_text("Tenants")
    create = page.locator("form.create-tenant")

    # Errors sit next to their fields.
    create.get_by_label("Slug").fill("Not A Slug")
    create.get_by_label("Name").fill("")
    create.get_by_role("button", name="Create tenant").click()
    expect(field_box(create, "Slug").locator(".field-error")).to_contain_text("must match")
    expect(field_box(create, "Name").locator(".field-error")).to_be_visible()

    create.get_by_label("Slug").fill(slug)
    create.get_by_label("Name").fill("Made in the console")
    create.get_by_role("button", name="Create tenant").click()
    row = page.locator(f'tr[data-slug="{slug}"]')
    expect(row).to_contain_text("Made in the console")
    status, listed, _ = server.call("GET", "/api/v1/tenants?limit=200", server.root_token())
    assert status == 200
    assert any(t["slug"] == slug and t["name"] == "Made in the console" for t in listed["items"])

    # The same slug again: refused next to the slug.
    create.get_by_label("Slug").fill(slug)
    create.get_by_label("Name").fill("Twice")
    create.get_by_role("button", name="Create tenant").click()
    expect(field_box(create, "Slug").locator(".field-error")).to_contain_text("never reused")
    assert forgive_refusals(page, 400, r"/api/v1/tenants\b") == 1
    assert forgive_refusals(page, 409, r"/api/v1/tenants\b") == 1
    check_page(page, "tenants")

    # Rename in place.
    row.get_by_role("button", name="Rename").click()
    row.get_by_label(f"New name for {slug}").fill("Renamed in the console")
    row.get_by_role("button", name="Save").click()
    expect(row.locator('td[data-label="Name"]')).to_have_text("Renamed in the console")
    expect(row.get_by_role("button", name="Rename")).to_be_focused()
    status, listed, _ = server.call("GET", "/api/v1/tenants?limit=200", server.root_token())
    assert any(t["slug"] == slug and t["name"] == "Renamed in the console" for t in listed["items"])

    # Act in it: the keys list shows that tenant's keys; the header says so.
    status, key, _ = server.call("POST", "/api/v1/keys", server.root_token(), tenant=slug,
                                 json={"name": f"only in {slug}"})
    assert status == 201, key
    row.get_by_role("button", name="Act in this tenant").click()
    expect(page).to_have_url(re.compile(r"#/keys$"))
    acting = page.locator("#top .acting")
    expect(acting).to_contain_text(f"Acting in tenant {slug}")
    keys = page.locator("table tbody tr")
    expect(keys).to_have_count(1)
    expect(keys.first).to_contain_text(f"only in {slug}")
    # Settings now read the chosen tenant.
    open_nav(page, "Settings")
    expect(page.get_by_text(f"Policy of tenant {slug}.")).to_be_visible()
    check_page(page, "tenants-acting")

    # Back home: pages show the home tenant again.
    acting.get_by_role("button", name="Back to default").click()
    expect(page.locator("#top .acting")).to_have_count(0)
    expect(page.get_by_text("Policy of tenant default.")).to_be_visible()
    open_nav(page, "Keys")
    expect(page.locator("table tbody")).not_to_contain_text(f"only in {slug}")
    assert page.evaluate("() => JSON.parse(sessionStorage.getItem('keymint.session')).actingTenant") is None


# ------------------------------------------------------------- Signing keys

SIGNING_PREPUBLISH_S = 8


class TestSigningKeys:
    """On a server of its own (per backend), whose next key may sign after a
    few seconds: rotation succeeds, a second one right after is the explained
    409, and nothing here disturbs the signing keys other tests rely on."""

    @pytest.fixture(scope="class", params=["sqlite", "postgres"])
    @classmethod
    def server(cls, request, keymint_bin, tmp_path_factory):
        postgres_url = None
        if request.param == "postgres":
            postgres_url = os.environ.get("KEYMINT_TEST_POSTGRES_URL")
            if not postgres_url:
                if os.environ.get("CI") == "true":
                    pytest.fail("CI=true but KEYMINT_TEST_POSTGRES_URL is not set")
                pytest.skip("KEYMINT_TEST_POSTGRES_URL is not set")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("KEYMINT__SIGNING__PREPUBLISH_S", str(SIGNING_PREPUBLISH_S))
            env.setenv("KEYMINT__SIGNING__JWKS_MAX_AGE_S", "2")
            env.setenv("KEYMINT__SIGNING__RELOAD_S", "1")
            srv = Server(keymint_bin, request.param,
                         tmp_path_factory.mktemp(f"keymint-signing-{request.param}"), postgres_url)
        yield srv
        srv.stop()

    @staticmethod
    def keys(server) -> list[dict]:
        status, body, _ = server.call("GET", "/api/v1/signing-keys", server.root_token())
        assert status == 200, body
        return body["items"]

    def test_signing_keys_rotate_and_emergency_revoke(self, page, server):
        sign_in(page, server.bootstrap)
        open_nav(page, "Signing keys")
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator('tr[data-state="active"]')).to_have_count(1)
        expect(page.locator('tr[data-state="next"]')).to_have_count(1)
        check_page(page, "signing-keys")

        # Wait until the next key has been published long enough to sign.
        (first_next,) = [k for k in self.keys(server) if k["state"] == "next"]
        age = time.time() - datetime.fromisoformat(first_next["created_at"].replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, SIGNING_PREPUBLISH_S + 0.5 - age))

        rotate = page.get_by_role("button", name="Rotate now")
        rotate.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(first_next["kid"][:8])
        dialog.get_by_role("button", name="Rotate now").click()
        status_box = page.locator(".signing-status")
        expect(status_box).to_contain_text("Rotated.")
        expect(rows).to_have_count(3)
        after = self.keys(server)
        promoted = next(k for k in after if k["kid"] == first_next["kid"])
        assert promoted["state"] in ("next", "active"), promoted

        # Once the promoted key signs, the only next key is brand new: a
        # second rotation is refused, and the page says why.
        time.sleep(1.5)
        rotate.click()
        page.get_by_role("dialog").get_by_role("button", name="Rotate now").click()
        expect(status_box).to_contain_text("Not rotated: the next key was published only")
        expect(status_box).to_contain_text("signing.prepublish_s")
        assert forgive_refusals(page, 409, r"/api/v1/signing-keys/rotate\b") == 1
        check_page(page, "signing-keys-409")

        # Emergency revoke of the next key, after typing the start of its kid.
        (young,) = [k for k in self.keys(server) if k["state"] == "next"]
        row = page.locator(f'tr[data-kid="{young["kid"]}"]')
        row.get_by_role("button", name=re.compile("Emergency revoke")).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("becomes inactive at once")
        confirm = dialog.get_by_label(re.compile("first 8 characters"))
        confirm.fill("wrong!!!")
        dialog.get_by_role("button", name="Revoke key").click()
        expect(dialog).to_be_visible()  # the typed check blocks it
        assert next(k for k in self.keys(server) if k["kid"] == young["kid"])["state"] == "next"
        confirm.fill(young["kid"][:8])
        dialog.get_by_role("button", name="Revoke key").click()
        expect(status_box).to_contain_text("its tokens are inactive")
        expect(page.locator(f'tr[data-kid="{young["kid"]}"]')).to_have_attribute("data-state", "revoked")

        revoked = next(k for k in self.keys(server) if k["kid"] == young["kid"])
        assert revoked["state"] == "revoked" and revoked["revoked_at"], revoked
        jwks = http("GET", f"{server.origin}/.well-known/jwks.json").json()
        assert young["kid"] not in [k["kid"] for k in jwks["keys"]]
        # The console session (signed by the first key) still works.
        expect(page.locator("#top .who")).to_be_visible()


# ------------------------------------------------------------------ Session


def test_session_expires_back_to_sign_in_and_sign_out_clears_the_token(page, server, tenant):
    status, body, _ = server.call("PATCH", "/api/v1/settings", server.root_token(), tenant=tenant.slug,
                                  json={"default_token_ttl_s": 30})
    assert status == 200, body
    sign_in(page, tenant.admin_secret)
    token = page.evaluate("() => JSON.parse(sessionStorage.getItem('keymint.session')).token")
    claims = json.loads(page.evaluate(
        "(t) => new TextDecoder().decode(Uint8Array.from(atob(t.split('.')[1].replace(/-/g, '+')"
        ".replace(/_/g, '/')), (c) => c.charCodeAt(0)))", token))
    assert claims["exp"] - claims["iat"] == 30
    url_before = page.url

    # No reload: the console notices the end of the token by itself.
    expect(page.locator("#page-title")).to_have_text("Sign in", timeout=45_000)
    expect(page.get_by_role("status").filter(has_text="Your session expired")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('keymint.session')") is None
    assert url_before != page.url
    check_page(page, "sign-in-expired")

    # Signing out removes the token from sessionStorage.
    sign_in(page, tenant.admin_secret)
    token = page.evaluate("() => JSON.parse(sessionStorage.getItem('keymint.session')).token")
    assert token
    page.locator("#top").get_by_role("button", name="Sign out").click()
    expect(page.locator("#page-title")).to_have_text("Sign in")
    assert page.evaluate("() => sessionStorage.getItem('keymint.session')") is None
    stored = page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert token not in stored
