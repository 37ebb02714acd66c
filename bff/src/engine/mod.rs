//! The local engine: runs playbooks with ansible-playbook on this host, with Playdeck's callback
//! plugin streaming their events back through the ingest path.
//!
//! Jobs wait in PostgreSQL (`engine_jobs`), so a restart loses none; each Playdeck process takes
//! them with `FOR UPDATE SKIP LOCKED` up to its concurrency limit and keeps a heartbeat on what it
//! runs, so a job left running by a crashed process is found and marked `error`. The engine states
//! every job's status itself (from the process's exit and the events), which is why it writes
//! `status` explicitly rather than letting events move it.

pub(crate) mod plan;
mod prepare;
mod queue;
mod run;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::engine::{FailedTask, JobRun, LaunchRequest};
use tokio::sync::{mpsc, watch, Notify};

use crate::auth::Caller;
use crate::error::AppError;
use crate::launch::Hosts;
use crate::AppState;

pub use plan::{is_secret_name, mask, MASK};

/// The callback plugin, built into the binary so every engine runs the plugin of its own version.
pub const CALLBACK_PLUGIN: &str = include_str!("../../../deploy/collection/plugins/callback/playdeck.py");

/// Where playbooks are, how many run at once, where ansible-playbook is.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Playbooks the engine may run (`PLAYDECK_PLAYBOOK_DIR`); launches name paths inside it.
    pub playbook_dir: PathBuf,
    /// Inventory files a launch may name (`PLAYDECK_INVENTORY_DIR`).
    pub inventory_dir: PathBuf,
    /// `PLAYDECK_ANSIBLE_PLAYBOOK`; unset: `.venv/bin/ansible-playbook` beside the project, else PATH.
    pub ansible_playbook: Option<PathBuf>,
    /// Jobs this process runs at once (`PLAYDECK_ENGINE_CONCURRENCY`).
    pub concurrency: usize,
    /// Seconds a job may run when its launch does not say (`PLAYDECK_ENGINE_TIMEOUT`).
    pub default_timeout: u64,
    /// The longest timeout a launch may ask for (`PLAYDECK_ENGINE_MAX_TIMEOUT`).
    pub max_timeout: u64,
    /// Between SIGTERM and SIGKILL when a job is canceled or times out.
    pub kill_grace: Duration,
    /// A running job whose heartbeat is older than this was left by a crash (`PLAYDECK_ENGINE_LEASE_SECS`).
    pub lease: Duration,
    /// How often a worker looks for queued jobs launched through another replica.
    pub poll: Duration,
    /// Where the callback plugin sends events (`PLAYDECK_ENGINE_INGEST_URL`); unset: this server's
    /// own listen address.
    pub ingest_url: Option<String>,
    /// Whether `file://` git repositories may be run (`PLAYDECK_GIT_ALLOW_FILE`).
    pub git_allow_file: bool,
    /// Webhook delivery settings.
    pub webhooks: crate::webhooks::WebhookConfig,
}

fn project_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

impl EngineConfig {
    pub fn from_env() -> Result<EngineConfig, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let num = |name: &str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} must be a positive integer, got {v:?}")),
            }
        };
        let flag = |name: &str| var(name).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        Ok(EngineConfig {
            playbook_dir: PathBuf::from(
                var("PLAYDECK_PLAYBOOK_DIR").unwrap_or_else(|| "examples/playbooks".into()),
            ),
            inventory_dir: PathBuf::from(
                var("PLAYDECK_INVENTORY_DIR").unwrap_or_else(|| "examples/inventories".into()),
            ),
            ansible_playbook: var("PLAYDECK_ANSIBLE_PLAYBOOK").map(PathBuf::from),
            concurrency: num("PLAYDECK_ENGINE_CONCURRENCY", 4)? as usize,
            default_timeout: num("PLAYDECK_ENGINE_TIMEOUT", 3600)?,
            max_timeout: num("PLAYDECK_ENGINE_MAX_TIMEOUT", 86400)?,
            kill_grace: Duration::from_secs(num("PLAYDECK_ENGINE_KILL_GRACE_SECS", 10)?),
            lease: Duration::from_secs(num("PLAYDECK_ENGINE_LEASE_SECS", 30)?),
            poll: Duration::from_secs(1),
            ingest_url: var("PLAYDECK_ENGINE_INGEST_URL"),
            git_allow_file: flag("PLAYDECK_GIT_ALLOW_FILE"),
            webhooks: crate::webhooks::WebhookConfig::from_env()?,
        })
    }

    /// The project's examples, short grace periods and leases.
    pub fn for_tests() -> EngineConfig {
        let root = project_root();
        EngineConfig {
            playbook_dir: root.join("examples/playbooks"),
            inventory_dir: root.join("examples/inventories"),
            ansible_playbook: None,
            concurrency: 2,
            default_timeout: 600,
            max_timeout: 3600,
            kill_grace: Duration::from_secs(3),
            lease: Duration::from_secs(3),
            poll: Duration::from_millis(300),
            ingest_url: None,
            git_allow_file: true,
            webhooks: crate::webhooks::WebhookConfig::for_tests(),
        }
    }
}

/// Finds ansible-playbook: the setting, else `.venv/bin/ansible-playbook` in the working directory
/// or beside the project's sources, else PATH.
pub fn find_ansible_playbook(setting: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = setting {
        return Some(p.to_path_buf());
    }
    let beside =
        [PathBuf::from(".venv/bin/ansible-playbook"), project_root().join(".venv/bin/ansible-playbook")];
    if let Some(p) = beside.into_iter().find(|p| p.is_file()) {
        return Some(p.canonicalize().unwrap_or(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("ansible-playbook")).find(|p| p.is_file())
}

/// Why a running job is being stopped.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    Cancel(String),
    Shutdown,
}

/// The engine's shared state: its identity, the jobs it runs, what wakes its workers.
pub struct Engine {
    config: EngineConfig,
    /// This process, in `engine_jobs.worker`.
    instance: String,
    hostname: String,
    /// Jobs running in this process, and how to stop each.
    running: Mutex<HashMap<i64, mpsc::Sender<Stop>>>,
    /// Wakes the workers when a job is queued here.
    queue_wake: Notify,
    /// Bumped when a job ends in this process (wakes `"wait": true` answers).
    ended: watch::Sender<u64>,
    /// Where the callback plugin posts events; None until the server knows its address.
    ingest_url: watch::Sender<Option<String>>,
    /// The directory the callback plugin was written to.
    plugin_dir: OnceLock<PathBuf>,
    /// Wakes the webhook dispatcher.
    pub(crate) webhook_wake: Notify,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("instance", &self.instance).finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(config: &EngineConfig) -> Engine {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Engine {
            config: config.clone(),
            instance: crate::auth::random_token("")[..16].to_string(),
            hostname,
            running: Mutex::new(HashMap::new()),
            queue_wake: Notify::new(),
            ended: watch::channel(0).0,
            ingest_url: watch::channel(config.ingest_url.clone()).0,
            plugin_dir: OnceLock::new(),
            webhook_wake: Notify::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Tells the engine the address the server listens on (when the callback URL is not set), so
    /// its playbooks' events come back here. Workers start taking jobs once this is known.
    pub fn set_listen_addr(&self, addr: SocketAddr) {
        if self.ingest_url.borrow().is_some() {
            return;
        }
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        // send_replace: stored even before the workers subscribed.
        self.ingest_url.send_replace(Some(format!("http://{addr}")));
    }

    /// Jobs running in this process now.
    pub fn running_jobs(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Writes the callback plugin, recovers jobs left by a crash and starts the queue's workers and
/// the webhook dispatcher.
pub fn start(app: &AppState) {
    if app.config.listen.port() != 0 {
        app.engine.set_listen_addr(app.config.listen);
    }
    // Job directories left by a process that died (they hold secrets): no job of this data
    // directory runs yet, so every one of them is stale.
    let jobs = app.config.data_dir.join("engine/jobs");
    if let Ok(entries) = std::fs::read_dir(&jobs) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = app.config.data_dir.join("engine/callback");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(dir.join("playdeck.py"), CALLBACK_PLUGIN))
        .map(|_| dir.canonicalize().unwrap_or(dir.clone()));
    match written {
        Ok(d) => {
            let _ = app.engine.plugin_dir.set(d);
        }
        Err(e) => tracing::error!(dir = %dir.display(), error = %e, "cannot write the callback plugin"),
    }
    tokio::spawn(queue::work(app.clone()));
    crate::webhooks::start(app);
}

/// Stops the jobs running in this process (SIGTERM, then SIGKILL after the grace period) and
/// records them as ended by the shutdown; returns once they are recorded or the grace is over.
pub async fn stop(app: &AppState) {
    let senders: Vec<mpsc::Sender<Stop>> =
        app.engine.running.lock().map(|r| r.values().cloned().collect()).unwrap_or_default();
    for s in senders {
        let _ = s.try_send(Stop::Shutdown);
    }
    let deadline = tokio::time::Instant::now() + app.engine.config.kill_grace + Duration::from_secs(3);
    while app.engine.running_jobs() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The engine's own endpoints: the webhooks' admin API.
pub fn router() -> Router<AppState> {
    crate::webhooks::router()
}

/// `POST /api/v1/jobs` with a `source`: checks, queues, and answers at once (202 with `Location`)
/// or, with `"wait": true`, when the job ends.
pub async fn launch(app: &AppState, caller: &Caller, body: Value) -> Result<Response, AppError> {
    let req = plan::parse(body)?;
    let plan = plan::plan(&app.engine.config, &req)?;
    check_references(app, &req).await?;
    if let Some(url) = &plan.callback_url {
        crate::webhooks::check_url(&app.engine.config.webhooks, url)
            .await
            .map_err(|e| AppError::Unprocessable(format!("`options.callback_url`: {e}")))?;
    }
    let job_id = queue::enqueue(app, caller, &plan).await?;
    crate::launch::record(app, Some(job_id), "launch", caller, &json!({"request": plan.spec})).await?;
    app.engine.queue_wake.notify_one();
    tracing::info!(job = job_id, playbook = %plan.template, by = %caller.name, "queued a local job");
    if req.wait {
        let bound =
            Duration::from_secs(plan.timeout_secs) + app.engine.config.kill_grace + Duration::from_secs(30);
        return wait_for(app, job_id, bound).await;
    }
    accepted(app, job_id).await
}

/// Checks what a launch names outside itself before it is queued: its credentials exist and are
/// of the right kinds, and its inventory URL and Galaxy server are addresses Playdeck may reach.
async fn check_references(app: &AppState, req: &LaunchRequest) -> Result<(), AppError> {
    use shared::credentials::CredentialKind as K;
    use shared::engine::{Inventory, PlaybookSource};
    if let Some(c) = &req.credentials {
        let slots = [
            (&c.ssh, K::SshKey, "credentials.ssh"),
            (&c.password, K::Password, "credentials.password"),
            (&c.become_password, K::BecomePassword, "credentials.become_password"),
            (&c.vault_password, K::VaultPassword, "credentials.vault_password"),
        ];
        for (slot, kind, field) in slots {
            if let Some(r) = slot {
                crate::credentials::check_ref(app, r, kind, field).await?;
            }
        }
    }
    let git = [K::SshKey, K::Password, K::ApiToken];
    match &req.source {
        PlaybookSource::Git { git_credential: Some(name), repo, .. }
        | PlaybookSource::Role { git_credential: Some(name), repo, .. } => {
            crate::credentials::check_exists(app, name, &git, "source.git_credential", Some(repo)).await?;
        }
        PlaybookSource::CollectionRole { galaxy_server, galaxy_credential, .. } => {
            if let Some(name) = galaxy_credential {
                if galaxy_server.is_none() {
                    return Err(AppError::Unprocessable(
                        "`source.galaxy_credential` needs `source.galaxy_server`".into(),
                    ));
                }
                crate::credentials::check_exists(
                    app,
                    name,
                    &[K::ApiToken],
                    "source.galaxy_credential",
                    galaxy_server.as_deref(),
                )
                .await?;
            }
            if let Some(server) = galaxy_server.as_deref().filter(|s| !s.starts_with("file:")) {
                crate::webhooks::check_url(&app.engine.config.webhooks, server)
                    .await
                    .map_err(|e| AppError::Unprocessable(format!("`source.galaxy_server`: {e}")))?;
            }
        }
        _ => {}
    }
    match &req.inventory {
        Some(Inventory::Git { git_credential: Some(name), repo, .. }) => {
            crate::credentials::check_exists(app, name, &git, "inventory.git_credential", Some(repo)).await?;
        }
        Some(Inventory::Url { url, credential, .. }) => {
            if let Some(name) = credential {
                crate::credentials::check_exists(
                    app,
                    name,
                    &[K::ApiToken, K::Password],
                    "inventory.credential",
                    Some(url),
                )
                .await?;
            }
            crate::webhooks::check_url(&app.engine.config.webhooks, url)
                .await
                .map_err(|e| AppError::Unprocessable(format!("`inventory.url`: {e}")))?;
        }
        Some(Inventory::Dynamic { cloud_credential: Some(name), .. }) => {
            crate::credentials::check_exists(
                app,
                name,
                &[K::Environment],
                "inventory.cloud_credential",
                None,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// 202 with `Location` and the job as it is now.
async fn accepted(app: &AppState, job_id: i64) -> Result<Response, AppError> {
    let run = job_run(app, job_id).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(run)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{job_id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Answers once the job has ended (200), or with 202 and `Location` when `bound` passes first.
async fn wait_for(app: &AppState, job_id: i64, bound: Duration) -> Result<Response, AppError> {
    let deadline = tokio::time::Instant::now() + bound;
    let mut ended = app.engine.ended.subscribe();
    loop {
        {
            let db = app.pool.get().await?;
            let job =
                crate::jobs::fetch_job(&db, job_id).await?.ok_or_else(|| AppError::not_found_job(job_id))?;
            if job.status.is_finished() {
                drop(db);
                return Ok(Json(job_run(app, job_id).await?).into_response());
            }
        }
        // Ended here wakes at once; a job run by another replica is seen within a second.
        tokio::select! {
            _ = ended.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::time::sleep_until(deadline) => return accepted(app, job_id).await,
        }
    }
}

/// The job, its hosts and its failed tasks.
pub async fn job_run(app: &AppState, job_id: i64) -> Result<JobRun, AppError> {
    let db = app.pool.get().await?;
    let job = crate::jobs::fetch_job(&db, job_id).await?.ok_or_else(|| AppError::not_found_job(job_id))?;
    let hosts = crate::jobs::job_hosts(&db, job_id).await?;
    let rows = db
        .query(
            "select counter, event, host, play, task, event_data from job_events
              where job_id = $1 and failed order by counter limit 200",
            &[&job_id],
        )
        .await?;
    let failed_tasks = rows
        .iter()
        .map(|r| {
            let data: Value = r.get(5);
            let res = &data["res"];
            let message = res["msg"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or_else(|| res["stderr"].as_str().filter(|s| !s.is_empty()))
                .or_else(|| res["reason"].as_str())
                .map(str::to_string);
            FailedTask {
                counter: r.get(0),
                event: if r.get::<_, &str>(1) == "runner_on_unreachable" { "unreachable" } else { "failed" }
                    .into(),
                host: r.get(2),
                play: r.get(3),
                task: r.get(4),
                message,
            }
        })
        .collect();
    Ok(JobRun { job, hosts, failed_tasks })
}

/// `POST /api/v1/jobs/{id}/cancel` of a local job: a queued job is canceled at once; a running
/// one is stopped (SIGTERM to its process group, SIGKILL after the grace period) by the process
/// that runs it.
pub async fn cancel(app: &AppState, caller: &Caller, id: i64) -> Result<Response, AppError> {
    let outcome = queue::request_cancel(app, id, &caller.name).await?;
    let detail = match outcome {
        queue::CancelOutcome::Canceled => json!({"was": "queued"}),
        queue::CancelOutcome::Requested => {
            let local = app.engine.running.lock().ok().and_then(|r| r.get(&id).cloned());
            if let Some(tx) = local {
                let _ = tx.try_send(Stop::Cancel(caller.name.clone()));
            }
            json!({"was": "running"})
        }
    };
    crate::launch::record(app, Some(id), "cancel", caller, &detail).await?;
    accepted(app, id).await
}

/// `POST /api/v1/jobs/{id}/relaunch` of a local job: the same request again, on all hosts or on
/// those that failed.
pub async fn relaunch(app: &AppState, caller: &Caller, id: i64, hosts: Hosts) -> Result<Response, AppError> {
    let (spec, has_secrets) = queue::spec_of(app, id).await?;
    if has_secrets {
        return Err(AppError::Unprocessable(format!(
            "job {id} was launched with secrets (in extra_vars or host vars), which Playdeck does not keep; \
             launch it again with them"
        )));
    }
    let mut body = spec;
    if hosts == Hosts::Failed {
        let db = app.pool.get().await?;
        let failed: Vec<String> = db
            .query(
                "select host from job_hosts where job_id = $1 and (failures > 0 or dark > 0) order by host",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if failed.is_empty() {
            return Err(AppError::Unprocessable(format!("job {id} has no failed hosts to relaunch on")));
        }
        body["options"]["limit"] = Value::String(failed.join(","));
    }
    let req = plan::parse(body)?;
    let plan = plan::plan(&app.engine.config, &req)?;
    check_references(app, &req).await?;
    let new_id = queue::enqueue(app, caller, &plan).await?;
    crate::launch::record(
        app,
        Some(id),
        "relaunch",
        caller,
        &json!({"new_job_id": new_id, "hosts": if hosts == Hosts::Failed { "failed" } else { "all" }}),
    )
    .await?;
    crate::launch::record(
        app,
        Some(new_id),
        "launch",
        caller,
        &json!({"request": plan.spec, "relaunch_of": id}),
    )
    .await?;
    app.engine.queue_wake.notify_one();
    accepted(app, new_id).await
}
