//! The offline administration commands: they work on the database directly,
//! each change in one transaction with its audit event (actor `cli`).

use chrono::Utc;

use super::args::{CreateKeyArgs, KeysCommand};
use crate::audit::{Actor, Origin};
use crate::config::Settings;
use crate::crypto::check::SealError;
use crate::db::{self, AnyConnection};
use crate::domain::status_list::Publication;
use crate::keys::rules::{self, Expiry};
use crate::keys::store::{self, KeyRevocation, NewKey};
use crate::keys::{SecurityLevel, Status};
use crate::startup::open_master_key;
use crate::tenants::{self, policy};
use crate::tokens::signing;

fn open(settings: &Settings) -> Result<AnyConnection, String> {
    let mut conn = db::connect(&settings.database)
        .map_err(|e| format!("database {}: {e}", settings.database.target.describe()))?;
    db::migrate(&mut conn).map_err(|e| e.to_string())?;
    crate::bootstrap::ensure_system_tenant(&mut conn, Utc::now().naive_utc())
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn tenant(conn: &mut AnyConnection, slug: &str) -> Result<crate::db::models::Tenant, String> {
    tenants::store::find_by_slug(conn, slug)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no tenant `{slug}`"))
}

pub fn keys(settings: &Settings, command: KeysCommand) -> Result<(), String> {
    let mut conn = open(settings)?;
    match command {
        KeysCommand::Create(args) => create(settings, &mut conn, args),
        KeysCommand::List { tenant: slug, json } => list(&mut conn, &slug, json),
        KeysCommand::Revoke {
            id,
            tenant: slug,
            reason,
        } => {
            let tenant = tenant(&mut conn, &slug)?;
            let now = Utc::now().naive_utc();
            let revocation = KeyRevocation {
                reason: reason.as_deref(),
                actor: &Actor::cli(),
                origin: &Origin::default(),
                lists: Publication {
                    issuer: &settings.tokens.issuer,
                    ttl_s: settings.statuslist.ttl_s,
                },
                now,
            };
            let revoked = store::revoke(&mut conn, &tenant.id, &id, &revocation)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no key `{id}` in tenant `{slug}`"))?;
            eprintln!(
                "revoked {} key(s){}",
                revoked.len(),
                if revoked.is_empty() {
                    " (it was already revoked)"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

fn create(
    settings: &Settings,
    conn: &mut AnyConnection,
    args: CreateKeyArgs,
) -> Result<(), String> {
    let tenant = tenant(conn, &args.tenant)?;
    let now = Utc::now().naive_utc();
    let mut problems = Vec::new();
    problems.extend(rules::name(&args.name).err());
    if let Some(owner) = &args.owner {
        problems.extend(rules::owner(owner).err());
    }
    problems.extend(rules::scopes(&args.scopes, &tenant).err());
    if let Some(ttl) = args.max_token_ttl {
        problems.extend(rules::max_token_ttl(ttl).err());
    }
    for audience in &args.audiences {
        if !tenants::store::has_audience(conn, &tenant.id, audience).map_err(|e| e.to_string())? {
            problems.push(crate::error::FieldError::new(
                "audiences",
                format!("`{audience}` is not registered in tenant `{}`", tenant.slug),
            ));
        }
    }
    let choice = match (args.expires_in, args.expires_at, args.never_expires) {
        (Some(s), _, _) => Expiry::In(s),
        (_, Some(at), _) => Expiry::At(at),
        (_, _, true) => Expiry::Never,
        _ => Expiry::Unspecified,
    };
    let expires_at = rules::expiry(choice, &tenant, now)
        .map_err(|e| problems.push(e))
        .ok()
        .flatten();
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        return Err(lines.join("; "));
    }
    let actor = Actor::cli();
    let new = NewKey {
        tenant_id: tenant.id.clone(),
        name: args.name,
        description: None,
        owner: args.owner,
        scopes: dedup(args.scopes),
        audiences: dedup(args.audiences),
        expires_at,
        max_token_ttl_s: args.max_token_ttl,
        rate_limit_per_s: None,
        ip_allowlist: None,
        claims: None,
        metadata: None,
        security_level: if args.advanced {
            SecurityLevel::Advanced
        } else {
            SecurityLevel::Standard
        },
        created_by: actor.clone(),
        parent_key_id: None,
    };
    let (mut row, secret) =
        store::prepare(&new, &settings.tokens.key_prefix, now).map_err(|e| e.to_string())?;
    let master = match args.advanced {
        true => Some(open_master_key(settings, conn, None).map_err(|e| e.to_string())?),
        false => None,
    };
    db::write_transaction(conn, |conn| {
        if let Some(master) = &master {
            store::seal_advanced(conn, &mut row, master, secret.expose())?;
        }
        store::insert(conn, &mut row, &actor, &Origin::default())?;
        Ok(())
    })
    .map_err(|e: SealError| e.to_string())?;
    eprintln!("created key {} ({})", row.id, row.start);
    println!("{}", secret.expose());
    Ok(())
}

fn dedup(mut values: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values.retain(|v| seen.insert(v.clone()));
    values
}

fn list(conn: &mut AnyConnection, slug: &str, json: bool) -> Result<(), String> {
    let tenant = tenant(conn, slug)?;
    let keys = store::list_all(conn, &tenant.id).map_err(|e| e.to_string())?;
    let now = Utc::now().naive_utc();
    if !json {
        println!(
            "{:<36}  {:<8}  {:<12}  {:<24}  NAME",
            "ID", "STATUS", "START", "OWNER"
        );
    }
    for key in keys {
        let status = Status::of(key.revoked_at, key.expires_at, now);
        if json {
            let line = serde_json::json!({
                "id": key.id,
                "tenant": tenant.slug,
                "name": key.name,
                "owner": key.owner,
                "start": key.start,
                "scopes": key.scope_list(),
                "status": status.as_str(),
                "created_at": key.created_at.and_utc().to_rfc3339(),
                "expires_at": key.expires_at.map(|t| t.and_utc().to_rfc3339()),
                "revoked_at": key.revoked_at.map(|t| t.and_utc().to_rfc3339()),
            });
            println!("{line}");
        } else {
            println!(
                "{:<36}  {:<8}  {:<12}  {:<24}  {}",
                key.id,
                status.as_str(),
                key.start,
                key.owner.as_deref().unwrap_or("-"),
                key.name
            );
        }
    }
    Ok(())
}

pub fn rotate_signing_keys(settings: &Settings) -> Result<(), String> {
    let mut conn = open(settings)?;
    let master = open_master_key(settings, &mut conn, None).map_err(|e| e.to_string())?;
    let rotation = signing::rotate(
        &mut conn,
        &master,
        &settings.signing,
        Utc::now().naive_utc(),
        &Actor::cli(),
        &Origin::default(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&rotation).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `keymint settings set`: the same validation as the API, no lock-out guard.
pub fn set_settings(settings: &Settings, slug: &str, assignments: &[String]) -> Result<(), String> {
    let mut conn = open(settings)?;
    let tenant = tenant(&mut conn, slug)?;
    let mut object = serde_json::Map::new();
    for assignment in assignments {
        let (field, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("`{assignment}` is not FIELD=VALUE"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        object.insert(field.to_owned(), value);
    }
    let body = serde_json::Value::Object(object).to_string();
    let describe = |e: crate::error::ApiError| match e {
        crate::error::ApiError::BadRequest { errors, .. } if !errors.is_empty() => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    let patch = crate::routes::settings::parse_patch(body.as_bytes()).map_err(describe)?;
    let (updated, audiences) = policy::apply(
        &mut conn,
        &tenant.id,
        &patch.changes,
        &settings.tokens.admin_audience,
        &Actor::cli(),
        &Origin::default(),
        |_| Ok(()),
        Utc::now().naive_utc(),
    )
    .map_err(describe)?;
    eprintln!(
        "updated tenant `{}` (api_keys_enabled={}, audiences={})",
        updated.slug,
        updated.api_keys_enabled,
        audiences.join(",")
    );
    Ok(())
}

/// `keymint master-key rotate --new-key-file F`.
pub fn rotate_master_key(
    settings: &Settings,
    new_key_file: &std::path::Path,
) -> Result<(), String> {
    let mut conn = open(settings)?;
    let old = open_master_key(settings, &mut conn, None).map_err(|e| e.to_string())?;
    let new = crate::crypto::master::MasterKey::from_file(new_key_file, "--new-key-file")
        .map_err(|e| e.to_string())?;
    let done = crate::crypto::rotate::rotate(&mut conn, &old, &new).map_err(|e| e.to_string())?;
    eprintln!(
        "re-encrypted {} signing key(s), {} advanced key secret(s) and {} event receiver \
         secret(s) under master key {}; \
         running servers write no secrets until they have it: put it in their key file \
         (re-read every signing.reload_s) or restart them with KEYMINT_MASTER_KEY_FILE={}",
        done.signing_keys,
        done.api_key_secrets,
        done.event_stream_secrets,
        new.id(),
        new_key_file.display()
    );
    Ok(())
}

/// Bulk insert for benchmarks: keys with a rate limit high enough that the
/// limiter never answers, in transactions of 5 000, their `id secret`
/// written to `out` (mode 0600) — a file of live secrets, for load tests.
/// Names are `bench-<n>`; with `owners`, owners `team-<n % owners>`.
pub fn bench_seed(
    settings: &Settings,
    count: u64,
    out: &std::path::Path,
    scopes: Vec<String>,
    owners: Option<u64>,
) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut conn = open(settings)?;
    let tenant = tenant(&mut conn, tenants::SYSTEM_TENANT)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut file = std::io::BufWriter::new(file);
    let actor = Actor::cli();
    let started = std::time::Instant::now();
    let mut done = 0u64;
    while done < count {
        let batch = (count - done).min(5_000);
        let now = Utc::now().naive_utc();
        let mut lines = Vec::with_capacity(batch as usize);
        db::write_transaction(&mut conn, |conn| {
            let mut rows = Vec::with_capacity(batch as usize);
            for i in 0..batch {
                let new = NewKey {
                    tenant_id: tenant.id.clone(),
                    name: format!("bench-{}", done + i),
                    description: None,
                    owner: owners.map(|n| format!("team-{}", (done + i) % n)),
                    scopes: scopes.clone(),
                    audiences: Vec::new(),
                    expires_at: None,
                    max_token_ttl_s: None,
                    rate_limit_per_s: Some(1_000_000.0),
                    ip_allowlist: None,
                    claims: None,
                    metadata: None,
                    security_level: SecurityLevel::Standard,
                    created_by: actor.clone(),
                    parent_key_id: None,
                };
                let (row, secret) = store::prepare(&new, &settings.tokens.key_prefix, now)
                    .map_err(|_| diesel::result::Error::RollbackTransaction)?;
                lines.push(format!("{} {}", row.id, secret.expose()));
                rows.push(row);
            }
            store::insert_unaudited(conn, &mut rows)?;
            Ok::<_, diesel::result::Error>(())
        })
        .map_err(|e| e.to_string())?;
        for line in lines {
            writeln!(file, "{line}").map_err(|e| e.to_string())?;
        }
        done += batch;
    }
    file.flush().map_err(|e| e.to_string())?;
    // As autovacuum would soon: a bulk load leaves the planner's
    // statistics behind, and search plans depend on them.
    store::refresh_statistics(&mut conn).map_err(|e| e.to_string())?;
    eprintln!(
        "seeded {count} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
