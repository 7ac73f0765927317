//! What a first start tells a newcomer: with a terminal (or the flag), the
//! bootstrap key, the console's address and what to do next; without one,
//! a warning naming the exact command that makes an admin key. Both are
//! followed here as a newcomer would: the command is run as printed, and
//! the console's address is fetched.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::client::admin_token_at;
use crate::helpers::{Backend, ServerProcess, TestDatabase, run_cli_on};

#[tokio::test]
async fn a_first_start_without_a_key_warns_with_a_command_that_works() {
    let db = TestDatabase::new(Backend::Sqlite);
    let server = ServerProcess::start(&db, &[]).await;
    let warning = server
        .stderr
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("WARN") && line.contains("no bootstrap admin key"))
        .cloned()
        .expect("one WARN line says that no bootstrap key was made");
    let command = warning
        .split("command=")
        .nth(1)
        .expect("the line names the command")
        .trim();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "keymint", "{command}");
    assert!(command.contains("admin:keys:write"), "{command}");

    // Run exactly that (the test database's paths hold no spaces).
    let (code, stdout, stderr) = run_cli_on(&db, &words[1..]).await;
    assert_eq!(code, 0, "{command}: {stderr}");
    let secret = stdout.trim();
    assert!(secret.starts_with("km_"), "{stdout}");

    // The key it made signs in to the admin API of the running server.
    let http = reqwest::Client::new();
    let node = server.base_url();
    let token = admin_token_at(&http, &node, secret, &node).await;
    let settings = http
        .get(format!("{node}/api/v1/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), 200);
    server.stop().await;

    // A later start (the tenant exists) does not warn again.
    let again = ServerProcess::start(&db, &[]).await;
    let warned = again
        .stderr
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.contains("no bootstrap admin key"));
    assert!(!warned, "only the start that skipped the key warns");
    again.stop().await;
}

#[tokio::test]
async fn a_first_start_with_a_terminal_leads_to_the_console() {
    let db = TestDatabase::new(Backend::Sqlite);
    let mut server = ServerProcess::start_with_args(&db, &["--print-bootstrap-key"], &[]).await;
    let stdout = server.child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("a line")
    };
    let key_line = next().await;
    let secret = key_line
        .strip_prefix("bootstrap admin key: ")
        .expect("the marker")
        .to_owned();
    let console_line = next().await;
    let url = console_line
        .strip_prefix("admin console: ")
        .expect("the console's address follows the key");
    assert_eq!(url, format!("{}/console/", server.base_url()));
    let advice = next().await;
    assert!(
        advice.contains("create an admin key of your own"),
        "{advice}"
    );
    assert!(advice.contains("expires in 24 h"), "{advice}");

    // The address serves the console, and the key signs in to the API it uses.
    let http = reqwest::Client::new();
    let page = http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("keymint console"));
    let node = server.base_url();
    admin_token_at(&http, &node, &secret, &node).await;
    server.stop().await;
}
