//! Model-based test of the admin powers: random sequences of admin operations
//! by random principals against a real server, with the invariants of DESIGN
//! §5 checked after every step:
//!
//! 1. no principal ever holds a secret, or a token, carrying a reserved scope
//!    it did not hold at the start (a secret it obtains — by creating or
//!    rotating a key — counts as its own from then on);
//! 2. no child key (created through `keys:self`) is wider than its parent:
//!    allow-list, expiry, audiences, scopes, token TTL, rate; none holds a
//!    reserved scope; revoking the parent revokes it;
//! 3. no tenant sees or changes another tenant's object: another tenant's id
//!    answers 404 (403 only when the caller lacks the route's permission
//!    outright), lists stay inside the tenant, nothing in another tenant's
//!    rows changes; `X-Tenant` works only for `default` principals holding
//!    `admin:tenants`, and is 400 for anyone else;
//! 4. no caller acts above itself: every key a step changed (PATCH, revoke,
//!    bulk revoke, DELETE, rotate) held only reserved scopes the token holds,
//!    and without `admin:keys:write` the change was a revocation of a key
//!    the caller's `sub` owns.
//!
//! Each case starts its own server (inside the property, so a shrunk case
//! reruns from scratch). The seed is fixed; the number of cases is small
//! for CI. A longer run:
//!
//! ```text
//! KEYMINT_MODEL_CASES=500 cargo test --test api powers_model
//! ```
//!
//! `KEYMINT_MODEL_SEED` (a number) changes the seed, `KEYMINT_MODEL_SHRINK_S`
//! bounds the time spent shrinking a failure (default 60 s), and
//! `KEYMINT_MODEL_TRACE=1` prints every case's steps. A case takes a
//! fraction of a second; `spawn_app` has no stop handle, so each finished
//! case leaves a few idle server threads behind until the test ends, which
//! is harmless for runs of hundreds of cases.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use keymint::db::AnyConnection;
use keymint::db::models::{ApiKey, Tenant};
use keymint::db::schema::{api_keys, tenants};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Answer;
use crate::client::reserved::{AUDIT, INTROSPECT, READ, SELF, SETTINGS, SIGNING, TENANTS, WRITE};
use crate::helpers::{Backend, TestApp, spawn_app};

backend_tests!(random_admin_sequences_keep_the_invariants);

const RESERVED: [&str; 8] = [
    READ, WRITE, SELF, SETTINGS, TENANTS, AUDIT, SIGNING, INTROSPECT,
];
const ORDINARY: [&str; 3] = ["app:read", "app:write", "app:other"];

const SYSTEM: &str = "default";
const ACME: &str = "acme";
const DEFAULT_AUD: &str = "https://api.default.test";
const ACME_AUD: &str = "https://api.acme.test";

/// The principals every case starts with, made by the bootstrap admin.
struct Spec {
    name: &'static str,
    tenant: &'static str,
    owner: &'static str,
    scopes: &'static [&'static str],
    /// Bounds a child must stay within.
    bounded: bool,
}

const PRINCIPALS: [Spec; 8] = [
    Spec {
        name: "writer",
        tenant: SYSTEM,
        owner: "wanda",
        scopes: &[WRITE, "app:read", "app:write"],
        bounded: false,
    },
    Spec {
        name: "reader-self",
        tenant: SYSTEM,
        owner: "alice",
        scopes: &[READ, SELF, "app:read"],
        bounded: false,
    },
    Spec {
        name: "bounded-self",
        tenant: SYSTEM,
        owner: "alice",
        scopes: &[SELF, "app:read", "app:write"],
        bounded: true,
    },
    Spec {
        name: "settings-admin",
        tenant: SYSTEM,
        owner: "sam",
        scopes: &[WRITE, SETTINGS, AUDIT, "app:read"],
        bounded: false,
    },
    Spec {
        name: "tenants-admin",
        tenant: SYSTEM,
        owner: "tina",
        scopes: &[TENANTS, WRITE, SELF, "app:read"],
        bounded: false,
    },
    Spec {
        name: "introspector",
        tenant: SYSTEM,
        owner: "ivan",
        scopes: &[INTROSPECT, "app:read"],
        bounded: false,
    },
    Spec {
        name: "acme-writer",
        tenant: ACME,
        owner: "wanda",
        scopes: &[WRITE, "app:read"],
        bounded: false,
    },
    Spec {
        name: "acme-self",
        tenant: ACME,
        owner: "alice",
        scopes: &[SELF, "app:read", "app:other"],
        bounded: true,
    },
];

/// Who acts: a principal, which of its secrets, and whether it sends
/// `X-Tenant` naming the other tenant.
#[derive(Debug, Clone, Copy)]
struct Who {
    actor: u8,
    via: u8,
    x_tenant: bool,
}

#[derive(Debug, Clone)]
struct CreateBody {
    reserved: Vec<&'static str>,
    ordinary: Vec<&'static str>,
    owner: u8,
    allow: u8,
    ttl: u8,
    rate: u8,
    expiry: u8,
    audiences: u8,
    claims: bool,
    /// Shaped to what a `keys:self` caller may ask (its own key's ordinary
    /// scopes and audiences, no owner, no claims), leaving the bounds under
    /// test (allow-list, TTL, rate, expiry) random.
    tailored: bool,
}

/// One step. Indices (`actor`, `via`, `target`) are taken modulo what exists
/// when the step runs, so every sequence means something and shrinks well.
#[derive(Debug, Clone)]
enum Op {
    Create(Who, CreateBody),
    List(Who),
    Get(Who, u16),
    Patch(Who, u16),
    Revoke(Who, u16),
    BulkRevoke(Who, Vec<u16>),
    Delete(Who, u16),
    Rotate(Who, u16, bool),
    Exchange {
        actor: u8,
        via: u8,
        admin: bool,
        scope: u8,
        audience: u8,
    },
    Settings(Who, u8),
}

fn who() -> impl Strategy<Value = Who> {
    (any::<u8>(), any::<u8>(), proptest::bool::weighted(0.15)).prop_map(|(actor, via, x_tenant)| {
        Who {
            actor,
            via,
            x_tenant,
        }
    })
}

fn create_body() -> impl Strategy<Value = CreateBody> {
    (
        // Mostly ordinary keys, so keys:self creations often succeed and
        // their children can be checked.
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::sample::subsequence(RESERVED.to_vec(), 1..=2),
        ],
        proptest::sample::subsequence(ORDINARY.to_vec(), 0..=2),
        (0..5u8, 0..5u8, 0..4u8, 0..4u8),
        (
            0..4u8,
            prop_oneof![2 => Just(0u8), 1 => 1..5u8],
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.5),
        ),
    )
        .prop_map(
            |(
                reserved,
                ordinary,
                (owner, allow, ttl, rate),
                (expiry, audiences, claims, tailored),
            )| {
                CreateBody {
                    reserved,
                    ordinary,
                    owner,
                    allow,
                    ttl,
                    rate,
                    expiry,
                    audiences,
                    claims,
                    tailored,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (who(), create_body()).prop_map(|(w, b)| Op::Create(w, b)),
        1 => who().prop_map(Op::List),
        1 => (who(), any::<u16>()).prop_map(|(w, t)| Op::Get(w, t)),
        1 => (who(), any::<u16>()).prop_map(|(w, t)| Op::Patch(w, t)),
        2 => (who(), any::<u16>()).prop_map(|(w, t)| Op::Revoke(w, t)),
        1 => (who(), proptest::collection::vec(any::<u16>(), 1..=3))
            .prop_map(|(w, t)| Op::BulkRevoke(w, t)),
        1 => (who(), any::<u16>()).prop_map(|(w, t)| Op::Delete(w, t)),
        3 => (who(), any::<u16>(), any::<bool>()).prop_map(|(w, t, g)| Op::Rotate(w, t, g)),
        2 => (any::<u8>(), any::<u8>(), any::<bool>(), 0..5u8, 0..4u8).prop_map(
            |(actor, via, admin, scope, audience)| Op::Exchange {
                actor,
                via,
                admin,
                scope,
                audience,
            }
        ),
        1 => (who(), 0..6u8).prop_map(|(w, v)| Op::Settings(w, v)),
    ]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn random_admin_sequences_keep_the_invariants(backend: Backend) {
    let cases = env_number("KEYMINT_MODEL_CASES", 24) as u32;
    // A PostgreSQL case costs a database of its own: a third of the cases.
    let cases = match backend {
        Backend::Sqlite => cases,
        Backend::Postgres => cases.div_ceil(3),
    };
    // Each case runs on a runtime of its own (dropped with its server), so
    // the property runs on a plain thread, outside the test's runtime.
    let outcome = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || run_property(backend, cases))
            .join()
            .map_err(|_| "the property thread panicked".to_owned())
            .and_then(|r| r)
    })
    .await
    .expect("the property runs");
    if let Err(report) = outcome {
        panic!("{report}");
    }
}

fn run_property(backend: Backend, cases: u32) -> Result<(), String> {
    // proptest reads a time limit of 0 as "none": 0 s means no shrinking.
    let shrink_s = env_number("KEYMINT_MODEL_SHRINK_S", 60) as u32;
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: if shrink_s == 0 { 0 } else { 10_000 },
        max_shrink_time: shrink_s.saturating_mul(1000),
        ..Config::default()
    };
    let mut seed = [0u8; 32];
    seed[..8]
        .copy_from_slice(&env_number("KEYMINT_MODEL_SEED", 0x006b_6579_6d69_6e74).to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let strategy = proptest::collection::vec(op(), 1..=40);
    runner
        .run(&strategy, |ops| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
            runtime
                .block_on(run_case(backend, &ops))
                .map_err(TestCaseError::fail)
        })
        .map_err(|e| e.to_string())
}

async fn run_case(backend: Backend, ops: &[Op]) -> Result<(), String> {
    let app = spawn_app(backend).await;
    let mut world = World::set_up(&app).await;
    for (n, op) in ops.iter().enumerate() {
        let before = world.snapshot()?;
        let mut step = Step::default();
        world.step(op, &mut step).await;
        let after = world.snapshot()?;
        let broken = world.check_rows(&before, &after, &step);
        step.violations.extend(broken);

        world.trace.push(format!("{n:>2}. {}", step.line));
        if !step.violations.is_empty() {
            return Err(format!(
                "invariant broken at step {n}:\n  - {}\nsteps:\n{}\nkeys:\n{}",
                step.violations.join("\n  - "),
                world.trace.join("\n"),
                world.legend(&after)
            ));
        }
    }
    if std::env::var("KEYMINT_MODEL_TRACE").is_ok_and(|v| v == "1") {
        eprintln!("case passed:\n{}", world.trace.join("\n"));
    }
    Ok(())
}

/// A key someone has seen: `k<index>` in the trace.
struct Known {
    id: String,
    tenant: &'static str,
}

/// A secret a principal holds, and the admin token made from it, if any.
struct Held {
    key: usize,
    secret: String,
    token: Option<(String, BTreeSet<String>)>,
}

struct Principal {
    name: &'static str,
    /// The reserved scopes it held at the start: it may never hold more.
    initial: BTreeSet<String>,
    held: Vec<Held>,
}

#[derive(Default)]
struct Step {
    line: String,
    violations: Vec<String>,
    /// The tenant the step acted in, when it reached the admin API.
    acting: Option<&'static str>,
    /// A key created through `keys:self` in this step, with its parent.
    child: Option<(String, String)>,
    /// Keys the server says this step changed, with who changed them how.
    changed: Vec<String>,
    route: String,
    actor: String,
    sub: String,
    scopes: BTreeSet<String>,
}

struct Snapshot {
    keys: Vec<ApiKey>,
    tenants: Vec<Tenant>,
}

struct World<'a> {
    app: &'a TestApp,
    conn: AnyConnection,
    principals: Vec<Principal>,
    keys: Vec<Known>,
    /// Child id → parent id, for keys created through `keys:self`.
    children: HashMap<String, String>,
    trace: Vec<String>,
}

fn other_tenant(slug: &str) -> &'static str {
    if slug == SYSTEM { ACME } else { SYSTEM }
}

fn reserved_of(scopes: &[String]) -> BTreeSet<String> {
    scopes
        .iter()
        .filter(|s| RESERVED.contains(&s.as_str()))
        .cloned()
        .collect()
}

fn json_list(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

fn token_scopes(token: &str) -> BTreeSet<String> {
    crate::client::claims_unverified(token)["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether a token's scopes grant the route at all (DESIGN §5's table).
fn route_allows(route: &str, scopes: &BTreeSet<String>) -> bool {
    let has = |s: &str| scopes.contains(s);
    match route {
        "list" | "get" => has(READ) || has(WRITE) || has(SELF),
        "revoke" | "bulk-revoke" => has(WRITE) || has(SELF),
        "settings" => has(SETTINGS),
        _ => has(WRITE),
    }
}

/// A row as it matters to other tenants (usage counters left out: they
/// change with every exchange).
fn fingerprint(k: &ApiKey) -> String {
    format!(
        "{:?} {:?}",
        (
            &k.id,
            &k.name,
            &k.description,
            &k.owner,
            &k.start,
            &k.secret_hash,
            &k.previous_secret_hash,
            k.previous_expires_at,
        ),
        (
            &k.scopes,
            &k.audiences,
            &k.ip_allowlist,
            k.max_token_ttl_s,
            k.rate_limit_per_s,
            &k.claims,
            &k.metadata,
            k.expires_at,
            k.revoked_at,
            k.deleted_at,
            k.updated_at,
        )
    )
}

impl<'a> World<'a> {
    async fn set_up(app: &'a TestApp) -> World<'a> {
        let root = app.admin_token(&app.bootstrap_key).await;
        app.new_tenant(&root, ACME).await;
        app.set_settings(
            &root,
            None,
            json!({"audiences": ["urn:keymint:tenant:default", DEFAULT_AUD]}),
        )
        .await;
        app.set_settings(
            &root,
            Some(ACME),
            json!({"audiences": ["urn:keymint:tenant:acme", ACME_AUD]}),
        )
        .await;
        let mut world = World {
            app,
            conn: app.db.connect(),
            principals: Vec::new(),
            keys: Vec::new(),
            children: HashMap::new(),
            trace: Vec::new(),
        };
        for spec in &PRINCIPALS {
            let mut body = json!({"name": spec.name, "owner": spec.owner, "scopes": spec.scopes});
            if spec.bounded {
                let (nets, audience) = if spec.tenant == SYSTEM {
                    (json!(["127.0.0.0/8", "::1/128"]), DEFAULT_AUD)
                } else {
                    (json!(["127.0.0.1/32"]), ACME_AUD)
                };
                body["ip_allowlist"] = nets;
                body["audiences"] = json!([audience]);
                body["expires_in_s"] = json!(30 * 86_400);
                body["max_token_ttl_s"] = json!(600);
                body["rate_limit_per_s"] = json!(50);
            }
            let tenant = (spec.tenant != SYSTEM).then_some(spec.tenant);
            let created = app.create_key_in(&root, tenant, body).await;
            let key = world.learn(created["id"].as_str().unwrap_or_default(), spec.tenant);
            world.principals.push(Principal {
                name: spec.name,
                initial: spec
                    .scopes
                    .iter()
                    .filter(|s| RESERVED.contains(s))
                    .map(|s| (*s).to_owned())
                    .collect(),
                held: vec![Held {
                    key,
                    secret: created["key"].as_str().unwrap_or_default().to_owned(),
                    token: None,
                }],
            });
            world.trace.push(format!(
                "    {} ({}, owner {}) holds k{key}: {}",
                spec.name,
                spec.tenant,
                spec.owner,
                spec.scopes.join(" ")
            ));
        }
        world
    }

    /// The index of key `id`, remembered with its tenant.
    fn learn(&mut self, id: &str, tenant: &'static str) -> usize {
        if let Some(i) = self.keys.iter().position(|k| k.id == id) {
            return i;
        }
        self.keys.push(Known {
            id: id.to_owned(),
            tenant,
        });
        self.keys.len() - 1
    }

    fn label(&self, id: &str) -> String {
        match self.keys.iter().position(|k| k.id == id) {
            Some(i) => format!("k{i}"),
            None => id.to_owned(),
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, String> {
        let keys = api_keys::table
            .select(ApiKey::as_select())
            .order(api_keys::id)
            .load(&mut self.conn)
            .map_err(|e| format!("reading keys: {e}"))?;
        let tenants = tenants::table
            .select(Tenant::as_select())
            .order(tenants::id)
            .load(&mut self.conn)
            .map_err(|e| format!("reading tenants: {e}"))?;
        Ok(Snapshot { keys, tenants })
    }

    /// Every key as it stands, for reading a failure.
    fn legend(&self, snap: &Snapshot) -> String {
        let slug = |tid: &str| {
            snap.tenants
                .iter()
                .find(|t| t.id == tid)
                .map_or("?", |t| if t.slug == SYSTEM { SYSTEM } else { ACME })
        };
        snap.keys
            .iter()
            .filter(|k| self.keys.iter().any(|known| known.id == k.id))
            .map(|k| {
                format!(
                    "  {} {} owner={} scopes={} audiences={} allow={} ttl={:?} rate={:?} expires={:?}{}{}{}",
                    self.label(&k.id),
                    slug(&k.tenant_id),
                    k.owner.as_deref().unwrap_or("-"),
                    k.scopes,
                    k.audiences,
                    k.ip_allowlist.as_deref().unwrap_or("-"),
                    k.max_token_ttl_s,
                    k.rate_limit_per_s,
                    k.expires_at,
                    k.parent_key_id
                        .as_deref()
                        .map(|p| format!(" parent={}", self.label(p)))
                        .unwrap_or_default(),
                    if k.revoked_at.is_some() { " revoked" } else { "" },
                    if k.deleted_at.is_some() { " deleted" } else { "" },
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The admin token of the actor's chosen secret (made on first use).
    async fn admin(
        &mut self,
        actor: usize,
        via: u8,
        step: &mut Step,
    ) -> Option<(usize, String, BTreeSet<String>)> {
        let p = &self.principals[actor];
        let h = usize::from(via) % p.held.len();
        if let Some((token, scopes)) = &p.held[h].token {
            return Some((h, token.clone(), scopes.clone()));
        }
        let secret = p.held[h].secret.clone();
        let token = self.app.try_admin_token(&secret).await?;
        let scopes = token_scopes(&token);
        self.check_powers(actor, &scopes, "an admin token", step);
        self.principals[actor].held[h].token = Some((token.clone(), scopes.clone()));
        Some((h, token, scopes))
    }

    /// Invariant 1 for something the actor now holds.
    fn check_powers(&self, actor: usize, scopes: &BTreeSet<String>, what: &str, step: &mut Step) {
        let p = &self.principals[actor];
        let gained: Vec<&String> = scopes
            .iter()
            .filter(|s| RESERVED.contains(&s.as_str()) && !p.initial.contains(*s))
            .collect();
        if !gained.is_empty() {
            step.violations.push(format!(
                "[powers] {} now holds {what} carrying {gained:?}, which it did not hold at the start",
                p.name
            ));
        }
    }

    fn row(&mut self, id: &str) -> Option<ApiKey> {
        api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .first(&mut self.conn)
            .optional()
            .ok()
            .flatten()
    }

    /// The secret of key `id` is now `actor`'s.
    fn obtain(
        &mut self,
        actor: usize,
        id: &str,
        tenant: &'static str,
        secret: &str,
        step: &mut Step,
    ) {
        let key = self.learn(id, tenant);
        let row = self.row(id);
        let scopes = row.map(|r| json_list(Some(&r.scopes))).unwrap_or_default();
        self.check_powers(
            actor,
            &reserved_of(&scopes),
            &format!("the secret of k{key}"),
            step,
        );
        let held = &mut self.principals[actor].held;
        match held.iter_mut().find(|h| h.key == key) {
            Some(h) => h.secret = secret.to_owned(),
            None => held.push(Held {
                key,
                secret: secret.to_owned(),
                token: None,
            }),
        }
    }

    async fn step(&mut self, op: &Op, step: &mut Step) {
        match op {
            Op::Exchange {
                actor,
                via,
                admin,
                scope,
                audience,
            } => {
                self.exchange(
                    usize::from(*actor) % self.principals.len(),
                    *via,
                    *admin,
                    *scope,
                    *audience,
                    step,
                )
                .await
            }
            Op::Create(who, body) => {
                self.admin_call(who, "create", &[], Some(body), None, step)
                    .await
            }
            Op::List(who) => self.admin_call(who, "list", &[], None, None, step).await,
            Op::Get(who, t) => self.admin_call(who, "get", &[*t], None, None, step).await,
            Op::Patch(who, t) => self.admin_call(who, "patch", &[*t], None, None, step).await,
            Op::Revoke(who, t) => {
                self.admin_call(who, "revoke", &[*t], None, None, step)
                    .await
            }
            Op::BulkRevoke(who, ts) => {
                self.admin_call(who, "bulk-revoke", ts, None, None, step)
                    .await
            }
            Op::Delete(who, t) => {
                self.admin_call(who, "delete", &[*t], None, None, step)
                    .await
            }
            Op::Rotate(who, t, grace) => {
                let body = json!({"grace_period_s": if *grace { 3600 } else { 0 }});
                self.admin_call(who, "rotate", &[*t], None, Some(body), step)
                    .await
            }
            Op::Settings(who, variant) => {
                let body = match variant {
                    0 => json!({"default_token_ttl_s": 300}),
                    1 => json!({"default_token_ttl_s": 900}),
                    2 => json!({"default_rate_limit_per_s": 20}),
                    3 => json!({"default_rate_limit_per_s": 100}),
                    4 => json!({"max_token_ttl_s": 1200}),
                    _ => json!({"max_token_ttl_s": 3600}),
                };
                self.admin_call(who, "settings", &[], None, Some(body), step)
                    .await
            }
        }
    }

    async fn exchange(
        &mut self,
        actor: usize,
        via: u8,
        admin: bool,
        scope: u8,
        audience: u8,
        step: &mut Step,
    ) {
        let p = &self.principals[actor];
        let held = &p.held[usize::from(via) % p.held.len()];
        let mut body = serde_json::Map::new();
        let audience = if admin {
            Some(self.app.admin_audience.clone())
        } else {
            [
                None,
                Some(DEFAULT_AUD),
                Some(ACME_AUD),
                Some("urn:keymint:tenant:default"),
            ][usize::from(audience) % 4]
                .map(str::to_owned)
        };
        if let Some(a) = &audience {
            body.insert("audience".into(), json!(a));
        }
        let scope = [
            None,
            Some("app:read"),
            Some(WRITE),
            Some("keys:self admin:settings"),
            Some(TENANTS),
        ][usize::from(scope) % 5];
        if let Some(s) = scope {
            body.insert("scope".into(), json!(s));
        }
        let body = Value::Object(body);
        let answer = self.app.token_answer(&held.secret, body.clone()).await;
        step.line = format!(
            "{} exchanges k{} {body} -> {}",
            p.name, held.key, answer.status
        );
        if answer.status == 200 {
            let token = answer.str("access_token").unwrap_or_default().to_owned();
            step.line
                .push_str(&format!(" scope={:?}", answer.str("scope").unwrap_or("")));
            self.check_powers(actor, &token_scopes(&token), "a token", step);
        }
    }

    fn create_body(&self, actor: usize, b: &CreateBody, n: usize, via: Option<&ApiKey>) -> Value {
        let mut body = json!({
            "name": format!("made by {} #{n}", self.principals[actor].name),
            "scopes": b.reserved.iter().chain(b.ordinary.iter()).collect::<Vec<_>>(),
        });
        if let Some(via) = via.filter(|_| b.tailored) {
            let own = json_list(Some(&via.scopes));
            body["scopes"] = json!(
                b.ordinary
                    .iter()
                    .filter(|s| own.iter().any(|o| o == *s))
                    .collect::<Vec<_>>()
            );
            let own_audiences = json_list(Some(&via.audiences));
            if b.audiences > 0 && !own_audiences.is_empty() {
                body["audiences"] = json!(own_audiences);
            }
            return self.bounds(body, b);
        }
        let owners = ["", "alice", "wanda", "mallory", PRINCIPALS[actor].owner];
        if b.owner > 0 {
            body["owner"] = json!(owners[usize::from(b.owner) % owners.len()]);
        }
        let audiences = [
            json!(null),
            json!([DEFAULT_AUD]),
            json!([ACME_AUD]),
            json!(["urn:keymint:tenant:default"]),
            json!(["urn:keymint:tenant:acme"]),
        ];
        if b.audiences > 0 {
            body["audiences"] = audiences[usize::from(b.audiences) % audiences.len()].clone();
        }
        if b.claims {
            body["claims"] = json!({"plan": "gold"});
        }
        self.bounds(body, b)
    }

    /// The allow-list, token TTL, rate and expiry a create asks for.
    fn bounds(&self, mut body: Value, b: &CreateBody) -> Value {
        let nets = [
            json!(null),
            json!(["127.0.0.0/8"]),
            json!(["0.0.0.0/0", "::/0"]),
            json!(["127.0.0.1/32"]),
            json!(["10.0.0.0/8"]),
        ];
        if b.allow > 0 {
            body["ip_allowlist"] = nets[usize::from(b.allow) % nets.len()].clone();
        }
        if b.ttl > 0 {
            body["max_token_ttl_s"] = json!([60, 600, 3600][usize::from(b.ttl - 1) % 3]);
        }
        if b.rate > 0 {
            body["rate_limit_per_s"] = json!([1, 50, 1000][usize::from(b.rate - 1) % 3]);
        }
        match b.expiry {
            1 => body["never_expires"] = json!(true),
            2 => body["expires_in_s"] = json!(3600),
            3 => body["expires_in_s"] = json!(365 * 86_400),
            _ => {}
        }
        body
    }

    /// One admin-API step, with the per-answer checks of invariants 1 and 3.
    async fn admin_call(
        &mut self,
        who: &Who,
        route: &str,
        targets: &[u16],
        create: Option<&CreateBody>,
        extra: Option<Value>,
        step: &mut Step,
    ) {
        let actor = usize::from(who.actor) % self.principals.len();
        let name = self.principals[actor].name;
        let Some((h, token, scopes)) = self.admin(actor, who.via, step).await else {
            let key = {
                let p = &self.principals[actor];
                p.held[usize::from(who.via) % p.held.len()].key
            };
            step.line = format!("{name} via k{key}: no admin token ({route} skipped)");
            return;
        };
        let via_key = self.principals[actor].held[h].key;
        // A principal acts in the tenant of the key whose secret it uses: a
        // root admin that legitimately obtained another tenant's secret
        // (X-Tenant, then rotate) acts there with it.
        let home = self.keys[via_key].tenant;
        let x_tenant = who.x_tenant.then(|| other_tenant(home));
        let honoured = who.x_tenant && home == SYSTEM && scopes.contains(TENANTS);
        let acting = if honoured { other_tenant(home) } else { home };
        step.acting = Some(acting);
        let ids: Vec<usize> = targets
            .iter()
            .map(|t| usize::from(*t) % self.keys.len())
            .collect();
        let via_row = if create.is_some_and(|b| b.tailored) {
            self.row(&self.keys[via_key].id.clone())
        } else {
            None
        };
        let id = |i: usize| self.keys[i].id.clone();
        let n = self.trace.len() - PRINCIPALS.len();
        let (method, path, body) = match route {
            "create" => (
                "POST",
                "/api/v1/keys".to_owned(),
                create.map(|b| self.create_body(actor, b, n, via_row.as_ref())),
            ),
            "list" => ("GET", "/api/v1/keys?limit=200".to_owned(), None),
            "get" => ("GET", format!("/api/v1/keys/{}", id(ids[0])), None),
            "patch" => (
                "PATCH",
                format!("/api/v1/keys/{}", id(ids[0])),
                Some(json!({"name": format!("renamed #{n}"), "metadata": {"step": n}})),
            ),
            "revoke" => ("POST", format!("/api/v1/keys/{}/revoke", id(ids[0])), None),
            "bulk-revoke" => (
                "POST",
                "/api/v1/keys/revoke".to_owned(),
                Some(json!({"ids": ids.iter().map(|i| id(*i)).collect::<Vec<_>>()})),
            ),
            "delete" => ("DELETE", format!("/api/v1/keys/{}", id(ids[0])), None),
            "rotate" => ("POST", format!("/api/v1/keys/{}/rotate", id(ids[0])), extra),
            _ => ("PATCH", "/api/v1/settings".to_owned(), extra),
        };
        let answer = self
            .app
            .api(method, &path, &token, x_tenant, body.clone())
            .await;
        let targets_text: Vec<String> = ids.iter().map(|i| format!("k{i}")).collect();
        step.line = format!(
            "{name} via k{via_key}{} {route} {} {} -> {}",
            x_tenant
                .map(|t| format!(" [X-Tenant: {t}]"))
                .unwrap_or_default(),
            targets_text.join(","),
            body.as_ref().map(Value::to_string).unwrap_or_default(),
            answer.status
        );
        if answer.status == 401 {
            // The key behind the token was revoked or deleted since.
            self.principals[actor].held[h].token = None;
        }
        step.route = route.to_owned();
        step.actor = name.to_owned();
        step.sub = crate::client::claims_unverified(&token)["sub"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        step.scopes = scopes.clone();
        if matches!(answer.status, 200 | 204) {
            match route {
                "patch" | "revoke" | "delete" | "rotate" => step.changed.push(id(ids[0])),
                "bulk-revoke" => step.changed.extend(
                    answer.body["revoked"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_owned)),
                ),
                _ => {}
            }
        }

        // Invariant 3: X-Tenant is honoured only for system admins of tenants.
        if who.x_tenant && !honoured {
            if answer.status != 400 && answer.status != 401 {
                step.violations.push(format!(
                    "[tenants] {name} ({home}) sent X-Tenant without admin:tenants in the system tenant and got {}",
                    answer.status
                ));
            }
            return;
        }
        // Invariant 3: another tenant's ids are not found.
        let foreign: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|i| self.keys[*i].tenant != acting)
            .collect();
        if answer.status != 401 && !foreign.is_empty() && route != "bulk-revoke" {
            let allowed =
                answer.status == 404 || (answer.status == 403 && !route_allows(route, &scopes));
            if !allowed {
                step.violations.push(format!(
                    "[tenants] {name} acting in {acting} reached k{} of {} with {route}: {}",
                    foreign[0], self.keys[foreign[0]].tenant, answer.status
                ));
            }
        }
        if answer.status == 200 && route == "bulk-revoke" {
            let listed = |member: &str| -> Vec<String> {
                answer.body[member]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for i in &foreign {
                if listed("revoked").contains(&self.keys[*i].id)
                    || !listed("not_found").contains(&self.keys[*i].id)
                {
                    step.violations.push(format!(
                        "[tenants] {name} acting in {acting} bulk-revoked k{i} of {}: {}",
                        self.keys[*i].tenant, answer.body
                    ));
                }
            }
        }
        if answer.status == 200 && route == "list" {
            for item in answer.body["items"].as_array().into_iter().flatten() {
                if item["tenant"] != acting {
                    step.violations.push(format!(
                        "[tenants] {name} acting in {acting} lists {} of {}",
                        self.label(item["id"].as_str().unwrap_or_default()),
                        item["tenant"]
                    ));
                }
            }
        }
        if answer.status == 200 && route == "get" && answer.body["tenant"] != acting {
            step.violations.push(format!(
                "[tenants] {name} acting in {acting} reads k{} of {}",
                ids[0], answer.body["tenant"]
            ));
        }
        self.absorb(actor, route, acting, &scopes, via_key, &answer, step);
    }

    /// What a successful create or rotate hands the actor.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        &mut self,
        actor: usize,
        route: &str,
        acting: &'static str,
        scopes: &BTreeSet<String>,
        via_key: usize,
        answer: &Answer,
        step: &mut Step,
    ) {
        let created = route == "create" && answer.status == 201;
        let rotated = route == "rotate" && answer.status == 200;
        if !created && !rotated {
            return;
        }
        let (Some(id), Some(secret)) = (answer.str("id"), answer.str("key")) else {
            step.violations.push(format!(
                "{route} answered {} without id and key",
                answer.status
            ));
            return;
        };
        if answer.str("tenant") != Some(acting) {
            step.violations.push(format!(
                "[tenants] acting in {acting}, {route} answered a key of {:?}",
                answer.str("tenant")
            ));
        }
        let (id, secret) = (id.to_owned(), secret.to_owned());
        self.obtain(actor, &id, acting, &secret, step);
        let key = self.learn(&id, acting);
        step.line
            .push_str(&format!(" k{key} {}", answer.body["scopes"]));
        if created && scopes.contains(SELF) && !scopes.contains(WRITE) {
            let parent = self.keys[via_key].id.clone();
            self.children.insert(id.clone(), parent.clone());
            step.child = Some((id, parent));
        }
    }

    /// Invariants 2 and 3 on the rows, after the step.
    fn check_rows(&self, before: &Snapshot, after: &Snapshot, step: &Step) -> Vec<String> {
        let mut out = Vec::new();
        let slug_of = |snap: &Snapshot, tid: &str| -> &'static str {
            snap.tenants
                .iter()
                .find(|t| t.id == tid)
                .map_or("?", |t| if t.slug == SYSTEM { SYSTEM } else { ACME })
        };
        // 3: nothing outside the acting tenant changed. A child made in the
        // other tenant through X-Tenant by a key of the acting one is revoked
        // with its parent (DESIGN's cascade); that is the one allowed change.
        if let Some(acting) = step.acting {
            let other = other_tenant(acting);
            let parent_here = |k: &ApiKey| {
                let parent = self.children.get(&k.id).map(String::as_str);
                parent
                    .or(k.parent_key_id.as_deref())
                    .and_then(|p| before.keys.iter().find(|row| row.id == p))
                    .is_some_and(|p| slug_of(before, &p.tenant_id) == acting)
            };
            let rows = |snap: &'_ Snapshot| -> HashMap<String, String> {
                snap.keys
                    .iter()
                    .filter(|k| slug_of(snap, &k.tenant_id) == other && !parent_here(k))
                    .map(|k| (k.id.clone(), fingerprint(k)))
                    .collect()
            };
            let (was, is) = (rows(before), rows(after));
            let mut changed: Vec<String> = is
                .iter()
                .filter(|(id, row)| was.get(*id) != Some(*row))
                .map(|(id, _)| self.label(id))
                .chain(
                    was.keys()
                        .filter(|id| !is.contains_key(*id))
                        .map(|id| self.label(id)),
                )
                .collect();
            let settings = |snap: &Snapshot| {
                snap.tenants
                    .iter()
                    .find(|t| slug_of(snap, &t.id) == other)
                    .map(|t| format!("{t:?}"))
            };
            if settings(before) != settings(after) {
                changed.push("its settings".into());
            }
            if !changed.is_empty() {
                changed.sort();
                out.push(format!(
                    "[tenants] a step acting in {acting} changed {other}'s {}",
                    changed.join(", ")
                ));
            }
        }

        // 4: no caller acts above itself.
        for id in &step.changed {
            let Some(target) = before.keys.iter().find(|k| &k.id == id) else {
                continue;
            };
            let t = self.label(id);
            let above: Vec<String> = reserved_of(&json_list(Some(&target.scopes)))
                .into_iter()
                .filter(|s| !step.scopes.contains(s))
                .collect();
            if !above.is_empty() {
                out.push(format!(
                    "[above] {} ({}) could {} {t}, which holds {above:?} it lacks",
                    step.actor,
                    step.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                    step.route
                ));
            }
            if !step.scopes.contains(WRITE) {
                let owned = target.owner.as_deref() == Some(step.sub.as_str());
                if !matches!(step.route.as_str(), "revoke" | "bulk-revoke") || !owned {
                    out.push(format!(
                        "[above] {} (sub {}, without admin:keys:write) could {} {t} owned by {}",
                        step.actor,
                        step.sub,
                        step.route,
                        target.owner.as_deref().unwrap_or("nobody")
                    ));
                }
            }
        }

        // 2: children stay inside their parents.
        let row = |id: &str| after.keys.iter().find(|k| k.id == id);
        let mut pairs: Vec<(&ApiKey, &str)> = Vec::new();
        for k in &after.keys {
            match (self.children.get(&k.id), k.parent_key_id.as_deref()) {
                (Some(tracked), Some(stored)) if tracked != stored => out.push(format!(
                    "[children] {} was made through keys:self by {} but records parent {}",
                    self.label(&k.id),
                    self.label(tracked),
                    self.label(stored)
                )),
                (Some(tracked), None) => {
                    out.push(format!(
                        "[children] {} was made through keys:self by {} but records no parent",
                        self.label(&k.id),
                        self.label(tracked)
                    ));
                    pairs.push((k, tracked));
                }
                (_, Some(stored)) => pairs.push((k, stored)),
                (None, None) => {}
            }
        }
        for (child, parent_id) in pairs {
            let Some(parent) = row(parent_id) else {
                continue;
            };
            let c = self.label(&child.id);
            let p = self.label(&parent.id);
            let child_scopes = json_list(Some(&child.scopes));
            let parent_scopes = json_list(Some(&parent.scopes));
            let reserved = reserved_of(&child_scopes);
            if !reserved.is_empty() {
                out.push(format!(
                    "[children] {c} (child of {p}) holds reserved {reserved:?}"
                ));
            }
            let extra: Vec<&String> = child_scopes
                .iter()
                .filter(|s| !parent_scopes.contains(s))
                .collect();
            if !extra.is_empty() {
                out.push(format!(
                    "[children] {c} holds scopes {extra:?} its parent {p} lacks"
                ));
            }
            let child_aud = json_list(Some(&child.audiences));
            let parent_aud = json_list(Some(&parent.audiences));
            if let Some(a) = child_aud.iter().find(|a| !parent_aud.contains(a)) {
                out.push(format!(
                    "[children] {c} has audience {a} its parent {p} lacks"
                ));
            }
            let parent_nets = json_list(parent.ip_allowlist.as_deref());
            let child_nets = json_list(child.ip_allowlist.as_deref());
            if !parent_nets.is_empty() {
                let inside = |net: &String| {
                    let Ok(net) = net.parse::<ipnet::IpNet>() else {
                        return false;
                    };
                    parent_nets
                        .iter()
                        .filter_map(|p| p.parse::<ipnet::IpNet>().ok())
                        .any(|p| p.contains(&net))
                };
                if child_nets.is_empty() || !child_nets.iter().all(inside) {
                    out.push(format!(
                        "[children] {c}'s allow-list {child_nets:?} is not within its parent {p}'s {parent_nets:?}"
                    ));
                }
            }
            if let Some(limit) = parent.expires_at
                && child.expires_at.is_none_or(|at| at > limit)
            {
                out.push(format!(
                    "[children] {c} expires at {:?}, after its parent {p} ({limit})",
                    child.expires_at
                ));
            }
            if let Some(limit) = parent.max_token_ttl_s
                && child.max_token_ttl_s.is_none_or(|t| t > limit)
            {
                out.push(format!(
                    "[children] {c}'s max_token_ttl_s {:?} exceeds its parent {p}'s {limit}",
                    child.max_token_ttl_s
                ));
            }
            if let Some(limit) = parent.rate_limit_per_s
                && child.rate_limit_per_s.is_none_or(|r| r > limit)
            {
                out.push(format!(
                    "[children] {c}'s rate_limit_per_s {:?} exceeds its parent {p}'s {limit}",
                    child.rate_limit_per_s
                ));
            }
            if (parent.revoked_at.is_some() || parent.deleted_at.is_some())
                && child.revoked_at.is_none()
            {
                out.push(format!(
                    "[children] {c} is still live though its parent {p} was revoked"
                ));
            }
        }

        // 2, at creation: the tenant's defaults as they were then.
        if let Some((child_id, parent_id)) = &step.child
            && let (Some(child), Some(parent)) = (row(child_id), row(parent_id))
            && let Some(tenant) = before.tenants.iter().find(|t| t.id == child.tenant_id)
        {
            let c = self.label(child_id);
            let effective = |own: Option<i64>| own.unwrap_or(3600).min(tenant.max_token_ttl_s);
            let bound = effective(parent.max_token_ttl_s).min(tenant.default_token_ttl_s);
            if effective(child.max_token_ttl_s) > bound {
                out.push(format!(
                    "[children] {c} was made with a token TTL up to {} s, over min(its parent's {}, the tenant default {}) = {bound}",
                    effective(child.max_token_ttl_s),
                    effective(parent.max_token_ttl_s),
                    tenant.default_token_ttl_s
                ));
            }
            let rate = |own: Option<f64>| own.unwrap_or(tenant.default_rate_limit_per_s);
            let bound = rate(parent.rate_limit_per_s).min(tenant.default_rate_limit_per_s);
            if rate(child.rate_limit_per_s) > bound {
                out.push(format!(
                    "[children] {c} was made with rate {} /s, over min(its parent's, the tenant default) = {bound}",
                    rate(child.rate_limit_per_s)
                ));
            }
        }
        out
    }
}
