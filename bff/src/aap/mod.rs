//! The AAP/AWX connector: syncs controllers' jobs and events into Playdeck, receives their
//! external logging, and launches, cancels and relaunches on them.
//!
//! - `config`: which controllers (a TOML file and the `PLAYDECK_AAP_*` variables);
//! - `client`: the typed REST client (prefix detection, paging, retries);
//! - `awx`: the shapes read from the controller and how a job maps onto a Playdeck job;
//! - `sync`: the loop per controller, with its cursors in PostgreSQL;
//! - `logging`: `POST /api/v1/ingest/aap-logging`;
//! - `actions`: templates, launch, cancel, relaunch, `GET /api/v1/controllers`.
//!
//! Every job and event, whichever way it came, is stored through `ingest::prepare` +
//! `ingest::store` under the controller's name as `source`, so the same event from logging and
//! from the sync is stored once.

mod actions;
pub mod awx;
pub mod client;
mod logging;
pub mod sync;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::{IngestBatch, IngestJob, IngestResult};
use tokio::sync::Notify;

use crate::infra::error::AppError;
use crate::infra::state::App;
use crate::infra::state::AppState;

use crate::infra::config::{AapConfig, ControllerConfig};

/// Launch, cancel and relaunch on a controller (`jobs::launch` sends them here).
pub use actions::{cancel, check, launch, launch_for_run, relaunch};

/// The connector's shared state: the configured controllers.
#[derive(Debug, Default)]
pub struct Connector {
    pub controllers: Vec<Arc<Controller>>,
}

/// One controller: its settings, its client and how its sync is doing.
pub struct Controller {
    pub config: ControllerConfig,
    /// `Err` when the client could not be built; every round then reports why.
    client: Result<client::Client, String>,
    health: Mutex<Health>,
    /// Wakes the sync loop before its pause is over (after a launch or a cancel).
    nudge: Notify,
    /// Jobs the controller has trouble with, and what was last logged about each.
    job_problems: Mutex<HashMap<i64, String>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("name", &self.config.name).finish()
    }
}

#[derive(Debug, Clone)]
struct Health {
    status: &'static str,
    detail: Option<String>,
    last_sync: Option<DateTime<Utc>>,
    failing_since: Option<DateTime<Utc>>,
    active_jobs: i64,
}

impl Connector {
    /// This process's connector (a service registered by `start`).
    pub fn of(app: &App) -> &Connector {
        app.service::<Connector>()
    }

    pub fn new(config: &AapConfig) -> Connector {
        let controllers = config
            .controllers
            .iter()
            .map(|c| {
                if !c.verify_tls {
                    tracing::warn!(controller = %c.name, "TLS certificates of this controller are not verified");
                }
                Arc::new(Controller {
                    client: client::Client::new(c),
                    config: c.clone(),
                    health: Mutex::new(Health {
                        status: "starting",
                        detail: None,
                        last_sync: None,
                        failing_since: None,
                        active_jobs: 0,
                    }),
                    nudge: Notify::new(),
                    job_problems: Mutex::new(HashMap::new()),
                })
            })
            .collect();
        Connector { controllers }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Controller>> {
        self.controllers.iter().find(|c| c.config.name == name)
    }

    /// The controller a request names, or the only one when it names none.
    pub fn pick(&self, name: Option<&str>) -> Result<&Arc<Controller>, AppError> {
        let names = || self.controllers.iter().map(|c| c.config.name.as_str()).collect::<Vec<_>>().join(", ");
        match name {
            Some(n) => self.get(n).ok_or_else(|| {
                if self.controllers.is_empty() {
                    not_configured()
                } else {
                    AppError::Unprocessable(format!("no controller is called {n:?}; there are: {}", names()))
                }
            }),
            None => match self.controllers.as_slice() {
                [] => Err(not_configured()),
                [only] => Ok(only),
                _ => Err(AppError::Unprocessable(format!(
                    "several controllers are configured; say which with `controller`: {}",
                    names()
                ))),
            },
        }
    }
}

impl Controller {
    pub fn client(&self) -> Result<&client::Client, client::ClientError> {
        self.client.as_ref().map_err(|e| client::ClientError::Invalid(e.clone()))
    }

    fn update(&self, f: impl FnOnce(&mut Health)) {
        if let Ok(mut h) = self.health.lock() {
            f(&mut h);
        }
    }

    fn set_ok(&self, active_jobs: i64) {
        let was = self.health.lock().map(|h| h.status).unwrap_or("ok");
        if !matches!(was, "ok" | "starting" | "standby") {
            tracing::info!(controller = %self.config.name, "controller is answering again");
        }
        self.update(|h| {
            h.status = "ok";
            h.detail = None;
            h.last_sync = Some(Utc::now());
            h.failing_since = None;
            h.active_jobs = active_jobs;
        });
    }

    /// Logs a job's trouble when it is new or different, not at every round.
    fn job_problem(&self, id: i64, e: &client::ClientError) {
        let text = e.to_string();
        let Ok(mut problems) = self.job_problems.lock() else { return };
        if problems.get(&id) != Some(&text) {
            tracing::warn!(controller = %self.config.name, job = id, error = %text,
                           "cannot sync this job; trying again each round");
            problems.insert(id, text);
        }
    }

    fn job_fine(&self, id: i64) {
        if let Ok(mut problems) = self.job_problems.lock() {
            problems.remove(&id);
        }
    }

    fn set_standby(&self) {
        self.update(|h| {
            h.status = "standby";
            h.detail = Some("another Playdeck replica syncs this controller".into());
            h.failing_since = None;
        });
    }

    fn set_failed(&self, e: &sync::SyncError, retry_in: Duration) {
        use client::ClientError as C;
        let status = match e {
            sync::SyncError::Controller(C::Unauthorized(_)) => "unauthorized",
            sync::SyncError::Controller(C::Forbidden(_)) => "forbidden",
            sync::SyncError::Controller(C::Unreachable(_)) => "unreachable",
            _ => "error",
        };
        let detail = e.to_string();
        let changed =
            self.health.lock().map(|h| h.detail.as_deref() != Some(detail.as_str())).unwrap_or(true);
        if changed {
            // Logged when it changes, not at every retry.
            tracing::warn!(controller = %self.config.name, status, error = %detail, ?retry_in,
                           "controller sync failed; retrying with backoff");
        }
        self.update(|h| {
            h.status = status;
            h.detail = Some(detail);
            h.failing_since.get_or_insert_with(Utc::now);
        });
    }

    /// Waits `d`, or less if nudged.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.nudge.notified() => {}
        }
    }

    /// Asks the sync loop for a round now.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    pub fn describe(&self) -> shared::aap::Controller {
        let h = self.health.lock().map(|h| h.clone()).unwrap_or(Health {
            status: "error",
            detail: Some("health unavailable".into()),
            last_sync: None,
            failing_since: None,
            active_jobs: 0,
        });
        shared::aap::Controller {
            name: self.config.name.clone(),
            url: self.config.url.clone(),
            api_prefix: self.client.as_ref().ok().and_then(|c| c.known_prefix()),
            status: h.status.to_string(),
            healthy: matches!(h.status, "ok" | "standby"),
            detail: h.detail,
            last_sync: h.last_sync,
            failing_since: h.failing_since,
            active_jobs: h.active_jobs,
        }
    }
}

/// Starts the sync loops; called once the app is up.
pub fn start(app: &AppState) {
    for ctl in &Connector::of(app).controllers {
        tokio::spawn(sync::run(app.clone(), ctl.clone()));
    }
}

/// The controllers' health for `/readyz`.
pub fn health(app: &AppState) -> Value {
    let list: Vec<shared::aap::Controller> =
        Connector::of(app).controllers.iter().map(|c| c.describe()).collect();
    serde_json::to_value(list).unwrap_or(Value::Null)
}

/// `/api/v1/controllers`, their schedules and `/api/v1/templates`: the controllers and what they
/// can launch.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/controllers", get(actions::controllers))
        .route("/controllers/schedules", get(actions::schedules))
        .route("/templates", get(actions::templates))
}

/// `/aap-logging…` under `/api/v1/ingest`: a controller's External Logging posts here.
pub fn ingest_router() -> Router<AppState> {
    Router::new()
        .route("/aap-logging", post(logging::receive))
        .route("/aap-logging/{controller}", post(logging::receive))
}

fn not_configured() -> AppError {
    AppError::Unprocessable("no AAP/AWX controller is configured (PLAYDECK_AAP_URL)".into())
}

/// Stores one job's batch through the ingest path. Each event goes through `ingest::prepare`
/// on its own, so one event the ingest path refuses is left out (and logged) instead of holding
/// back the rest of a controller's events forever.
pub(crate) async fn store(
    app: &App,
    source: &str,
    job: IngestJob,
    events: Vec<Value>,
) -> Result<IngestResult, AppError> {
    let mut prepared = crate::ingest::prepare(IngestBatch {
        source: source.to_string(),
        job,
        events: Vec::new(),
        provisional: false,
    })?;
    // The controller's own copy: it replaces the callback plugin's, if the plugin sent one.
    prepared.origin = crate::ingest::Origin::Controller;
    let mut by_counter = BTreeMap::new();
    for raw in events {
        let counter = awx::counter(&raw);
        let job = IngestJob { external_id: prepared.job.external_id.clone(), ..IngestJob::default() };
        let single = IngestBatch { source: source.to_string(), job, events: vec![raw], provisional: false };
        match crate::ingest::prepare(single) {
            Ok(p) => {
                for ev in p.events {
                    if by_counter.insert(ev.counter, ev).is_some() {
                        prepared.repeated_in_batch += 1;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source, job = %prepared.job.external_id, ?counter, error = %e, "event left out");
            }
        }
    }
    prepared.events = by_counter.into_values().collect();
    crate::ingest::store(app, prepared).await
}
