//! `cargo xtask test`: every test, the workspace's and the browser's.

use std::process::Command;

use crate::people;
use crate::server::start_server;
use crate::setup::{build_server, build_spa, setup};
use crate::util::{run, step, target_dir};

/// The browser tests in `tests/browser/`, run in this order against one server: what a first and
/// a second visit transfer, sign-in and the live grid, the grid's filters and paging, the job
/// page, actions by role, a 100k-line job, and the rest.
const BROWSER_TESTS: &[&str] = &[
    "bundle-size.mjs",
    "smoke.mjs",
    "grid.mjs",
    "detail.mjs",
    "actions.mjs",
    "launch.mjs",
    "schedules.mjs",
    "big.mjs",
    "kb.mjs",
    "requests.mjs",
    "dashboard.mjs",
    "expired.mjs",
    "settings.mjs",
    "people.mjs",
    "edge.mjs",
    "frame.mjs",
];

/// Every test; with the names of browser scripts (`cargo xtask test schedules.mjs`), only those
/// scripts, against the same server, to rerun one page's test quickly.
pub(crate) fn test(only: &[String]) -> Result<(), String> {
    if let Some(unknown) = only.iter().find(|s| !BROWSER_TESTS.contains(&s.as_str())) {
        return Err(format!("{unknown:?} is not a browser test; they are: {}", BROWSER_TESTS.join(", ")));
    }
    setup(true)?;
    build_spa()?;
    if only.is_empty() {
        step("the SPA's bundle size (fails over its budget)");
        // From dist/, at once; among the browser tests it measures what Chromium transfers.
        run(Command::new("node").arg("tests/browser/bundle-size.mjs").env_remove("PLAYDECK_URL"))?;
        step("unit and integration tests (real PostgreSQL, HTTP, WebSocket, SSE)");
        let logs = target_dir().join("tmp/logs");
        let _ = std::fs::remove_dir_all(&logs);
        run(Command::new("cargo").args(["test", "--workspace"]))?;
        step("no secret in any log line of the tests");
        check_logs(&logs)?;
    }
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
    let mut env = vec![("PLAYDECK_PUBLIC_URL", format!("http://127.0.0.1:{port}"))];
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
        // The scripts poll and page quickly with one key; the limit is tested in hardening.rs.
        ("PLAYDECK_API_PER_SECOND", "100000".into()),
        // frame.mjs frames the page from a portal on localhost (another site to the browser).
        ("PLAYDECK_FRAME_ANCESTORS", "'self' http://localhost:*".into()),
        // launch.mjs lists and runs the playbooks of a git repository it makes in a directory.
        ("PLAYDECK_GIT_ALLOW_FILE", "true".into()),
        // settings.mjs mails through an SMTP sink it runs on loopback.
        ("PLAYDECK_WEBHOOK_ALLOW", "127.0.0.1".into()),
        // expired.mjs ingests a job that finished in 2001; nothing else is that old.
        ("PLAYDECK_EVENT_RETENTION_DAYS", "3650".into()),
        ("PLAYDECK_RETENTION_INTERVAL_SECS", "1".into()),
    ]);
    let server = start_server(&target_dir().join("debug/playdeck"), &env)?;
    // Each script is one page's test; all of them run, and the first failure is reported.
    let mut result = Ok(());
    for script in BROWSER_TESTS.iter().filter(|s| only.is_empty() || only.iter().any(|o| o == *s)) {
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
    if !only.is_empty() {
        println!("\nThe browser tests named passed (the others did not run).");
        return Ok(());
    }
    fuzz()?;
    println!("\nAll tests passed.");
    Ok(())
}

/// The tests write their apps' log lines (`*.jsonl`) and the secrets they used (`secrets-*.txt`)
/// to `logs` (bff/tests/common: `capture_logs`, `remember_secret`): fails, naming the line, if any
/// secret is in any line.
fn check_logs(logs: &std::path::Path) -> Result<(), String> {
    let entries: Vec<_> = std::fs::read_dir(logs)
        .map_err(|e| format!("no test logs in {}: {e}", logs.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let name =
        |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut secrets: Vec<String> = Vec::new();
    for p in entries.iter().filter(|p| name(p).starts_with("secrets-")) {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        secrets.extend(text.lines().map(str::to_string));
    }
    secrets.sort();
    secrets.dedup();
    let (mut lines, mut found) = (0usize, Vec::new());
    for p in entries.iter().filter(|p| name(p).ends_with(".jsonl")) {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        for (n, line) in text.lines().enumerate() {
            lines += 1;
            if let Some(s) = secrets.iter().find(|s| line.contains(s.as_str())) {
                found.push(format!("{}:{}: {s:?} in {line}", name(p), n + 1));
            }
        }
    }
    if secrets.is_empty() || lines == 0 {
        return Err(format!("the tests left no logs or no secrets in {}", logs.display()));
    }
    println!("{lines} log lines, {} secrets: none in any line", secrets.len());
    if found.is_empty() {
        Ok(())
    } else {
        found.truncate(10);
        Err(format!("secrets in the tests' logs:\n{}", found.join("\n")))
    }
}

/// The API fuzzer: schemathesis against the served OpenAPI document for about two minutes with a
/// fixed seed and an admin key, the server and the fuzzer inside a network namespace that has
/// only loopback, so no URL it invents (webhooks, inventories, Galaxy) can leave the machine. It
/// fails on a 500, on a 5xx the document does not declare, and on answers that break the
/// document's statuses, content types, headers or schemas. Revoking its own key (and the
/// long-lived streams) are left out.
fn fuzz() -> Result<(), String> {
    step("API fuzzer (schemathesis, in a network namespace with loopback only)");
    if !crate::util::is_root() {
        return Err("the fuzzer makes a network namespace (ip netns), which needs root; run `cargo xtask test` as root".into());
    }
    let ns = format!("playdeck-fuzz-{}", std::process::id());
    run(Command::new("ip").args(["netns", "add", &ns]))?;
    let result = (|| {
        run(Command::new("ip").args(["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]))?;
        let dir = std::env::temp_dir().join(format!("playdeck-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let key = "pdk_fuzz_admin_key_0123456789abcdef";
        let mut server = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(target_dir().join("debug/playdeck"))
            .arg("serve")
            .env("PLAYDECK_DATA_DIR", &dir)
            .env("PLAYDECK_LISTEN", "127.0.0.1:18080")
            .env("PLAYDECK_BOOTSTRAP_ADMIN_KEY", key)
            .env("PLAYDECK_INGEST_TOKEN", "pdi_fuzz_ingest_token_0123456789abc")
            .env("PLAYDECK_LOG", "error")
            .env("PLAYDECK_SIGNIN_PER_MINUTE", "100000")
            .env("PLAYDECK_INGEST_PER_SECOND", "100000")
            .env("PLAYDECK_API_PER_SECOND", "100000")
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the server in {ns}: {e}"))?;
        let outcome = run(Command::new("ip").args(["netns", "exec", &ns]).arg(".venv/bin/schemathesis").args([
            "run",
            "http://127.0.0.1:18080/api/v1/openapi.json",
            "--wait-for-schema",
            "90",
            "-H",
            &format!("Authorization: Bearer {key}"),
            "--seed",
            "1",
            "--max-examples",
            "10",
            // One worker: hypothesis' lambda descriptions race on Python 3.11 with two
            // ("AST constructor recursion depth mismatch", a runtime error of the tool itself).
            "--workers",
            "1",
            "--max-time",
            "120",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--exclude-path-regex",
            "/keys/\\{id\\}$|/tokens/\\{id\\}$|/ws$|/stream$|/live$",
            "--no-color",
        ]));
        let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&dir);
        outcome.map_err(|e| format!("the API fuzzer found failures (seed 1; see above): {e}"))
    })();
    let _ = Command::new("ip").args(["netns", "delete", &ns]).status();
    result
}
