//! Several processes on one database: replicas that start at the same
//! instant, the compose file's start order, a master-key rotation while a
//! server runs, and a rotation killed half-way.

use std::path::Path;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::join_all;
use keymint::crypto::master::{MasterKey, ciphertext_key_id};
use keymint::db::schema::{api_keys, master_key_check, signing_keys, tenants};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{BIN, Backend, ServerProcess, TestApp, TestDatabase, run_cli, spawn_app_with};

backend_tests!(
    replicas_started_together_all_become_ready,
    a_running_server_never_encrypts_under_a_rotated_master_key,
    a_master_key_rotation_killed_anywhere_leaves_one_key_in_force,
    writes_racing_a_master_key_rotation_end_under_the_new_key,
);

/// How many times each race runs; every trial must pass.
const TRIALS: usize = 10;

async fn ready(client: &reqwest::Client, port: u16) -> reqwest::StatusCode {
    client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .expect("readyz answers")
        .status()
}

/// What a fresh database holds after any number of replicas started on it:
/// everything exactly once.
fn assert_started_once(db: &TestDatabase, context: &str) {
    let mut conn = db.connect();
    let count = |n: QueryResult<i64>| n.expect("count");
    let tenants = count(tenants::table.count().get_result(&mut conn));
    let keys = count(api_keys::table.count().get_result(&mut conn));
    let checks = count(master_key_check::table.count().get_result(&mut conn));
    let signing = count(signing_keys::table.count().get_result(&mut conn));
    assert_eq!(
        (tenants, keys, checks, signing),
        (1, 1, 1, 2),
        "{context}: one tenant, one bootstrap key, one check row, one active and one next signing key"
    );
}

/// The bootstrap key works at `port`.
async fn exchange_at(client: &reqwest::Client, port: u16, secret: &str) -> reqwest::StatusCode {
    client
        .post(format!("http://127.0.0.1:{port}/api/v1/token"))
        .header("X-API-Key", secret)
        .send()
        .await
        .expect("token endpoint answers")
        .status()
}

/// Two and three `keymint serve` processes spawned at the same instant on a
/// new database, all sharing one bootstrap key file, ten times each: every
/// one starts and is ready, and the database was initialised exactly once.
/// On SQLite every other trial also leaves the master key to the replicas
/// (generated into the shared data dir, once).
async fn replicas_started_together_all_become_ready(backend: Backend) {
    let client = reqwest::Client::new();
    for trial in 0..TRIALS {
        for replicas in [2, 3] {
            let context = format!("trial {trial}, {replicas} replicas");
            let db = TestDatabase::new(backend);
            let bootstrap_file = db.dir.path().join("bootstrap.key");
            let bootstrap = bootstrap_file.to_string_lossy().into_owned();
            let generate_master = backend == Backend::Sqlite && trial % 2 == 1;
            let mut env = vec![("KEYMINT_BOOTSTRAP_KEY_FILE", bootstrap.as_str())];
            if generate_master {
                env.push(("KEYMINT_MASTER_KEY_FILE", ""));
            }
            let servers = join_all((0..replicas).map(|_| ServerProcess::start(&db, &env))).await;
            for server in &servers {
                assert_eq!(
                    ready(&client, server.port).await,
                    200,
                    "{context}: every replica is ready"
                );
            }
            assert_started_once(&db, &context);
            let secret = std::fs::read_to_string(&bootstrap_file)
                .unwrap_or_else(|e| panic!("{context}: the bootstrap key file: {e}"));
            for server in &servers {
                assert_eq!(
                    exchange_at(&client, server.port, secret.trim()).await,
                    200,
                    "{context}: the one bootstrap key works at every replica"
                );
            }
            if generate_master {
                assert!(db.data_dir().join("master.key").is_file(), "{context}");
            }
            join_all(servers.into_iter().map(ServerProcess::stop)).await;
        }
    }
}

/// The environment of `docker-compose.yml`'s shared `x-keymint` service
/// block, as `(name, value)` with `${VAR:-default}` resolved to its default.
fn compose_environment(compose: &str) -> Vec<(String, String)> {
    let mut in_keymint = false;
    let mut in_environment = false;
    let mut out = Vec::new();
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_keymint = text.starts_with("x-keymint:");
            in_environment = false;
            continue;
        }
        if in_keymint && indent == 2 {
            in_environment = text == "environment:";
            continue;
        }
        if in_keymint
            && in_environment
            && let Some((name, value)) = text.split_once(':')
        {
            let value = value.trim().trim_matches('"');
            let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(expr) => expr.split_once(":-").map_or("", |(_, d)| d).to_owned(),
                None => value.to_owned(),
            };
            out.push((name.trim().to_owned(), value));
        }
    }
    out
}

/// `docker compose up` as processes: PostgreSQL is up (healthy), then the
/// two keymint replicas start together with the compose file's environment,
/// one shared bootstrap key file and one master key; both must become ready
/// (the proxy waits for that), ten times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_start_order_brings_both_replicas_up() {
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    let compose =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"))
            .expect("docker-compose.yml");
    assert!(
        compose.contains("keymint-a: *keymint") && compose.contains("keymint-b: *keymint"),
        "two replicas share one service block"
    );
    let environment = compose_environment(&compose);
    let names: Vec<&str> = environment.iter().map(|(n, _)| n.as_str()).collect();
    for needed in [
        "DATABASE_URL",
        "KEYMINT_MASTER_KEY_FILE",
        "KEYMINT_BOOTSTRAP_KEY_FILE",
        "KEYMINT__TOKENS__ISSUER",
    ] {
        assert!(names.contains(&needed), "{needed} in {names:?}");
    }
    let client = reqwest::Client::new();
    for trial in 0..TRIALS {
        let db = TestDatabase::new(Backend::Postgres);
        let bootstrap_file = db.dir.path().join("bootstrap").join("bootstrap.key");
        std::fs::create_dir_all(bootstrap_file.parent().unwrap()).unwrap();
        // The compose values, with this machine's paths and ports in place
        // of the containers' (each container has its own network).
        let env: Vec<(String, String)> = environment
            .iter()
            .map(|(name, value)| {
                let value = match name.as_str() {
                    "DATABASE_URL" => db.url(),
                    "KEYMINT_MASTER_KEY_FILE" => db.master_key_file().to_string_lossy().into(),
                    "KEYMINT_BOOTSTRAP_KEY_FILE" => bootstrap_file.to_string_lossy().into(),
                    "KEYMINT__METRICS__BIND" => "127.0.0.1:0".into(),
                    _ => value.clone(),
                };
                (name.clone(), value)
            })
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let (a, b) = tokio::join!(
            ServerProcess::start(&db, &env),
            ServerProcess::start(&db, &env)
        );
        for server in [&a, &b] {
            assert_eq!(ready(&client, server.port).await, 200, "trial {trial}");
        }
        assert_started_once(&db, &format!("trial {trial}"));
        let secret = std::fs::read_to_string(&bootstrap_file).expect("bootstrap key written once");
        for server in [&a, &b] {
            assert_eq!(exchange_at(&client, server.port, secret.trim()).await, 200);
        }
        tokio::join!(a.stop(), b.stop());
    }
}

/// Every stored ciphertext's master-key id, and the check row's.
fn key_ids(db: &TestDatabase) -> (String, Vec<String>) {
    let mut conn = db.connect();
    let check: String = master_key_check::table
        .select(master_key_check::master_key_id)
        .first(&mut conn)
        .expect("check row");
    let mut blobs: Vec<Vec<u8>> = signing_keys::table
        .select(signing_keys::private_key_enc)
        .load(&mut conn)
        .expect("signing keys");
    type Secrets = (Option<Vec<u8>>, Option<Vec<u8>>);
    let secrets: Vec<Secrets> = api_keys::table
        .select((api_keys::secret_enc, api_keys::previous_secret_enc))
        .load(&mut conn)
        .expect("api keys");
    blobs.extend(
        secrets
            .into_iter()
            .flat_map(|(a, b)| a.into_iter().chain(b)),
    );
    let ids = blobs
        .iter()
        .map(|b| ciphertext_key_id(b).expect("a ciphertext"))
        .collect();
    (check, ids)
}

/// A signed `/api/v1/token` request with an advanced key, at `base`.
async fn signed_exchange(client: &reqwest::Client, base: &str, id: &str, secret: &str) -> u16 {
    let headers = keymint::grants::signed::sign_request(
        secret,
        id,
        chrono::Utc::now().timestamp_millis(),
        &uuid::Uuid::now_v7().simple().to_string(),
        "POST",
        "/api/v1/token",
        b"",
    );
    let mut request = client.post(format!("{base}/api/v1/token"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
        .send()
        .await
        .expect("token endpoint")
        .status()
        .as_u16()
}

async fn create_advanced(app: &TestApp, admin: &str, name: &str) -> reqwest::Response {
    app.call(
        "POST",
        "/api/v1/keys",
        admin,
        Some(json!({"name": name, "security_level": "advanced"})),
    )
    .await
}

/// Replaces a key file's content the way an operator or a secret mount
/// does: a new file renamed over the old one.
fn replace_key_file(path: &Path, from: &Path) {
    let staged = path.with_extension("staged");
    std::fs::copy(from, &staged).expect("stage the key");
    std::fs::rename(&staged, path).expect("swap the key file");
}

/// Finding 3: `keymint master-key rotate` while a server runs. The server
/// must never write a ciphertext under the old key (an advanced key's
/// secret, a signing key from an emergency revoke): it answers 503 saying
/// why, and readiness says so too. Once its key file holds the new key it
/// picks it up and works again, old secrets included; a restart with the
/// new key works.
async fn a_running_server_never_encrypts_under_a_rotated_master_key(backend: Backend) {
    let app = spawn_app_with(backend, "[signing]\nreload_s = 1\n").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let before: Value = create_advanced(&app, &admin, "before")
        .await
        .json()
        .await
        .unwrap();
    let before_id = before["id"].as_str().unwrap().to_owned();
    let before_secret = before["key"].as_str().unwrap().to_owned();
    let old_key_file = app.db.dir.path().join("old-master.key");
    std::fs::copy(app.db.master_key_file(), &old_key_file).unwrap();

    let new_file = app.db.dir.path().join("new-master.key");
    let new = MasterKey::generate_file(&new_file).unwrap();
    let new_path = new_file.to_string_lossy().into_owned();
    let (code, _, stderr) = crate::helpers::run_cli_on(
        &app.db,
        &["master-key", "rotate", "--new-key-file", &new_path],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");

    // The server still holds the old key and its file still says so.
    let response = create_advanced(&app, &admin, "during").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"], "urn:keymint:problem:master-key-rotated",
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("master key"),
        "{body}"
    );
    let signing: Value = app
        .call("GET", "/api/v1/signing-keys", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    let active = signing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .expect("an active key")["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .call(
            "POST",
            &format!("/api/v1/signing-keys/{active}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        503,
        "an emergency revoke would encrypt a new key"
    );
    let (check, ids) = key_ids(&app.db);
    assert_eq!(check, new.id());
    assert!(
        ids.iter().all(|id| *id == new.id()),
        "nothing written under the old key: {ids:?}"
    );
    // Within one reload interval readiness reports it.
    let mut readiness = Value::Null;
    for _ in 0..50 {
        let response = app.get("/readyz").await;
        if response.status() == 503 {
            readiness = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        readiness["reason"]
            .as_str()
            .is_some_and(|r| r.contains("master key")),
        "{readiness}"
    );

    // The key file now holds the new key: picked up, everything works.
    replace_key_file(&app.db.master_key_file(), &new_file);
    let mut created = None;
    for _ in 0..50 {
        let response = create_advanced(&app, &admin, "after").await;
        if response.status() == 201 {
            created = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = created.expect("creating an advanced key works again");
    let (check, ids) = key_ids(&app.db);
    assert_eq!(check, new.id());
    assert!(ids.iter().all(|id| *id == new.id()), "{ids:?}");
    let mut ok = false;
    for _ in 0..50 {
        ok = app.get("/readyz").await.status() == 200;
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "ready again");
    let base = app.address.clone();
    for (id, secret) in [
        (before_id.as_str(), before_secret.as_str()),
        (
            after["id"].as_str().unwrap(),
            after["key"].as_str().unwrap(),
        ),
    ] {
        assert_eq!(signed_exchange(&app.client, &base, id, secret).await, 200);
    }
    let response = app
        .call(
            "POST",
            &format!("/api/v1/signing-keys/{active}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);

    // A restart with the new key works; with the old one it is refused.
    let server = ServerProcess::start(&app.db, &[("KEYMINT_MASTER_KEY_FILE", &new_path)]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(ready(&app.client, server.port).await, 200);
    assert_eq!(
        signed_exchange(&app.client, &base, &before_id, &before_secret).await,
        200
    );
    server.stop().await;
    let (code, _, stderr) = run_cli(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &app.db.url(),
        ],
        &[
            ("KEYMINT_MASTER_KEY_FILE", &old_key_file.to_string_lossy()),
            ("RUST_LOG", "off"),
        ],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
}

/// Runs `keymint master-key rotate` from `old` to `new` and kills it with
/// SIGKILL once it reports the pause point `pause` (debug builds pause on
/// `KEYMINT_TEST_PAUSE_MASTER_ROTATE`), or after `delay` when `pause` is
/// `None` (by then it may have finished).
async fn rotate_and_kill(
    db: &TestDatabase,
    old: &Path,
    new: &Path,
    pause: Option<&str>,
    delay: Duration,
) {
    use tokio::io::AsyncBufReadExt;
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["master-key", "rotate", "--new-key-file"])
        .arg(new)
        .env("DATABASE_URL", db.url())
        .env("KEYMINT_MASTER_KEY_FILE", old)
        .env("KEYMINT__DATA_DIR", db.data_dir())
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(point) = pause {
        command.env("KEYMINT_TEST_PAUSE_MASTER_ROTATE", point);
    }
    let mut child = command.spawn().expect("spawn the CLI");
    match pause {
        Some(point) => {
            let stderr = child.stderr.take().unwrap();
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut seen = Vec::new();
            let paused = tokio::time::timeout(Duration::from_secs(30), async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("paused at") {
                        return true;
                    }
                    seen.push(line);
                }
                false
            })
            .await;
            assert_eq!(paused, Ok(true), "paused at {point}: {seen:?}");
        }
        None => tokio::time::sleep(delay).await,
    }
    let _ = child.kill().await;
}

/// `keymint master-key rotate` killed (SIGKILL) at several points — right
/// after the check row switched, after some rows, just before the commit,
/// and at a spread of delays — always leaves a database written under one
/// key: the check row and every ciphertext agree, and a server starts with
/// that key and checks advanced keys' signatures. Then a rotation that
/// finishes moves everything to the new key.
async fn a_master_key_rotation_killed_anywhere_leaves_one_key_in_force(backend: Backend) {
    let app = spawn_app_with(backend, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let mut advanced = Vec::new();
    for name in ["one", "two", "three"] {
        let body: Value = create_advanced(&app, &admin, name)
            .await
            .json()
            .await
            .unwrap();
        advanced.push((
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        ));
    }
    let files = [
        app.db.dir.path().join("first.key"),
        app.db.dir.path().join("second.key"),
    ];
    std::fs::copy(app.db.master_key_file(), &files[0]).unwrap();
    MasterKey::generate_file(&files[1]).unwrap();
    let ids: Vec<String> = files
        .iter()
        .map(|f| MasterKey::from_file(f, "test").unwrap().id().to_owned())
        .collect();
    let mut current = 0;
    let in_force = |current: usize, context: &str| {
        let (check, stored) = key_ids(&app.db);
        assert_eq!(check, ids[current], "{context}: the check row");
        assert!(
            stored.iter().all(|id| *id == ids[current]),
            "{context}: every ciphertext under the key in force: {stored:?}"
        );
    };

    let mut trials: Vec<(Option<&str>, Duration)> = Vec::new();
    if cfg!(debug_assertions) {
        // 2 signing keys + 3 advanced keys = 5 rows.
        for point in ["0", "1", "4", "commit"] {
            trials.push((Some(point), Duration::ZERO));
        }
    }
    for ms in [0, 25, 50, 100, 150, 200, 300, 500] {
        trials.push((None, Duration::from_millis(ms)));
    }
    for (pause, delay) in trials {
        let context = format!("killed at {pause:?} / after {delay:?}");
        let other = 1 - current;
        rotate_and_kill(&app.db, &files[current], &files[other], pause, delay).await;
        let (check, _) = key_ids(&app.db);
        if check == ids[other] {
            assert!(
                pause.is_none(),
                "{context}: a paused rotation never commits"
            );
            current = other;
        }
        in_force(current, &context);
    }

    // A server starts with the key in force and every advanced key works.
    let key_file = files[current].to_string_lossy().into_owned();
    let server = ServerProcess::start(&app.db, &[("KEYMINT_MASTER_KEY_FILE", &key_file)]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(ready(&app.client, server.port).await, 200);
    for (id, secret) in &advanced {
        assert_eq!(signed_exchange(&app.client, &base, id, secret).await, 200);
    }
    server.stop().await;

    // One that is not killed moves everything to the other key.
    let other = 1 - current;
    let (code, _, stderr) = run_cli(
        &[
            "master-key",
            "rotate",
            "--new-key-file",
            &files[other].to_string_lossy(),
        ],
        &[
            ("DATABASE_URL", &app.db.url()),
            ("KEYMINT_MASTER_KEY_FILE", &key_file),
            ("RUST_LOG", "off"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    in_force(other, "after a full rotation");
    let key_file = files[other].to_string_lossy().into_owned();
    let server = ServerProcess::start(&app.db, &[("KEYMINT_MASTER_KEY_FILE", &key_file)]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    for (id, secret) in &advanced {
        assert_eq!(signed_exchange(&app.client, &base, id, secret).await, 200);
    }
    server.stop().await;
}

async fn run_cli_owned(args: Vec<String>, env: Vec<(String, String)>) -> (i32, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_cli(&args, &env).await
}

/// The README's procedure under load: the server's key file gets the new
/// key first, then `keymint master-key rotate` runs while advanced keys are
/// being created and signed requests checked. Ten rotations back and forth:
/// every request succeeds, and afterwards every ciphertext is under the key
/// the check row names (none sealed under the old key after the switch).
async fn writes_racing_a_master_key_rotation_end_under_the_new_key(backend: Backend) {
    let app = spawn_app_with(backend, "[signing]\nreload_s = 1\n").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let signer: Value = create_advanced(&app, &admin, "signer")
        .await
        .json()
        .await
        .unwrap();
    let signer_id = signer["id"].as_str().unwrap().to_owned();
    let signer_secret = signer["key"].as_str().unwrap().to_owned();
    let files = [
        app.db.dir.path().join("first.key"),
        app.db.dir.path().join("second.key"),
    ];
    std::fs::copy(app.db.master_key_file(), &files[0]).unwrap();
    MasterKey::generate_file(&files[1]).unwrap();
    let ids: Vec<String> = files
        .iter()
        .map(|f| MasterKey::from_file(f, "test").unwrap().id())
        .collect();
    let mut current = 0;
    for trial in 0..TRIALS {
        let target = 1 - current;
        replace_key_file(&app.db.master_key_file(), &files[target]);
        let url = app.db.url();
        let old = files[current].to_string_lossy().into_owned();
        let new = files[target].to_string_lossy().into_owned();
        let rotation = tokio::spawn(run_cli_owned(
            vec![
                "master-key".into(),
                "rotate".into(),
                "--new-key-file".into(),
                new,
            ],
            vec![
                ("DATABASE_URL".into(), url),
                ("KEYMINT_MASTER_KEY_FILE".into(), old),
                ("RUST_LOG".into(), "off".into()),
            ],
        ));
        // Requests keep coming until the rotation has finished, so some
        // straddle its commit.
        let (mut creates, mut signed) = (Vec::new(), Vec::new());
        let mut round = 0;
        while !rotation.is_finished() {
            let create = app.call(
                "POST",
                "/api/v1/keys",
                &admin,
                Some(json!({
                    "name": format!("t{trial}-{round}"),
                    "owner": format!("owner-{trial}-{}", round / 50),
                    "security_level": "advanced",
                })),
            );
            let sign = signed_exchange(&app.client, &app.address, &signer_id, &signer_secret);
            let (create, sign) = tokio::join!(create, sign);
            creates.push(create.status().as_u16());
            signed.push(sign);
            round += 1;
        }
        let (code, _, stderr) = rotation.await.unwrap();
        assert_eq!(code, 0, "trial {trial}: {stderr}");
        assert!(
            creates.iter().all(|s| *s == 201),
            "trial {trial}: {creates:?}"
        );
        assert!(
            signed.iter().all(|s| *s == 200),
            "trial {trial}: {signed:?}"
        );
        // A write after the commit follows the rotation at once (the next
        // trial's key file must not be the only key the server knows).
        let after = create_advanced(&app, &admin, &format!("after-{trial}")).await;
        assert_eq!(after.status(), 201, "trial {trial}");
        let (check, stored) = key_ids(&app.db);
        assert_eq!(check, ids[target], "trial {trial}");
        assert!(
            stored.iter().all(|id| *id == ids[target]),
            "trial {trial}: a ciphertext under the old key: {stored:?}"
        );
        current = target;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
}
