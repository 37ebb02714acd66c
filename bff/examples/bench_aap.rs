//! How far behind the controller the AAP sync runs, run by `cargo xtask bench aap-sync`.
//!
//! Starts its own PostgreSQL cluster (durable settings, as in production), a fake AWX controller
//! and Playdeck in-process, points Playdeck at the fake, and plays `--jobs` jobs out on the fake at
//! `--rate` events per second each. A WebSocket client follows every job as the page does (job
//! list, then each job's events as soon as the job shows up) and, for every event, takes the time
//! from its `created` at the controller to its arrival on the socket. Prints the median, p90, p99
//! and worst lag, for the poll interval given (`--poll-ms`, default the production default).
//!
//! Options: --jobs 4 --hosts 20 --tasks 10 --rate 50 --poll-ms 1000 --padding 300

#[path = "support/fake_awx.rs"]
mod fake_awx;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bff::infra::config::Config;
use bff::infra::config::ControllerConfig;
use bff::infra::embedded::{Cluster, Durability};
use bff::infra::secrets::Secret;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "pdk_bench_admin_key_0123456789abcdef";

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs = arg(&args, "--jobs", 4).max(1);
    let hosts = arg(&args, "--hosts", 20).max(1);
    let tasks = arg(&args, "--tasks", 10).max(1);
    let rate = arg(&args, "--rate", 50).max(1);
    let poll_ms = arg(&args, "--poll-ms", 1000).max(1);
    let padding = arg(&args, "--padding", 300);

    let dir = std::env::temp_dir().join(format!("playdeck-bench-aap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = Cluster::start(&dir, Durability::Durable).await.expect("start PostgreSQL");
    let fake = fake_awx::FakeAwx::start("/api/v2").await;
    fake.lock().stdout_padding = padding;

    let mut config = Config::for_tests(dir.join("app"));
    config.bootstrap_admin_key = Some(Secret(ADMIN.into()));
    config.ingest_token = Some(Secret("pdi_bench_token".into()));
    let mut controller = ControllerConfig::new("aap", &fake.url, fake_awx::TOKEN);
    controller.poll_interval = Duration::from_millis(poll_ms as u64);
    config.aap.controllers = vec![controller];
    let started = bff::start(config, cluster.pg_config("postgres")).await.expect("start playdeck");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = bff::app(started.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let host_names: Vec<String> = (0..hosts).map(|h| format!("web-{h:03}.example.com")).collect();
    let host_refs: Vec<&str> = host_names.iter().map(String::as_str).collect();
    let task_names: Vec<String> = (0..tasks).map(|t| format!("Task {t}")).collect();
    let task_refs: Vec<&str> = task_names.iter().map(String::as_str).collect();
    let ids: Vec<i64> =
        (0..jobs).map(|j| fake.add_job(&format!("Bench job {j}"), &host_refs, &task_refs, None)).collect();
    let per_job = fake.script_len(ids[0]);
    let total = per_job * jobs;
    println!(
        "aap-sync: {jobs} jobs × {per_job} events at {rate} events/s each ({} events/s in all), poll every {poll_ms} ms",
        rate * jobs
    );

    // The client: every job change, and each job's events from the moment the job shows up.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?key={ADMIN}")).await.expect("ws");
    let sub = json!({"type": "subscribe", "jobs": true});
    ws.send(Message::Text(sub.to_string().into())).await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Events are released in ticks of 50 ms, as a busy controller saves them in batches.
    let tick = Duration::from_millis(50);
    let per_tick = (rate * 50 / 1000).max(1);
    let runs: Vec<_> = ids.iter().map(|id| fake.run(*id, per_tick, tick)).collect();
    let started_at = Instant::now();

    let mut followed: HashMap<i64, ()> = HashMap::new();
    let mut lags_ms: Vec<f64> = Vec::with_capacity(total);
    let mut seen: HashMap<(i64, i64), ()> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs((per_job / rate) as u64 + 60);
    while seen.len() < total && Instant::now() < deadline {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await else {
            break;
        };
        let now = Utc::now();
        let Message::Text(text) = msg else { continue };
        let m: Value = serde_json::from_str(&text).unwrap_or_default();
        match m["type"].as_str() {
            Some("job") => {
                let id = m["job"]["id"].as_i64().unwrap_or(0);
                if followed.insert(id, ()).is_none() {
                    let sub = json!({"type": "subscribe", "job_events": [{"job_id": id, "cursor": null}]});
                    ws.send(Message::Text(sub.to_string().into())).await.expect("subscribe");
                }
            }
            Some("events") => {
                let job = m["job_id"].as_i64().unwrap_or(0);
                for e in m["events"].as_array().into_iter().flatten() {
                    let counter = e["counter"].as_i64().unwrap_or(0);
                    let created = e["created"].as_str().and_then(|c| c.parse::<DateTime<Utc>>().ok());
                    if seen.insert((job, counter), ()).is_none() {
                        if let Some(created) = created {
                            lags_ms.push((now - created).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let secs = started_at.elapsed().as_secs_f64();
    for r in runs {
        r.abort();
    }
    let requests = fake.requests().len();

    lags_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lags_ms.get(((lags_ms.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
    };
    println!("received    : {} of {total} events in {secs:.1} s, over {} jobs", seen.len(), followed.len());
    println!("controller  : {requests} requests ({:.1}/s)", requests as f64 / secs);
    println!(
        "lag         : median {:.0} ms   p90 {:.0} ms   p99 {:.0} ms   worst {:.0} ms  (event created at the controller -> on the WebSocket)",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );

    let _ = started.shutdown.send(true);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
