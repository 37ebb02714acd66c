//! `GET /api/v1/ws`: job changes and followed jobs' events over a WebSocket, with the
//! subscribe/cursor protocol of the contract.
//!
//! One task reads the client's messages, one writes; the writer takes broadcasts from the hub and
//! hands each follower only what is past its cursor. A writer that cannot keep up (the client reads
//! slowly) lags behind the hub's bounded buffer instead of slowing anyone: it then sends `resync`
//! and reads the events it missed from the tables.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use shared::{ClientMessage, JobEvent, ServerMessage};
use tokio::sync::{broadcast, mpsc};

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::state::AppState;
use crate::live::{self, Follower, HubMessage, Interest};

fn conn_ping_every(app: &AppState) -> std::time::Duration {
    app.config.ws_ping
}

/// Jobs one connection may follow at once.
const MAX_FOLLOWED: usize = 100;

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
    Ok(ws.max_message_size(64 * 1024).on_upgrade(move |socket| serve(app, socket, caller)))
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
    let mut writer = tokio::spawn(write_loop(app.clone(), sink, hub_rx, command_rx, error_rx));
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

struct Connection {
    app: AppState,
    sink: Sink,
    followers: HashMap<i64, (Follower, Interest)>,
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
        self.app.metrics.inc("playdeck_live_messages_total", &[("transport", "websocket"), ("kind", kind)]);
        let text = serde_json::to_string(msg).map_err(|_| ())?;
        self.sink.send(Message::Text(Utf8Bytes::from(text))).await.map_err(|_| ())
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
                    match self.job_exists(jc.job_id).await {
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
                    let interest = live::Hub::of(&self.app).follow(jc.job_id);
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
                }
            }
        }
        Ok(())
    }

    async fn job_exists(&self, id: i64) -> Result<bool, AppError> {
        let db = self.app.pool.get().await?;
        Ok(db.query_opt("select 1 from jobs where id = $1", &[&id]).await?.is_some())
    }

    async fn broadcast(&mut self, msg: &HubMessage) -> Result<(), ()> {
        match msg {
            HubMessage::Events { job_id, from, to, events } => {
                let Some((follower, _)) = self.followers.get_mut(job_id) else { return Ok(()) };
                match follower.take(&self.app.pool, *from, *to, events).await {
                    Ok(fresh) => self.send_events(*job_id, fresh).await,
                    Err(e) => self.send(&ServerMessage::Error { detail: e.to_string() }).await,
                }
            }
            HubMessage::Job(job) => {
                if self.jobs.is_some() || self.followers.contains_key(&job.id) {
                    self.send(&ServerMessage::Job { job: job.clone() }).await?;
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
    sink: Sink,
    mut hub_rx: broadcast::Receiver<Arc<HubMessage>>,
    mut commands: mpsc::Receiver<ClientMessage>,
    mut errors: mpsc::Receiver<String>,
) {
    // A ping every `PING_EVERY`: proxies and load balancers drop connections they think idle,
    // and a peer that vanished is noticed when the write fails.
    let mut ping = tokio::time::interval(conn_ping_every(&app));
    ping.tick().await;
    let mut conn = Connection { app, sink, followers: HashMap::new(), jobs: None };
    loop {
        let step = tokio::select! {
            _ = ping.tick() => conn.sink.send(Message::Ping(Default::default())).await.map_err(|_| ()),
            cmd = commands.recv() => match cmd {
                Some(cmd) => conn.command(cmd).await,
                None => Err(()),
            },
            detail = errors.recv() => match detail {
                Some(detail) => conn.send(&ServerMessage::Error { detail }).await,
                None => Err(()),
            },
            msg = hub_rx.recv() => match msg {
                Ok(msg) => conn.broadcast(&msg).await,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, "WebSocket client fell behind; resync");
                    conn.app.metrics.inc("playdeck_live_resyncs_total", &[("transport", "websocket")]);
                    match conn.send(&ServerMessage::Resync).await {
                        Ok(()) => conn.catch_up_all().await,
                        Err(()) => Err(()),
                    }
                }
                Err(broadcast::error::RecvError::Closed) => Err(()),
            },
        };
        if step.is_err() {
            let _ = conn.sink.close().await;
            return;
        }
    }
}
