//! Benchmarks, run by `cargo xtask bench ingest|live`. Each starts its own PostgreSQL cluster
//! (durable settings, as in production) and serves Playdeck in-process on port 0.
//!
//! ingest: N events of realistic size through POST /api/v1/ingest/events, then, in the same run
//!         on the same database, a raw binary COPY of the same rows into the same table, once in
//!         the same batches (a transaction each) and once as one COPY per job; prints the rates,
//!         both ratios (limit 0.8) and the CPU each side used.
//! live:   K WebSocket clients follow one job while events are ingested at a fixed rate; prints
//!         p50/p99/max latency from "ingest accepted" to "client received".
//! idle:   10 000 idle WebSocket clients (each following the job list) on a `playdeck` process
//!         of its own; prints its memory per connection (RSS difference / clients), limit 20 KB.
//! fanout: 100 jobs at 50 events/s each, 1000 WebSocket clients each following one job and the
//!         job list, against a `playdeck` process of its own, ramped, beside a plain broadcast of
//!         the same frames to the same sockets (support/fanout.rs).
//! grid:   the job grid's queries and the dashboard's figures at 10k and 1M jobs (support/grid.rs).
//! auth:   `GET /api/v1/jobs` with a signed-in person's session cookie against the same call with
//!         an API key, rounds interleaved; prints both medians and their ratio (limit 1.1). Then a
//!         person whose bindings cover 5 templates of 50 against an admin, side by side on 20 000
//!         jobs: the grid, the dashboard's stats and the WebSocket fan-out of job changes (limit
//!         1.2 each).

#[path = "support/fanout.rs"]
mod fanout;
#[path = "support/grid.rs"]
mod grid;
#[path = "support/run.rs"]
mod run;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bff::infra::config::Config;
use bff::infra::embedded::{Cluster, Durability};
use bff::infra::secrets::Secret;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_postgres::types::Type;

/// The server's own allocator (see `bff/src/main.rs`), so that what runs in-process here is
/// measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN: &str = "pdk_bench_admin_key_0123456789abcdef";
const TOKEN: &str = "pdi_bench_ingest_token_0123456789abc";

fn arg(args: &[String], name: &str, default: usize) -> usize {
    text_arg(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn text_arg(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().cloned().unwrap_or_default();
    if which == "idle" {
        // Against a server of its own process (started by `cargo xtask bench idle`).
        return idle(&args).await;
    }
    if which == "fanout" {
        // Against a server of its own process (started by `cargo xtask bench fanout`), with the
        // plain broadcast it is compared with in another.
        return fanout::fanout(&args).await;
    }
    if which == "broadcast-server" {
        return fanout::broadcast_server().await;
    }
    let dir = std::env::temp_dir().join(format!("playdeck-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = Cluster::start(&dir, Durability::Durable).await.expect("start PostgreSQL");
    let pg = cluster.pg_config("postgres");
    let mut config = Config::for_tests(dir.join("app"));
    config.bootstrap_admin_key = Some(Secret(ADMIN.into()));
    config.ingest_token = Some(Secret(TOKEN.into()));
    config.pool_size = 16;
    config.auth.admin_groups = vec!["playdeck-admins".into()];
    // The scoped person's team: 5 templates of the 50 the auth benchmark's jobs use.
    let team: String = (1..=5).map(|t| format!("\"tpl-{t:02}.yml\"")).collect::<Vec<_>>().join(", ");
    config.auth.access = bff::infra::access::parse_file(
        "bench",
        &format!("[[binding]]\ngroup = \"team-a\"\nrole = \"operator\"\ntemplates = [{team}]\n"),
    )
    .expect("bindings");
    let started = bff::start(config, pg.clone()).await.expect("start playdeck");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = bff::app(started.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    match which.as_str() {
        "ingest" => ingest(&args, addr, &pg).await,
        "live" => live(&args, addr).await,
        "auth" => auth(&args, addr, &pg).await,
        "grid" => {
            let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            grid::grid(&args, addr, &db, ADMIN).await
        }
        other => eprintln!("unknown benchmark {other:?}: use ingest, live, auth or grid"),
    }
    let _ = started.shutdown.send(true);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Posts one ingest batch, expects it accepted, and answers what the server said.
async fn ingest_batch(http: &reqwest::Client, addr: std::net::SocketAddr, body: &Value) -> Value {
    let r = http
        .post(format!("http://{addr}/api/v1/ingest/events"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .expect("ingest");
    assert!(r.status().is_success(), "ingest {}", r.status());
    r.json().await.expect("json")
}

/// `n` events of one long patch run over many hosts, renumbered 1..=n.
fn synthetic_events(job: u64, n: usize) -> Vec<Value> {
    let hosts: Vec<(String, run::Fate)> =
        (0..40).map(|h| (format!("web-{h:03}.example.com"), run::Fate::Ok)).collect();
    let mut out = Vec::with_capacity(n);
    let mut round = 0u64;
    while out.len() < n {
        for mut e in run::playbook_run(job * 1000 + round, "patch.yml", run::PATCH, &hosts, 5) {
            if out.len() == n {
                break;
            }
            e["counter"] = json!(out.len() + 1);
            out.push(e);
        }
        round += 1;
    }
    out
}

async fn ingest(args: &[String], addr: std::net::SocketAddr, pg: &tokio_postgres::Config) {
    let n = arg(args, "--events", 100_000);
    let batch = arg(args, "--batch", 200);
    let jobs = arg(args, "--jobs", 4).max(1);
    // Rounds of all three paths in turn: the machine's speed drifts by tens of percent within a
    // minute here, so each round's ratio compares paths that ran side by side, and the verdict is
    // the median round's.
    let rounds = arg(args, "--rounds", 3).max(1);
    let per_job = n / jobs;
    println!("ingest: {n} events, {jobs} jobs in parallel, batches of {batch}, {rounds} rounds");
    let sets: std::sync::Arc<Vec<Vec<Value>>> =
        std::sync::Arc::new((0..jobs).map(|j| synthetic_events(j as u64 + 1, per_job)).collect());
    let bodies = |round: usize| bodies_of(&sets, batch, &format!("http-{round}"));
    let first = bodies(0);
    let bytes: usize = first.iter().flatten().map(String::len).sum();
    println!("        average event size {} bytes (JSON as sent)", bytes / (per_job * jobs));

    // What the server does to a body before the database, alone on one core.
    let t = Instant::now();
    for b in first.iter().flatten() {
        bff::ingest::parse_and_prepare(b.as_bytes()).expect("parse");
    }
    let parse_secs = t.elapsed().as_secs_f64();
    drop(first);

    let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/ingest/events");
    let total = (per_job * jobs) as f64;
    // Warm-up, not measured: the server's pool connects and prepares its statements, and both
    // paths' tables and caches are touched, as on a server that has been running.
    let warm: usize = (10 * batch).min(per_job);
    let warm_sets: std::sync::Arc<Vec<Vec<Value>>> =
        std::sync::Arc::new(sets.iter().map(|s| s[..warm].to_vec()).collect());
    post_all(&http, &url, bodies_of(&warm_sets, batch, "warm")).await;
    raw_copy(pg, &db, &warm_sets, batch, "copy-warm").await;

    let mut results = Vec::new();
    for round in 0..rounds {
        // The paths take turns at going first: each round adds to the same tables, and a path
        // that always went first would always write into the smallest.
        let (mut http_secs, mut http_cpu) = (0.0, None);
        let (mut batched, mut whole) = (None, None);
        let order: [u8; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for path in order {
            match path {
                0 => {
                    // Built before the clock starts, as a client's bodies are ready before it sends.
                    let ready = bodies(round);
                    let cpu0 = cpu_seconds();
                    let t = Instant::now();
                    post_all(&http, &url, ready).await;
                    http_secs = t.elapsed().as_secs_f64();
                    http_cpu = Some(cpu_seconds().since(cpu0));
                }
                // The same rows, straight into job_events by binary COPY, one stream per job in
                // parallel: in the same batches as the HTTP ingest (each batch its own COPY and
                // so its own transaction, as each acknowledged batch must be durable), or each
                // job's rows in one COPY.
                1 => batched = Some(raw_copy(pg, &db, &sets, batch, &format!("copy-batched-{round}")).await),
                _ => whole = Some(raw_copy(pg, &db, &sets, per_job, &format!("copy-whole-{round}")).await),
            }
        }
        let (batched_secs, batched_cpu) = batched.expect("batched");
        let (copy_secs, _) = whole.expect("whole");
        let http_cpu = http_cpu.expect("http");
        let r = Round {
            http: total / http_secs,
            batched: total / batched_secs,
            whole: total / copy_secs,
            http_cpu,
            batched_cpu,
        };
        println!(
            "round {}     : HTTP ingest {:>6.0} events/s, raw COPY in the same batches {:>6.0}, one raw COPY per job {:>6.0}: ratios {:.2} and {:.2}",
            round + 1,
            r.http,
            r.batched,
            r.whole,
            r.http / r.batched,
            r.http / r.whole
        );
        results.push(r);
    }
    let stored: i64 = db.query_one("select count(*) from job_events", &[]).await.expect("count").get(0);
    assert_eq!(
        stored as f64,
        total * 3.0 * rounds as f64 + (2 * warm * jobs) as f64,
        "every event stored once by each path"
    );

    // The median round by its ratio to the batched COPY stands for the run.
    results.sort_by(|a, b| (a.http / a.batched).total_cmp(&(b.http / b.batched)));
    let r = &results[results.len() / 2];
    println!("median round (by the first ratio):");
    println!("HTTP ingest : {:>10.0} events/s  ({total} events)", r.http);
    println!("raw COPY    : {:>10.0} events/s  (batches of {batch}, a transaction each)", r.batched);
    println!("raw COPY    : {:>10.0} events/s  (one COPY per job)", r.whole);
    let ratio = r.http / r.batched;
    println!(
        "ratio       : {ratio:>10.2}  (HTTP ingest / raw COPY in the same batches; limit 0.80) -> {}",
        if ratio >= 0.8 { "ok" } else { "TOO SLOW" }
    );
    let mut whole: Vec<f64> = results.iter().map(|r| r.http / r.whole).collect();
    whole.sort_by(f64::total_cmp);
    let ratio = whole[whole.len() / 2];
    println!(
        "ratio       : {ratio:>10.2}  (HTTP ingest / one raw COPY per job, median round; limit 0.80) -> {}",
        if ratio >= 0.8 { "ok" } else { "TOO SLOW" }
    );
    println!(
        "CPU         : HTTP ingest {:.2} s in this process (server and client), {:.2} s in PostgreSQL; \
         raw COPY in batches {:.2} s in this process, {:.2} s in PostgreSQL",
        r.http_cpu.this, r.http_cpu.postgres, r.batched_cpu.this, r.batched_cpu.postgres
    );
    println!("(reading the bodies alone, on one core: {:.0} events/s)", total / parse_secs);
}

/// Each job's events as ingest bodies of `batch` events, the job named `<prefix>-<n>`.
fn bodies_of(sets: &[Vec<Value>], batch: usize, prefix: &str) -> Vec<Vec<String>> {
    sets.iter()
        .enumerate()
        .map(|(j, evs)| {
            evs.chunks(batch)
                .map(|c| json!({"source": "bench", "job": {"external_id": format!("{prefix}-{j}"), "name": "bench"}, "events": c}).to_string())
                .collect()
        })
        .collect()
}

/// Posts each job's bodies in turn, the jobs in parallel (as one callback plugin per job does),
/// and expects every batch accepted.
async fn post_all(http: &reqwest::Client, url: &str, bodies: Vec<Vec<String>>) {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|bodies| {
            let http = http.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                for b in bodies {
                    let r = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .await
                        .expect("send");
                    assert!(r.status().is_success(), "ingest failed: {}", r.status());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("poster");
    }
}

/// One round of the ingest benchmark: each path's events/s, and the CPU two of them used.
struct Round {
    http: f64,
    batched: f64,
    whole: f64,
    http_cpu: Cpu,
    batched_cpu: Cpu,
}

/// CPU seconds used so far by this process and by every PostgreSQL process still running.
#[derive(Clone, Copy)]
struct Cpu {
    this: f64,
    postgres: f64,
}

impl Cpu {
    fn since(self, before: Cpu) -> Cpu {
        Cpu { this: self.this - before.this, postgres: self.postgres - before.postgres }
    }
}

fn cpu_seconds() -> Cpu {
    // utime and stime, the 14th and 15th fields of /proc/<pid>/stat, in clock ticks (100 a second).
    let ticks = |stat: &str| -> f64 {
        let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (n(11) + n(12)) / 100.0
    };
    let this = ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default());
    let mut postgres = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(s) = std::fs::read_to_string(e.path().join("stat")) {
            if s.contains("(postgres)") {
                postgres += ticks(&s);
            }
        }
    }
    Cpu { this, postgres }
}

/// Copies each job's events into a job of its own (`<name>-<n>`), `batch` rows per COPY, the jobs
/// in parallel; answers the seconds it took and the CPU it used (its connections are kept open
/// until then, so their backends' CPU is still there to count). Each COPY's binary payload is
/// encoded before the clock starts, as the HTTP bodies are built before theirs: both paths start
/// from bytes ready to send, so the figures compare the server with PostgreSQL, not the clients.
async fn raw_copy(
    pg: &tokio_postgres::Config,
    db: &tokio_postgres::Client,
    sets: &std::sync::Arc<Vec<Vec<Value>>>,
    batch: usize,
    name: &str,
) -> (f64, Cpu) {
    let mut payloads: Vec<Vec<bytes::Bytes>> = Vec::new();
    for (j, set) in sets.iter().enumerate() {
        let id: i64 = db
            .query_one(
                "insert into jobs (source, external_id) values ('bench', $1) returning id",
                &[&format!("{name}-{j}")],
            )
            .await
            .expect("job")
            .get(0);
        payloads.push(set.chunks(batch.max(1)).map(|c| copy_payload(id, c)).collect());
    }
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let tasks: Vec<_> = payloads
        .into_iter()
        .map(|payloads| {
            let pg = pg.clone();
            tokio::spawn(async move {
                let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(conn);
                for payload in payloads {
                    let sink = db
                        .copy_in::<_, bytes::Bytes>("copy job_events (job_id, seq, counter, event, uuid, parent_uuid, created, host, play, task, role, stdout, start_line, end_line, failed, changed, event_data) from stdin binary")
                        .await
                        .expect("copy");
                    tokio::pin!(sink);
                    sink.send(payload).await.expect("rows");
                    sink.finish().await.expect("finish");
                }
                db
            })
        })
        .collect();
    let mut open = Vec::new();
    for t in tasks {
        open.push(t.await.expect("copier"));
    }
    let secs = t.elapsed().as_secs_f64();
    (secs, cpu_seconds().since(cpu0))
}

/// One COPY's binary payload (PostgreSQL's binary COPY format: header, a tuple per event, trailer)
/// of a chunk of events for job `job_id`.
fn copy_payload(job_id: i64, chunk: &[Value]) -> bytes::Bytes {
    const TYPES: [Type; 17] = [
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::BOOL,
        Type::BOOL,
        Type::JSONB,
    ];
    let mut rows = bff::infra::copy::Rows::new(&TYPES);
    for e in chunk {
        let s = |k: &str| e[k].as_str().map(str::to_string);
        let d = |k: &str| e["event_data"][k].as_str().map(str::to_string);
        let counter = e["counter"].as_i64().unwrap_or(0);
        let created = e["created"]
            .as_str()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&chrono::Utc));
        rows.push(&[
            &job_id,
            &counter,
            &counter,
            &e["event"].as_str().unwrap_or(""),
            &s("uuid"),
            &s("parent_uuid"),
            &created,
            &d("host"),
            &d("play"),
            &d("task"),
            &d("role"),
            &e["stdout"].as_str().unwrap_or(""),
            &e["start_line"].as_i64().unwrap_or(0),
            &e["end_line"].as_i64().unwrap_or(0),
            &false,
            &false,
            &e["event_data"],
        ])
        .expect("encode");
    }
    rows.finish()
}

/// A live message as the benchmark's clients read it.
#[derive(serde::Deserialize)]
struct LiveMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    events: Vec<LiveEvent>,
}

#[derive(serde::Deserialize)]
struct LiveEvent {
    counter: i64,
}

async fn live(args: &[String], addr: std::net::SocketAddr) {
    let clients = arg(args, "--clients", 50);
    let rate = arg(args, "--rate", 1000);
    let seconds = arg(args, "--seconds", 10);
    let batch = arg(args, "--batch", 10).max(1);
    println!("live: {clients} WebSocket clients, {rate} events/s in batches of {batch} for {seconds} s");

    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/ingest/events");
    let total = rate * seconds;
    let events = synthetic_events(1, total + 1);
    let r = ingest_batch(
        &http,
        addr,
        &json!({"source": "bench", "job": {"external_id": "live"}, "events": [events[0]]}),
    )
    .await;
    let job_id = r["job_id"].as_i64().expect("job id");

    // Each client records when it received each counter.
    let received: Arc<std::sync::Mutex<Vec<HashMap<i64, Instant>>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?key={ADMIN}")).await.expect("ws");
        let sub = json!({"type": "subscribe", "job_events": [{"job_id": job_id, "cursor": null}]});
        ws.send(tokio_tungstenite::tungstenite::Message::Text(sub.to_string().into()))
            .await
            .expect("subscribe");
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = HashMap::new();
            while seen.len() < total + 1 {
                let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await else {
                    break;
                };
                let now = Instant::now();
                if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                    // Only what the measure needs, the rest skipped unbuilt: a thousand clients
                    // building every event would measure this process, not the server.
                    if let Ok(m) = serde_json::from_str::<LiveMessage>(&t) {
                        if m.kind == "events" {
                            for e in m.events {
                                seen.entry(e.counter).or_insert(now);
                            }
                        }
                    }
                }
            }
            received.lock().expect("lock").push(seen);
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Batches go out on the clock, each in its own task, so a slow answer does not lower the rate.
    let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut posts = Vec::new();
    for chunk in events[1..].chunks(batch) {
        tick.tick().await;
        let body = json!({"source": "bench", "job": {"external_id": "live"}, "events": chunk});
        let counters: Vec<i64> = chunk.iter().map(|e| e["counter"].as_i64().unwrap_or(0)).collect();
        let (http, url) = (http.clone(), url.clone());
        posts.push(tokio::spawn(async move {
            let r = http.post(&url).bearer_auth(TOKEN).json(&body).send().await.expect("send");
            assert!(r.status().is_success());
            (Instant::now(), counters)
        }));
    }
    let mut accepted: HashMap<i64, Instant> = HashMap::new();
    for p in posts {
        let (at, counters) = p.await.expect("post");
        for c in counters {
            accepted.insert(c, at);
        }
    }
    let sent_secs = started.elapsed().as_secs_f64();
    for r in readers {
        r.await.expect("reader");
    }
    let received = received.lock().expect("lock");
    let mut lat: Vec<f64> = Vec::new();
    let mut missing = 0usize;
    for client in received.iter() {
        for (counter, at) in &accepted {
            match client.get(counter) {
                Some(got) => lat.push(got.saturating_duration_since(*at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "ingested    : {total} events in {sent_secs:.2} s ({:.0} events/s achieved)",
        total as f64 / sent_secs
    );
    println!("deliveries  : {} ({} clients x {total} events), missing {missing}", lat.len(), received.len());
    println!(
        "latency     : p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms  (accepted -> received)",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

/// A person who signed in by single sign-on (as the sign-in paths record them) in these groups
/// (commas), with a session: its cookie's value.
async fn person_session(db: &tokio_postgres::Client, who: &str, groups: &str) -> String {
    let cookie = format!("pds_bench_{who}_session_token_0123456789");
    let hash = bff::infra::secrets::hash_secret(&cookie);
    db.batch_execute(&format!(
        "insert into users (kind, issuer, subject, username, display_name, groups)
         values ('oidc', 'https://idp.example.com', 'bench-{who}', 'bench-{who}', 'Bench', '{{{groups}}}');
         insert into sessions (token_hash, user_id, method, expires)
         select '{hash}', id, 'oidc', now() + interval '1 hour' from users where subject = 'bench-{who}';"
    ))
    .await
    .expect("a person's session");
    cookie
}

/// The same authenticated read with a person's session and with an API key.
async fn auth(args: &[String], addr: std::net::SocketAddr, pg: &tokio_postgres::Config) {
    let rounds = arg(args, "--rounds", 20);
    let per_round = arg(args, "--requests", 200);
    let concurrency = arg(args, "--concurrency", 4);
    let http = reqwest::Client::new();
    // A page of jobs to read.
    for j in 0..60 {
        let body = json!({"source": "bench", "job": {"external_id": format!("auth-{j}"), "name": "auth", "template": "patch.yml"},
                          "events": synthetic_events(j + 1, 3)});
        ingest_batch(&http, addr, &body).await;
    }
    // A person who signed in (as the LDAP and single sign-on paths record them) with a session.
    let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let cookie = person_session(&db, "person", "playdeck-admins,staff").await;
    let url = format!("http://{addr}/api/v1/jobs?page_size=50");
    let call = |session: bool| {
        let req = http.get(&url);
        let req = if session {
            req.header("cookie", format!("playdeck_session={cookie}"))
        } else {
            req.bearer_auth(ADMIN)
        };
        async move {
            let t = Instant::now();
            let r = req.send().await.expect("get");
            assert_eq!(r.status(), 200, "authenticated read");
            let _ = r.bytes().await;
            t.elapsed()
        }
    };
    // Warm both paths.
    for _ in 0..50 {
        call(true).await;
        call(false).await;
    }
    let mut wall = [Vec::new(), Vec::new()];
    let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Interleaved, the order swapped every round: drift on a busy machine hits both alike.
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for session in order {
            let t = Instant::now();
            let mut done = Vec::with_capacity(per_round);
            for chunk in (0..per_round).collect::<Vec<_>>().chunks(concurrency) {
                let results = futures_util::future::join_all(chunk.iter().map(|_| call(session))).await;
                done.extend(results);
            }
            wall[usize::from(session)].push(t.elapsed().as_secs_f64());
            lat[usize::from(session)].extend(done);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let p = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0
    };
    let (key_round, session_round) = (median(&mut wall[0]), median(&mut wall[1]));
    println!("auth: GET /api/v1/jobs?page_size=50, {rounds} rounds of {per_round} requests each way, {concurrency} at a time");
    println!(
        "      API key:          median round {:.3} s, p50 {:.2} ms, p99 {:.2} ms",
        key_round,
        p(&mut lat[0], 0.5),
        p(&mut lat[0], 0.99)
    );
    println!(
        "      person's session: median round {:.3} s, p50 {:.2} ms, p99 {:.2} ms",
        session_round,
        p(&mut lat[1], 0.5),
        p(&mut lat[1], 0.99)
    );
    let ratio = session_round / key_round;
    println!(
        "      ratio session / key: {ratio:.3} (limit 1.10) -> {}",
        if ratio <= 1.1 { "ok" } else { "TOO SLOW" }
    );
    scoped(args, addr, &db).await;
}

/// A person bound to 5 templates of 50 against an admin: the same reads side by side, and the
/// WebSocket fan-out of job changes to both at once.
async fn scoped(args: &[String], addr: std::net::SocketAddr, db: &tokio_postgres::Client) {
    let rounds = arg(args, "--rounds", 20);
    let per_round = arg(args, "--requests", 200) / 4;
    let concurrency = arg(args, "--concurrency", 4);
    // 20 000 finished jobs over 50 templates in the last hours, and two people's sessions.
    db.batch_execute(
        "insert into jobs (source, external_id, name, template, inventory, status, created, modified, started, finished, elapsed)
         select 'local', 'scope-' || g, 'job ' || g, 'tpl-' || lpad(((g % 50) + 1)::text, 2, '0') || '.yml', 'prod',
                case when g % 7 = 0 then 'failed' else 'successful' end,
                now() - make_interval(secs => g), now() - make_interval(secs => g),
                now() - make_interval(secs => g), now() - make_interval(secs => g - 30), 30
           from generate_series(1, 20000) g;
         analyze jobs;",
    )
    .await
    .expect("jobs");
    let cookies =
        [person_session(db, "admin", "playdeck-admins").await, person_session(db, "scoped", "team-a").await];
    let http = reqwest::Client::new();
    let call = |path: &str, who: usize| {
        let req = http
            .get(format!("http://{addr}{path}"))
            .header("cookie", format!("playdeck_session={}", cookies[who]));
        async move {
            let r = req.send().await.expect("get");
            assert_eq!(r.status(), 200, "read");
            let _ = r.bytes().await;
        }
    };
    let scoped_jobs: Value = serde_json::from_slice(
        &http
            .get(format!("http://{addr}/api/v1/jobs?page_size=1"))
            .header("cookie", format!("playdeck_session={}", cookies[1]))
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body"),
    )
    .expect("json");
    println!(
        "scope: a person bound to 5 of 50 templates ({} of the jobs) against an admin, {rounds} rounds of {per_round} requests each, {concurrency} at a time",
        scoped_jobs["count"]
    );
    for path in ["/api/v1/jobs?page_size=50", "/api/v1/stats"] {
        for _ in 0..10 {
            call(path, 0).await;
            call(path, 1).await;
        }
        let mut wall = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for who in order {
                let t = Instant::now();
                for chunk in (0..per_round).collect::<Vec<_>>().chunks(concurrency) {
                    futures_util::future::join_all(chunk.iter().map(|_| call(path, who))).await;
                }
                wall[who].push(t.elapsed().as_secs_f64());
            }
        }
        for w in &mut wall {
            w.sort_by(|a, b| a.total_cmp(b));
        }
        let (admin, scoped) = (wall[0][wall[0].len() / 2], wall[1][wall[1].len() / 2]);
        let ratio = scoped / admin;
        println!(
            "      {path:<28} admin {:.2} ms/request, scoped {:.2} ms/request, ratio {ratio:.3} (limit 1.20) -> {}",
            admin * 1000.0 / per_round as f64,
            scoped * 1000.0 / per_round as f64,
            if ratio <= 1.2 { "ok" } else { "TOO SLOW" }
        );
    }

    // The fan-out: clients of both kinds follow every job's changes while jobs of all 50
    // templates start; the latency of the changes both receive (the scoped person's templates).
    let clients = arg(args, "--clients", 20);
    let changes = arg(args, "--changes", 200);
    let received: Arc<std::sync::Mutex<[Vec<(String, Instant)>; 2]>> = Arc::default();
    let mut readers = Vec::new();
    for who in [0usize, 1] {
        for _ in 0..clients {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut req = format!("ws://{addr}/api/v1/ws").into_client_request().expect("request");
            req.headers_mut()
                .insert("cookie", format!("playdeck_session={}", cookies[who]).parse().expect("header"));
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws");
            let sub = json!({"type": "subscribe", "jobs": true});
            ws.send(tokio_tungstenite::tungstenite::Message::Text(sub.to_string().into()))
                .await
                .expect("subscribe");
            let received = received.clone();
            readers.push(tokio::spawn(async move {
                while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    let now = Instant::now();
                    if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                        let m: Value = serde_json::from_str(&t).unwrap_or_default();
                        if let Some(id) = m["job"]["external_id"].as_str().filter(|i| i.starts_with("fan-")) {
                            received.lock().expect("lock")[who].push((id.to_string(), now));
                        }
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent = HashMap::new();
    for n in 0..changes {
        let template = format!("tpl-{:02}.yml", n % 50 + 1);
        let body = json!({"source": "bench", "job": {"external_id": format!("fan-{n}"), "name": "fan", "template": template},
                          "events": synthetic_events(100_000 + n as u64, 1)});
        ingest_batch(&http, addr, &body).await;
        if n % 50 < 5 {
            sent.insert(format!("fan-{n}"), Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for r in readers {
        let _ = r.await;
    }
    let got = received.lock().expect("lock").clone();
    // From the ingest answer to each client's receipt, for the changes both kinds receive.
    let latencies = |who: usize| {
        let mut v: Vec<f64> = got[who]
            .iter()
            .filter_map(|(id, at)| {
                sent.get(id).map(|s| at.saturating_duration_since(*s).as_secs_f64() * 1000.0)
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let (admin, scoped) = (latencies(0), latencies(1));
    let p50 = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    let leaked = got[1].iter().filter(|(id, _)| !sent.contains_key(id)).count();
    let ratio = p50(&scoped) / p50(&admin);
    println!(
        "      WebSocket fan-out ({clients}+{clients} clients, {changes} job changes, {} in scope): admin p50 {:.2} ms ({} received), scoped p50 {:.2} ms ({} received, {leaked} outside the scope), ratio {ratio:.3} (limit 1.20) -> {}",
        sent.len(),
        p50(&admin),
        admin.len(),
        p50(&scoped),
        scoped.len(),
        if ratio <= 1.2 && leaked == 0 { "ok" } else { "TOO SLOW" }
    );
}

/// A process's resident memory in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn idle(args: &[String]) {
    let clients = arg(args, "--clients", 10_000);
    let pid = arg(args, "--pid", 0) as u32;
    let url = text_arg(args, "--url").expect("--url");
    let key = text_arg(args, "--key").expect("--key");
    let ws_url = format!("{}/api/v1/ws?key={key}", url.replacen("http", "ws", 1));
    println!("idle: {clients} WebSocket clients following the job list, on playdeck pid {pid}");
    let connect = || {
        let ws_url = ws_url.clone();
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
            let sub = json!({"type": "subscribe", "jobs": true});
            ws.send(tokio_tungstenite::tungstenite::Message::Text(sub.to_string().into()))
                .await
                .expect("subscribe");
            ws
        }
    };
    // A few first, so what the server sets up once (buffers, the hub, TLS-free tables) is not
    // counted against each connection.
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(connect().await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    for chunk in (0..clients).collect::<Vec<_>>().chunks(200) {
        open.extend(futures_util::future::join_all(chunk.iter().map(|_| connect())).await);
    }
    println!("      connected {} in {:.1} s", open.len() - 20, started.elapsed().as_secs_f64());
    // Idle, as they are: the server has read their subscriptions and holds them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 / clients as f64;
    println!(
        "memory      : {before} KiB before, {after} KiB with {clients} more clients: {per:.1} KiB per connection (limit 20 KiB, ratio {:.2})",
        per / 20.0
    );
    drop(open);
}
