//! The live relay: one LISTEN connection per process feeds a bounded broadcast hub, from which
//! every WebSocket and SSE client takes what it follows.
//!
//! Notifications carry ids and cursors only (`Notice`); the hub reads each batch's events once and
//! broadcasts them, so a thousand clients cost one query. Clients keep their own cursor (`Follower`)
//! and read from the tables whenever the broadcast cannot vouch for continuity: on subscribing,
//! when they fell behind (`Lagged`), and after the LISTEN connection broke. That is what makes
//! delivery gap-free and exactly-once per cursor.

pub mod sse;
pub mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shared::{Job, JobEvent};
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;

use crate::infra::error::AppError;
use crate::infra::metrics::Metrics;
use crate::infra::state::App;
use crate::store::events::{events_by_seq, events_in_ranges};
use crate::store::jobs::{fetch_jobs, jobs_changed_since};

/// The LISTEN/NOTIFY channel every notice goes through.
pub const CHANNEL: &str = "playdeck";

/// Tells every replica's relay, once `tx` commits, that a job changed: its new events are seq
/// `(from, to]` (none when equal), `change` is its new place in the change history and `moved`
/// says its status changed. The ingest path and the engine's queue both call this; nothing else
/// sends notices.
pub async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    job: i64,
    from: i64,
    to: i64,
    moved: bool,
) -> Result<(), AppError> {
    // The notice's `change` is read from the row in the same statement: the caller's update of it
    // may still be on its way (sent in the same round trip, ahead of this one).
    const NOTIFY: &str = "select pg_notify($1, json_build_object('job', id, 'from', $3::bigint,
                                 'to', $4::bigint, 'change', change_seq, 'moved', $5::bool,
                                 'at', $6::bigint)::text)
                            from jobs where id = $2";
    let at = chrono::Utc::now().timestamp_millis();
    tx.query(&tx.prepare_cached(NOTIFY).await?, &[&CHANNEL, &job, &from, &to, &moved, &at]).await?;
    Ok(())
}

/// The payload of one ingest transaction's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub job: i64,
    /// The job's last seq before and after the batch: its new events are `(from, to]`.
    pub from: i64,
    pub to: i64,
    pub change: i64,
    /// The job's status changed (or it is new): its state goes out at once, never held back.
    #[serde(default)]
    pub moved: bool,
    /// When the batch was written (ms since the epoch), to measure notification lag.
    #[serde(default)]
    pub at: i64,
}

/// The batches this process wrote, as the relay would read them back (seq `(from, to]`, each
/// event as stored), kept from the ingest path's commit until the relay takes them for the batch's
/// notice: in one replica the relay then reads nothing back from PostgreSQL. Another replica's
/// batches, a batch nobody followed when it was written, and anything missing fall back to the
/// read. Bounded: what is never taken (no one followed the job by the time the notice came) ages
/// out.
#[derive(Default)]
pub struct Written {
    /// By (job, from).
    batches: Mutex<HashMap<(i64, i64), WrittenBatch>>,
}

struct WrittenBatch {
    to: i64,
    at: std::time::Instant,
    events: Vec<JobEvent>,
}

/// At most this many batches wait in `Written` (a few MB of events); those older than
/// `WRITTEN_AGE` are dropped once more than `WRITTEN_SWEEP` wait, and when all are recent a new
/// one is not kept (the relay reads it). The relay takes a batch within milliseconds of its
/// commit, so normally only a handful wait.
const WRITTEN_MAX: usize = 512;
const WRITTEN_SWEEP: usize = 64;
const WRITTEN_AGE: Duration = Duration::from_secs(10);

impl Written {
    /// Keeps a committed batch of `job`'s events, seq `(from, to]` in seq order.
    pub fn put(&self, job: i64, from: i64, to: i64, events: Vec<JobEvent>) {
        let Ok(mut b) = self.batches.lock() else { return };
        if b.len() >= WRITTEN_SWEEP {
            b.retain(|_, w| w.at.elapsed() < WRITTEN_AGE);
            if b.len() >= WRITTEN_MAX {
                return;
            }
        }
        b.insert((job, from), WrittenBatch { to, at: std::time::Instant::now(), events });
    }

    /// `job`'s events with seq in `(from, to]`, if the batches written here cover exactly that
    /// range (a merged range is stitched from consecutive batches); taken out either way.
    fn take(&self, job: i64, from: i64, to: i64) -> Option<Vec<JobEvent>> {
        let Ok(mut b) = self.batches.lock() else { return None };
        let mut events = Vec::new();
        let mut at = from;
        while at < to {
            let w = b.remove(&(job, at))?;
            events.extend(w.events);
            at = w.to;
        }
        (at == to).then_some(events)
    }
}

/// What the hub broadcasts.
#[derive(Debug)]
pub enum HubMessage {
    /// A batch of one job's events, seq `(from, to]`, in seq order.
    Events { job_id: i64, from: i64, to: i64, events: Vec<JobEvent>, frame: Frame },
    /// A job's current state after a change.
    Job { job: Job, frame: Frame },
    /// The LISTEN connection broke and is back: whatever happened in between is in the tables only,
    /// so followers read from their cursors and job lists are reloaded.
    Reconnected,
}

impl HubMessage {
    pub fn events(job_id: i64, from: i64, to: i64, events: Vec<JobEvent>) -> HubMessage {
        HubMessage::Events { job_id, from, to, events, frame: Frame::default() }
    }

    pub fn job(job: Job) -> HubMessage {
        HubMessage::Job { job, frame: Frame::default() }
    }
}

/// A broadcast message as its clients get it, serialized by the first client that sends it and
/// handed as the same bytes to every other: one serialization per broadcast, not per client.
#[derive(Debug, Default)]
pub struct Frame(std::sync::OnceLock<Utf8Bytes>);

impl Frame {
    /// The encoded message, made by `encode` if this is its first use.
    pub fn get_or_encode(&self, encode: impl FnOnce() -> String) -> Utf8Bytes {
        self.0.get_or_init(|| Utf8Bytes::from(encode())).clone()
    }
}

/// What the hub broadcasts, as every receiver gets it.
pub type Broadcast = broadcast::Receiver<Arc<HubMessage>>;

/// The broadcast hub and what it needs to know about its audience.
///
/// Two kinds of channel: one for every client (job states, `Reconnected`), and one per followed
/// job for its events. A batch wakes only the clients following its job: with a thousand pages
/// open on a hundred jobs, each batch is ten wake-ups, not a thousand.
pub struct Hub {
    tx: broadcast::Sender<Arc<HubMessage>>,
    /// Each followed job's events channel and how many follow it: the hub reads events only for
    /// jobs someone follows.
    followed: Mutex<HashMap<i64, Followed>>,
    /// Each job channel's bounded buffer (as the shared channel's).
    capacity: usize,
    /// Clients following every job's changes.
    job_watchers: AtomicUsize,
    /// Whether the LISTEN connection is up (for `/readyz`).
    pub listening: AtomicBool,
    /// Highest `change_seq` seen, to catch job changes up after a break.
    last_change: AtomicI64,
    /// Connected clients by transport, for `/metrics` and `/readyz`.
    ws: AtomicUsize,
    sse: AtomicUsize,
    /// Batches this process wrote itself, for the relay to take instead of reading them back.
    pub written: Written,
}

impl Hub {
    /// This process's hub (a service registered by `start`).
    pub fn of(app: &App) -> &Arc<Hub> {
        app.service::<Arc<Hub>>()
    }

    pub fn new(capacity: usize) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(capacity);
        Arc::new(Hub {
            tx,
            followed: Mutex::new(HashMap::new()),
            capacity,
            job_watchers: AtomicUsize::new(0),
            listening: AtomicBool::new(false),
            last_change: AtomicI64::new(0),
            ws: AtomicUsize::new(0),
            sse: AtomicUsize::new(0),
            written: Written::default(),
        })
    }

    /// Every job's states, and `Reconnected`.
    pub fn subscribe(&self) -> Broadcast {
        self.tx.subscribe()
    }

    fn send(&self, msg: HubMessage) {
        // An error only means nobody listens right now.
        let _ = self.tx.send(Arc::new(msg));
    }

    /// A batch of a job's events, to the clients following it (none: dropped).
    fn send_events(&self, job_id: i64, from: i64, to: i64, events: Vec<JobEvent>) {
        let Ok(f) = self.followed.lock() else { return };
        if let Some(followed) = f.get(&job_id) {
            let _ = followed.tx.send(Arc::new(HubMessage::events(job_id, from, to, events)));
        }
    }

    /// Registers interest in a job's events until the guard is dropped, and answers the
    /// receiver that gets each batch of them from now on.
    pub fn follow(self: &Arc<Hub>, job_id: i64) -> (Interest, Broadcast) {
        let mut f = self.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let followed = f
            .entry(job_id)
            .or_insert_with(|| Followed { tx: broadcast::channel(self.capacity.max(1)).0, clients: 0 });
        followed.clients += 1;
        (Interest { hub: self.clone(), job_id: Some(job_id) }, followed.tx.subscribe())
    }

    /// Registers interest in every job's changes until the guard is dropped.
    pub fn watch_jobs(self: &Arc<Hub>) -> Interest {
        self.job_watchers.fetch_add(1, Ordering::SeqCst);
        Interest { hub: self.clone(), job_id: None }
    }

    pub fn is_followed(&self, job_id: i64) -> bool {
        self.followed.lock().map(|f| f.contains_key(&job_id)).unwrap_or(true)
    }

    pub fn ws_clients(&self) -> usize {
        self.ws.load(Ordering::SeqCst)
    }

    pub fn sse_clients(&self) -> usize {
        self.sse.load(Ordering::SeqCst)
    }

    /// Counts a connected client until the guard is dropped.
    pub fn client(self: &Arc<Hub>, transport: Transport) -> ClientGuard {
        self.counter(transport).fetch_add(1, Ordering::SeqCst);
        ClientGuard { hub: self.clone(), transport }
    }

    fn counter(&self, transport: Transport) -> &AtomicUsize {
        match transport {
            Transport::WebSocket => &self.ws,
            Transport::Sse => &self.sse,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Sse,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
        }
    }
}

/// A connected client, counted while it lives.
pub struct ClientGuard {
    hub: Arc<Hub>,
    transport: Transport,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.hub.counter(self.transport).fetch_sub(1, Ordering::SeqCst);
    }
}

/// A followed job's events channel.
struct Followed {
    tx: broadcast::Sender<Arc<HubMessage>>,
    clients: usize,
}

/// Interest in a job (or in all jobs); dropping it withdraws the interest.
pub struct Interest {
    hub: Arc<Hub>,
    job_id: Option<i64>,
}

impl Drop for Interest {
    fn drop(&mut self) {
        match self.job_id {
            None => {
                self.hub.job_watchers.fetch_sub(1, Ordering::SeqCst);
            }
            Some(id) => {
                let mut f = self.hub.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(followed) = f.get_mut(&id) {
                    followed.clients -= 1;
                    if followed.clients == 0 {
                        f.remove(&id);
                    }
                }
            }
        }
    }
}

/// What the listener tells the hub.
enum Signal {
    Notice(Notice),
    Reconnected,
}

/// Starts the listener and the hub's task; both run until the process ends.
pub fn start(
    pool: Pool,
    pg_config: tokio_postgres::Config,
    connector: crate::infra::db::Connector,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // The relay reads on connections of its own: behind a hundred ingest requests in the shared
    // pool's queue, every live client would wait for the database's busiest moment.
    let relay_pool = crate::infra::db::pool(
        pg_config.clone(),
        connector.clone(),
        RELAY_CONNECTIONS,
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the live relay reads through the shared pool");
        pool
    });
    let (tx, rx) = mpsc::channel(4096);
    // The listener ends with the server, before the database stops, so a shutdown is not
    // reported as a lost connection.
    let listener = tokio::spawn(listen(pg_config, connector, hub.clone(), metrics.clone(), tx));
    tokio::spawn(async move {
        crate::infra::state::shutting_down(shutdown).await;
        listener.abort();
    });
    tokio::spawn(relay(relay_pool, hub, metrics, rx));
}

/// Holds the one LISTEN connection: a pooled connection would never deliver notifications, since
/// nobody polls it between queries. Reconnects with capped backoff and says so after a break.
async fn listen(
    mut config: tokio_postgres::Config,
    connector: crate::infra::db::Connector,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Signal>,
) {
    config.application_name("playdeck-listener");
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        match config.connect(connector.clone()).await {
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection failed");
            }
            Ok((client, mut connection)) => {
                let (note_tx, mut note_rx) = mpsc::channel::<Notice>(1024);
                let driver = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => match serde_json::from_str(n.payload()) {
                                Ok(notice) => {
                                    if note_tx.send(notice).await.is_err() {
                                        break;
                                    }
                                }
                                Err(e) => tracing::warn!(error = %e, "unreadable notification"),
                            },
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "LISTEN connection lost");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("listen {}", CHANNEL)).await {
                    Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
                    Ok(()) => {
                        hub.listening.store(true, Ordering::SeqCst);
                        backoff = Duration::from_millis(100);
                        if !first {
                            metrics.inc("playdeck_listener_reconnects_total", &[]);
                            if tx.send(Signal::Reconnected).await.is_err() {
                                return;
                            }
                        }
                        first = false;
                        tracing::info!("listening for job changes");
                        while let Some(notice) = note_rx.recv().await {
                            if tx.send(Signal::Notice(notice)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                hub.listening.store(false, Ordering::SeqCst);
                driver.abort();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Notices taken off the queue at once: under load, each job's waiting notices become one read.
const RELAY_DRAIN: usize = 512;

/// How long the relay waits after a notice for others to go with it (a few ms of a live page's
/// latency; under load, a hundred jobs' batches in one read and one write to each client).
const RELAY_GATHER: Duration = Duration::from_millis(5);

/// The relay's own connections: its reads and a catch-up after a break.
const RELAY_CONNECTIONS: usize = 2;

/// Turns notices into broadcasts: one read per batch at most, whatever the number of clients.
/// Whatever waits is taken at once, merged per job, and read in two queries (every followed
/// job's new events, every state that goes out); a job's broadcasts keep their order, since
/// everything taken is broadcast before the next take.
async fn relay(pool: Pool, hub: Arc<Hub>, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<Signal>) {
    if let Ok(db) = pool.get().await {
        if let Ok(row) = db.query_one("select coalesce(max(change_seq), 0) from jobs", &[]).await {
            hub.last_change.store(row.get(0), Ordering::SeqCst);
        }
    }
    let mut signals = Vec::with_capacity(RELAY_DRAIN);
    let mut held = Held::default();
    loop {
        let due = held.next_due();
        tokio::select! {
            n = rx.recv_many(&mut signals, RELAY_DRAIN) => {
                if n == 0 {
                    return;
                }
                // What follows within a moment goes with it: one read and one wake-up of every
                // client for all of it, rather than one per batch.
                tokio::time::sleep(RELAY_GATHER).await;
                while signals.len() < RELAY_DRAIN {
                    match rx.try_recv() {
                        Ok(signal) => signals.push(signal),
                        Err(_) => break,
                    }
                }
            }
            _ = sleep_until(due), if due.is_some() => {}
        }
        let mut notices = Vec::new();
        for signal in signals.drain(..) {
            match signal {
                Signal::Notice(n) => {
                    if n.at > 0 {
                        let lag = (chrono::Utc::now().timestamp_millis() - n.at).max(0) as f64 / 1000.0;
                        metrics.observe("playdeck_notification_lag_seconds", &[], lag);
                    }
                    notices.push(n);
                }
                Signal::Reconnected => {
                    // What came before the break goes out first; then the catch-up.
                    relay_notices(&pool, &hub, std::mem::take(&mut notices), &mut held).await;
                    if let Err(e) = catch_up_jobs(&pool, &hub).await {
                        relay_failed(&hub, &e);
                    }
                }
            }
        }
        relay_notices(&pool, &hub, notices, &mut held).await;
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// How often a job's state goes out at most while only its progress moves (counts, current
/// task): a hundred running jobs otherwise send a thousand grids a hundred states a second each.
/// A change of status, and a new job, go out at once.
pub const JOB_EVERY: Duration = Duration::from_secs(1);

/// Held states go out on the ticks of one grid, not each on a clock of its own: a hundred
/// running jobs' states then reach every grid in a few writes a second, together, instead of a
/// hundred writes spread over the second (each a wake-up and a write for every client).
pub const JOB_TICK: Duration = Duration::from_millis(250);

/// The jobs whose state went out lately, and those held back until their tick.
struct Held {
    /// The grid's origin.
    epoch: tokio::time::Instant,
    sent: HashMap<i64, tokio::time::Instant>,
    waiting: HashMap<i64, tokio::time::Instant>,
}

impl Default for Held {
    fn default() -> Held {
        Held::since(tokio::time::Instant::now())
    }
}

impl Held {
    fn since(epoch: tokio::time::Instant) -> Held {
        Held { epoch, sent: HashMap::new(), waiting: HashMap::new() }
    }

    fn next_due(&self) -> Option<tokio::time::Instant> {
        self.waiting.values().min().copied()
    }

    /// The first tick of the grid at or after `at`.
    fn tick_at(&self, at: tokio::time::Instant) -> tokio::time::Instant {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        let tick = JOB_TICK.as_nanos();
        let ticks = since.div_ceil(tick);
        self.epoch + Duration::from_nanos((ticks * tick) as u64)
    }

    /// Whether the job's state goes out now; if not, it is held until its turn: the first tick
    /// once `JOB_EVERY` has passed since its last.
    fn goes_now(&mut self, job: i64, moved: bool, now: tokio::time::Instant) -> bool {
        let turn = self.sent.get(&job).map(|at| self.tick_at(*at + JOB_EVERY));
        if moved || turn.is_none_or(|t| t <= now) {
            self.waiting.remove(&job);
            self.sent.insert(job, now);
            true
        } else {
            if let Some(t) = turn {
                self.waiting.entry(job).or_insert(t);
            }
            false
        }
    }

    /// The held jobs whose turn has come (their state goes out now), and forgets jobs quiet for
    /// longer than a turn.
    fn take_due(&mut self, now: tokio::time::Instant) -> Vec<i64> {
        let due: Vec<(i64, tokio::time::Instant)> =
            self.waiting.iter().filter(|(_, t)| **t <= now).map(|(j, t)| (*j, *t)).collect();
        for (j, tick) in &due {
            self.waiting.remove(j);
            // Its turn counts from the tick, not from when the relay woke after it: a job that
            // keeps moving stays on its tick, once every `JOB_EVERY`.
            self.sent.insert(*j, *tick);
        }
        let waiting = &self.waiting;
        self.sent.retain(|j, at| *at + JOB_EVERY + JOB_TICK > now || waiting.contains_key(j));
        due.into_iter().map(|(j, _)| j).collect()
    }
}

/// The clients' cursors make up for a broadcast lost here: tell them to read.
fn relay_failed(hub: &Hub, e: &AppError) {
    tracing::warn!(error = %e, "live relay could not read a change; clients will catch up");
    hub.send(HubMessage::Reconnected);
}

/// One job's waiting notices as one: its new events `(from, to]` when they follow on from each
/// other (a batch's range starts where the one before it ended), whether its status moved, and
/// whether its state goes out now.
#[derive(Debug, PartialEq)]
struct Merged {
    job: i64,
    ranges: Vec<(i64, i64)>,
    moved: bool,
    state: bool,
}

/// Groups notices by job, in the order each job first appears, merging consecutive ranges.
fn merge(notices: &[Notice]) -> Vec<Merged> {
    let mut out: Vec<Merged> = Vec::new();
    let mut at: HashMap<i64, usize> = HashMap::new();
    for n in notices {
        let i = *at.entry(n.job).or_insert_with(|| {
            out.push(Merged { job: n.job, ranges: Vec::new(), moved: false, state: true });
            out.len() - 1
        });
        out[i].moved |= n.moved;
        if n.to <= n.from {
            continue;
        }
        let ranges = &mut out[i].ranges;
        match ranges.last_mut() {
            Some(last) if last.1 == n.from => last.1 = n.to,
            _ => ranges.push((n.from, n.to)),
        }
    }
    out
}

async fn relay_notices(pool: &Pool, hub: &Hub, notices: Vec<Notice>, held: &mut Held) {
    for n in &notices {
        hub.last_change.fetch_max(n.change, Ordering::SeqCst);
    }
    let now = tokio::time::Instant::now();
    let mut jobs = merge(&notices);
    for m in &mut jobs {
        m.state = held.goes_now(m.job, m.moved, now);
    }
    // Held states whose turn came, for jobs with nothing new since.
    for job in held.take_due(now) {
        if !jobs.iter().any(|m| m.job == job) {
            jobs.push(Merged { job, ranges: Vec::new(), moved: false, state: true });
        }
    }
    if jobs.is_empty() {
        return;
    }
    if let Err(e) = relay_jobs(pool, hub, jobs).await {
        relay_failed(hub, &e);
    }
}

/// Each job's broadcasts in order: its batches, then its state. The batches this process wrote
/// itself go out at once; one read then fetches every other followed job's new events and the
/// states that go out, and those follow. A job whose first batch must be read waits for the read
/// with all its batches, so a job's batches never pass each other.
async fn relay_jobs(pool: &Pool, hub: &Hub, jobs: Vec<Merged>) -> Result<(), AppError> {
    let watched = hub.job_watchers.load(Ordering::SeqCst) > 0;
    // Each job as what is left after the batches at hand: the ranges to read, its state if it
    // goes out.
    let mut later: Vec<Merged> = Vec::with_capacity(jobs.len());
    for m in jobs {
        let followed = hub.is_followed(m.job);
        let state = m.state && (followed || watched);
        let mut ranges = if followed { m.ranges } else { Vec::new() };
        // What this process wrote itself is at hand: its leading batches go out now.
        let mut at_hand = 0;
        while let Some((from, to)) = ranges.get(at_hand).copied() {
            let Some(batch) = hub.written.take(m.job, from, to) else { break };
            hub.send_events(m.job, from, to, batch);
            at_hand += 1;
        }
        ranges.drain(..at_hand);
        if state || !ranges.is_empty() {
            later.push(Merged { ranges, state, ..m });
        }
    }
    if later.is_empty() {
        return Ok(());
    }
    let ranges: Vec<(i64, i64, i64)> =
        later.iter().flat_map(|m| m.ranges.iter().map(|(from, to)| (m.job, *from, *to))).collect();
    let states: Vec<i64> = later.iter().filter(|m| m.state).map(|m| m.job).collect();
    let db = pool.get().await?;
    let mut events: HashMap<i64, Vec<JobEvent>> = HashMap::new();
    for e in events_in_ranges(&db, &ranges).await? {
        events.entry(e.job_id).or_default().push(e);
    }
    let mut found: HashMap<i64, Job> =
        fetch_jobs(&db, &states).await?.into_iter().map(|j| (j.id, j)).collect();
    drop(db);
    for stored in events.values_mut() {
        stored.sort_by_key(seq_of);
    }
    for Merged { job, ranges, state, .. } in later {
        let mut stored = events.remove(&job).unwrap_or_default().into_iter().peekable();
        for (from, to) in ranges {
            let mut batch = Vec::new();
            while let Some(e) = stored.next_if(|e| seq_of(e) <= to) {
                if seq_of(&e) > from {
                    batch.push(e);
                }
            }
            hub.send_events(job, from, to, batch);
        }
        if state {
            if let Some(found) = found.remove(&job) {
                hub.send(HubMessage::job(found));
            }
        }
    }
    Ok(())
}

/// After a break: broadcast every job that changed meanwhile, then tell followers to read.
async fn catch_up_jobs(pool: &Pool, hub: &Hub) -> Result<(), AppError> {
    let since = hub.last_change.load(Ordering::SeqCst);
    let db = pool.get().await?;
    let changed = jobs_changed_since(&db, since, 500).await?;
    for job in changed {
        hub.last_change.fetch_max(job.1, Ordering::SeqCst);
        hub.send(HubMessage::job(job.0));
    }
    hub.send(HubMessage::Reconnected);
    Ok(())
}

/// One client's position in one job's events. Everything it hands out has a seq above the cursor
/// and moves the cursor, so nothing is handed out twice, and it reads the tables whenever the
/// broadcast would leave a gap, so nothing is missed.
#[derive(Debug)]
pub struct Follower {
    pub job_id: i64,
    pub cursor: i64,
}

/// Events per message when reading from the tables.
pub const PAGE: i64 = 500;

impl Follower {
    pub fn new(job_id: i64, cursor: i64) -> Follower {
        Follower { job_id, cursor }
    }

    /// The next page of stored events after the cursor (empty when there is nothing more).
    pub async fn read_page(&mut self, pool: &Pool) -> Result<Vec<JobEvent>, AppError> {
        let db = pool.get().await?;
        let events = events_by_seq(&db, self.job_id, self.cursor, None, PAGE).await?;
        self.advance(&events);
        Ok(events)
    }

    /// What of a broadcast batch this client has not had; reads the tables if the batch starts
    /// beyond the cursor (the client missed something before it).
    pub async fn take(
        &mut self,
        pool: &Pool,
        from: i64,
        to: i64,
        events: &[JobEvent],
    ) -> Result<Vec<JobEvent>, AppError> {
        if to <= self.cursor {
            return Ok(Vec::new());
        }
        let covers = events.last().map(seq_of) == Some(to);
        if from <= self.cursor && covers {
            let fresh: Vec<JobEvent> = events.iter().filter(|e| seq_of(e) > self.cursor).cloned().collect();
            self.advance(&fresh);
            self.cursor = self.cursor.max(to);
            return Ok(fresh);
        }
        let mut out = Vec::new();
        while self.cursor < to {
            let page = self.read_page(pool).await?;
            if page.is_empty() {
                break;
            }
            out.extend(page);
        }
        Ok(out)
    }

    /// Whether this client is exactly at the start of a broadcast batch that holds all of it,
    /// so the whole batch is what it has not had (and the shared frame is its message); moves
    /// the cursor past it when so.
    pub fn takes_whole(&mut self, from: i64, to: i64, events: &[JobEvent]) -> bool {
        let whole = self.cursor == from
            && to > from
            && events.last().map(seq_of) == Some(to)
            && events.first().map(seq_of) == Some(from + 1);
        if whole {
            self.cursor = to;
        }
        whole
    }

    fn advance(&mut self, events: &[JobEvent]) {
        if let Some(last) = events.last() {
            self.cursor = self.cursor.max(seq_of(last));
        }
    }
}

pub fn seq_of(e: &JobEvent) -> i64 {
    e.cursor.parse().unwrap_or(0)
}

/// Reads a client's cursor: absent means from the start.
pub fn parse_cursor(cursor: Option<&str>) -> Result<i64, AppError> {
    match cursor.map(str::trim) {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| AppError::BadRequest(format!("{c:?} is not a cursor this server gave out"))),
    }
}

/// Resolves when the caller of an open stream may no longer read (signed out, session ended,
/// token revoked or expired, account disabled), checked every `auth.recheck`.
pub async fn until_revoked(app: crate::infra::state::AppState, caller: crate::infra::auth::Caller) {
    let mut every = tokio::time::interval(app.config.auth.recheck);
    every.tick().await;
    loop {
        every.tick().await;
        if !crate::infra::auth::still_allowed(&app, &caller).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(job: i64, seq: i64) -> JobEvent {
        JobEvent {
            job_id: job,
            counter: seq,
            cursor: seq.to_string(),
            event: "runner_on_ok".into(),
            uuid: None,
            parent_uuid: None,
            created: None,
            host: None,
            play: None,
            task: None,
            role: None,
            stdout: String::new(),
            start_line: 0,
            end_line: 0,
            failed: false,
            changed: false,
            event_data: serde_json::Value::Null,
        }
    }

    fn seqs(events: &[JobEvent]) -> Vec<i64> {
        events.iter().map(seq_of).collect()
    }

    #[test]
    fn written_batches_are_taken_whole_or_stitched_and_a_gap_falls_back_to_the_read() {
        let w = Written::default();
        w.put(1, 0, 2, vec![stored(1, 1), stored(1, 2)]);
        w.put(1, 2, 3, vec![stored(1, 3)]);
        w.put(2, 5, 6, vec![stored(2, 6)]);
        // A merged range is stitched from consecutive batches.
        assert_eq!(w.take(1, 0, 3).as_deref().map(seqs), Some(vec![1, 2, 3]));
        // Taken once: the same range again is read.
        assert!(w.take(1, 0, 3).is_none());
        // A range that starts where nothing was written here (another replica's batch).
        assert!(w.take(2, 4, 6).is_none());
        // One that runs past what was written: not half-answered.
        assert!(w.take(2, 5, 7).is_none());
        w.put(3, 0, 1, vec![stored(3, 1)]);
        assert_eq!(w.take(3, 0, 1).as_deref().map(seqs), Some(vec![1]));
    }

    #[test]
    fn written_stays_bounded_when_nothing_is_taken() {
        let w = Written::default();
        for i in 0..(WRITTEN_MAX as i64 + 100) {
            w.put(i, 0, 1, vec![stored(i, 1)]);
        }
        assert!(w.batches.lock().map(|b| b.len()).unwrap_or(usize::MAX) <= WRITTEN_MAX);
    }

    fn notice(job: i64, from: i64, to: i64) -> Notice {
        Notice { job, from, to, change: 0, moved: false, at: 0 }
    }

    #[test]
    fn waiting_notices_merge_per_job_when_their_ranges_follow_on() {
        let moved = Notice { moved: true, ..notice(8, 5, 9) };
        let merged = merge(&[
            notice(7, 0, 10),
            notice(8, 4, 5),
            notice(7, 10, 25),
            notice(7, 25, 25),
            moved,
            notice(8, 10, 12),
            notice(7, 25, 30),
        ]);
        assert_eq!(
            merged,
            vec![
                Merged { job: 7, ranges: vec![(0, 30)], moved: false, state: true },
                // A range that does not start where the last ended stays apart.
                Merged { job: 8, ranges: vec![(4, 9), (10, 12)], moved: true, state: true },
            ]
        );
        // A change without events still names its job (its state is broadcast).
        assert_eq!(
            merge(&[notice(3, 5, 5)]),
            vec![Merged { job: 3, ranges: vec![], moved: false, state: true }]
        );
    }

    #[test]
    fn a_job_whose_progress_alone_moves_goes_out_once_a_turn_and_its_last_state_is_not_lost() {
        let t0 = tokio::time::Instant::now();
        let mut held = Held::since(t0);
        let first = t0 + JOB_TICK / 3;
        assert!(held.goes_now(1, false, first), "the first state goes out at once");
        assert!(!held.goes_now(1, false, first + JOB_EVERY / 4), "progress within the turn is held");
        assert!(!held.goes_now(1, false, first + JOB_EVERY / 2));
        // Its turn: the grid's first tick once a whole `JOB_EVERY` has passed.
        let turn = t0 + JOB_EVERY + JOB_TICK;
        assert_eq!(held.next_due(), Some(turn));
        assert_eq!(held.take_due(first + JOB_EVERY / 2), Vec::<i64>::new());
        assert_eq!(held.take_due(first + JOB_EVERY), Vec::<i64>::new(), "not before the tick");
        // The held state goes out when its turn comes, though nothing new arrived.
        assert_eq!(held.take_due(turn), vec![1]);
        assert_eq!(held.next_due(), None);
        // Progress after it waits a whole turn from the tick, though the relay woke late.
        let late = turn + JOB_TICK / 10;
        assert!(!held.goes_now(1, false, late));
        assert_eq!(held.next_due(), Some(turn + JOB_EVERY), "it keeps its tick");
        assert_eq!(held.take_due(turn + JOB_EVERY + JOB_TICK / 10), vec![1]);
        let turn = turn + JOB_EVERY;
        // A status change is never held.
        assert!(held.goes_now(1, true, turn + JOB_EVERY / 4));
        assert_eq!(held.next_due(), None);
        // Jobs quiet for longer than a turn are forgotten.
        held.take_due(turn + JOB_EVERY * 4);
        assert!(held.sent.is_empty() && held.waiting.is_empty());
    }

    #[test]
    fn held_states_of_many_jobs_go_out_together_on_the_grid() {
        let t0 = tokio::time::Instant::now();
        let mut held = Held::since(t0);
        // Forty jobs whose first states went out at forty moments of one tick.
        for job in 0..40 {
            let at = t0 + JOB_TICK.mul_f64((job + 1) as f64 / 41.0);
            assert!(held.goes_now(job, false, at));
        }
        for job in 0..40 {
            assert!(!held.goes_now(job, false, t0 + JOB_EVERY / 2));
        }
        // All forty are due on one tick, not on forty.
        let ticks: std::collections::HashSet<_> = held.waiting.values().copied().collect();
        assert_eq!(ticks.len(), 1, "{ticks:?}");
        let tick = held.next_due().expect("held");
        assert!(tick >= t0 + JOB_EVERY && tick <= t0 + JOB_EVERY + JOB_TICK);
        assert_eq!(held.take_due(tick).len(), 40);
    }
}
