//! The sync loop: one task per controller reads the jobs modified since its cursor, follows every
//! job until the controller has processed all its events and Playdeck has stored them, and stores
//! everything through the ingest path, so the WebSocket, SSE and notifications behave as for any
//! other source.
//!
//! Cursors live in PostgreSQL (`aap_controllers`, `aap_jobs`) and only move after what they cover
//! is stored: a restart reads again from there, and the ingest path's (job, counter) key drops
//! what was stored twice. When several replicas run, one holds the controller's advisory lock
//! and syncs it; the others stand by.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::awx::{self, HostSummary, Job};
use super::client::{Client, ClientError, Page};
use super::Controller;
use crate::infra::error::AppError;
use crate::infra::state::AppState;

/// Why a round failed.
#[derive(Debug)]
pub enum SyncError {
    Controller(ClientError),
    /// The controller's trouble with one job only.
    Job(i64, ClientError),
    Store(AppError),
}

impl From<ClientError> for SyncError {
    fn from(e: ClientError) -> Self {
        SyncError::Controller(e)
    }
}

impl From<AppError> for SyncError {
    fn from(e: AppError) -> Self {
        SyncError::Store(e)
    }
}

impl From<tokio_postgres::Error> for SyncError {
    fn from(e: tokio_postgres::Error) -> Self {
        SyncError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for SyncError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        SyncError::Store(e.into())
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Controller(e) => write!(f, "{e}"),
            SyncError::Job(id, e) => write!(f, "job {id}: {e}"),
            SyncError::Store(e) => write!(f, "Playdeck's database: {e}"),
        }
    }
}

/// Events per request: AWX's largest page.
const PAGE_SIZE: &str = "200";
/// Pages read from one list in one go, so one huge list cannot hold a round forever.
const MAX_PAGES: usize = 1000;

/// Runs the controller's sync until the server shuts down.
pub async fn run(app: AppState, ctl: Arc<Controller>) {
    tokio::select! {
        _ = crate::infra::state::shutting_down(app.shutdown.clone()) => {}
        _ = lead_and_sync(&app, &ctl) => {}
    }
}

/// The session-level advisory lock that makes one replica the one syncing a controller. It lives
/// on a connection taken out of the pool: the lock is released when that connection closes,
/// whether the process stops, crashes or loses the database.
struct Leadership(deadpool_postgres::ClientWrapper);

impl Leadership {
    fn key(controller: &str) -> i64 {
        let digest = Sha256::digest(format!("playdeck-aap-sync:{controller}").as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }

    async fn take(app: &AppState, controller: &str) -> Result<Option<Leadership>, SyncError> {
        let db = app.pool.get().await?;
        let got: bool =
            db.query_one("select pg_try_advisory_lock($1)", &[&Leadership::key(controller)]).await?.get(0);
        Ok(got.then(|| Leadership(deadpool_postgres::Object::take(db))))
    }

    async fn alive(&self) -> bool {
        self.0.simple_query("select 1").await.is_ok()
    }
}

async fn lead_and_sync(app: &AppState, ctl: &Controller) {
    let cfg = &ctl.config;
    let mut lead: Option<Leadership> = None;
    let mut failures: u32 = 0;
    loop {
        if let Some(l) = &lead {
            if !l.alive().await {
                lead = None;
            }
        }
        if lead.is_none() {
            match Leadership::take(app, &cfg.name).await {
                Ok(Some(l)) => lead = Some(l),
                Ok(None) => {
                    ctl.set_standby();
                    ctl.pause(cfg.poll_interval).await;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    let wait = backoff(cfg.poll_interval, cfg.max_backoff, failures);
                    ctl.set_failed(&e, wait);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
        }
        let started = std::time::Instant::now();
        match round(app, ctl).await {
            Ok(active) => {
                failures = 0;
                ctl.set_ok(active);
                app.metrics.observe(
                    "playdeck_aap_sync_round_seconds",
                    &[("controller", &cfg.name)],
                    started.elapsed().as_secs_f64(),
                );
                ctl.pause(cfg.poll_interval).await;
            }
            Err(e) => {
                app.metrics.inc("playdeck_aap_sync_errors_total", &[("controller", &cfg.name)]);
                failures += 1;
                let wait = backoff(cfg.poll_interval, cfg.max_backoff, failures);
                ctl.set_failed(&e, wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Pause after the n-th failure in a row: doubling from the poll interval, capped.
fn backoff(poll: Duration, max: Duration, failures: u32) -> Duration {
    poll.saturating_mul(1u32 << failures.min(16)).min(max)
}

/// A job the sync follows, as its cursor row says.
struct Tracked {
    external_id: i64,
    job_id: Option<i64>,
    last_counter: i64,
    fingerprint: Option<String>,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One round: the job list since the cursor, then every job not done yet. Answers how many
/// jobs are still followed.
async fn round(app: &AppState, ctl: &Controller) -> Result<i64, SyncError> {
    let client = ctl.client()?;
    let name = ctl.config.name.as_str();
    let db = app.pool.get().await?;
    let cursor: Option<DateTime<Utc>> = db
        .query_opt("select jobs_cursor from aap_controllers where name = $1", &[&name])
        .await?
        .and_then(|r| r.get(0));
    drop(db);
    let since = cursor.unwrap_or_else(|| {
        Utc::now() - chrono::Duration::from_std(ctl.config.backfill).unwrap_or(chrono::Duration::days(1))
    });

    // Inclusive, so a job modified in the same microsecond as the cursor is not skipped; the
    // newest job is read again each round, which costs nothing when it did not change.
    let first = client
        .url(
            "/jobs/",
            &[
                ("order_by", "modified".into()),
                ("modified__gte", iso(since)),
                ("page_size", PAGE_SIZE.into()),
            ],
        )
        .await?;
    let listed: Vec<Job> = client.all(first, MAX_PAGES).await?;
    let newest = listed.iter().filter_map(|j| j.modified).max();

    let db = app.pool.get().await?;
    if !listed.is_empty() {
        let ids: Vec<i64> = listed.iter().map(|j| j.id).collect();
        let modified: Vec<Option<DateTime<Utc>>> = listed.iter().map(|j| j.modified).collect();
        // New jobs start being followed; a job done already is followed again if it changed since.
        db.execute(
            "insert into aap_jobs (controller, external_id, awx_modified)
             select $1, * from unnest($2::bigint[], $3::timestamptz[])
             on conflict (controller, external_id) do update set
                 awx_modified = excluded.awx_modified,
                 done = false,
                 updated = now()
             where aap_jobs.awx_modified is distinct from excluded.awx_modified",
            &[&name, &ids, &modified],
        )
        .await?;
    }
    if let Some(newest) = newest.filter(|n| cursor.is_none_or(|c| *n > c)) {
        db.execute(
            "insert into aap_controllers (name, jobs_cursor) values ($1, $2)
             on conflict (name) do update set jobs_cursor = greatest(aap_controllers.jobs_cursor, $2),
                                              updated = now()",
            &[&name, &newest],
        )
        .await?;
    }
    let active: Vec<Tracked> = db
        .query(
            "select external_id, job_id, last_counter, fingerprint from aap_jobs
              where controller = $1 and not done order by external_id",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| Tracked {
            external_id: r.get(0),
            job_id: r.get(1),
            last_counter: r.get(2),
            fingerprint: r.get(3),
        })
        .collect();
    drop(db);

    let listed: HashMap<i64, Job> = listed.into_iter().map(|j| (j.id, j)).collect();
    // The futures are built first: a closure over borrowed rows inside the stream trips the
    // compiler's check that the spawned task is Send.
    let follows: Vec<_> =
        active.iter().map(|t| follow(app, ctl, client, t, listed.get(&t.external_id))).collect();
    let results: Vec<Result<bool, SyncError>> =
        futures_util::stream::iter(follows).buffer_unordered(ctl.config.concurrency.max(1)).collect().await;
    let mut still_active = 0;
    for r in results {
        match r {
            Ok(true) => {}
            Ok(false) => still_active += 1,
            // Logged once, tried again next round.
            Err(SyncError::Job(id, e)) => {
                still_active += 1;
                ctl.job_problem(id, &e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(still_active)
}

/// Brings one job up to date: its fields, its new events, and once the controller has finished
/// it and processed its events, a check that every one of them is stored. Answers whether the
/// job is done.
async fn follow(
    app: &AppState,
    ctl: &Controller,
    client: &Client,
    t: &Tracked,
    listed: Option<&Job>,
) -> Result<bool, SyncError> {
    let id = t.external_id;
    let followed: Result<bool, SyncError> = async {
        let name = ctl.config.name.as_str();
        // The list has no `event_processing_finished`: a finished job needs its detail.
        let job = match listed {
            Some(j) if !j.is_finished() => j.clone(),
            _ => client.get::<Job>(client.url(&format!("/jobs/{id}/"), &[]).await?).await?,
        };
        let mut reader = EventReader {
            app,
            ctl,
            client,
            id,
            fields: job.to_ingest(),
            job_id: t.job_id,
            last: t.last_counter,
            stored_fields: false,
        };
        let fingerprint = serde_json::to_string(&reader.fields).unwrap_or_default();
        reader.stored_fields = t.fingerprint.as_deref() == Some(fingerprint.as_str());
        let read = reader.read_from(t.last_counter, &fingerprint).await;
        // What the job's detail said is stored even when its events could not be read.
        if !reader.stored_fields {
            reader.store(Vec::new(), &fingerprint).await?;
        }
        read?;
        if !(job.is_finished() && job.event_processing_finished == Some(true)) {
            return Ok(false);
        }
        // Finished and processed: whatever the controller has must be here. Events it saved out of
        // counter order behind the cursor would be missing; read the whole job once to get them.
        let total: Page<Value> = client
            .get(client.url(&format!("/jobs/{id}/job_events/"), &[("page_size", "1".into())]).await?)
            .await?;
        let stored = match reader.job_id {
            Some(job_id) => {
                let db = app.pool.get().await?;
                db.query_one("select event_count from jobs where id = $1", &[&job_id]).await?.get::<_, i64>(0)
            }
            None => 0,
        };
        if stored < total.count {
            tracing::info!(
                controller = name,
                job = id,
                stored,
                at_controller = total.count,
                "events are missing behind the cursor; reading the whole job again"
            );
            reader.read_from(0, &fingerprint).await?;
        }
        mark_done(app, name, id).await?;
        Ok(true)
    }
    .await;
    match followed {
        Ok(done) => {
            ctl.job_fine(id);
            Ok(done)
        }
        // The job list answered this round, so a 404 means the job was deleted on the controller:
        // what was stored stays, nothing more will come.
        Err(SyncError::Controller(ClientError::NotFound(_))) => {
            mark_done(app, &ctl.config.name, id).await?;
            Ok(true)
        }
        // A rejected token is the controller's problem, not the job's.
        Err(e @ SyncError::Controller(ClientError::Unauthorized(_) | ClientError::Forbidden(_))) => Err(e),
        // The job list answered this round: trouble with one job (a 500 on its events, an answer
        // that cannot be read) is that job's, and must not hold back the others. A controller
        // that went down meanwhile shows at the next round's list.
        Err(SyncError::Controller(e)) => Err(SyncError::Job(id, e)),
        Err(e) => Err(e),
    }
}

/// Reads a job's events in counter order and stores them page by page, moving the cursor after
/// each stored page.
struct EventReader<'a> {
    app: &'a AppState,
    ctl: &'a Controller,
    client: &'a Client,
    id: i64,
    fields: shared::IngestJob,
    job_id: Option<i64>,
    last: i64,
    stored_fields: bool,
}

impl EventReader<'_> {
    async fn read_from(&mut self, after: i64, fingerprint: &str) -> Result<(), SyncError> {
        let id = self.id;
        let mut url = self
            .client
            .url(
                &format!("/jobs/{id}/job_events/"),
                &[
                    ("order_by", "counter".into()),
                    ("counter__gt", after.to_string()),
                    ("no_truncate", "1".into()),
                    ("page_size", PAGE_SIZE.into()),
                ],
            )
            .await?;
        for _ in 0..MAX_PAGES {
            let page: Page<Value> = self.client.get(url).await?;
            let mut events = page.results;
            if !events.is_empty() {
                if let Some(stats) = events.iter_mut().find(|e| e["event"] == "playbook_on_stats") {
                    // The host summaries exist once the controller has processed the stats event.
                    let first = self
                        .client
                        .url(&format!("/jobs/{id}/job_host_summaries/"), &[("page_size", PAGE_SIZE.into())])
                        .await?;
                    let summaries: Vec<HostSummary> = self.client.all(first, MAX_PAGES).await?;
                    awx::merge_host_summaries(stats, &summaries);
                }
                self.store(events, fingerprint).await?;
            }
            match page.next {
                Some(next) => url = self.client.follow(&next)?,
                None => break,
            }
        }
        Ok(())
    }

    async fn store(&mut self, events: Vec<Value>, fingerprint: &str) -> Result<(), SyncError> {
        let top = events.iter().filter_map(awx::counter).max().unwrap_or(0);
        let name = self.ctl.config.name.as_str();
        let result = super::store(self.app, name, self.fields.clone(), events).await?;
        self.job_id = Some(result.job_id);
        self.last = self.last.max(top);
        self.stored_fields = true;
        let db = self.app.pool.get().await?;
        db.execute(
            "update aap_jobs set job_id = $3, last_counter = greatest(last_counter, $4), fingerprint = $5,
                                 updated = now()
              where controller = $1 and external_id = $2",
            &[&name, &self.id, &result.job_id, &self.last, &fingerprint],
        )
        .await?;
        Ok(())
    }
}

async fn mark_done(app: &AppState, controller: &str, external_id: i64) -> Result<(), SyncError> {
    let db = app.pool.get().await?;
    db.execute(
        "update aap_jobs set done = true, updated = now() where controller = $1 and external_id = $2",
        &[&controller, &external_id],
    )
    .await?;
    Ok(())
}

/// Makes the sync follow a job it has not listed yet (one just launched), from its first event.
pub async fn track(app: &AppState, controller: &str, external_id: i64, job_id: i64) -> Result<(), AppError> {
    let db = app.pool.get().await?;
    db.execute(
        "insert into aap_jobs (controller, external_id, job_id) values ($1, $2, $3)
         on conflict (controller, external_id) do update set done = false, job_id = $3, updated = now()",
        &[&controller, &external_id, &job_id],
    )
    .await?;
    Ok(())
}
