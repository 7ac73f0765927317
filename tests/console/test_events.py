"""The console's security-event pages, from the user's side: register an
event stream (and see a refused receiver explained at its field), change and
delete it; watch deliveries arrive at a real receiver, fail at one that is
down, replay them; the tenant's expiry warnings and leak response in
Settings; a key reported leaked by a signed leak report. Each flow runs on
both backends in a tenant of its own; effects are checked through the admin
API and at the receiver too."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

import pytest

from console_harness import (LEAK_SENDER, TENANT_ADMIN_SCOPES, Receiver, Tenant, check_page,
                             expect, forgive_refusals, free_port, set_claims)

EVENTS_ADMIN_SCOPES = (*TENANT_ADMIN_SCOPES, "admin:events")
PREFIX = "urn:keymint:event:"
KEY_REVOKED = f"{PREFIX}key-revoked"
KEY_LEAKED = f"{PREFIX}key-leaked"
METADATA_ADDRESS = "http://169.254.169.254/"
# Deliveries are polled every 250 ms and a down receiver is given up after
# two attempts (console_harness.EVENTS_TOML): seconds, on a busy machine too.
DELIVERY_TIMEOUT_S = 30

# ------------------------------------------------------------------ helpers


@pytest.fixture
def events_tenant(server) -> Tenant:
    """A new tenant whose administrator also holds admin:events."""
    slug = server.new_tenant()
    return Tenant(slug=slug, admin_secret=server.admin_key(slug, scopes=EVENTS_ADMIN_SCOPES))


@pytest.fixture
def leak_sender():
    """The harness's trusted leak reporter; without `cryptography` the test
    skips, and fails under CI=true (where .ci/requirements.txt brings it)."""
    if LEAK_SENDER is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the python module `cryptography` is missing "
                        "(pip install -r .ci/requirements.txt)", pytrace=False)
        pytest.skip("needs the python module `cryptography`")
    return LEAK_SENDER


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def sign_in(page, secret: str):
    page.goto("/console/")
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#top .who")).to_be_visible()
    expect(page.locator("#page-title")).not_to_have_text("Sign in")


def open_nav(page, label: str):
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
    expect(page.locator("#page-title")).to_be_visible()


def field_box(scope, label: str):
    """The .field wrapper (inside `scope`) of the control labelled `label`."""
    page = getattr(scope, "page", scope)
    return scope.locator(".field").filter(has=page.get_by_label(label, exact=True))


def call(server, token: str, method: str, path: str, json=None):
    status, body, _ = server.call(method, f"/api/v1{path}", token, json=json)
    return status, body


def streams_of(server, token: str) -> list[dict]:
    status, body = call(server, token, "GET", "/event-streams")
    assert status == 200, body
    return body["items"]


def new_key(server, token: str, name: str) -> dict:
    status, created = call(server, token, "POST", "/keys", {"name": name, "scopes": ["orders:read"]})
    assert status == 201, created
    return created


def event_checkbox(scope, name: str):
    return scope.get_by_role("checkbox", name=re.compile(rf"^{re.escape(name)} \("))


def delivery_rows(page):
    return page.locator("table.deliveries-table tbody tr")


def refresh_until(page, locator, count: int = 1):
    """Clicks the deliveries' Refresh until `locator` matches `count` rows:
    the worker delivers in the background, the page shows what it has done."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while locator.count() != count:
        assert time.monotonic() < deadline, f"still {locator.count()} rows, not {count}"
        time.sleep(0.4)
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator("#notices")).to_contain_text("Deliveries refreshed")
        page.locator("#notices .notice").evaluate_all("(items) => items.forEach((n) => n.remove())")


def wait_for(predicate, what: str):
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# ------------------------------------------------------------------ streams


def test_register_a_stream_refuse_a_metadata_address_edit_and_delete(page, server, events_tenant,
                                                                     receiver):
    token = server.token(events_tenant.admin_secret, audience=server.admin_audience)
    sign_in(page, events_tenant.admin_secret)
    open_nav(page, "Events")
    expect(page.locator("#page-title")).to_have_text("Events")
    expect(page.get_by_text("No streams yet")).to_be_visible()
    expect(page.get_by_text("No leak reports")).to_be_visible()
    form = page.locator("form.stream-form")

    # Nothing typed: said at the fields, nothing sent.
    form.get_by_role("button", name="Register stream").click()
    expect(field_box(form, "Endpoint").locator(".field-error")).to_contain_text("URL")
    expect(form.get_by_label("Endpoint")).to_be_focused()

    # A cloud metadata address: the server's 422 sits at the endpoint field.
    form.get_by_label("Endpoint").fill(METADATA_ADDRESS)
    form.get_by_label("Audience").fill("https://receiver.example")
    form.get_by_role("button", name="Register stream").click()
    error = field_box(form, "Endpoint").locator(".field-error")
    expect(error).to_contain_text("169.254.169.254 is not a public address")
    expect(form.get_by_label("Endpoint")).to_have_attribute("aria-invalid", "true")
    assert forgive_refusals(page, 422, r"/api/v1/event-streams\b") == 1
    assert streams_of(server, token) == []

    # Registered: two chosen events, a bearer secret.
    form.get_by_label("Endpoint").fill(receiver.url)
    expect(event_checkbox(form, "key-revoked")).to_be_hidden()
    form.get_by_label("All events").uncheck()
    event_checkbox(form, "key-revoked").check()
    event_checkbox(form, "key-leaked").check()
    form.get_by_label("Bearer secret (optional)").fill("s3cret-bearer-0123456789")
    form.get_by_role("button", name="Register stream").click()
    expect(page.locator("#notices")).to_contain_text("registered")
    rows = page.locator("table.streams-table tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row.locator('td[data-label="Endpoint"]')).to_have_text(f"127.0.0.1:{receiver.port}/events")
    expect(row.locator('td[data-label="Events"] li')).to_have_text(["key-revoked", "key-leaked"])
    expect(row.locator('td[data-label="Status"]')).to_have_text("enabled")
    expect(row.locator('td[data-label="Secret"]')).to_have_text("bearer")
    # A fresh form, the typed secret gone from the page.
    expect(page.locator("form.stream-form").get_by_label("Endpoint")).to_have_value("")
    assert "s3cret-bearer" not in page.content()
    (stream,) = streams_of(server, token)
    assert stream["endpoint"] == receiver.url
    assert stream["audience"] == "https://receiver.example"
    assert stream["events"] == [KEY_REVOKED, KEY_LEAKED]
    assert stream["enabled"] is True and stream["has_bearer_secret"] is True
    check_page(page, "events")

    # Its page: details and (no) deliveries.
    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"#/events/{stream['id']}$"))
    expect(page.locator("#page-title")).to_have_text(f"Stream to 127.0.0.1:{receiver.port}/events")
    expect(page.get_by_text("No deliveries yet")).to_be_visible()

    # Edit: all events, another audience, the secret removed.
    page.get_by_role("button", name="Edit").click()
    edit = page.locator("form.stream-form")
    expect(edit.get_by_label("All events")).not_to_be_checked()
    expect(event_checkbox(edit, "key-revoked")).to_be_checked()
    edit.get_by_label("All events").check()
    edit.get_by_label("Audience").fill("urn:example:receiver")
    edit.get_by_label("Remove it (no Authorization header)").check()
    patches = []
    page.on("request", lambda r: patches.append(r.post_data)
            if r.method == "PATCH" and "/api/v1/event-streams/" in r.url else None)
    edit.get_by_role("button", name="Save changes").click()
    expect(page.locator("#notices")).to_contain_text("Saved")
    assert json.loads(patches[-1]) == {"audience": "urn:example:receiver", "events": None,
                                       "bearer_secret": None}
    details = page.locator(".key-details")
    expect(details).to_contain_text("all events")
    expect(details).to_contain_text("urn:example:receiver")
    (stream,) = streams_of(server, token)
    assert stream["events"] is None and stream["has_bearer_secret"] is False
    assert stream["audience"] == "urn:example:receiver"

    # The metadata address through an edit: refused at the field too.
    page.get_by_role("button", name="Edit").click()
    edit = page.locator("form.stream-form")
    edit.get_by_label("Endpoint").fill(METADATA_ADDRESS)
    edit.get_by_role("button", name="Save changes").click()
    expect(field_box(edit, "Endpoint").locator(".field-error")).to_contain_text("not a public address")
    assert forgive_refusals(page, 422, r"/api/v1/event-streams/") == 1
    edit.get_by_role("button", name="Cancel").click()
    expect(page.locator("form.stream-form")).to_have_count(0)

    # Disable, then enable again, with one button.
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".key-status")).to_contain_text("disabled")
    assert streams_of(server, token)[0]["enabled"] is False
    page.get_by_role("button", name="Enable").click()
    expect(page.locator(".key-status")).to_contain_text("enabled")
    assert streams_of(server, token)[0]["enabled"] is True

    # Delete, after a confirmation.
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete the stream to")
    dialog.get_by_role("button", name="Delete stream").click()
    expect(page).to_have_url(re.compile(r"#/events$"))
    expect(page.get_by_text("No streams yet")).to_be_visible()
    assert streams_of(server, token) == []


def test_deliveries_arrive_fail_at_a_down_receiver_and_replay(page, server, events_tenant,
                                                              receiver):
    token = server.token(events_tenant.admin_secret, audience=server.admin_audience)
    secret = "bearer-for-the-receiver-0001"
    status, good = call(server, token, "POST", "/event-streams",
                        {"endpoint": receiver.url, "audience": "https://receiver.example",
                         "events": [KEY_REVOKED], "bearer_secret": secret})
    assert status == 201, good
    down_port = free_port()
    status, down = call(server, token, "POST", "/event-streams",
                        {"endpoint": f"http://127.0.0.1:{down_port}/events",
                         "audience": "https://down.example", "events": [KEY_REVOKED]})
    assert status == 201, down
    key = new_key(server, token, "to be revoked")
    status, body = call(server, token, "POST", f"/keys/{key['id']}/revoke", {"reason": "events test"})
    assert status == 200, body

    sign_in(page, events_tenant.admin_secret)
    page.goto(f"/console/#/events/{good['id']}")
    rows = delivery_rows(page)
    refresh_until(page, page.locator('table.deliveries-table tr[data-state="delivered"]'))
    row = rows.first
    expect(row.locator('td[data-label="Event"]')).to_contain_text("key-revoked")
    expect(row.locator('td[data-label="Subject"] a')).to_have_attribute("href", f"#/keys/{key['id']}")
    expect(row.locator('td[data-label="Attempts"]')).to_have_text("1")
    expect(row.locator('td[data-label="Last attempt"]')).to_contain_text("HTTP 202")
    jti = row.get_attribute("data-id")
    (got,) = receiver.received()
    assert got["headers"]["authorization"] == f"Bearer {secret}"
    assert got["headers"]["content-type"] == "application/secevent+jwt"
    claims = set_claims(got["body"])
    assert claims["jti"] == jti and claims["aud"] == "https://receiver.example"
    assert KEY_REVOKED in claims["events"]
    check_page(page, "event-stream")

    # Replay a delivered one: queued again, then sent again with the same jti.
    row.get_by_role("button", name="Replay").click()
    expect(page.locator("#notices")).to_contain_text("queued again")
    expect(rows.first).to_have_attribute("data-state", "pending")
    expect(rows.first).to_be_focused()
    wait_for(lambda: len(receiver.received()) == 2, "the replayed delivery")
    assert set_claims(receiver.received()[1]["body"])["jti"] == jti
    refresh_until(page, page.locator('table.deliveries-table tr[data-state="delivered"]'))

    # The down receiver: given up after two attempts, the error shown.
    page.goto(f"/console/#/events/{down['id']}")
    failed = page.locator('table.deliveries-table tr[data-state="failed"]')
    refresh_until(page, failed)
    expect(failed.locator('td[data-label="Attempts"]')).to_have_text("2")
    expect(failed.locator('td[data-label="Last attempt"] .delivery-error')).not_to_be_empty()
    expect(failed.locator('td[data-label="Next / delivered"]')).to_have_text("given up")
    expect(page.locator(".key-status")).to_contain_text("1 failed")
    check_page(page, "event-stream-failed")

    # Filter by state: in the URL, only those rows.
    page.get_by_label("State").select_option("delivered")
    expect(page).to_have_url(re.compile(r"\?state=delivered$"))
    expect(page.get_by_text("No delivered deliveries.")).to_be_visible()
    page.get_by_label("State").select_option("failed")
    expect(rows).to_have_count(1)

    # The receiver comes up; a replay reaches it.
    late = Receiver(port=down_port)
    try:
        page.get_by_label("State").select_option("")
        expect(page).to_have_url(re.compile(rf"#/events/{down['id']}$"))
        rows.first.get_by_role("button", name="Replay").click()
        expect(rows.first).to_have_attribute("data-state", "pending")
        expect(rows.first.locator('td[data-label="Attempts"]')).to_have_text("0")
        refresh_until(page, page.locator('table.deliveries-table tr[data-state="delivered"]'))
        wait_for(lambda: len(late.received()) == 1, "the replay at the receiver that came up")
    finally:
        late.close()
    (after,) = [s for s in streams_of(server, token) if s["id"] == down["id"]]
    assert after["failed"] == 0 and after["pending"] == 0, after

    # More than a page: "Load more" follows next_cursor.
    keys = [new_key(server, token, f"bulk {i}")["id"] for i in range(26)]
    status, body = call(server, token, "POST", "/keys/revoke", {"ids": keys, "reason": "bulk"})
    assert status == 200 and len(body["revoked"]) == 26, body
    page.goto(f"/console/#/events/{good['id']}")
    expect(rows).to_have_count(25)
    expect(page.get_by_text("25 deliveries shown, more available.")).to_be_visible()
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(27)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    # Newest first: the bulk revocations before the first key's.
    expect(rows.last.locator('td[data-label="Subject"]')).to_have_text(key["id"])


# ----------------------------------------------------------------- settings


def test_settings_expiry_warnings_and_leak_response_round_trip(page, server, tenant):
    sign_in(page, tenant.admin_secret)
    # Without admin:events there is no Events page.
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    expect(nav.get_by_role("link", name="Events")).to_have_count(0)
    open_nav(page, "Settings")
    days = page.get_by_label("Expiry warnings (days before expiry)")
    response = page.get_by_label("When a key's secret is reported leaked")
    expect(days).to_have_value("")
    expect(response).to_have_value("revoke")
    form = page.locator("form.settings-form")

    patches = []
    page.on("request", lambda r: patches.append(r.post_data)
            if r.method == "PATCH" and r.url.endswith("/api/v1/settings") else None)
    days.fill("7, 30 1,7")
    response.select_option("notify")
    form.get_by_role("button", name="Save changes").click()
    expect(page.locator("#notices")).to_contain_text("Saved: expiry_warning_days, leak_response")
    assert json.loads(patches[-1]) == {"expiry_warning_days": [30, 7, 1], "leak_response": "notify"}
    expect(days).to_have_value("30, 7, 1")
    status, saved, _ = server.call("GET", "/api/v1/settings", server.root_token(), tenant=tenant.slug)
    assert status == 200
    assert saved["expiry_warning_days"] == [30, 7, 1] and saved["leak_response"] == "notify"
    check_page(page, "settings-events")

    # Not numbers: said at the field, nothing sent.
    sent = len(patches)
    days.fill("a week")
    form.get_by_role("button", name="Save changes").click()
    expect(field_box(page, "Expiry warnings (days before expiry)").locator(".field-error")) \
        .to_contain_text("whole numbers")
    assert len(patches) == sent

    # Out of range: the server's refusal, at the field.
    days.fill("0, 5000")
    form.get_by_role("button", name="Save changes").click()
    expect(field_box(page, "Expiry warnings (days before expiry)").locator(".field-error")) \
        .to_contain_text("1 to 3650")
    assert forgive_refusals(page, 400, r"/api/v1/settings\b") == 1

    # Empty: no warnings; back to revoking.
    days.fill("")
    response.select_option("revoke")
    form.get_by_role("button", name="Save changes").click()
    expect(page.locator("#notices")).to_contain_text("Saved: expiry_warning_days, leak_response")
    status, saved, _ = server.call("GET", "/api/v1/settings", server.root_token(), tenant=tenant.slug)
    assert saved["expiry_warning_days"] == [] and saved["leak_response"] == "revoke"


# -------------------------------------------------------------------- leaks


def test_a_reported_leak_shows_on_the_key_and_in_the_leak_reports(page, server, events_tenant,
                                                                  receiver, leak_sender):
    token = server.token(events_tenant.admin_secret, audience=server.admin_audience)
    status, stream = call(server, token, "POST", "/event-streams",
                          {"endpoint": receiver.url, "audience": "https://receiver.example",
                           "events": [KEY_LEAKED]})
    assert status == 201, stream
    leaked = new_key(server, token, "ci deploy")
    where = "https://github.com/example/app/blob/main/.env"
    resp = leak_sender.report(server.origin, [
        {"token": leaked["key"], "type": "keymint_api_key", "url": where, "source": "content"},
    ])
    assert resp.status == 200, resp.body
    (verdict,) = resp.json()
    assert verdict["label"] == "true_positive"
    assert verdict["token_hash"] == hashlib.sha256(leaked["key"].encode()).hexdigest()

    # The key-leaked event reaches the tenant's stream.
    wait_for(lambda: receiver.received(), "the key-leaked event")
    claims = set_claims(receiver.received()[0]["body"])
    assert KEY_LEAKED in claims["events"] and claims["sub_id"]["id"] == leaked["id"]

    # The key page: revoked (the default response), the leak explained.
    sign_in(page, events_tenant.admin_secret)
    page.goto(f"/console/#/keys/{leaked['id']}")
    status_line = page.locator(".key-status")
    expect(status_line.locator(".badge-leaked")).to_have_text("leaked")
    expect(status_line.locator(".badge-revoked")).to_have_text("revoked")
    box = page.locator(".leak-box")
    expect(box.get_by_role("heading")).to_have_text("Leaked: this key's secret was found in public")
    expect(box).to_contain_text(where)
    expect(box).to_contain_text("reported by content")
    expect(box).to_contain_text("its current secret; revoked at once")
    expect(box.locator("a")).to_have_count(0)  # the reported URL is text, never a link
    expect(page.locator(".key-details")).to_contain_text(f"leaked: reported by content at {where}")
    check_page(page, "key-leaked")

    # With "notify", a reported key keeps working and the page says what to do.
    status, body = call(server, token, "PATCH", "/settings", {"leak_response": "notify"})
    assert status == 200, body
    kept = new_key(server, token, "reporting only")
    resp = leak_sender.report(server.origin, [
        {"token": kept["key"], "type": "keymint_api_key", "url": f"{where}#L2", "source": "commit"},
    ])
    assert resp.status == 200 and resp.json()[0]["label"] == "true_positive", resp.body
    page.goto(f"/console/#/keys/{kept['id']}")
    expect(page.locator(".key-status .badge-active")).to_have_text("active")
    expect(page.locator(".key-status .badge-leaked")).to_be_visible()
    expect(page.locator(".leak-box")).to_contain_text("the key still works")
    expect(page.locator(".leak-box")).to_contain_text("reported only")

    # A key never reported has no leak section.
    quiet = new_key(server, token, "never leaked")
    page.goto(f"/console/#/keys/{quiet['id']}")
    expect(page.locator("#page-title")).to_have_text("never leaked")
    expect(page.locator(".leak-box")).to_have_count(0)
    expect(page.locator(".badge-leaked")).to_have_count(0)

    # The events page lists both reports, newest first, linking to the keys.
    open_nav(page, "Events")
    reports = page.locator(".leak-reports tbody tr")
    expect(reports).to_have_count(2)
    expect(reports.nth(0)).to_contain_text("commit")
    expect(reports.nth(0).locator('td[data-label="Response"]')).to_contain_text("reported only")
    expect(reports.nth(1).locator('td[data-label="Response"]')).to_have_text("revoked at once")
    expect(reports.nth(1).locator('td[data-label="Found at"]')).to_have_text(where)
    check_page(page, "events-leaks")
    reports.nth(1).get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"#/keys/{leaked['id']}$"))
    expect(page.locator("#page-title")).to_have_text("ci deploy")
