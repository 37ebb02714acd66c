//! Live delivery over WebSocket and SSE: gap-free and exactly once per cursor, through reconnects,
//! out-of-order arrival, slow clients and a broken LISTEN connection.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Ws {
    stream: WsStream,
}

impl Ws {
    async fn connect(app: &TestApp) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("ws connect");
        Ws { stream }
    }

    async fn send(&mut self, v: Value) {
        self.stream.send(Message::Text(v.to_string().into())).await.expect("ws send");
    }

    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
                .await
                .expect("a message within 30 s")
                .expect("stream open")
                .expect("message");
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).expect("json message");
            }
        }
    }

    /// The next message that is not a job change.
    async fn recv_not_job(&mut self) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] != "job" {
                return m;
            }
        }
    }
}

/// What one client saw of one job: every counter, in order of receipt, and its last cursor.
#[derive(Default)]
struct Seen {
    counters: Vec<i64>,
    cursor: Option<String>,
    resyncs: usize,
    jobs: Vec<Value>,
}

impl Seen {
    async fn read_until(&mut self, ws: &mut Ws, job_id: i64, total: usize) {
        while self.counters.len() < total {
            let m = ws.recv().await;
            self.take(&m, job_id);
        }
    }

    /// Reads on (events included) until the job's state with at least `events` events arrives:
    /// a running job's progress goes out at most once a second, but it does go out.
    async fn read_job_state(&mut self, ws: &mut Ws, job_id: i64, events: i64) {
        while !self.jobs.iter().any(|j| j["id"] == job_id && j["event_count"].as_i64() >= Some(events)) {
            let m = ws.recv().await;
            self.take(&m, job_id);
        }
    }

    fn take(&mut self, m: &Value, job_id: i64) {
        match m["type"].as_str() {
            Some("events") => {
                assert_eq!(m["job_id"], job_id);
                for e in m["events"].as_array().expect("events") {
                    self.counters.push(e["counter"].as_i64().expect("counter"));
                }
                self.cursor = m["cursor"].as_str().map(str::to_string);
            }
            Some("resync") => self.resyncs += 1,
            Some("job") => self.jobs.push(m["job"].clone()),
            Some("error") => panic!("server error: {m}"),
            other => panic!("unexpected message {other:?}: {m}"),
        }
    }

    fn assert_exactly(&self, expected: impl Iterator<Item = i64>) {
        let unique: BTreeSet<i64> = self.counters.iter().copied().collect();
        assert_eq!(unique.len(), self.counters.len(), "no event delivered twice");
        assert_eq!(unique, expected.collect::<BTreeSet<i64>>(), "every event delivered");
    }
}

/// Counters in a scrambled but deterministic order, in batches of `size`.
fn shuffled_batches(from: i64, to: i64, size: usize) -> Vec<Vec<Value>> {
    let mut counters: Vec<i64> = (from..=to).collect();
    let len = counters.len();
    for i in 0..len {
        let j = (i * 7919 + 13) % len;
        counters.swap(i, j);
    }
    counters
        .chunks(size)
        .map(|c| c.iter().map(|n| event(*n, "runner_on_ok", "web-01", "t")).collect())
        .collect()
}

#[tokio::test]
async fn websocket_reconnect_with_cursor_gets_every_event_exactly_once() {
    let app = spawn_app().await;
    for b in shuffled_batches(1, 50, 9) {
        app.ingest_ok(&batch("ws", b)).await;
    }
    let job_id = app.count("select id from jobs where external_id = 'ws'").await;

    let mut seen = Seen::default();
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"type": "subscribe", "jobs": true, "job_events": [{"job_id": job_id, "cursor": null}]}))
        .await;
    seen.read_until(&mut ws, job_id, 50).await;
    // Live: a batch ingested now arrives without asking, with the job's new state.
    app.ingest_ok(&batch("ws", events(51, 10))).await;
    seen.read_until(&mut ws, job_id, 60).await;
    seen.read_job_state(&mut ws, job_id, 60).await;
    drop(ws);

    // While the client is away, events arrive out of order.
    for b in shuffled_batches(61, 150, 13) {
        app.ingest_ok(&batch("ws", b)).await;
    }
    let mut ws = Ws::connect(&app).await;
    let cursor = seen.cursor.clone().expect("a cursor");
    ws.send(
        json!({"type": "subscribe", "jobs": false, "job_events": [{"job_id": job_id, "cursor": cursor}]}),
    )
    .await;
    // And more arrive while it catches up.
    let ingester = {
        let batches = shuffled_batches(151, 400, 17);
        let http = app.http.clone();
        let url = app.url("/api/v1/ingest/events");
        tokio::spawn(async move {
            for b in batches {
                let r = http
                    .post(&url)
                    .bearer_auth(INGEST_TOKEN)
                    .json(&batch("ws", b))
                    .send()
                    .await
                    .expect("send");
                assert!(r.status().is_success());
            }
        })
    };
    seen.read_until(&mut ws, job_id, 400).await;
    ingester.await.expect("ingester");
    seen.assert_exactly(1..=400);
    assert!(
        seen.jobs.iter().any(|j| j["id"] == job_id && j["event_count"].as_i64() >= Some(51)),
        "job changes were sent to the client following jobs"
    );

    // Nothing more is pending: a new subscription from the last cursor gets nothing but live events.
    app.ingest_ok(&batch("ws", events(401, 1))).await;
    seen.read_until(&mut ws, job_id, 401).await;
    seen.assert_exactly(1..=401);

    // Bad messages get an error message, and the connection stays usable.
    ws.send(json!({"type": "subscribe", "job_events": [{"job_id": 999999, "cursor": null}]})).await;
    assert_eq!(ws.recv_not_job().await["type"], "error");
    ws.stream.send(Message::Text("{nonsense".into())).await.expect("send");
    assert_eq!(ws.recv_not_job().await["type"], "error");
    ws.send(json!({"type": "subscribe", "job_events": [{"job_id": job_id, "cursor": "bogus"}]})).await;
    assert_eq!(ws.recv_not_job().await["type"], "error");
}

#[tokio::test]
async fn websocket_needs_a_key() {
    let app = spawn_app().await;
    let url = format!("ws://{}/api/v1/ws", app.addr);
    let err = tokio_tungstenite::connect_async(url).await.expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401, got {other}"),
    }
}

/// A minimal SSE reader: (id, event, data) triples.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(app: &TestApp, job_id: i64, last_id: Option<&str>) -> Sse {
        let mut req = app.http.get(app.url(&format!("/api/v1/jobs/{job_id}/stream"))).bearer_auth(ADMIN_KEY);
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        Sse::of(req).await
    }

    async fn of(req: reqwest::RequestBuilder) -> Sse {
        let resp = req.send().await.expect("sse");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap_or("").starts_with("text/event-stream"));
        Sse { resp, buf: String::new() }
    }

    async fn next(&mut self) -> Option<(Option<String>, String, String)> {
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let (mut id, mut event, mut data) = (None, "message".to_string(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() && id.is_none() {
                    continue; // keep-alive comment
                }
                return Some((id, event, data));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("SSE data within 30 s")
                .expect("SSE stream")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_and_ends_when_the_job_is_done() {
    let app = spawn_app().await;
    for b in shuffled_batches(1, 60, 11) {
        app.ingest_ok(&batch("sse", b)).await;
    }
    let job_id = app.count("select id from jobs where external_id = 'sse'").await;
    let mut counters = Vec::new();
    let mut last_id = None;
    let mut sse = Sse::open(&app, job_id, None).await;
    let first = sse.next().await.expect("job event");
    assert_eq!(first.1, "job");
    while counters.len() < 40 {
        let (id, kind, data) = sse.next().await.expect("event");
        if kind == "job_event" {
            let e: Value = serde_json::from_str(&data).expect("json");
            counters.push(e["counter"].as_i64().expect("counter"));
            assert_eq!(id.as_deref(), e["cursor"].as_str(), "id: is the event's cursor");
            last_id = id;
        }
    }
    drop(sse);
    for b in shuffled_batches(61, 120, 7) {
        app.ingest_ok(&batch("sse", b)).await;
    }
    let mut sse = Sse::open(&app, job_id, last_id.as_deref()).await;
    let stats = json!({"counter": 121, "event": "playbook_on_stats", "event_data": {"ok": {"web-01": 120}}});
    let finisher = {
        let http = app.http.clone();
        let url = app.url("/api/v1/ingest/events");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for b in shuffled_batches(122, 200, 10) {
                http.post(&url).bearer_auth(INGEST_TOKEN).json(&batch("sse", b)).send().await.expect("send");
            }
            http.post(&url)
                .bearer_auth(INGEST_TOKEN)
                .json(&batch("sse", vec![stats]))
                .send()
                .await
                .expect("send");
        })
    };
    let end = loop {
        let (_, kind, data) = sse.next().await.expect("the stream stays open until end");
        match kind.as_str() {
            "job_event" => {
                let e: Value = serde_json::from_str(&data).expect("json");
                counters.push(e["counter"].as_i64().expect("counter"));
            }
            "end" => break serde_json::from_str::<Value>(&data).expect("json"),
            _ => {}
        }
    };
    finisher.await.expect("finisher");
    assert_eq!(end["status"], "successful");
    let unique: BTreeSet<i64> = counters.iter().copied().collect();
    assert_eq!(unique.len(), counters.len(), "no event twice");
    assert_eq!(unique, (1..=200).chain([121]).collect(), "every event before end");
    assert!(sse.next().await.is_none(), "the stream closes after end");

    // A finished job's stream replays everything and ends at once.
    let mut sse = Sse::open(&app, job_id, None).await;
    let mut n = 0;
    while let Some((_, kind, _)) = sse.next().await {
        if kind == "job_event" {
            n += 1;
        }
        if kind == "end" {
            break;
        }
    }
    assert_eq!(n, 200);
}

/// The next live-feed message over SSE that is not a job change.
async fn next_message(sse: &mut Sse, skip_jobs: bool) -> Value {
    loop {
        let (_, _, data) = sse.next().await.expect("a message");
        let v: Value = serde_json::from_str(&data).expect("a ServerMessage");
        if !(skip_jobs && v["type"] == "job") {
            return v;
        }
    }
}

#[tokio::test]
async fn where_upgrades_are_refused_the_feed_comes_over_sse_or_by_polling_with_the_same_cursors() {
    let app = spawn_app().await;
    app.ingest_ok(&batch("feed", events(1, 30))).await;
    let job_id = app.count("select id from jobs where external_id = 'feed'").await;

    // SSE: the grid's job changes and one job's events from its first, as the WebSocket sends them.
    let feed = |query: &str| app.http.get(app.url(&format!("/api/v1/live?{query}"))).bearer_auth(ADMIN_KEY);
    let mut grid = Sse::of(feed("jobs=true")).await;
    let mut follow = Sse::of(feed(&format!("job={job_id}"))).await;
    let mut counters = Vec::new();
    let mut cursor = String::new();
    while counters.len() < 30 {
        let m = next_message(&mut follow, true).await;
        assert_eq!(m["type"], "events", "{m}");
        assert_eq!(m["job_id"], job_id);
        counters.extend(
            m["events"].as_array().expect("events").iter().map(|e| e["counter"].as_i64().expect("n")),
        );
        cursor = m["cursor"].as_str().expect("cursor").to_string();
    }
    assert_eq!(counters, (1..=30).collect::<Vec<_>>());
    app.ingest_ok(&batch("other", events(1, 2))).await;
    let m = next_message(&mut grid, false).await;
    assert_eq!(m["type"], "job", "{m}");
    assert_eq!(m["job"]["external_id"], "other", "{m}");
    drop(follow);

    // Resuming with the last cursor gets only what came after it.
    app.ingest_ok(&batch("feed", events(31, 5))).await;
    let mut follow = Sse::of(feed(&format!("job={job_id}&cursor={cursor}"))).await;
    let m = next_message(&mut follow, true).await;
    let got: Vec<i64> =
        m["events"].as_array().expect("events").iter().map(|e| e["counter"].as_i64().expect("n")).collect();
    assert_eq!(got, (31..=35).collect::<Vec<_>>());

    // Polling: the job's state, then its events past the cursor, in the same messages.
    let poll: Value = app.get_json(&format!("/api/v1/live/poll?job={job_id}&cursor={cursor}")).await;
    assert_eq!(poll["more"], false);
    assert_eq!(poll["messages"][0]["type"], "job");
    assert_eq!(poll["messages"][0]["job"]["id"], job_id);
    let events = poll["messages"][1]["events"].as_array().expect("events");
    assert_eq!(
        events.iter().map(|e| e["counter"].as_i64().expect("n")).collect::<Vec<_>>(),
        (31..=35).collect::<Vec<_>>()
    );
    let last = poll["messages"][1]["cursor"].as_str().expect("cursor");
    let after: Value = app.get_json(&format!("/api/v1/live/poll?job={job_id}&cursor={last}")).await;
    assert_eq!(after["messages"].as_array().map(Vec::len), Some(1), "nothing new: only the job: {after}");

    // Bad input: the error shape, never a stream.
    assert_error(app.get("/api/v1/live?job=999999").await, 404).await;
    assert_error(app.get(&format!("/api/v1/live?job={job_id}&cursor=nonsense")).await, 400).await;
    assert_error(app.get("/api/v1/live/poll").await, 400).await;
    assert_error(app.get("/api/v1/live/poll?job=999999").await, 404).await;
    let anonymous = reqwest::Client::new().get(app.url("/api/v1/live?jobs=true")).send().await.expect("get");
    assert_error(anonymous, 401).await;
}

#[tokio::test]
async fn a_client_that_does_not_read_gets_resync_and_slows_no_one() {
    let app = spawn_app_with(|c| c.hub_capacity = 8).await;
    app.ingest_ok(&batch("slow", events(1, 1))).await;
    let job_id = app.count("select id from jobs where external_id = 'slow'").await;
    let subscribe =
        json!({"type": "subscribe", "jobs": true, "job_events": [{"job_id": job_id, "cursor": null}]});

    // The slow client: a tiny receive buffer, and it does not read at all for now.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(app.addr).await.expect("connect");
    let (stream, _) =
        tokio_tungstenite::client_async(app.ws_url(), tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .expect("ws");
    let mut slow = Ws { stream };
    slow.send(subscribe.clone()).await;

    let mut fast = Ws::connect(&app).await;
    fast.send(subscribe).await;
    let mut fast_seen = Seen::default();
    fast_seen.read_until(&mut fast, job_id, 1).await;

    let total = 1 + 300 * 10;
    let reader = tokio::spawn(async move {
        fast_seen.read_until(&mut fast, job_id, total).await;
        fast_seen
    });
    let big = "z".repeat(4000);
    for b in 0..300 {
        let mut evs = events(2 + b * 10, 10);
        for e in &mut evs {
            e["stdout"] = json!(big);
        }
        app.ingest_ok(&batch("slow", evs)).await;
    }
    let fast_seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("fast client kept up")
        .expect("reader");
    fast_seen.assert_exactly(1..=total as i64);

    // Now the slow client reads: it was told to resync, and still gets every event exactly once.
    let mut slow_seen = Seen::default();
    slow_seen.read_until(&mut slow, job_id, total).await;
    slow_seen.assert_exactly(1..=total as i64);
    assert!(slow_seen.resyncs > 0, "the slow client got resync");
}

/// The LISTEN connection's backend terminated while 100 clients follow a job that keeps getting
/// events: every client gets every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_survives_a_killed_listen_connection() {
    const CLIENTS: usize = 100;
    let app = spawn_app().await;
    app.ingest_ok(&batch("kill", events(1, 10))).await;
    let job_id = app.count("select id from jobs where external_id = 'kill'").await;
    // Each client follows the job and has its first ten events before the ingest goes on.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let ready = ready_tx.clone();
            let ws_url = app.ws_url();
            tokio::spawn(async move {
                let (stream, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws connect");
                let mut ws = Ws { stream };
                ws.send(json!({"type": "subscribe", "jobs": true, "job_events": [{"job_id": job_id, "cursor": null}]}))
                    .await;
                let mut seen = Seen::default();
                seen.read_until(&mut ws, job_id, 10).await;
                ready.send(()).await.expect("ready");
                seen.read_until(&mut ws, job_id, 310).await;
                seen.assert_exactly(1..=310);
            })
        })
        .collect();
    for _ in 0..CLIENTS {
        ready_rx.recv().await.expect("a client is ready");
    }

    let db = app.db().await;
    let find = "select pid from pg_stat_activity where application_name = 'playdeck-listener' and datname = current_database()";
    let before: i32 = db.query_one(find, &[]).await.expect("listener is connected").get(0);
    // A steady stream while the clients follow, then the break, then the rest in one batch at
    // once: it lands while the listener is away (it waits 100 ms before it connects again), so
    // only the catch-up after the reconnect brings it to the clients.
    for b in 0..6 {
        app.ingest_ok(&batch("kill", events(11 + b * 5, 5))).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed: bool =
        db.query_one("select pg_terminate_backend($1)", &[&before]).await.expect("terminate").get(0);
    assert!(killed);
    app.ingest_ok(&batch("kill", events(41, 270))).await;
    let stored = app.count(&format!("select count(*) from job_events where job_id = {job_id}")).await;
    assert!(stored == 310, "every event stored: {stored}");
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("every client has every event within 30 s")
            .expect("a client got every event exactly once");
    }
    let after: i32 = db.query_one(find, &[]).await.expect("listener is back").get(0);
    assert_ne!(before, after, "a new LISTEN connection");
    let ready = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn websockets_are_pinged_so_proxies_keep_them() {
    let app = spawn_app_with(|c| c.ws_ping = Duration::from_millis(200)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("ws connect");
    let ping = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_ping() {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ping, Ok(true), "a ping arrived");
}

/// A page on another site could open a WebSocket with the signed-in person's cookie: the
/// handshake is refused (403) when the cookie comes with another origin, and taken with this
/// server's own origin, or from a client that sends none; an API key is not a cookie a browser
/// sends by itself, so it is taken from any origin.
#[tokio::test]
async fn the_websocket_refuses_a_session_cookie_from_another_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let cookie = admin_session_cookie(&app).await;
    let open = |origin: Option<String>, auth: (&'static str, String)| {
        let mut req = app.ws_url().into_client_request().expect("request");
        req.headers_mut().insert(auth.0, auth.1.parse().expect("header"));
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().expect("origin"));
        }
        async move {
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
                Err(e) => panic!("handshake: {e}"),
            }
        }
    };
    let own = format!("http://{}", app.addr);
    let by_cookie = ("cookie", cookie.clone());
    let by_key = ("authorization", format!("Bearer {ADMIN_KEY}"));
    assert_eq!(open(Some("https://evil.example".into()), by_cookie.clone()).await, 403);
    assert_eq!(open(Some(format!("http://{}.evil.example", app.addr.ip())), by_cookie.clone()).await, 403);
    assert_eq!(open(Some(own.clone()), by_cookie.clone()).await, 101);
    assert_eq!(open(None, by_cookie).await, 101);
    assert_eq!(open(Some("https://evil.example".into()), by_key).await, 101);
}

/// A counter's value at `/metrics`: the line of `name` holding every label pair given.
async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} {labels:?} at /metrics"))
}

/// A broadcast batch is serialized once and the same bytes go to every caught-up follower.
#[tokio::test]
async fn a_broadcast_is_serialized_once_for_all_its_followers() {
    let app = spawn_app().await;
    let job = app.ingest_ok(&batch("fan", events(1, 2))).await["job_id"].as_i64().expect("id");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = Ws::connect(&app).await;
        ws.send(json!({"type": "subscribe", "job_events": [{"job_id": job, "cursor": null}]})).await;
        let first = ws.recv_not_job().await;
        assert_eq!(first["events"].as_array().map(Vec::len), Some(2), "caught up from the tables: {first}");
        clients.push(ws);
    }
    let sent =
        || metric(&app, "playdeck_live_messages_total", &[("transport", "websocket"), ("kind", "events")]);
    let encoded = || metric(&app, "playdeck_live_encoded_total", &[("kind", "events")]);
    let (sent_before, encoded_before) = (sent().await, encoded().await);
    app.ingest_ok(&batch("fan", events(3, 3))).await;
    let mut texts = Vec::new();
    for ws in &mut clients {
        let m = ws.recv_not_job().await;
        assert_eq!(m["events"].as_array().map(Vec::len), Some(3), "{m}");
        texts.push(m.to_string());
    }
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "every follower got the same message");
    assert_eq!(sent().await - sent_before, 3.0, "sent to each of the three");
    assert_eq!(encoded().await - encoded_before, 1.0, "serialized once");
}

#[tokio::test]
async fn what_a_follower_is_sent_as_a_batch_is_written_is_what_a_reload_reads() {
    let app = spawn_app().await;
    let job = app.ingest_ok(&batch("same", events(1, 1))).await["job_id"].as_i64().expect("id");
    let mut ws = Ws::connect(&app).await;
    ws.send(json!({"type": "subscribe", "job_events": [{"job_id": job, "cursor": null}]})).await;
    let first = ws.recv_not_job().await;
    assert_eq!(first["events"].as_array().map(Vec::len), Some(1), "{first}");
    // Data kept as sent (nested, unicode, numbers of each kind, a time finer than a microsecond,
    // an escaped NUL in the output), data masked (a password), and data read whole (a failure).
    let mut plain = event(2, "runner_on_ok", "web-01", "nested");
    plain["created"] = json!("2026-12-02T10:00:00.123456789+01:00");
    plain["stdout"] = json!("naïve ✓ \u{0} end");
    plain["event_data"]["res"] = json!({"changed": true, "n": 3, "f": 1.5, "tiny": 1e-05, "big": 12345678901234567890u64,
        "s": "\"quoted\" \\ back ☃", "list": [1, "two", null, {"deep": [true]}], "empty": {}});
    let mut secret = event(3, "runner_on_ok", "web-02", "login");
    secret["event_data"]["res"] = json!({"password": "hunter2-not-to-be-seen", "ok": 1});
    let mut failed = event(4, "runner_on_failed", "web-03", "boom");
    failed["event_data"]["res"] = json!({"msg": "No space left on device", "rc": 1});
    app.ingest_ok(&batch("same", vec![plain, secret, failed])).await;
    let live = ws.recv_not_job().await;
    assert_eq!(live["events"].as_array().map(Vec::len), Some(3), "{live}");
    let page = app.get_json(&format!("/api/v1/jobs/{job}/events?limit=1000")).await;
    let stored: Vec<&Value> = page["results"].as_array().expect("results").iter().skip(1).collect();
    let sent: Vec<&Value> = live["events"].as_array().expect("events").iter().collect();
    assert_eq!(sent, stored, "live and reloaded events differ");
    assert!(!live.to_string().contains("hunter2"), "the secret is masked in what is sent: {live}");
}
