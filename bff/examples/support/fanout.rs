//! `cargo xtask bench fanout`: the live relay under a realistic load, beside its limit.
//!
//! A release `playdeck` runs in a process of its own; this process holds the clients and the
//! senders. `jobs` running jobs each send `rate` events/s the way the callback plugin does (what
//! is waiting, every `flush` ms), and `clients` WebSocket clients each follow one job and the job
//! list. Every event's latency is measured from "ingest accepted" (the POST answered) to "client
//! received", per client; an event some client never got counts as missing.
//!
//! The limit, in the same run: a plain broadcast server (this binary in a process of its own,
//! `broadcast-server`) handed the same frames, pre-serialized (`ServerMessage` as Playdeck encodes
//! it, events built as Playdeck stores them, the job as Playdeck answered it), which it writes to
//! the same sockets with the same subscriptions and nothing else: no database, no cursor, no
//! access check. It fans out as Playdeck's hub does (a channel per job, one shared for job
//! frames, one write for whatever waits for a socket), so it stays the limit of that.
//!
//! Both sides are ramped: the offered rate is multiplied by each of `steps` in turn until p99 goes
//! over 100 ms or an event is missing. Each step is run `tries` times (3) and stands for its
//! median try (by p99; an event missing in any try fails it): one slow or lucky few seconds on
//! two shared cores no longer move the verdict. A side's capacity is the event deliveries per
//! second of its last step within that latency; the goal is Playdeck ≥ 0.5 of the broadcast's.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{arg, text_arg};

/// The latency a step must stay within.
const P99_LIMIT_MS: f64 = 100.0;

/// One client's view of its job: when each counter arrived, and how many job frames came.
#[derive(Default)]
struct Seen {
    events: HashMap<i64, Instant>,
    job_frames: u64,
    resyncs: u64,
}

/// The seqs an events frame holds, `first..=last`, read from its head without parsing the rest:
/// `{"type":"events","job_id":J,"cursor":"LAST","events":[{"job_id":J,"counter":C,"cursor":"FIRST",…`
/// (the order `ServerMessage` is written in). A thousand clients parsing every event would
/// measure this process, not the server. Each job here is one sender in counter order from 1, so
/// its seqs are its counters; were they not, events would show as missing, not pass unseen.
fn frame_seqs(text: &str) -> Option<(i64, i64)> {
    const CURSOR: &str = "\"cursor\":\"";
    let at = |from: usize| -> Option<(i64, usize)> {
        let start = from + text[from..].find(CURSOR)? + CURSOR.len();
        let end = start + text[start..].find('"')?;
        Some((text[start..end].parse().ok()?, end))
    };
    let (last, end) = at(0)?;
    let (first, _) = at(end)?;
    Some((first, last))
}
/// The side under test: Playdeck's ingest and WebSocket, or the plain broadcast.
#[derive(Clone)]
enum Side {
    Playdeck { url: String, key: String, token: String, ids: Vec<i64> },
    Broadcast { url: String, jobs: Vec<shared::Job> },
}

impl Side {
    fn name(&self) -> &'static str {
        match self {
            Side::Playdeck { .. } => "playdeck",
            Side::Broadcast { .. } => "broadcast",
        }
    }

    fn ws_url(&self) -> String {
        match self {
            Side::Playdeck { url, key, .. } => {
                format!("{}/api/v1/ws?key={key}", url.replacen("http", "ws", 1))
            }
            Side::Broadcast { url, .. } => format!("{}/ws", url.replacen("http", "ws", 1)),
        }
    }

    fn job_id(&self, job: usize) -> i64 {
        match self {
            Side::Playdeck { ids, .. } => ids[job],
            Side::Broadcast { .. } => job as i64 + 1,
        }
    }
}

/// The events each job cycles through: one long patch run, without its closing stats (the jobs
/// stay running), renumbered as they are sent.
fn job_events(job: usize) -> Vec<Value> {
    let hosts: Vec<(String, super::run::Fate)> =
        (0..40).map(|h| (format!("web-{h:03}.example.com"), super::run::Fate::Ok)).collect();
    super::run::playbook_run(job as u64, "patch.yml", super::run::PATCH, &hosts, 5)
        .into_iter()
        .filter(|e| e["event"] != "playbook_on_stats")
        .collect()
}

/// An event as Playdeck stores and sends it (`shared::JobEvent`), for the broadcast's frames.
fn as_stored(job_id: i64, seq: i64, e: &Value) -> shared::JobEvent {
    let data = &e["event_data"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    shared::JobEvent {
        job_id,
        counter: e["counter"].as_i64().unwrap_or(0),
        cursor: seq.to_string(),
        event: e["event"].as_str().unwrap_or_default().to_string(),
        uuid: text(&e["uuid"]),
        parent_uuid: text(&e["parent_uuid"]),
        created: e["created"].as_str().and_then(|c| c.parse().ok()),
        host: text(&data["host"]),
        play: text(&data["play"]),
        task: text(&data["task"]),
        role: text(&data["role"]),
        stdout: e["stdout"].as_str().unwrap_or_default().to_string(),
        start_line: e["start_line"].as_i64().unwrap_or(0),
        end_line: e["end_line"].as_i64().unwrap_or(0),
        failed: e["event"].as_str().is_some_and(|k| k.ends_with("_failed") || k.ends_with("_unreachable")),
        changed: data["res"]["changed"].as_bool().unwrap_or(false),
        event_data: data.clone(),
    }
}

/// Opens a client following `job` and the job list; it records what it receives into `seen`.
async fn client(ws_url: String, job_id: i64, seen: Arc<Mutex<Seen>>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    let sub = json!({"type": "subscribe", "jobs": true, "job_events": [{"job_id": job_id, "cursor": null}]});
    ws.send(Message::Text(sub.to_string().into())).await.expect("subscribe");
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let now = Instant::now();
            let Message::Text(t) = msg else { continue };
            let head = &t.as_str()[..t.len().min(24)];
            let Ok(mut seen) = seen.lock() else { return };
            if head.starts_with("{\"type\":\"events\"") {
                if let Some((first, last)) = frame_seqs(&t) {
                    for seq in first..=last {
                        seen.events.entry(seq).or_insert(now);
                    }
                }
            } else if head.starts_with("{\"type\":\"job\"") {
                seen.job_frames += 1;
            } else if head.starts_with("{\"type\":\"resync\"") {
                seen.resyncs += 1;
            }
        }
    });
}

/// One step's figures.
struct Step {
    rate: usize,
    deliveries: usize,
    per_second: f64,
    job_frames_per_second: f64,
    missing: usize,
    resyncs: u64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Step {
    fn within(&self) -> bool {
        self.missing == 0 && self.p99 <= P99_LIMIT_MS
    }
}

/// A job's sender: what is due at the offered rate, every `flush`, one batch at a time (as the
/// callback plugin's thread does); answers when each counter was accepted.
#[allow(clippy::too_many_arguments)]
async fn send_job(
    side: Side,
    http: reqwest::Client,
    job: usize,
    events: Arc<Vec<Value>>,
    first: i64,
    rate: f64,
    seconds: f64,
    flush: Duration,
    offset: Duration,
    frames: Arc<Mutex<(usize, usize)>>,
) -> Vec<(i64, Instant)> {
    tokio::time::sleep(offset).await;
    let job_id = side.job_id(job);
    let started = Instant::now();
    let mut tick = tokio::time::interval(flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0usize;
    let mut accepted = Vec::new();
    let mut event_count = first - 1;
    // The broadcast's job frames go out as often as Playdeck's relay sends a running job's state
    // (at most once per `live::JOB_EVERY` while only its progress moves).
    let mut job_frame_at: Option<Instant> = None;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs_f64().min(seconds);
        let due = ((elapsed * rate) as usize).saturating_sub(sent).min(200);
        if due > 0 {
            let batch: Vec<Value> = (0..due)
                .map(|i| {
                    let counter = first + (sent + i) as i64;
                    let mut e = events[(counter as usize) % events.len()].clone();
                    e["counter"] = json!(counter);
                    e
                })
                .collect();
            let counters: Vec<i64> = batch.iter().map(|e| e["counter"].as_i64().unwrap_or(0)).collect();
            match &side {
                Side::Playdeck { url, token, .. } => {
                    let body = json!({"source": "bench", "job": {"external_id": format!("fanout-{job}")}, "events": batch});
                    let r = http
                        .post(format!("{url}/api/v1/ingest/events"))
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .expect("ingest");
                    assert!(r.status().is_success(), "ingest {}", r.status());
                }
                Side::Broadcast { url, jobs } => {
                    // Seq = counter here: each job's events are stored in counter order.
                    let stored: Vec<shared::JobEvent> =
                        batch.iter().zip(&counters).map(|(e, c)| as_stored(job_id, *c, e)).collect();
                    let cursor = counters.last().copied().unwrap_or(0).to_string();
                    let events_frame = serde_json::to_string(&shared::ServerMessage::Events {
                        job_id,
                        cursor: cursor.clone(),
                        events: stored,
                    })
                    .expect("frame");
                    event_count += due as i64;
                    let mut the_job = jobs[job].clone();
                    the_job.event_count = event_count;
                    the_job.cursor = cursor;
                    the_job.modified = chrono::Utc::now();
                    let due_frame = job_frame_at.is_none_or(|t| t.elapsed() >= bff::live::JOB_EVERY);
                    let job_frame = if due_frame {
                        job_frame_at = Some(Instant::now());
                        serde_json::to_string(&shared::ServerMessage::Job { job: the_job }).expect("frame")
                    } else {
                        String::new()
                    };
                    if let Ok(mut f) = frames.lock() {
                        f.0 += events_frame.len();
                        f.1 += job_frame.len();
                    }
                    let split = events_frame.len();
                    let r = http
                        .post(format!("{url}/publish?job={job_id}&split={split}"))
                        .body(events_frame + &job_frame)
                        .send()
                        .await
                        .expect("publish");
                    assert!(r.status().is_success(), "publish {}", r.status());
                }
            }
            let at = Instant::now();
            accepted.extend(counters.into_iter().map(|c| (c, at)));
            sent += due;
        }
        if elapsed >= seconds && sent >= (seconds * rate) as usize {
            return accepted;
        }
    }
}

/// Runs one step on one side: every job at `rate` events/s for `seconds`, then waits for the
/// clients to have everything (or 10 s); answers the figures.
#[allow(clippy::too_many_arguments)]
async fn step(
    side: &Side,
    http: &reqwest::Client,
    events: &[Arc<Vec<Value>>],
    next: &mut [i64],
    seen: &[(usize, Arc<Mutex<Seen>>)],
    rate: usize,
    seconds: f64,
    flush: Duration,
) -> Step {
    let jobs = events.len();
    let frames_before: u64 = seen.iter().map(|(_, s)| s.lock().map(|s| s.job_frames).unwrap_or(0)).sum();
    let frame_bytes = Arc::new(Mutex::new((0usize, 0usize)));
    let started = Instant::now();
    let senders: Vec<_> = (0..jobs)
        .map(|j| {
            let offset = flush.mul_f64(j as f64 / jobs as f64);
            tokio::spawn(send_job(
                side.clone(),
                http.clone(),
                j,
                events[j].clone(),
                next[j],
                rate as f64,
                seconds,
                flush,
                offset,
                frame_bytes.clone(),
            ))
        })
        .collect();
    let mut accepted: Vec<Vec<(i64, Instant)>> = Vec::with_capacity(jobs);
    for s in senders {
        accepted.push(s.await.expect("sender"));
    }
    let sent_secs = started.elapsed().as_secs_f64();
    for (j, a) in accepted.iter().enumerate() {
        next[j] += a.len() as i64;
    }
    // Settle: until every client has every accepted event of its job, or 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let complete = seen.iter().all(|(j, s)| {
            s.lock().map(|s| accepted[*j].iter().all(|(c, _)| s.events.contains_key(c))).unwrap_or(false)
        });
        if complete || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let frames_after: u64 = seen.iter().map(|(_, s)| s.lock().map(|s| s.job_frames).unwrap_or(0)).sum();
    let mut lat = Vec::new();
    let mut missing = 0usize;
    let mut resyncs = 0u64;
    for (j, s) in seen {
        let Ok(mut s) = s.lock() else { continue };
        resyncs += s.resyncs;
        s.resyncs = 0;
        for (c, at) in &accepted[*j] {
            match s.events.remove(c) {
                Some(got) => lat.push(got.saturating_duration_since(*at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
        s.events.clear();
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    if let Ok(f) = frame_bytes.lock() {
        if f.0 > 0 {
            println!(
                "      (frames handed to the broadcast: {} KB of events, {} KB of jobs)",
                f.0 / 1000,
                f.1 / 1000
            );
        }
    }
    Step {
        rate,
        deliveries: lat.len(),
        per_second: lat.len() as f64 / sent_secs,
        job_frames_per_second: (frames_after - frames_before) as f64 / sent_secs,
        missing,
        resyncs,
        p50: pct(0.5),
        p99: pct(0.99),
        max: pct(1.0),
    }
}

/// Ramps one side; answers its capacity (deliveries/s of the last step within the latency) and
/// its first step's figures (the realistic load).
#[allow(clippy::too_many_arguments)]
async fn ramp(
    side: &Side,
    clients: usize,
    events: &[Arc<Vec<Value>>],
    steps: &[f64],
    tries: usize,
    rate: usize,
    seconds: f64,
    flush: Duration,
) -> (f64, Option<Step>) {
    let jobs = events.len();
    let http = reqwest::Client::builder().pool_max_idle_per_host(jobs).build().expect("http");
    let mut seen = Vec::with_capacity(clients);
    let ws_url = side.ws_url();
    let t = Instant::now();
    for chunk in (0..clients).collect::<Vec<_>>().chunks(100) {
        let opening: Vec<_> = chunk
            .iter()
            .map(|c| {
                let s: Arc<Mutex<Seen>> = Arc::default();
                seen.push((c % jobs, s.clone()));
                client(ws_url.clone(), side.job_id(c % jobs), s)
            })
            .collect();
        futures_util::future::join_all(opening).await;
    }
    println!("  {}: {clients} clients connected in {:.1} s", side.name(), t.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut next: Vec<i64> = vec![2; jobs];
    let (mut capacity, mut first) = (0.0, None);
    for m in steps {
        let offered = (rate as f64 * m).round() as usize;
        let mut runs = Vec::with_capacity(tries);
        for _ in 0..tries {
            runs.push(step(side, &http, events, &mut next, &seen, offered, seconds, flush).await);
        }
        let p99s: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.p99)).collect();
        let missing: usize = runs.iter().map(|r| r.missing).sum();
        runs.sort_by(|a, b| a.p99.total_cmp(&b.p99));
        let mut s = runs.swap_remove(runs.len() / 2);
        s.missing = missing;
        let verdict = if s.within() { "within" } else { "over" };
        println!(
            "  {:9} {:>6} events/s offered: {:>8.0} deliveries/s  p50 {:6.1} ms  p99 {:7.1} ms  max {:7.1} ms  missing {}  job frames {:>7.0}/s  resyncs {}  ({verdict}; p99 of the tries {})",
            side.name(),
            offered * jobs,
            s.per_second,
            s.p50,
            s.p99,
            s.max,
            s.missing,
            s.job_frames_per_second,
            s.resyncs,
            p99s.join(", "),
        );
        let within = s.within();
        if within {
            capacity = s.per_second;
        }
        if first.is_none() {
            first = Some(s);
        }
        if !within {
            break;
        }
    }
    (capacity, first)
}

/// `bench fanout --url U --key K --token T [--jobs 100 --rate 50 --clients 1000 --seconds 6
/// --tries 3 --flush-ms 250 --steps 1,1.5,2,2.5,3,4,5,6,8]`.
pub async fn fanout(args: &[String]) {
    let url = text_arg(args, "--url").expect("--url");
    let key = text_arg(args, "--key").expect("--key");
    let token = text_arg(args, "--token").expect("--token");
    let jobs = arg(args, "--jobs", 100).max(1);
    let rate = arg(args, "--rate", 50).max(1);
    let clients = arg(args, "--clients", 1000).max(1);
    let seconds = arg(args, "--seconds", 6).max(1) as f64;
    let tries = arg(args, "--tries", 3).max(1);
    let flush = Duration::from_millis(arg(args, "--flush-ms", 250).max(10) as u64);
    let steps: Vec<f64> = text_arg(args, "--steps")
        .unwrap_or_else(|| "1,1.5,2,2.5,3,4,5,6,8".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|m: &f64| *m > 0.0)
        .collect();
    println!(
        "fanout: {jobs} jobs at {rate} events/s each ({} events/s), {clients} WebSocket clients each following one job and the job list, sent every {} ms; steps x{steps:?}, each {tries} times for {seconds} s",
        jobs * rate,
        flush.as_millis()
    );
    let events: Vec<Arc<Vec<Value>>> = (0..jobs).map(|j| Arc::new(job_events(j))).collect();
    // The clients read frames by their heads: check that they read Playdeck's own encoding.
    let sample: Vec<shared::JobEvent> = (5..=7).map(|seq| as_stored(1, seq, &events[0][1])).collect();
    let frame = serde_json::to_string(&shared::ServerMessage::Events {
        job_id: 1,
        cursor: "7".into(),
        events: sample,
    })
    .expect("frame");
    assert_eq!(frame_seqs(&frame), Some((5, 7)), "the clients cannot read {frame:.120}");

    // Playdeck: each job starts with its first event; the job as Playdeck answers it is what the
    // broadcast's job frames are made of.
    let http = reqwest::Client::new();
    let mut ids = Vec::with_capacity(jobs);
    let mut answered = Vec::with_capacity(jobs);
    for (j, ev) in events.iter().enumerate() {
        let mut first = ev[0].clone();
        first["counter"] = json!(1);
        let body =
            json!({"source": "bench", "job": {"external_id": format!("fanout-{j}")}, "events": [first]});
        let r: Value = http
            .post(format!("{url}/api/v1/ingest/events"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("ingest")
            .json()
            .await
            .expect("json");
        let id = r["job_id"].as_i64().expect("job id");
        ids.push(id);
        let job: shared::Job = http
            .get(format!("{url}/api/v1/jobs/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("job")
            .json()
            .await
            .expect("json");
        answered.push(job);
    }
    let playdeck = Side::Playdeck { url, key, token, ids };
    let (ours, ours_step) = ramp(&playdeck, clients, &events, &steps, tries, rate, seconds, flush).await;

    // The limit: the plain broadcast in a process of its own.
    let mut server = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("broadcast-server")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("broadcast server");
    let mut out = tokio::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line).await.expect("address");
    let addr = line.trim().to_string();
    let broadcast = Side::Broadcast { url: format!("http://{addr}"), jobs: answered };
    let (limit, _) = ramp(&broadcast, clients, &events, &steps, tries, rate, seconds, flush).await;
    let _ = server.kill().await;

    let realistic = ours_step.as_ref().map(|s| s.rate == rate && s.within()).unwrap_or(false);
    let first = |s: &Option<Step>| s.as_ref().map(|s| (s.p99, s.missing)).unwrap_or((f64::NAN, 0));
    println!(
        "realistic   : {} events/s: playdeck p99 {:.1} ms (limit {P99_LIMIT_MS} ms), missing {}{}",
        jobs * rate,
        first(&ours_step).0,
        first(&ours_step).1,
        if realistic { "" } else { " (the realistic step itself is over the limit)" }
    );
    println!(
        "capacity    : playdeck {ours:.0} deliveries/s, plain broadcast {limit:.0} deliveries/s within p99 {P99_LIMIT_MS} ms: ratio {:.2} (goal >= 0.5)",
        if limit > 0.0 { ours / limit } else { f64::NAN }
    );
}

/// `bench broadcast-server`: a plain WebSocket broadcast of frames it is handed, nothing else.
/// Prints its address on the first line of stdout.
///
/// It fans out as Playdeck's hub does, so it stays the limit of that: a channel per job for its
/// events frames (a frame wakes only that job's subscribers), one shared channel for the job
/// frames, which go out together on the same 250 ms grid as Playdeck's held job states, and
/// whatever waits for a socket goes out in one write.
pub async fn broadcast_server() {
    use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
    use axum::extract::{Query, State};
    use axum::routing::{get, post};
    use futures_util::FutureExt;
    use tokio::sync::broadcast;
    use tokio_stream::wrappers::BroadcastStream;

    /// Frames a socket takes at once before it writes.
    const DRAIN: usize = 64;

    #[derive(Clone)]
    struct Channels {
        jobs: broadcast::Sender<Utf8Bytes>,
        events: Arc<Mutex<HashMap<i64, broadcast::Sender<Utf8Bytes>>>>,
        /// Job frames waiting for the next tick, in the order they came.
        held: Arc<Mutex<Vec<Utf8Bytes>>>,
    }

    impl Channels {
        fn events_of(&self, job: i64) -> broadcast::Sender<Utf8Bytes> {
            let mut events = self.events.lock().expect("channels");
            events.entry(job).or_insert_with(|| broadcast::channel(1024).0).clone()
        }
    }

    #[derive(serde::Deserialize)]
    struct Sub {
        #[serde(default)]
        jobs: bool,
        #[serde(default)]
        job_events: Vec<JobSub>,
    }
    #[derive(serde::Deserialize)]
    struct JobSub {
        job_id: i64,
    }
    #[derive(serde::Deserialize)]
    struct PublishQuery {
        job: i64,
        split: usize,
    }

    async fn serve(socket: WebSocket, channels: Channels) {
        let (mut sink, mut stream) = socket.split();
        let Some(Ok(WsMessage::Text(t))) = stream.next().await else { return };
        let Ok(sub) = serde_json::from_str::<Sub>(&t) else { return };
        let mut followed = futures_util::stream::select_all(
            sub.job_events.iter().map(|j| BroadcastStream::new(channels.events_of(j.job_id).subscribe())),
        );
        let mut jobs = channels.jobs.subscribe();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        loop {
            let first = tokio::select! {
                Some(Ok(frame)) = followed.next(), if !followed.is_empty() => frame,
                frame = jobs.recv(), if sub.jobs => match frame {
                    Ok(frame) => frame,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                },
                else => break,
            };
            let mut ok = sink.feed(WsMessage::Text(first)).await.is_ok();
            for _ in 1..DRAIN {
                if !ok {
                    break;
                }
                let next = match followed.next().now_or_never() {
                    Some(Some(Ok(frame))) => frame,
                    _ => match jobs.try_recv() {
                        Ok(frame) if sub.jobs => frame,
                        _ => break,
                    },
                };
                ok = sink.feed(WsMessage::Text(next)).await.is_ok();
            }
            if !ok || sink.flush().await.is_err() {
                break;
            }
        }
        reader.abort();
    }

    let channels =
        Channels { jobs: broadcast::channel(1024).0, events: Arc::default(), held: Arc::default() };
    let ticking = channels.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(bff::live::JOB_TICK);
        loop {
            tick.tick().await;
            let due = std::mem::take(&mut *ticking.held.lock().expect("held"));
            for frame in due {
                let _ = ticking.jobs.send(frame);
            }
        }
    });
    let app = axum::Router::new()
        .route(
            "/ws",
            get(|State(channels): State<Channels>, ws: WebSocketUpgrade| async move {
                // The same socket settings as Playdeck's.
                ws.max_message_size(64 * 1024)
                    .read_buffer_size(4 * 1024)
                    .write_buffer_size(16 * 1024)
                    .on_upgrade(move |s| serve(s, channels))
            }),
        )
        .route(
            "/publish",
            post(
                |State(channels): State<Channels>, Query(q): Query<PublishQuery>, body: String| async move {
                    let split = q.split.min(body.len());
                    let (events, job_frame) = body.split_at(split);
                    let _ = channels.events_of(q.job).send(Utf8Bytes::from(events.to_string()));
                    if !job_frame.is_empty() {
                        channels.held.lock().expect("held").push(Utf8Bytes::from(job_frame.to_string()));
                    }
                    "ok"
                },
            ),
        )
        .with_state(channels);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
