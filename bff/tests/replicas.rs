//! Several Playdeck processes on one database, as in production: live delivery across replicas, a
//! rolling restart under a connected client, and readiness while the database is away.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bff::infra::embedded::{Cluster, Durability};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn follow(app: &TestApp, job_id: i64, cursor: Option<&str>) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("ws");
    let sub = json!({"type": "subscribe", "job_events": [{"job_id": job_id, "cursor": cursor}]});
    ws.send(Message::Text(sub.to_string().into())).await.expect("subscribe");
    ws
}

/// Reads event messages until `total` counters were seen or the socket closes; returns the last cursor.
async fn read(ws: &mut Ws, seen: &mut Vec<i64>, total: usize) -> Option<String> {
    let mut cursor = None;
    while seen.len() < total {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await else { break };
        let Message::Text(t) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let m: Value = serde_json::from_str(&t).expect("json");
        if m["type"] == "events" {
            for e in m["events"].as_array().expect("events") {
                seen.push(e["counter"].as_i64().expect("counter"));
            }
            cursor = m["cursor"].as_str().map(str::to_string);
        }
    }
    cursor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_one_replica_sees_what_another_ingested_and_survives_a_rolling_restart() {
    let pg = fresh_database().await;
    let a = spawn_app_on(pg.clone(), |_| {}).await;
    let b = spawn_app_on(pg.clone(), |_| {}).await;
    let job_id = b.ingest_ok(&batch("rr", events(1, 20))).await["job_id"].as_i64().expect("id");

    // Connected to A, fed through B.
    let mut ws = follow(&a, job_id, None).await;
    let mut seen = Vec::new();
    let started = Instant::now();
    b.ingest_ok(&batch("rr", events(21, 20))).await;
    let cursor = read(&mut ws, &mut seen, 40).await.expect("a cursor");
    println!("cross-replica: 40 events on A after ingest through B in {:?}", started.elapsed());

    // Ingest continues through B while A goes away (a rolling restart takes it down) and the
    // client reconnects, with its cursor, to B.
    let feeder = {
        let http = b.http.clone();
        let url = b.url("/api/v1/ingest/events");
        tokio::spawn(async move {
            for i in 0..50 {
                let r = http
                    .post(&url)
                    .bearer_auth(INGEST_TOKEN)
                    .json(&batch("rr", events(41 + i * 4, 4)))
                    .send()
                    .await
                    .expect("send");
                assert!(r.status().is_success());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cursor = read(&mut ws, &mut seen, 60).await.unwrap_or(cursor);
    drop(a); // shutdown: A ends its live streams
    let down = Instant::now();
    let last = read(&mut ws, &mut seen, usize::MAX).await; // drains until A closes the socket
    let cursor = last.unwrap_or(cursor);
    let mut ws = follow(&b, job_id, Some(&cursor)).await;
    read(&mut ws, &mut seen, 240).await;
    println!("rolling restart: back on B with every event {:?} after A went down", down.elapsed());
    feeder.await.expect("feeder");
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice across the restart");
    assert_eq!(unique, (1..=240).collect::<BTreeSet<i64>>(), "no event lost across the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_down_and_recovers() {
    let dir = temp_dir("down");
    let cluster = Cluster::start(&dir, Durability::Throwaway).await.expect("cluster");
    let port = cluster.port();
    let app = spawn_app_on(cluster.pg_config("postgres"), |_| {}).await;
    let ready = || async { app.http.get(app.url("/readyz")).send().await.expect("readyz") };
    assert_eq!(ready().await.status(), 200);

    tokio::task::spawn_blocking(move || drop(cluster)).await.expect("stop");
    let r = ready().await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "not ready");
    // Requests that need the database say so in the error shape.
    let r = app.get("/api/v1/jobs").await;
    assert!(r.status().is_server_error());
    let body: Value = r.json().await.expect("json");
    assert!(body["errors"][0]["detail"].is_string());

    let _cluster = Cluster::start_on(&dir, Durability::Throwaway, Some(port)).await.expect("restart");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready().await.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "ready again within 30 s of the database's return");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And live delivery works again.
    let job_id = app.ingest_ok(&batch("back", events(1, 5))).await["job_id"].as_i64().expect("id");
    let mut ws = follow(&app, job_id, None).await;
    let mut seen = Vec::new();
    read(&mut ws, &mut seen, 5).await;
    assert_eq!(seen.len(), 5);
}
