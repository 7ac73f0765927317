//! The admin powers, exhaustively, from the attacker's side: every kind of
//! caller against every admin route and every kind of target key, compared
//! with a written table derived from DESIGN §5 ("Powers", "No caller acts
//! above itself"). Every mismatching cell is collected and reported at once.
//!
//! Rules chosen where DESIGN is silent, as the brief fixes them:
//! - a caller lacking the route's permission gets 403 with the
//!   `insufficient_scope` challenge whatever the target (even another
//!   tenant's key): the permission is checked before the key is looked up,
//!   so the answer reveals nothing about the id ("deny" in the table);
//! - a key the caller may not see is 404; a key it sees but may not change
//!   is 403 (any problem+json 403, "403" in the table);
//! - bulk revoke lists ids the caller cannot see in `not_found` ("nf"); one
//!   id it sees but may not change makes the whole request 403, nothing
//!   revoked (checked with a revocable "canary" id in the same request).

use std::collections::{BTreeSet, HashSet};

use futures_util::FutureExt;
use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Answer;
use crate::client::reserved::{
    AUDIT, EVENTS, INTROSPECT, READ, SELF, SETTINGS, SIGNING, TENANTS, WRITE,
};
use crate::helpers::{Backend, TestApp, spawn_app};

backend_tests!(admin_powers_match_the_written_table);

/// The second tenant, whose keys the bootstrap admin makes through X-Tenant.
const OTHER_TENANT: &str = "acme";

/// The caller classes: the table's columns, by their key powers.
const CLASSES: [(&str, &[&str]); 7] = [
    ("none", &[]),
    ("read", &[READ]),
    ("write", &[WRITE]),
    ("read+write", &[READ, WRITE]),
    ("self", &[SELF]),
    ("read+self", &[READ, SELF]),
    ("write+self", &[WRITE, SELF]),
];

/// Expected answers for the key routes, one column per caller class. Every
/// caller also holds the ordinary scope `app:read`; a class with `+settings`
/// or `+tenants` answers as its base class here.
///
/// Targets: `own` the caller's own key; `stronger` same owner, holding the
/// caller's reserved scopes plus admin:keys:write and admin:settings (plus
/// admin:audit if that adds nothing); `other` another owner holding exactly
/// the caller's reserved scopes; `weaker` same owner, no reserved scope;
/// `child` a key the caller created itself (classes holding keys:self);
/// `tenant` a key in the second tenant, no X-Tenant; `xtenant` the same kind
/// of key addressed with `X-Tenant: acme` — allowed only to callers holding
/// admin:tenants (the row applies to them; everyone else gets 400).
///
/// Answers: `deny` 403 with `insufficient_scope`; `403`/`404`/`2xx` that
/// status; `nf` (bulk revoke) 200 with the id in `not_found`; `in`/`out`
/// (list) whether the id comes back; `-` no such cell.
const KEY_TABLE: &str = "
# route      target    none  read  write  read+write  self  read+self  write+self
list         own       deny  in    in     in          in    in         in
list         stronger  deny  in    in     in          in    in         in
list         other     deny  in    in     in          out   in         in
list         weaker    deny  in    in     in          in    in         in
list         child     -     -     -      -           in    in         in
list         tenant    deny  out   out    out         out   out        out
list         xtenant   deny  in    in     in          out   in         in
get          own       deny  200   200    200         200   200        200
get          stronger  deny  200   200    200         200   200        200
get          other     deny  200   200    200         404   200        200
get          weaker    deny  200   200    200         200   200        200
get          child     -     -     -      -           200   200        200
get          tenant    deny  404   404    404         404   404        404
get          xtenant   deny  200   200    200         404   200        200
patch        own       deny  deny  200    200         deny  deny       200
patch        stronger  deny  deny  403    403         deny  deny       403
patch        other     deny  deny  200    200         deny  deny       200
patch        weaker    deny  deny  200    200         deny  deny       200
patch        child     -     -     -      -           deny  deny       200
patch        tenant    deny  deny  404    404         deny  deny       404
patch        xtenant   deny  deny  200    200         deny  deny       200
revoke       own       deny  deny  200    200         200   200        200
revoke       stronger  deny  deny  403    403         403   403        403
revoke       other     deny  deny  200    200         404   403        200
revoke       weaker    deny  deny  200    200         200   200        200
revoke       child     -     -     -      -           200   200        200
revoke       tenant    deny  deny  404    404         404   404        404
revoke       xtenant   deny  deny  200    200         404   403        200
bulk-revoke  own       deny  deny  200    200         200   200        200
bulk-revoke  stronger  deny  deny  403    403         403   403        403
bulk-revoke  other     deny  deny  200    200         nf    403        200
bulk-revoke  weaker    deny  deny  200    200         200   200        200
bulk-revoke  child     -     -     -      -           200   200        200
bulk-revoke  tenant    deny  deny  nf     nf          nf    nf         nf
bulk-revoke  xtenant   deny  deny  200    200         nf    403        200
delete       own       deny  deny  204    204         deny  deny       204
delete       stronger  deny  deny  403    403         deny  deny       403
delete       other     deny  deny  204    204         deny  deny       204
delete       weaker    deny  deny  204    204         deny  deny       204
delete       child     -     -     -      -           deny  deny       204
delete       tenant    deny  deny  404    404         deny  deny       404
delete       xtenant   deny  deny  204    204         deny  deny       204
rotate       own       deny  deny  200    200         deny  deny       200
rotate       stronger  deny  deny  403    403         deny  deny       403
rotate       other     deny  deny  200    200         deny  deny       200
rotate       weaker    deny  deny  200    200         deny  deny       200
rotate       child     -     -     -      -           deny  deny       200
rotate       tenant    deny  deny  404    404         deny  deny       404
rotate       xtenant   deny  deny  200    200         deny  deny       200
";

/// Expected answers for `POST /api/v1/keys`, per caller class. Bodies:
/// `ordinary` scopes [app:read]; `reserved-held` the caller's strongest
/// reserved scope too; `reserved-lacking` one it lacks (admin:audit);
/// `other-owner` an owner that is not its `sub`; `claims` custom claims.
const CREATE_TABLE: &str = "
# body              none  read  write  read+write  self  read+self  write+self
ordinary            deny  deny  201    201         201   201        201
reserved-held       deny  deny  201    201         403   403        201
reserved-lacking    deny  deny  deny   deny        403   403        deny
other-owner         deny  deny  201    201         403   403        201
claims              deny  deny  201    201         403   403        201
";

/// The other admin routes: 200 with the scope, `deny` without.
const OTHER_ROUTES: [(&str, &str, &str); 6] = [
    ("GET", "/api/v1/settings", SETTINGS),
    ("PATCH", "/api/v1/settings", SETTINGS),
    ("GET", "/api/v1/audit-events", AUDIT),
    ("GET", "/api/v1/signing-keys", SIGNING),
    ("GET", "/api/v1/tenants", TENANTS),
    ("GET", "/api/v1/event-streams", EVENTS),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Deny,
    Status(u16),
    /// Bulk revoke: 200, the id listed in `not_found`.
    Unseen,
    In,
    Out,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deny => write!(f, "403 insufficient_scope"),
            Self::Status(s) => write!(f, "{s}"),
            Self::Unseen => write!(f, "200 with the id in not_found"),
            Self::In => write!(f, "listed"),
            Self::Out => write!(f, "not listed"),
        }
    }
}

fn parse_expect(cell: &str) -> Option<Expect> {
    match cell {
        "-" => None,
        "deny" => Some(Expect::Deny),
        "nf" => Some(Expect::Unseen),
        "in" => Some(Expect::In),
        "out" => Some(Expect::Out),
        code => Some(Expect::Status(code.parse().expect("a status in the table"))),
    }
}

/// `(row name, target or body, expectation per class)` for every table line.
fn rows(table: &str, labels: usize) -> Vec<(Vec<String>, [Option<Expect>; 7])> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), labels + 7, "table line: {line}");
            let label = cells[..labels].iter().map(|s| (*s).to_owned()).collect();
            let expect = std::array::from_fn(|i| parse_expect(cells[labels + i]));
            (label, expect)
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Caller {
    index: usize,
    name: String,
    class: usize,
    reserved: BTreeSet<&'static str>,
    owner: String,
    key: Key,
    token: String,
}

impl Caller {
    fn holds(&self, scope: &str) -> bool {
        self.reserved.contains(scope)
    }

    fn scopes(&self) -> Vec<&'static str> {
        self.reserved.iter().copied().chain(["app:read"]).collect()
    }

    fn stronger(&self) -> Vec<&'static str> {
        let mut set = self.reserved.clone();
        set.extend([WRITE, SETTINGS]);
        if set == self.reserved {
            set.insert(AUDIT);
        }
        set.into_iter().chain(["app:read"]).collect()
    }
}

/// A key a cell acts on, as it was made.
#[derive(Debug, Clone)]
struct Key {
    id: String,
    secret: String,
    name: String,
    start: String,
    /// `Some(slug)` when it lives in the second tenant.
    tenant: Option<&'static str>,
}

impl Key {
    fn of(created: &Value, tenant: Option<&'static str>) -> Self {
        let text = |m: &str| created[m].as_str().unwrap_or_default().to_owned();
        Self {
            id: text("id"),
            secret: text("key"),
            name: text("name"),
            start: text("start"),
            tenant,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Own,
    Stronger,
    Other,
    Weaker,
    Child,
    Tenant,
    XTenant,
}

impl Target {
    fn parse(name: &str) -> Self {
        match name {
            "own" => Self::Own,
            "stronger" => Self::Stronger,
            "other" => Self::Other,
            "weaker" => Self::Weaker,
            "child" => Self::Child,
            "tenant" => Self::Tenant,
            "xtenant" => Self::XTenant,
            other => panic!("unknown target {other}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Stronger => "stronger",
            Self::Other => "other-owner",
            Self::Weaker => "weaker",
            Self::Child => "child",
            Self::Tenant => "other-tenant",
            Self::XTenant => "other-tenant-with-X-Tenant",
        }
    }
}

struct Ctx<'a> {
    app: &'a TestApp,
    /// The bootstrap admin's token: the referee that reads back.
    root: String,
}

impl Ctx<'_> {
    /// A fresh target of `kind` for `caller`, and the token that must act on
    /// it (the caller's, except for `own`, where it is a fresh copy of the
    /// caller so the caller itself survives).
    async fn fresh(&self, caller: &Caller, kind: Target, label: &str) -> (Key, String) {
        let app = self.app;
        let name = format!("{label} c{}", caller.index);
        let by_root = |owner: &str, scopes: Vec<&'static str>, tenant: Option<&'static str>| {
            let body = json!({"name": name, "owner": owner, "scopes": scopes});
            async move { Key::of(&app.create_key_in(&self.root, tenant, body).await, tenant) }
        };
        match kind {
            Target::Own => {
                let key = by_root(&caller.owner, caller.scopes(), None).await;
                let token = app.admin_token(&key.secret).await;
                (key, token)
            }
            Target::Stronger => (
                by_root(&caller.owner, caller.stronger(), None).await,
                caller.token.clone(),
            ),
            Target::Other => (
                by_root(&format!("v{}", caller.index), caller.scopes(), None).await,
                caller.token.clone(),
            ),
            Target::Weaker => (
                by_root(&caller.owner, vec!["app:read"], None).await,
                caller.token.clone(),
            ),
            Target::Child => {
                let body = json!({"name": name, "scopes": ["app:read"]});
                let created = app.create_key_in(&caller.token, None, body).await;
                (Key::of(&created, None), caller.token.clone())
            }
            Target::Tenant | Target::XTenant => (
                by_root(
                    &format!("a{}", caller.index),
                    vec!["app:read"],
                    Some(OTHER_TENANT),
                )
                .await,
                caller.token.clone(),
            ),
        }
    }

    /// Why `key` is not as it was made, if it is not.
    async fn changed(&self, key: &Key) -> Option<String> {
        let Some(view) = self.app.key_as_admin(&self.root, key.tenant, &key.id).await else {
            return Some("the key is gone".into());
        };
        if view["status"] != "active" {
            return Some(format!("its status is now {}", view["status"]));
        }
        if view["name"] != key.name.as_str() {
            return Some(format!("it was renamed to {}", view["name"]));
        }
        if view["start"] != key.start.as_str() {
            return Some("it was rotated".into());
        }
        let exchanged = self.app.token_answer(&key.secret, Value::Null).await;
        (exchanged.status != 200)
            .then(|| format!("its secret no longer exchanges ({})", exchanged.status))
    }

    async fn status_of(&self, key: &Key) -> Option<String> {
        self.app
            .key_as_admin(&self.root, key.tenant, &key.id)
            .await
            .map(|v| v["status"].as_str().unwrap_or_default().to_owned())
    }
}

/// Compares an answer with the expectation; `None` when they agree.
fn judge(expect: Expect, answer: &Answer) -> Option<String> {
    let ok = match expect {
        Expect::Deny => answer.is_insufficient_scope(),
        Expect::Status(s) if s >= 400 => answer.status == s && answer.is_problem(),
        Expect::Status(s) => answer.status == s,
        Expect::Unseen => answer.status == 200,
        Expect::In | Expect::Out => unreachable!("list cells are judged on their ids"),
    };
    (!ok).then(|| {
        let detail = answer
            .str("detail")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let challenge = answer
            .www_authenticate
            .as_deref()
            .map(|c| format!(" [WWW-Authenticate: {c}]"))
            .unwrap_or_default();
        format!(
            "expected {expect}, got {}{detail}{challenge}",
            answer.status
        )
    })
}

async fn admin_powers_match_the_written_table(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    app.new_tenant(&root, OTHER_TENANT).await;
    let ctx = Ctx { app: &app, root };

    // Arrange: the callers, each with its own owner, and the fixed targets
    // the read cells look at.
    let mut specs: Vec<(String, usize, Vec<&'static str>)> = Vec::new();
    for (class, (base, scopes)) in CLASSES.iter().enumerate() {
        for (suffix, extra) in [
            ("", None),
            ("+settings", Some(SETTINGS)),
            ("+tenants", Some(TENANTS)),
        ] {
            let mut reserved = scopes.to_vec();
            reserved.extend(extra);
            specs.push((format!("{base}{suffix}"), class, reserved));
        }
    }
    specs.push(("audit".into(), 0, vec![AUDIT]));
    specs.push(("signing-keys".into(), 0, vec![SIGNING]));
    specs.push(("events".into(), 0, vec![EVENTS]));
    let callers: Vec<Caller> = stream::iter(specs.into_iter().enumerate())
        .map(|(index, (name, class, mut reserved))| {
            let ctx = &ctx;
            async move {
                // Without any reserved scope a key cannot address the admin
                // API at all (DESIGN §4); tokens:introspect gives "none" a
                // token that holds no power over keys.
                if reserved.is_empty() {
                    reserved.push(INTROSPECT);
                }
                let owner = format!("u{index}.{}", name.replace('+', "-"));
                let mut caller = Caller {
                    index,
                    name,
                    class,
                    reserved: reserved.into_iter().collect(),
                    owner,
                    key: Key::of(&Value::Null, None),
                    token: String::new(),
                };
                let body = json!({"name": format!("caller {}", caller.name),
                    "owner": caller.owner, "scopes": caller.scopes()});
                caller.key = Key::of(&ctx.app.create_key_in(&ctx.root, None, body).await, None);
                caller.token = ctx.app.admin_token(&caller.key.secret).await;
                let claims = crate::client::claims_unverified(&caller.token);
                let held: BTreeSet<&str> = claims["scope"]
                    .as_str()
                    .unwrap_or_default()
                    .split(' ')
                    .collect();
                assert_eq!(
                    held, caller.reserved,
                    "the token holds exactly the reserved scopes"
                );
                caller
            }
        })
        .buffered(4)
        .collect()
        .await;

    let fixed: Vec<Vec<(Target, Key)>> = stream::iter(callers.iter())
        .map(|caller| {
            let ctx = &ctx;
            async move {
                let mut keys = vec![(Target::Own, caller.key.clone())];
                let mut kinds = vec![
                    Target::Stronger,
                    Target::Other,
                    Target::Weaker,
                    Target::Tenant,
                ];
                if caller.holds(SELF) {
                    kinds.push(Target::Child);
                }
                for kind in kinds {
                    let (key, _) = ctx.fresh(caller, kind, "fixed").await;
                    keys.push((kind, key));
                }
                let xtenant = keys
                    .iter()
                    .find(|(k, _)| *k == Target::Tenant)
                    .map(|(_, key)| key.clone());
                keys.extend(xtenant.map(|key| (Target::XTenant, key)));
                keys
            }
        })
        .buffered(4)
        .collect()
        .await;

    let key_rows = rows(KEY_TABLE, 2);
    let create_rows = rows(CREATE_TABLE, 1);

    // Act and assert, reads first (the fixed targets stay untouched), then
    // every change on fresh targets.
    let mut mismatches: Vec<String> = Vec::new();
    let mut cells = 0;
    let mut reads = Vec::new();
    for caller in &callers {
        cells += key_rows
            .iter()
            .filter(|(label, expect)| {
                matches!(label[0].as_str(), "list" | "get") && expect[caller.class].is_some()
            })
            .count();
        reads.push(read_cells(&ctx, caller, &fixed[caller.index], &key_rows));
    }
    for found in stream::iter(reads)
        .buffer_unordered(6)
        .collect::<Vec<_>>()
        .await
    {
        mismatches.extend(found);
    }

    let mut changes = Vec::new();
    for caller in &callers {
        for (label, expect) in &key_rows {
            let route = label[0].as_str();
            if matches!(route, "list" | "get") {
                continue;
            }
            let target = Target::parse(&label[1]);
            let Some(mut expect) = expect[caller.class] else {
                continue;
            };
            if target == Target::XTenant && !caller.holds(TENANTS) {
                expect = Expect::Status(400);
            }
            cells += 1;
            changes.push(change_cell(&ctx, caller, route, target, expect).boxed_local());
        }
        for (label, expect) in &create_rows {
            if let Some(expect) = expect[caller.class] {
                cells += 1;
                changes.push(create_cell(&ctx, caller, &label[0], expect).boxed_local());
            }
        }
        cells += OTHER_ROUTES.len();
        changes.push(other_routes(&ctx, caller).boxed_local());
    }
    for found in stream::iter(changes)
        .buffer_unordered(6)
        .collect::<Vec<_>>()
        .await
    {
        mismatches.extend(found);
    }

    mismatches.sort();
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells disagree with DESIGN:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// `list` and `get` on the fixed targets.
async fn read_cells(
    ctx: &Ctx<'_>,
    caller: &Caller,
    fixed: &[(Target, Key)],
    table: &[(Vec<String>, [Option<Expect>; 7])],
) -> Vec<String> {
    let app = ctx.app;
    let mut out = Vec::new();
    let say = |route: &str, target: Target, what: String| {
        format!(
            "caller={} route={route} target={}: {what}",
            caller.name,
            target.name()
        )
    };
    let x_tenant_ok = caller.holds(TENANTS);
    let mut listed: [Option<Result<HashSet<String>, Answer>>; 2] = [None, None];
    for (label, expect) in table {
        let (route, target) = (label[0].as_str(), Target::parse(&label[1]));
        let Some(mut expect) = expect[caller.class] else {
            continue;
        };
        let Some((_, key)) = fixed.iter().find(|(k, _)| *k == target) else {
            continue;
        };
        let x_tenant = (target == Target::XTenant).then_some(OTHER_TENANT);
        if x_tenant.is_some() && !x_tenant_ok {
            expect = Expect::Status(400);
        }
        match route {
            "get" => {
                let answer = app
                    .api(
                        "GET",
                        &format!("/api/v1/keys/{}", key.id),
                        &caller.token,
                        x_tenant,
                        None,
                    )
                    .await;
                if let Some(why) = judge(expect, &answer) {
                    out.push(say("get", target, why));
                }
            }
            "list" => {
                let slot = &mut listed[usize::from(x_tenant.is_some())];
                if slot.is_none() {
                    let ids = app.list_all(&caller.token, x_tenant).await.map(|items| {
                        // keys:self alone lists only what its sub owns.
                        if caller.holds(SELF) && !caller.holds(READ) && !caller.holds(WRITE) {
                            for item in &items {
                                if item["owner"] != caller.owner.as_str() {
                                    out.push(format!(
                                        "caller={} route=list: lists {} owned by {}",
                                        caller.name, item["id"], item["owner"]
                                    ));
                                }
                            }
                        }
                        items
                            .iter()
                            .filter_map(|i| i["id"].as_str().map(str::to_owned))
                            .collect()
                    });
                    *slot = Some(ids);
                }
                let Some(result) = slot else { continue };
                let why = match (expect, result) {
                    (Expect::In, Ok(ids)) if ids.contains(&key.id) => None,
                    (Expect::Out, Ok(ids)) if !ids.contains(&key.id) => None,
                    (Expect::In | Expect::Out, Ok(_)) => {
                        Some(format!("expected {expect}, got the opposite"))
                    }
                    (Expect::In | Expect::Out, Err(answer)) => {
                        Some(format!("expected {expect}, got {}", answer.status))
                    }
                    (_, Ok(_)) => Some(format!("expected {expect}, got 200")),
                    (_, Err(answer)) => judge(expect, answer),
                };
                if let Some(why) = why {
                    out.push(say("list", target, why));
                }
            }
            _ => {}
        }
    }
    out
}

/// One change (PATCH, revoke, bulk revoke, DELETE, rotate) on a fresh target.
async fn change_cell(
    ctx: &Ctx<'_>,
    caller: &Caller,
    route: &str,
    target: Target,
    expect: Expect,
) -> Vec<String> {
    let app = ctx.app;
    let label = format!("{route} {}", target.name());
    let (key, token) = ctx.fresh(caller, target, &label).await;
    let x_tenant = (target == Target::XTenant).then_some(OTHER_TENANT);
    // Bulk revoke carries a second id the caller may always revoke (a weaker
    // key of its own, in the tenant it acts in) so a refusal is seen to be
    // all-or-nothing.
    let canary = if route == "bulk-revoke" && x_tenant.is_none() {
        Some(ctx.fresh(caller, Target::Weaker, "canary").await.0)
    } else {
        None
    };
    let new_name = format!("patched {label} c{}", caller.index);
    let (method, path, body) = match route {
        "patch" => (
            "PATCH",
            format!("/api/v1/keys/{}", key.id),
            Some(json!({"name": new_name})),
        ),
        "revoke" => (
            "POST",
            format!("/api/v1/keys/{}/revoke", key.id),
            Some(json!({"reason": "matrix"})),
        ),
        "bulk-revoke" => {
            let mut ids = vec![key.id.clone()];
            ids.extend(canary.iter().map(|c| c.id.clone()));
            (
                "POST",
                "/api/v1/keys/revoke".to_owned(),
                Some(json!({"ids": ids})),
            )
        }
        "delete" => ("DELETE", format!("/api/v1/keys/{}", key.id), None),
        "rotate" => (
            "POST",
            format!("/api/v1/keys/{}/rotate", key.id),
            Some(json!({"grace_period_s": 0})),
        ),
        other => panic!("unknown route {other}"),
    };
    let answer = app.api(method, &path, &token, x_tenant, body).await;
    let say = |what: String| {
        format!(
            "caller={} route={route} target={}: {what}",
            caller.name,
            target.name()
        )
    };
    if let Some(why) = judge(expect, &answer) {
        return vec![say(why)];
    }

    // The answer is the expected one; now its effect must be too.
    let mut out = Vec::new();
    let changed = |k: &Key, why: String| {
        let which = if k.id == key.id { "target" } else { "canary" };
        say(format!(
            "answered {} but the {which} changed: {why}",
            answer.status
        ))
    };
    match expect {
        Expect::Deny | Expect::Status(300..) => {
            for k in std::iter::once(&key).chain(canary.iter()) {
                if let Some(why) = ctx.changed(k).await {
                    out.push(changed(k, why));
                }
            }
        }
        Expect::Unseen => {
            let revoked: Vec<&str> = answer.body["revoked"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let want: Vec<&str> = canary.iter().map(|c| c.id.as_str()).collect();
            if answer.body["not_found"] != json!([key.id]) || revoked != want {
                out.push(say(format!("bulk answer {}", answer.body)));
            }
            if let Some(why) = ctx.changed(&key).await {
                out.push(changed(&key, why));
            }
        }
        _ => {
            let effect = match route {
                "patch" => {
                    let view = app.key_as_admin(&ctx.root, key.tenant, &key.id).await;
                    (view.as_ref().map(|v| &v["name"]) != Some(&json!(new_name)))
                        .then(|| "the name did not change".to_owned())
                }
                "revoke" | "bulk-revoke" => {
                    let mut why = None;
                    for k in std::iter::once(&key).chain(canary.iter()) {
                        let status = ctx.status_of(k).await;
                        if status.as_deref() != Some("revoked") {
                            why = Some(format!("key {} is {status:?}, not revoked", k.name));
                        }
                    }
                    why
                }
                "delete" => ctx
                    .status_of(&key)
                    .await
                    .map(|s| format!("the key is still there ({s})")),
                "rotate" => {
                    let fresh = answer.str("key").unwrap_or_default();
                    let old = app.token_answer(&key.secret, Value::Null).await.status;
                    let new = app.token_answer(fresh, Value::Null).await.status;
                    (old != 401 || new != 200).then(|| {
                        format!("after rotation the old secret answers {old}, the new {new}")
                    })
                }
                _ => None,
            };
            if let Some(why) = effect {
                out.push(say(format!("answered {} but {why}", answer.status)));
            }
        }
    }
    out
}

/// `POST /api/v1/keys` with one of the create bodies.
async fn create_cell(
    ctx: &Ctx<'_>,
    caller: &Caller,
    body_kind: &str,
    expect: Expect,
) -> Vec<String> {
    let app = ctx.app;
    // The trailing dot keeps "c1." from matching "c10." in the search below.
    let name = format!("made {body_kind} c{}.", caller.index);
    let strongest = [
        SETTINGS, TENANTS, WRITE, SELF, READ, AUDIT, SIGNING, EVENTS, INTROSPECT,
    ]
    .into_iter()
    .find(|s| caller.holds(s))
    .unwrap_or(INTROSPECT);
    let lacking = if caller.holds(AUDIT) { SETTINGS } else { AUDIT };
    let body = match body_kind {
        "ordinary" => json!({"name": name, "scopes": ["app:read"]}),
        "reserved-held" => json!({"name": name, "scopes": [strongest, "app:read"]}),
        "reserved-lacking" => json!({"name": name, "scopes": [lacking, "app:read"]}),
        "other-owner" => json!({"name": name, "owner": "someone.else", "scopes": ["app:read"]}),
        "claims" => json!({"name": name, "scopes": ["app:read"], "claims": {"plan": "gold"}}),
        other => panic!("unknown create body {other}"),
    };
    let answer = app
        .api("POST", "/api/v1/keys", &caller.token, None, Some(body))
        .await;
    let say = |what: String| {
        format!(
            "caller={} route=create body={body_kind}: {what}",
            caller.name
        )
    };
    if let Some(why) = judge(expect, &answer) {
        return vec![say(why)];
    }
    if answer.status == 201 {
        let owner = answer.str("owner").unwrap_or_default();
        let want = if body_kind == "other-owner" {
            "someone.else"
        } else {
            caller.owner.as_str()
        };
        if owner != want {
            return vec![say(format!("created with owner {owner}, not {want}"))];
        }
        return Vec::new();
    }
    // Refused: nothing was written.
    let found = app
        .api(
            "GET",
            &format!("/api/v1/keys?q={}", name.replace(' ', "%20")),
            &ctx.root,
            None,
            None,
        )
        .await;
    match found.body["items"].as_array() {
        Some(items) if items.is_empty() => Vec::new(),
        _ => vec![say(format!(
            "answered {} but a key was created",
            answer.status
        ))],
    }
}

/// Settings, audit events, signing keys and tenants: the scope or nothing.
async fn other_routes(ctx: &Ctx<'_>, caller: &Caller) -> Vec<String> {
    let app = ctx.app;
    let mut out = Vec::new();
    // A value no other cell writes, so a refusal can be seen to change nothing.
    let limit = 500 + caller.index as i64;
    for (method, path, needs) in OTHER_ROUTES {
        let expect = if caller.holds(needs) {
            Expect::Status(200)
        } else {
            Expect::Deny
        };
        let body = (method == "PATCH").then(|| json!({"max_keys_per_owner": limit}));
        let answer = app.api(method, path, &caller.token, None, body).await;
        let say = |what: String| format!("caller={} route={method} {path}: {what}", caller.name);
        if let Some(why) = judge(expect, &answer) {
            out.push(say(why));
            continue;
        }
        if method != "PATCH" {
            continue;
        }
        // Other callers patch the same field concurrently, each with its own
        // value: a success shows ours in its answer, a refusal must leave
        // ours nowhere.
        let shown = if answer.status == 200 {
            answer.body["max_keys_per_owner"].clone()
        } else {
            app.api("GET", path, &ctx.root, None, None).await.body["max_keys_per_owner"].clone()
        };
        if (shown == json!(limit)) != (answer.status == 200) {
            out.push(say(format!(
                "answered {} but max_keys_per_owner is {shown}",
                answer.status
            )));
        }
    }
    out
}
