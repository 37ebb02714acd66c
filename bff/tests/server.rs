//! The `playdeck` binary itself: the embedded cluster's life, restarts, and migrations under
//! concurrent starts.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

struct Server {
    child: Child,
    base: String,
    printed_key: Option<String>,
}

fn start_server(data_dir: &Path) -> Server {
    start_server_with(data_dir, &[], Stdio::null())
}

/// Runs `playdeck serve` on port 0 with its own data dir (and these settings), and waits for the
/// URL it prints.
fn start_server_with(data_dir: &Path, envs: &[(&str, &str)], stderr: Stdio) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_playdeck"));
    cmd.arg("serve")
        .env("PLAYDECK_DATA_DIR", data_dir)
        .env("PLAYDECK_LISTEN", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        .env_remove("PLAYDECK_BOOTSTRAP_ADMIN_KEY")
        .env_remove("PLAYDECK_INGEST_TOKEN")
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run playdeck");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut printed_key = None;
    // The key line, when there is one, comes before the URL line, which is the last.
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("Admin API key") {
            printed_key = rest.rsplit(' ').next().map(str::to_string);
        }
        if let Some(url) = line.strip_prefix("Playdeck is serving on ") {
            base = Some(url.trim().to_string());
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base: base.expect("the server printed its URL"), printed_key }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().expect("kill");
    assert!(ok.success());
}

fn wait_gone(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_same_data_dir_keeps_everything_and_stops_postgres() {
    let dir = temp_dir("restart");
    let http = reqwest::Client::new();
    let mut server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || start_server(&dir)
    })
    .await
    .expect("start");
    let key = std::fs::read_to_string(dir.join("admin.key")).expect("admin.key written").trim().to_string();
    assert_eq!(server.printed_key.as_deref(), Some(key.as_str()), "the new key is printed once");
    let token =
        std::fs::read_to_string(dir.join("ingest.token")).expect("ingest.token written").trim().to_string();
    use std::os::unix::fs::PermissionsExt;
    for f in ["admin.key", "ingest.token"] {
        let mode = std::fs::metadata(dir.join(f)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} is private");
    }

    let body = json!({"source": "local", "job": {"external_id": "r1", "name": "before restart"},
        "events": [{"counter": 1, "event": "playbook_on_start"}, {"counter": 2, "event": "verbose", "stdout": "kept"}]});
    let r = http
        .post(format!("{}/api/v1/ingest/events", server.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 200);

    // SIGTERM: the server drains and stops its cluster.
    signal(&server.child, "TERM");
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(
        wait_gone(&dir.join("pg/postmaster.pid"), Duration::from_secs(10)),
        "PostgreSQL stopped with the server"
    );

    let mut server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || start_server(&dir)
    })
    .await
    .expect("restart");
    assert_eq!(server.printed_key, None, "an existing key is not printed again");
    let out = http
        .get(format!("{}/api/v1/jobs/1/stdout", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("stdout");
    assert_eq!(out.status(), 200);
    assert_eq!(out.text().await.expect("text"), "kept\n");
    let job: serde_json::Value = http
        .get(format!("{}/api/v1/jobs/1", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("job")
        .json()
        .await
        .expect("json");
    assert_eq!(job["name"], "before restart");
    assert_eq!(job["status"], "running");
    let r = http
        .post(format!("{}/api/v1/ingest/events", server.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("ingest");
    let r: serde_json::Value = r.json().await.expect("json");
    assert_eq!(r["duplicates"], 2, "the same ingest token works and nothing is stored twice");

    // A server killed outright does not leave its cluster behind.
    signal(&server.child, "KILL");
    let _ = tokio::task::spawn_blocking(move || server.child.wait()).await;
    assert!(
        wait_gone(&dir.join("pg/postmaster.pid"), Duration::from_secs(30)),
        "PostgreSQL stopped after a crash"
    );

    // And it starts again after that.
    let mut server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || start_server(&dir)
    })
    .await
    .expect("start after crash");
    let mut ready = 0;
    for _ in 0..100 {
        ready = http.get(format!("{}/readyz", server.base)).send().await.expect("readyz").status().as_u16();
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "ready once the LISTEN connection is up");
    signal(&server.child, "INT");
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.expect("join").expect("wait");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_apply_migrations_once() {
    let pg = fresh_database().await;
    let (a, b) = tokio::join!(spawn_app_on(pg.clone(), |_| {}), spawn_app_on(pg.clone(), |_| {}));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations")
        .count() as i64;
    assert_eq!(
        a.count("select count(*) from schema_migrations").await,
        migrations,
        "each migration applied once"
    );
    // Both serve the same data; an ingest through one is read through the other.
    let r = a.ingest_ok(&batch("shared", events(1, 3))).await;
    let job = b.get_json(&format!("/api/v1/jobs/{}", r["job_id"])).await;
    assert_eq!(job["event_count"], 3);
    assert_eq!(
        a.count("select count(*) from schema_migrations where checksum is null").await,
        0,
        "every migration has its checksum"
    );
}

#[tokio::test]
async fn an_applied_migration_that_was_edited_stops_the_start() {
    let pg = fresh_database().await;
    drop(spawn_app_on(pg.clone(), |_| {}).await);
    let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    // As if 0006_kb.sql had been edited after this database ran it.
    db.execute("update schema_migrations set checksum = 'edited0123456789' where name = '0006_kb'", &[])
        .await
        .expect("edit");
    let mut config = bff::infra::config::Config::for_tests(temp_dir("app"));
    config.credential_key = Some(bff::infra::secrets::Secret(CREDENTIAL_KEY.into()));
    let e = match bff::start(config.clone(), pg.clone()).await {
        Ok(_) => panic!("started on an edited migration"),
        Err(e) => e,
    };
    assert!(e.contains("migration 0006_kb was changed after it was applied"), "{e}");
    // A row from before checksums is trusted once and gets one.
    db.execute("update schema_migrations set checksum = null where name = '0006_kb'", &[])
        .await
        .expect("legacy");
    let started = bff::start(config, pg.clone()).await.expect("starts");
    let _ = started.shutdown.send(true);
    let n: i64 = db
        .query_one("select count(*) from schema_migrations where checksum is null", &[])
        .await
        .expect("n")
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn spa_and_health_endpoints() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["listener"], "connected");
    let r = app.http.get(app.url("/jobs/7")).send().await.expect("page");
    let csp =
        r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(r.headers().get("x-frame-options").is_none());
}

#[tokio::test]
async fn the_csp_allows_this_origin_wasm_and_the_served_pages_inline_loader_only() {
    let web = temp_dir("web");
    let loader = "\nimport init from '/app.js';\nawait init();\n";
    std::fs::write(
        web.join("index.html"),
        format!("<!doctype html><head><script type=\"module\">{loader}</script><script src=\"/x.js\"></script></head>"),
    )
    .expect("write");
    let app = spawn_app_with(|c| c.web_dir = Some(web.clone())).await;
    let r = app.http.get(app.url("/jobs/7")).send().await.expect("page");
    let csp = r.headers()["content-security-policy"].to_str().expect("csp").to_string();
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(loader.as_bytes()));
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for d in [
        "default-src 'self'".to_string(),
        format!("script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}'"),
        "style-src 'self'".to_string(),
        "style-src-attr 'unsafe-inline'".to_string(),
        "object-src 'none'".to_string(),
        "frame-ancestors 'self'".to_string(),
    ] {
        assert!(directives.contains(&d.as_str()), "{d:?} in {csp}");
    }
    assert!(!csp.contains("'unsafe-inline'; style-src 'self'") && !csp.contains(" 'unsafe-eval'"), "{csp}");
    // API answers carry the same policy.
    let r = app.get("/api/v1/jobs").await;
    assert_eq!(r.headers()["content-security-policy"].to_str().expect("csp"), csp);
}

#[tokio::test]
async fn the_web_app_is_sent_precompressed_and_cached_by_its_hashed_names() {
    let web = temp_dir("web");
    let js = "export default function init() { return 42; }\n".repeat(50);
    std::fs::write(web.join("index.html"), "<!doctype html><title>Playdeck</title>").expect("write");
    std::fs::write(web.join("frontend-0123456789abcdef.js"), &js).expect("write");
    // What trunk's post-build hook writes beside each file (Trunk.toml).
    std::fs::write(web.join("frontend-0123456789abcdef.js.br"), b"BROTLI-BYTES").expect("write");
    std::fs::write(web.join("index.html.br"), b"BROTLI-INDEX").expect("write");
    let app = spawn_app_with(|c| c.web_dir = Some(web.clone())).await;
    let get = |path: &str, encoding: Option<&str>| {
        let mut req = reqwest::Client::builder().no_gzip().build().expect("client").get(app.url(path));
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        req.send()
    };
    let r = get("/frontend-0123456789abcdef.js", Some("br, gzip")).await.expect("js");
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"BROTLI-BYTES");
    let r = get("/frontend-0123456789abcdef.js", None).await.expect("js");
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().await.expect("body"), js, "the file itself to a browser that accepts no encoding");
    for path in ["/", "/jobs/7", "/index.html"] {
        let r = get(path, Some("br")).await.expect("page");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}: checked at each visit");
        assert_eq!(r.headers()["content-encoding"], "br", "{path}");
    }
    let r = get("/frontend-ffffffffffffffff.js", Some("br")).await.expect("missing");
    assert_eq!(r.headers()["cache-control"], "no-cache", "a missing file falls back to the page, uncached");
}

#[tokio::test]
async fn metrics_can_require_a_token_and_made_up_methods_make_no_series() {
    let app = spawn_app_with(|c| {
        c.metrics_token = Some(bff::infra::secrets::Secret("pdm_metrics_token_0123456789abcdef".into()))
    })
    .await;
    assert_error(app.http.get(app.url("/metrics")).send().await.expect("metrics"), 401).await;
    assert_error(app.http.get(app.url("/metrics")).bearer_auth("wrong").send().await.expect("metrics"), 401)
        .await;
    for i in 0..5 {
        let m = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).expect("method");
        let _ = app.http.request(m, app.url("/api/v1/jobs")).send().await.expect("made up");
    }
    let text = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("pdm_metrics_token_0123456789abcdef")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(!text.contains("MADEUP"), "made-up methods are one series, `other`");
    assert!(text.contains("method=\"other\""), "{text}");
}

#[tokio::test]
async fn metrics_move_with_ingest_and_live_clients() {
    let app = spawn_app().await;
    let scrape = || async {
        let r = app.http.get(app.url("/metrics")).send().await.expect("metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("text")
    };
    let before = scrape().await;
    assert!(
        before.contains("# TYPE playdeck_ingest_events_total counter"),
        "families are described up front"
    );
    assert!(before.contains("playdeck_listener_connected 1"));
    // Counters whose labels are known at start are there at 0 before anything happened.
    for zero in [
        "playdeck_ingest_events_total{source=\"local\"} 0",
        "playdeck_ingest_rejected_total{status=\"401\"} 0",
        "playdeck_live_resyncs_total{transport=\"sse\"} 0",
        "playdeck_listener_reconnects_total 0",
    ] {
        assert!(before.contains(zero), "{zero} is exposed from the start");
    }
    assert!(before.contains("playdeck_pg_notification_queue_usage 0"));
    app.ingest_ok(&batch("m1", events(1, 30))).await;
    app.ingest_ok(&batch("m1", events(1, 40))).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("ws");
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        serde_json::json!({"type": "subscribe", "jobs": true}).to_string().into(),
    ))
    .await
    .expect("send");
    // The socket is counted once the server has taken the subscription, and each batch's lag once
    // the relay has heard its notification (after the answer to the ingest, not before).
    let after = eventually("the WebSocket client and both notifications counted", || async {
        Some(scrape().await).filter(|m| {
            m.lines().any(|l| l == "playdeck_live_clients{transport=\"websocket\"} 1")
                && m.lines().any(|l| l == "playdeck_notification_lag_seconds_count 2")
        })
    })
    .await;
    let line =
        |name: &str| after.lines().find(|l| l.starts_with(name)).map(str::to_string).unwrap_or_default();
    assert_eq!(
        line("playdeck_ingest_events_total{source=\"local\"}"),
        "playdeck_ingest_events_total{source=\"local\"} 40"
    );
    assert_eq!(
        line("playdeck_ingest_duplicates_total{source=\"local\"}"),
        "playdeck_ingest_duplicates_total{source=\"local\"} 30"
    );
    assert_eq!(
        line("playdeck_ingest_batches_total{source=\"local\"}"),
        "playdeck_ingest_batches_total{source=\"local\"} 2"
    );
    assert!(line("playdeck_live_clients{transport=\"websocket\"}").ends_with(" 1"), "{after}");
    assert!(after.contains(
        "playdeck_http_requests_total{route=\"/api/v1/ingest/events\",method=\"POST\",status=\"200\"} 2"
    ));
    assert!(after.contains("playdeck_notification_lag_seconds_count 2"), "{after}");
    assert!(after.contains("playdeck_engine_jobs{state=\"queued\"} 0"), "{after}");
    assert!(after.contains("playdeck_webhook_deliveries{outcome=\"failed\"} 0"), "{after}");
    // Ids never become labels: the route pattern does.
    let _ = app.get("/api/v1/jobs/1").await;
    let again = scrape().await;
    assert!(again.contains("route=\"/api/v1/jobs/{id}\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_without_keys_tokens_or_secrets() {
    let dir = temp_dir("logs");
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let envs = [
        ("PLAYDECK_LOG", "debug,tokio_postgres=info,hyper=info"),
        ("PLAYDECK_LOG_FORMAT", "json"),
        ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", "pdk_log_test_admin_key_777_0123456789"),
        ("PLAYDECK_INGEST_TOKEN", "pdi_log_test_ingest_token_888_0123456789"),
    ];
    let Server { mut child, base, .. } =
        tokio::task::spawn_blocking(move || start_server_with(&dir, &envs, Stdio::from(log)))
            .await
            .expect("start");
    let http = reqwest::Client::new();
    let ev = json!({"source": "local", "job": {"external_id": "l1"}, "events": [{"counter": 1, "event": "runner_on_ok",
        "event_data": {"host": "h", "res": {"password": "hunter2-log-check"}}}]});
    http.post(format!("{base}/api/v1/ingest/events"))
        .bearer_auth("pdi_log_test_ingest_token_888_0123456789")
        .json(&ev)
        .send()
        .await
        .expect("ingest");
    http.post(format!("{base}/api/v1/ingest/events"))
        .bearer_auth("pdi_wrong_token_999")
        .json(&ev)
        .send()
        .await
        .expect("ingest");
    http.post(format!("{base}/api/v1/session"))
        .json(&json!({"key": "pdk_wrong_key_555"}))
        .send()
        .await
        .expect("sign-in");
    http.post(format!("{base}/api/v1/session"))
        .json(&json!({"key": "pdk_log_test_admin_key_777_0123456789"}))
        .send()
        .await
        .expect("sign-in");
    http.get(format!("{base}/api/v1/jobs?q=hunter2-log-check"))
        .bearer_auth("pdk_log_test_admin_key_777_0123456789")
        .header("x-request-id", "pipeline-run-4242")
        .send()
        .await
        .expect("jobs");
    signal(&child, "TERM");
    tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(text.lines().count() > 5, "the server logged: {text}");
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string());
    }
    assert!(
        text.contains("\"route\":\"/api/v1/ingest/events\""),
        "requests run in a span naming their route"
    );
    assert!(
        text.contains("\"request_id\":\"pipeline-run-4242\""),
        "the caller's request id is in its log lines"
    );
    for secret in [
        "pdk_log_test_admin_key_777_0123456789",
        "pdi_log_test_ingest_token_888_0123456789",
        "pdi_wrong_token_999",
        "pdk_wrong_key_555",
        "hunter2-log-check",
    ] {
        assert!(!text.contains(secret), "{secret} appears in the log");
    }
}

#[test]
fn settings_that_cannot_work_stop_the_start_and_name_themselves() {
    let access = temp_dir("bad-access").join("access.toml");
    std::fs::write(&access, "[[binding]]\ngroup = \"ops\"\nrole = \"superuser\"\n").expect("write");
    let access = access.display().to_string();
    for (env, says) in [
        (vec![("PLAYDECK_ACCESS_CONFIG", access.as_str())], "access.toml line 3: unknown role \"superuser\""),
        (
            vec![("PLAYDECK_ACCESS_CONFIG", "/nonexistent/access.toml")],
            "PLAYDECK_ACCESS_CONFIG /nonexistent/access.toml",
        ),
        (
            vec![("PLAYDECK_BOOTSTRAP_ADMIN_KEY", "short-admin-key")],
            "PLAYDECK_BOOTSTRAP_ADMIN_KEY must be at least 32 characters",
        ),
        (
            vec![("PLAYDECK_INGEST_TOKEN", "short-token")],
            "PLAYDECK_INGEST_TOKEN must be at least 32 characters",
        ),
        (
            vec![("PLAYDECK_TLS_CERT", "/nonexistent.pem")],
            "PLAYDECK_TLS_CERT and PLAYDECK_TLS_KEY go together",
        ),
        (vec![("DATABASE_URL", "postgres://u@127.0.0.1:1/d?sslmode=verify-full")], "needs sslrootcert"),
        (
            vec![("PLAYDECK_LDAP_URL", "ldap://127.0.0.1:1"), ("PLAYDECK_LDAP_USER_BASE", "dc=x")],
            "has no TLS",
        ),
        (
            vec![("PLAYDECK_OIDC_ISSUER", "https://idp.example.com"), ("PLAYDECK_OIDC_CLIENT_ID", "pd")],
            "needs PLAYDECK_PUBLIC_URL",
        ),
        (vec![("PLAYDECK_PROXY_AUTH", "true")], "needs PLAYDECK_TRUSTED_PROXIES"),
        (vec![("PLAYDECK_TRUSTED_PROXIES", "10.0.0.0/33")], "list of CIDRs"),
    ] {
        let dir = temp_dir("bad-settings");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_playdeck"));
        cmd.arg("serve")
            .env("PLAYDECK_DATA_DIR", &dir)
            .env("PLAYDECK_LISTEN", "127.0.0.1:0")
            .env_remove("DATABASE_URL")
            .env_remove("PLAYDECK_BOOTSTRAP_ADMIN_KEY")
            .env_remove("PLAYDECK_INGEST_TOKEN");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run playdeck");
        assert!(!out.status.success(), "{env:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
}

/// `playdeck healthcheck` (the container's liveness probe) exits 0 when the server on
/// PLAYDECK_LISTEN answers /healthz with 200, and fails, saying why, when nothing listens there
/// or /healthz answers anything else.
#[tokio::test]
async fn the_healthcheck_command_passes_only_for_a_healthy_server() {
    let app = spawn_app().await;
    let check = |listen: String| {
        let out = Command::new(env!("CARGO_BIN_EXE_playdeck"))
            .arg("healthcheck")
            .env_clear()
            .env("PLAYDECK_LISTEN", listen)
            .output()
            .expect("run playdeck healthcheck");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, why) = tokio::task::spawn_blocking(move || check(app.addr.to_string())).await.expect("join");
    assert!(ok, "a healthy server: {why}");

    // Nothing listening: a port just freed.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let (ok, why) = tokio::task::spawn_blocking(move || check(free.to_string())).await.expect("join");
    assert!(!ok && why.contains(&free.to_string()), "nothing listening: {why}");

    // Something that answers 503.
    let sick = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sick_addr = sick.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = sick.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let (ok, why) = tokio::task::spawn_blocking(move || check(sick_addr.to_string())).await.expect("join");
    assert!(!ok && why.contains("503"), "a sick server: {why}");
}
