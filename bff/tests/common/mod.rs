//! Test harness: one throwaway PostgreSQL cluster per test binary (a database per test), the app
//! served on port 0, and small clients for HTTP, WebSocket and SSE.
#![allow(dead_code)]

pub mod people;
pub mod pki;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bff::infra::config::Config;
use bff::infra::embedded::{Cluster, Durability};
use bff::infra::secrets::Secret;
use serde_json::{json, Value};

pub const ADMIN_KEY: &str = "pdk_test_admin_key_0123456789abcdef";
pub const INGEST_TOKEN: &str = "pdi_test_ingest_token_0123456789";
/// Every test app seals with the same key, as replicas of one deployment do.
pub const CREDENTIAL_KEY: &str = "5f1e0c3a9b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f";

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);
static LOGS: OnceLock<()> = OnceLock::new();

/// Where test processes write their log lines (JSON, as `PLAYDECK_LOG_FORMAT=json` writes them,
/// Playdeck's own at debug level, everything else at info) and the secrets they used, one file of
/// each per process: `cargo xtask test` then fails if any secret is in any log line.
pub fn log_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logs")
}

/// Sends this process's log lines to its file in `log_dir()` (once), and notes the secrets every
/// test app uses.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let dir = log_dir();
        std::fs::create_dir_all(&dir).expect("log dir");
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "test".into());
        let file = std::fs::File::create(dir.join(format!("{name}-{}.jsonl", std::process::id())))
            .expect("log file");
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,bff=debug"))
            .with_writer(std::sync::Mutex::new(file))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        for s in [ADMIN_KEY, INGEST_TOKEN, CREDENTIAL_KEY, people::BIND_PASSWORD, people::CLIENT_SECRET] {
            remember_secret(s);
        }
        // The secrets the test files give the apps: the fake AWX's token (fake_awx.rs), SMTP
        // (mail.rs), Vault, credentials and extra vars (credentials.rs, engine.rs), webhooks.
        for s in [
            "awx-token-0123456789",
            "smtp-pass-0123",
            "ya29.access-token-for-xoauth2",
            "hvs.CAESIJfaketokenfortests0123456789",
            "vault-pass-from-hashicorp-31337",
            "correct horse battery",
            "proc-passphrase-5151-xyzzy",
            "proc-vault-pw-7171-xyzzy",
            "proc-become-pw-6161-xyzzy",
            "s3cr3t-become-pw-4242",
            "arr-secret-7777",
            "first-secret-1",
            "nolog-secret-value",
            "callback-secret-for-tests-0123",
            "registered-webhook-secret-0123456789",
        ] {
            remember_secret(s);
        }
    });
}

/// Notes a secret a test used (a password, token, key or cookie), for the log check.
pub fn remember_secret(secret: &str) {
    use std::io::Write;
    let secret = secret.trim();
    if secret.len() < 6 || secret.contains('\n') {
        return;
    }
    let dir = log_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("secrets-{}.txt", std::process::id())))
    {
        let _ = writeln!(f, "{secret}");
    }
}

/// A fresh directory under /tmp/playdeck-tests/<pid>; directories of test processes that are gone
/// are removed first.
pub fn temp_dir(name: &str) -> PathBuf {
    let root = PathBuf::from("/tmp/playdeck-tests");
    std::fs::create_dir_all(&root).expect("create /tmp/playdeck-tests");
    let me = std::process::id();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let pid = e.file_name().to_str().and_then(|n| n.split('-').next()?.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != me && !PathBuf::from(format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = root.join(format!("{me}-{name}-{}", NEXT.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        // Started on a thread of its own with its own runtime: tests run on many runtimes, and the
        // cluster must outlive each of them.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(Cluster::start(&temp_dir("cluster"), Durability::Throwaway))
                .expect("start the test PostgreSQL cluster")
        })
        .join()
        .expect("cluster thread")
    })
}

/// A new empty database in the shared cluster.
pub async fn fresh_database() -> tokio_postgres::Config {
    let c = cluster();
    let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let (client, conn) = c.pg_config("postgres").connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute(&format!("create database {name}")).await.expect("create database");
    c.pg_config(&name)
}

pub struct TestApp {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub pg: tokio_postgres::Config,
    pub state: bff::infra::state::AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    let pg = fresh_database().await;
    spawn_app_on(pg, tune).await
}

/// Serves the app on port 0 against the given database.
pub async fn spawn_app_on(pg: tokio_postgres::Config, tune: impl FnOnce(&mut Config)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_app(listener, pg, tune).await
}

/// Serves the app with `PLAYDECK_PUBLIC_URL` set to its own address (single sign-on's redirect
/// URI is built from it).
pub async fn spawn_public_app(tune: impl FnOnce(&mut Config)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let pg = fresh_database().await;
    serve_app(listener, pg, move |c| {
        c.public_url = Some(base);
        tune(c)
    })
    .await
}

async fn serve_app(
    listener: tokio::net::TcpListener,
    pg: tokio_postgres::Config,
    tune: impl FnOnce(&mut Config),
) -> TestApp {
    capture_logs();
    let mut config = Config::for_tests(temp_dir("app"));
    config.bootstrap_admin_key = Some(Secret(ADMIN_KEY.into()));
    config.ingest_token = Some(Secret(INGEST_TOKEN.into()));
    config.credential_key = Some(Secret(CREDENTIAL_KEY.into()));
    tune(&mut config);
    let started = bff::start(config, pg.clone()).await.expect("start the app");
    let addr = listener.local_addr().expect("addr");
    let state = started.state.clone();
    let app = bff::app(started.state);
    let mut stop = started.shutdown.subscribe();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    // Wait for the live relay's LISTEN, so tests start from a steady state.
    for _ in 0..200 {
        if bff::live::Hub::of(&state).listening.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TestApp {
        base: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        pg,
        state,
        shutdown: started.shutdown,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn ingest(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/ingest/events"))
            .bearer_auth(INGEST_TOKEN)
            .json(body)
            .send()
            .await
            .expect("ingest request")
    }

    /// Ingests and expects success; returns the answer.
    pub async fn ingest_ok(&self, body: &Value) -> Value {
        let resp = self.ingest(body).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "ingest answered {status}: {text}");
        serde_json::from_str(&text).expect("json answer")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(ADMIN_KEY).send().await.expect("get")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "GET {path} answered {status}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, conn) = self.pg.connect(tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db().await.query_one(sql, &[]).await.expect("count").get(0)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/ws?key={ADMIN_KEY}", self.addr)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// An event of realistic shape: a task result on a host, with some output.
pub fn event(counter: i64, kind: &str, host: &str, task: &str) -> Value {
    json!({
        "counter": counter,
        "event": kind,
        "uuid": format!("00000000-0000-4000-8000-{counter:012}"),
        "parent_uuid": "00000000-0000-4000-8000-000000000000",
        "created": "2026-11-23T10:00:00.000000",
        "stdout": format!("\u{1b}[0;32mok: [{host}] => line {counter}\u{1b}[0m"),
        "start_line": counter,
        "end_line": counter + 1,
        "event_data": {"host": host, "task": task, "play": "site", "res": {"changed": false, "msg": "x"}}
    })
}

/// A batch for one local job.
pub fn batch(job: &str, events: Vec<Value>) -> Value {
    json!({"source": "local", "job": {"external_id": job, "name": format!("job {job}")}, "events": events})
}

/// `n` runner_on_ok events with counters from..from+n.
pub fn events(from: i64, n: i64) -> Vec<Value> {
    (from..from + n).map(|c| event(c, "runner_on_ok", &format!("host-{}", c % 7), "ping")).collect()
}

/// Opens a browser session with `body` (`{"key"}`, `{"handoff"}`, …); expects a 200 and answers
/// the whole `Set-Cookie` header.
pub async fn open_session(app: &TestApp, body: Value) -> String {
    let r = app.http.post(app.url("/api/v1/session")).json(&body).send().await.expect("sign in");
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().expect("cookie").to_string();
    if let Some(value) = cookie.split(';').next().and_then(|pair| pair.split_once('=')).map(|(_, v)| v) {
        remember_secret(value);
    }
    cookie
}

/// A browser session opened with the admin key: the cookie pair to send back.
pub async fn admin_session_cookie(app: &TestApp) -> String {
    let cookie = open_session(app, json!({"key": ADMIN_KEY})).await;
    cookie.split(';').next().expect("pair").to_string()
}

/// Every error answer has the contract's shape and a non-empty detail.
pub async fn assert_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: Value = resp.json().await.expect("error body is JSON");
    let detail = body["errors"][0]["detail"].as_str().expect("errors[0].detail").to_string();
    assert!(!detail.is_empty());
    detail
}

// ---- helpers the test files share ------------------------------------------------------------

/// POST as the admin with a JSON body.
pub async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.http.post(app.url(path)).bearer_auth(ADMIN_KEY).json(body).send().await.expect("post")
}

/// A new API key of `role`, its secret remembered (no log may show it).
pub async fn new_key(app: &TestApp, name: &str, role: &str) -> String {
    let key: Value =
        post(app, "/api/v1/keys", &json!({"name": name, "role": role})).await.json().await.expect("key");
    let secret = key["secret"].as_str().expect("secret").to_string();
    remember_secret(&secret);
    secret
}

/// POST with `key`, with a JSON body or none.
pub async fn post_as(app: &TestApp, path: &str, key: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("post")
}

/// ansible-playbook, found the way the server finds it (`.venv/` beside the project, or
/// `PLAYDECK_ANSIBLE_PLAYBOOK`); the tests that run playbooks need it and say so.
pub fn ansible_playbook() -> PathBuf {
    bff::infra::config::EngineConfig {
        ansible_playbook: std::env::var_os("PLAYDECK_ANSIBLE_PLAYBOOK").map(PathBuf::from),
        ..bff::infra::config::EngineConfig::for_tests()
    }
    .ansible_tool("ansible-playbook")
        .filter(|p| p.is_file())
        .expect(
            "ansible-playbook is not installed: these tests need ansible-core in .venv/ beside the project. \
             Run `cargo xtask test` (or `cargo xtask setup`), which creates it, or set PLAYDECK_ANSIBLE_PLAYBOOK.",
        )
}

/// The app with the local engine running the playbooks in `playbooks` with the real
/// ansible-playbook, told its own address (so the callback plugin posts back to it).
pub async fn spawn_engine(playbooks: PathBuf, tune: impl FnOnce(&mut Config)) -> TestApp {
    let program = ansible_playbook();
    let app = spawn_app_with(|c| {
        c.engine.playbook_dir = playbooks;
        c.engine.ansible_playbook = Some(program);
        tune(c);
    })
    .await;
    bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);
    app
}

/// A job's stored events: (rows, distinct counters, highest `seq`). All equal when nothing was
/// stored twice and arrival order has no hole.
pub async fn event_copies(db: &tokio_postgres::Client, job_id: i64) -> (i64, i64, i64) {
    let row = db
        .query_one(
            "select count(*), count(distinct counter), coalesce(max(seq), 0) from job_events where job_id = $1",
            &[&job_id],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1), row.get(2))
}

/// Deliveries (webhooks, notifiers) to loopback receivers, tried at most three times, 50 ms
/// apart at first.
pub fn quick_deliveries(c: &mut Config) {
    c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.0/8").expect("rule")];
    c.deliveries.max_attempts = 3;
    c.deliveries.backoff = Duration::from_millis(50);
    c.deliveries.poll = Duration::from_millis(50);
}

/// A TCP proxy to `to` on a port of its own: answers its URL and how many bytes it passed on from
/// clients.
pub async fn counting_proxy(
    to: std::net::SocketAddr,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(upstream) = tokio::net::TcpStream::connect(to).await else { return };
                let (mut from_client, mut to_client) = client.split();
                let (mut from_upstream, mut to_upstream) = tokio::io::split(upstream);
                let up = async {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = from_client.read(&mut buf).await {
                        if n == 0 || to_upstream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        counted.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                    }
                    let _ = to_upstream.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (url, count)
}

/// A WebSocket client following one job's events, keeping the counter and the cursor of every
/// event it was sent.
pub struct Follower {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    job_id: i64,
    pub counters: Vec<i64>,
    pub cursors: Vec<i64>,
    /// `events` messages received.
    pub messages: usize,
}

impl Follower {
    pub async fn start(app: &TestApp, job_id: i64) -> Follower {
        use futures_util::SinkExt;
        let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("ws connect");
        let sub = json!({"type": "subscribe", "job_events": [{"job_id": job_id, "cursor": null}]});
        ws.send(tokio_tungstenite::tungstenite::Message::Text(sub.to_string().into()))
            .await
            .expect("subscribe");
        Follower { ws, job_id, counters: Vec::new(), cursors: Vec::new(), messages: 0 }
    }

    /// Reads until `done` says what came is enough (each message within 20 s).
    async fn read_while(&mut self, what: &str, done: impl Fn(&Follower) -> bool) {
        use futures_util::StreamExt;
        while !done(self) {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{what} over the WebSocket; got {:?}", self.counters))
                .expect("open")
                .expect("message");
            let tokio_tungstenite::tungstenite::Message::Text(text) = msg else { continue };
            let m: Value = serde_json::from_str(&text).expect("json");
            match m["type"].as_str() {
                Some("events") => {
                    assert_eq!(m["job_id"], self.job_id);
                    self.messages += 1;
                    for e in m["events"].as_array().expect("events") {
                        self.counters.push(e["counter"].as_i64().expect("counter"));
                        self.cursors.push(e["cursor"].as_str().and_then(|c| c.parse().ok()).expect("cursor"));
                    }
                }
                Some("error") => panic!("server error: {m}"),
                _ => {}
            }
        }
    }

    /// Reads until `total` events came.
    pub async fn until(&mut self, total: usize) {
        self.read_while(&format!("{total} events"), |f| f.counters.len() >= total).await
    }

    /// Reads until an event with this counter came.
    pub async fn until_counter(&mut self, counter: i64) {
        self.read_while(&format!("event {counter}"), |f| f.counters.contains(&counter)).await
    }

    /// Every counter from 1 to `total`, each once.
    pub fn assert_exactly(&self, total: i64) {
        use std::collections::BTreeSet;
        let unique: BTreeSet<i64> = self.counters.iter().copied().collect();
        assert_eq!(unique.len(), self.counters.len(), "an event was delivered twice: {:?}", self.counters);
        assert_eq!(unique, (1..=total).collect::<BTreeSet<_>>(), "every event, once");
    }
}

/// Polls `check` until it gives a value (up to 20 s); panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls a job until `done` says it got there (within `within`); panics with the job otherwise.
pub async fn wait_job(app: &TestApp, id: i64, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not get there in {within:?}: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
