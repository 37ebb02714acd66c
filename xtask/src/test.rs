//! `cargo xtask test`: every test, the workspace's and the browser's.

use std::process::Command;

use crate::people;
use crate::server::start_server;
use crate::setup::{build_server, build_spa, setup};
use crate::util::{run, step, target_dir};

/// The browser tests in `tests/browser/`, run in this order against one server: sign-in and the
/// live grid, the grid's filters and paging, the job page, actions by role, a 100k-line job.
const BROWSER_TESTS: &[&str] = &[
    "smoke.mjs",
    "grid.mjs",
    "detail.mjs",
    "actions.mjs",
    "big.mjs",
    "kb.mjs",
    "requests.mjs",
    "dashboard.mjs",
    "expired.mjs",
    "settings.mjs",
    "people.mjs",
];

pub(crate) fn test() -> Result<(), String> {
    setup(true)?;
    build_spa()?;
    step("unit and integration tests (real PostgreSQL, HTTP, WebSocket, SSE)");
    run(Command::new("cargo").args(["test", "--workspace"]))?;
    build_server(false, &["--bin", "playdeck"])?;
    step("browser tests (chromium, playwright-core; screenshots in tests/browser/screenshots)");
    let dir = std::env::temp_dir().join(format!("playdeck-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let key = "pdk_browser_test_admin_key_0123456789";
    let token = "pdi_browser_test_ingest_token_0123456789";
    // People sign in through the test OpenID provider's own page and against slapd (people.mjs).
    let identity = people::start(&dir.join("ldap"))?;
    let port = people::free_port()?;
    let mut env = vec![
        ("PLAYDECK_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
    ];
    env.extend(identity.env());
    env.extend([
            ("PLAYDECK_DATA_DIR", dir.display().to_string()),
            ("PLAYDECK_LISTEN", format!("127.0.0.1:{port}")),
            ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", key.into()),
            ("PLAYDECK_INGEST_TOKEN", token.into()),
            ("PLAYDECK_LOG", "warn".into()),
            // Every script signs in (some several times) from this one address within minutes;
            // the limit itself is tested in bff/tests/hardening.rs.
            ("PLAYDECK_SIGNIN_PER_MINUTE", "120".into()),
            // expired.mjs ingests a job that finished in 2001; nothing else is that old.
            ("PLAYDECK_EVENT_RETENTION_DAYS", "3650".into()),
            ("PLAYDECK_RETENTION_INTERVAL_SECS", "1".into()),
    ]);
    let server = start_server(&target_dir().join("debug/playdeck"), &env)?;
    // Each script is one page's test; all of them run, and the first failure is reported.
    let mut result = Ok(());
    for script in BROWSER_TESTS {
        step(&format!("browser test: {script}"));
        let outcome = run(Command::new("node")
            .arg(format!("tests/browser/{script}"))
            .env("PLAYDECK_URL", &server.url)
            .env("PLAYDECK_ADMIN_KEY", key)
            .env("PLAYDECK_INGEST_TOKEN", token));
        if result.is_ok() {
            result = outcome;
        }
    }
    drop(server);
    drop(identity);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("\nAll tests passed.");
    Ok(())
}
