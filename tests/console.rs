//! The admin console's browser tests (`tests/console/`: pytest, Playwright
//! driving Debian's Chromium, axe-core) against this build's binary.
//! Without those tools the test is skipped, except under `CI=true`, where it
//! fails and says how to install them.

use std::path::Path;
use std::process::Command;

const INSTALL: &str = "pip install -r .ci/requirements.txt && apt-get install -y chromium";

#[test]
fn console_browser_suite() {
    if let Some(missing) = missing_tools() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "CI=true but {missing}; install them: {INSTALL}");
        eprintln!("skipped: {missing} (install: {INSTALL})");
        return;
    }
    // Output is inherited, so pytest's report shows as it runs; the child
    // inherits KEYMINT_TEST_POSTGRES_URL and CI too.
    let status = Command::new("python3")
        .args(["-m", "pytest", "tests/console", "-q"])
        .args(["-p", "no:cacheprovider"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KEYMINT_BIN", env!("CARGO_BIN_EXE_keymint"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .expect("run python3 -m pytest");
    assert!(status.success(), "console browser tests failed ({status})");
}

/// Why the suite cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let imports = Command::new("python3")
        .args(["-c", "import playwright, pytest, axe_playwright_python"])
        .output();
    match imports {
        Err(err) => return Some(format!("no python3 ({err})")),
        Ok(out) if !out.status.success() => {
            let why = String::from_utf8_lossy(&out.stderr);
            let last = why.trim().lines().last().unwrap_or("").to_owned();
            return Some(format!("python3 lacks a test tool ({last})"));
        }
        Ok(_) => {}
    }
    let chromium = Path::new("/usr/bin/chromium");
    (!chromium.exists()).then(|| "no /usr/bin/chromium".to_owned())
}
