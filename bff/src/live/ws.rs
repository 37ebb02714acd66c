//! `GET /api/v1/ws`: job changes and followed jobs' events over a WebSocket, with the
//! subscribe/cursor protocol of the contract. For browsers behind a proxy that refuses WebSocket
//! upgrades the same messages come over Server-Sent Events (`GET /api/v1/live`, the subscription
//! in the query), and as a last resort by polling (`GET /api/v1/live/poll`: one job's state and its
//! events past a cursor).
//!
//! One task reads the client's messages, one writes; the writer takes broadcasts from the hub (job
//! states from the shared channel, each followed job's batches from that job's) and hands each
//! follower only what is past its cursor. A writer that cannot keep up (the client reads slowly)
//! lags behind the hub's bounded buffers instead of slowing anyone: it then sends `resync` and
//! reads the events it missed from the tables (behind a job's channel, that job's only).

use std::collections::HashMap;
use std::sync::Arc;

use std::convert::Infallible;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use shared::{ClientMessage, JobCursor, JobEvent, LivePoll, Role, ServerMessage};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;

use crate::infra::access::{Access, Target};
use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::extract::Q;
use crate::infra::state::AppState;
use crate::live::{self, Follower, HubMessage, Interest};

/// Jobs one connection may follow at once.
const MAX_FOLLOWED: usize = 100;

/// Bytes a connection gathers before it writes, short of a flush.
const WRITE_BUFFER: usize = 16 * 1024;

/// Broadcasts a connection takes at once when they wait, before it flushes.
const DRAIN: usize = 64;

pub async fn upgrade(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    // A page on another site could open a WebSocket with our cookie; only our own pages may.
    if caller.via_cookie && !same_origin(&headers) {
        return Err(AppError::Forbidden("WebSocket from another origin".into()));
    }
    // Small buffers: most sockets are idle pages (the defaults, 128 KiB each way, made every
    // connection cost ~140 KiB; a client's messages are small). What is written is gathered up
    // to `WRITE_BUFFER` and written at each flush: one write for the broadcasts that waited.
    Ok(ws
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| serve(app, socket, caller)))
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").map(|(_, rest)| rest) == Some(host)
}

async fn serve(app: AppState, socket: WebSocket, caller: Caller) {
    let _counted = live::Hub::of(&app).client(live::Transport::WebSocket);
    let (sink, mut stream) = socket.split();
    let (commands, command_rx) = mpsc::channel::<ClientMessage>(16);
    let (errors, error_rx) = mpsc::channel::<String>(16);
    let hub_rx = live::Hub::of(&app).subscribe();
    let access = caller.access.clone();
    let mut writer =
        tokio::spawn(write_loop(app.clone(), access, Out::Ws(sink), hub_rx, command_rx, error_rx));
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(cmd) => {
                        if commands.send(cmd).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = errors.send(format!("cannot read this message: {e}")).await;
                    }
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let shutdown = crate::infra::state::shutting_down(app.shutdown.clone());
    let revoked = live::until_revoked(app.clone(), caller);
    tokio::select! {
        _ = &mut writer => reader.abort(),
        _ = &mut reader => writer.abort(),
        _ = shutdown => { reader.abort(); writer.abort(); }
        // Signed out, disabled or revoked elsewhere: the socket closes.
        _ = revoked => { reader.abort(); writer.abort(); }
    }
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Where a connection's messages go: the socket, or an SSE response's stream.
enum Out {
    Ws(Sink),
    Sse(mpsc::Sender<String>),
}

impl Out {
    fn transport(&self) -> &'static str {
        match self {
            Out::Ws(_) => "websocket",
            Out::Sse(_) => "sse",
        }
    }

    /// Queues a message; `flush` writes what is queued (a WebSocket writes once per flush, not
    /// once per message, when several broadcasts wait).
    async fn text(&mut self, text: Utf8Bytes) -> Result<(), ()> {
        match self {
            Out::Ws(sink) => sink.feed(Message::Text(text)).await.map_err(|_| ()),
            Out::Sse(tx) => tx.send(text.as_str().to_string()).await.map_err(|_| ()),
        }
    }

    async fn flush(&mut self) -> Result<(), ()> {
        match self {
            Out::Ws(sink) => sink.flush().await.map_err(|_| ()),
            Out::Sse(_) => Ok(()),
        }
    }

    /// A WebSocket ping; SSE has its keep-alive comments.
    async fn ping(&mut self) -> Result<(), ()> {
        match self {
            Out::Ws(sink) => sink.send(Message::Ping(Default::default())).await.map_err(|_| ()),
            Out::Sse(tx) => {
                if tx.is_closed() {
                    Err(())
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn close(&mut self) {
        if let Out::Ws(sink) = self {
            let _ = sink.close().await;
        }
    }
}

struct Connection {
    app: AppState,
    /// What the caller may see: jobs outside it are never sent, not even as a list change.
    access: Access,
    sink: Out,
    followers: HashMap<i64, (Follower, Interest)>,
    /// The followed jobs' events channels.
    batches: StreamMap<i64, BroadcastStream<Arc<HubMessage>>>,
    jobs: Option<Interest>,
}

impl Connection {
    async fn send(&mut self, msg: &ServerMessage) -> Result<(), ()> {
        let kind = match msg {
            ServerMessage::Job { .. } => "job",
            ServerMessage::Events { .. } => "events",
            ServerMessage::Resync => "resync",
            ServerMessage::Error { .. } => "error",
        };
        let text = serde_json::to_string(msg).map_err(|_| ())?;
        self.send_text(kind, Utf8Bytes::from(text)).await
    }

    async fn send_text(&mut self, kind: &'static str, text: Utf8Bytes) -> Result<(), ()> {
        let transport = self.sink.transport();
        self.app.metrics.live_message(transport, kind);
        self.sink.text(text).await
    }

    /// A broadcast's shared frame (serialized here if no client did yet).
    async fn send_frame(
        &mut self,
        kind: &'static str,
        frame: &live::Frame,
        msg: impl FnOnce() -> ServerMessage,
    ) -> Result<(), ()> {
        let metrics = &self.app.metrics;
        let text = frame.get_or_encode(|| {
            metrics.inc("playdeck_live_encoded_total", &[("kind", kind)]);
            serde_json::to_string(&msg()).unwrap_or_default()
        });
        self.send_text(kind, text).await
    }

    async fn send_events(&mut self, job_id: i64, events: Vec<JobEvent>) -> Result<(), ()> {
        if events.is_empty() {
            return Ok(());
        }
        let cursor = events.last().map(|e| e.cursor.clone()).unwrap_or_default();
        self.send(&ServerMessage::Events { job_id, cursor, events }).await
    }

    /// Sends everything stored past the follower's cursor, page by page.
    async fn catch_up(&mut self, job_id: i64) -> Result<(), ()> {
        loop {
            let Some((follower, _)) = self.followers.get_mut(&job_id) else { return Ok(()) };
            let page = match follower.read_page(&self.app.pool).await {
                Ok(p) => p,
                Err(e) => return self.send(&ServerMessage::Error { detail: e.to_string() }).await,
            };
            if page.is_empty() {
                return Ok(());
            }
            self.send_events(job_id, page).await?;
        }
    }

    async fn catch_up_all(&mut self) -> Result<(), ()> {
        let ids: Vec<i64> = self.followers.keys().copied().collect();
        for id in ids {
            self.catch_up(id).await?;
        }
        Ok(())
    }

    async fn command(&mut self, cmd: ClientMessage) -> Result<(), ()> {
        match cmd {
            ClientMessage::Subscribe { jobs, job_events } => {
                if jobs && self.jobs.is_none() {
                    self.jobs = Some(live::Hub::of(&self.app).watch_jobs());
                }
                for jc in job_events {
                    let cursor = match live::parse_cursor(jc.cursor.as_deref()) {
                        Ok(c) => c,
                        Err(e) => {
                            self.send(&ServerMessage::Error { detail: e.to_string() }).await?;
                            continue;
                        }
                    };
                    if !self.followers.contains_key(&jc.job_id) && self.followers.len() >= MAX_FOLLOWED {
                        let detail = format!("a connection follows at most {MAX_FOLLOWED} jobs");
                        self.send(&ServerMessage::Error { detail }).await?;
                        continue;
                    }
                    match self.may_see(jc.job_id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let detail = format!("job {} does not exist", jc.job_id);
                            self.send(&ServerMessage::Error { detail }).await?;
                            continue;
                        }
                        Err(e) => {
                            self.send(&ServerMessage::Error { detail: e.to_string() }).await?;
                            continue;
                        }
                    }
                    // Interest first, then the read: a batch committed in between is broadcast
                    // (and skipped by the cursor if the read already had it).
                    let (interest, batches) = live::Hub::of(&self.app).follow(jc.job_id);
                    self.batches.insert(jc.job_id, BroadcastStream::new(batches));
                    self.followers.insert(jc.job_id, (Follower::new(jc.job_id, cursor), interest));
                    self.catch_up(jc.job_id).await?;
                }
            }
            ClientMessage::Unsubscribe { jobs, job_events } => {
                if jobs {
                    self.jobs = None;
                }
                for id in job_events {
                    self.followers.remove(&id);
                    self.batches.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// Whether the job exists and the caller may see it (one they may not is "does not exist").
    async fn may_see(&self, id: i64) -> Result<bool, AppError> {
        let db = self.app.pool.get().await?;
        Ok(crate::store::jobs::fetch_job(&db, id)
            .await?
            .is_some_and(|job| self.access.allows(Role::Viewer, &Target::of(&job))))
    }

    /// A batch from a followed job's channel. Behind it, the client is told (`resync`, as the
    /// contract says) and gets what it missed of that job from the tables, from its cursor.
    async fn batch(
        &mut self,
        job_id: i64,
        msg: Result<Arc<HubMessage>, BroadcastStreamRecvError>,
    ) -> Result<(), ()> {
        match msg {
            Ok(msg) => self.broadcast(&msg).await,
            Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                tracing::debug!(job_id, skipped, "live client fell behind a job; resync");
                let transport = self.sink.transport();
                self.app.metrics.inc("playdeck_live_resyncs_total", &[("transport", transport)]);
                self.send(&ServerMessage::Resync).await?;
                self.catch_up(job_id).await
            }
        }
    }

    /// Whatever else waits goes out with what woke the writer, in one write: the followed jobs'
    /// batches first (a job's batches go before its state), then the shared channel's.
    async fn drain(&mut self, mut step: Result<(), ()>, hub_rx: &mut live::Broadcast) -> Result<(), ()> {
        for _ in 1..DRAIN {
            if step.is_err() {
                break;
            }
            if let Some(Some((job_id, msg))) = self.batches.next().now_or_never() {
                step = self.batch(job_id, msg).await;
                continue;
            }
            match hub_rx.try_recv() {
                Ok(msg) => step = self.broadcast(&msg).await,
                Err(broadcast::error::TryRecvError::Lagged(skipped)) => step = self.lagged(skipped).await,
                Err(_) => break,
            }
        }
        step
    }

    /// Fell behind the hub's buffer: resync, then read what was missed from the tables.
    async fn lagged(&mut self, skipped: u64) -> Result<(), ()> {
        tracing::debug!(skipped, "live client fell behind; resync");
        let transport = self.sink.transport();
        self.app.metrics.inc("playdeck_live_resyncs_total", &[("transport", transport)]);
        self.send(&ServerMessage::Resync).await?;
        self.catch_up_all().await
    }

    async fn broadcast(&mut self, msg: &HubMessage) -> Result<(), ()> {
        match msg {
            HubMessage::Events { job_id, from, to, events, frame } => {
                let Some((follower, _)) = self.followers.get_mut(job_id) else { return Ok(()) };
                // Caught up, as nearly every follower is: the batch as every such client gets it.
                if follower.takes_whole(*from, *to, events) {
                    let cursor = events.last().map(|e| e.cursor.clone()).unwrap_or_default();
                    let job_id = *job_id;
                    return self
                        .send_frame("events", frame, || ServerMessage::Events {
                            job_id,
                            cursor,
                            events: events.clone(),
                        })
                        .await;
                }
                match follower.take(&self.app.pool, *from, *to, events).await {
                    Ok(fresh) => self.send_events(*job_id, fresh).await,
                    Err(e) => self.send(&ServerMessage::Error { detail: e.to_string() }).await,
                }
            }
            HubMessage::Job { job, frame } => {
                let watched = self.jobs.is_some() || self.followers.contains_key(&job.id);
                if watched && self.access.allows(Role::Viewer, &Target::of(job)) {
                    self.send_frame("job", frame, || ServerMessage::Job { job: job.clone() }).await?;
                }
                Ok(())
            }
            HubMessage::Reconnected => {
                if self.jobs.is_some() {
                    self.send(&ServerMessage::Resync).await?;
                }
                self.catch_up_all().await
            }
        }
    }
}

async fn write_loop(
    app: AppState,
    access: Access,
    sink: Out,
    mut hub_rx: live::Broadcast,
    mut commands: mpsc::Receiver<ClientMessage>,
    mut errors: mpsc::Receiver<String>,
) {
    // A ping every `PING_EVERY`: proxies and load balancers drop connections they think idle,
    // and a peer that vanished is noticed when the write fails.
    let mut ping = tokio::time::interval(app.config.ws_ping);
    ping.tick().await;
    let mut conn =
        Connection { app, access, sink, followers: HashMap::new(), batches: StreamMap::new(), jobs: None };
    loop {
        let step = tokio::select! {
            _ = ping.tick() => conn.sink.ping().await,
            cmd = commands.recv() => match cmd {
                Some(cmd) => conn.command(cmd).await,
                None => Err(()),
            },
            detail = errors.recv() => match detail {
                Some(detail) => conn.send(&ServerMessage::Error { detail }).await,
                None => Err(()),
            },
            Some((job_id, msg)) = conn.batches.next(), if !conn.batches.is_empty() => {
                let step = conn.batch(job_id, msg).await;
                conn.drain(step, &mut hub_rx).await
            }
            msg = hub_rx.recv() => match msg {
                Ok(msg) => {
                    let step = conn.broadcast(&msg).await;
                    conn.drain(step, &mut hub_rx).await
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => conn.lagged(skipped).await,
                Err(broadcast::error::RecvError::Closed) => Err(()),
            },
        };
        let step = match step {
            Ok(()) => conn.sink.flush().await,
            Err(()) => Err(()),
        };
        if step.is_err() {
            conn.sink.close().await;
            return;
        }
    }
}

/// The subscription of an SSE feed or a poll, in the query.
#[derive(Deserialize)]
pub struct FeedQuery {
    /// Every job's changes (the grid).
    #[serde(default)]
    jobs: bool,
    /// One job's events and changes.
    job: Option<i64>,
    /// Where that job's events resume (the last `cursor` received).
    cursor: Option<String>,
}

/// `GET /api/v1/live`: the WebSocket's messages (`ServerMessage`, one JSON per `data:`) as
/// Server-Sent Events, for the subscription in the query. A client resumes by opening it again
/// with the last cursor it received.
pub async fn feed(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<FeedQuery>,
) -> Result<Response, AppError> {
    if let Some(id) = q.job {
        live::parse_cursor(q.cursor.as_deref())?;
        let db = app.pool.get().await?;
        crate::store::jobs::visible_job(&db, &caller, id).await?;
    }
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let (commands, command_rx) = mpsc::channel::<ClientMessage>(1);
    let (_errors, error_rx) = mpsc::channel::<String>(1);
    let job_events = q.job.map(|job_id| JobCursor { job_id, cursor: q.cursor.clone() }).into_iter().collect();
    let _ = commands.send(ClientMessage::Subscribe { jobs: q.jobs, job_events }).await;
    let hub_rx = live::Hub::of(&app).subscribe();
    let counted = live::Hub::of(&app).client(live::Transport::Sse);
    let shutdown = crate::infra::state::shutting_down(app.shutdown.clone());
    let access = caller.access.clone();
    let revoked = live::until_revoked(app.clone(), caller);
    tokio::spawn(async move {
        let _counted = counted;
        // Kept open until the writer ends: a closed command channel would end it at once.
        let _commands = commands;
        let _errors = _errors;
        tokio::select! {
            _ = write_loop(app, access, Out::Sse(tx), hub_rx, command_rx, error_rx) => {}
            _ = shutdown => {}
            _ = revoked => {}
        }
    });
    let messages = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|m| m.map(|text| Ok::<_, Infallible>(Event::default().data(text))))
    });
    // A first line at once: proxies (and browsers' `open`) see the stream start before any
    // message is due.
    let opened = futures_util::stream::once(async { Ok::<_, Infallible>(Event::default().comment("live")) });
    let stream = opened.chain(messages);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE)).into_response())
}

/// How often an SSE feed sends a comment, so proxies keep it open (as WebSocket pings do).
const SSE_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /api/v1/live/poll?job=&cursor=`: the last resort when neither a WebSocket nor SSE gets
/// through: the followed job's state and its next page of events, in the feed's messages.
pub async fn poll(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<FeedQuery>,
) -> Result<Json<LivePoll>, AppError> {
    let Some(id) = q.job else {
        return Err(AppError::BadRequest(
            "`job`: which job to poll (the grid reloads its list instead)".into(),
        ));
    };
    let cursor = live::parse_cursor(q.cursor.as_deref())?;
    let job = {
        let db = app.pool.get().await?;
        crate::store::jobs::visible_job(&db, &caller, id).await?
    };
    let mut follower = Follower::new(id, cursor);
    let events = follower.read_page(&app.pool).await?;
    let more = events.len() as i64 >= live::PAGE;
    let mut messages = vec![ServerMessage::Job { job }];
    if let Some(last) = events.last() {
        let cursor = last.cursor.clone();
        messages.push(ServerMessage::Events { job_id: id, cursor, events });
    }
    Ok(Json(LivePoll { messages, more }))
}
