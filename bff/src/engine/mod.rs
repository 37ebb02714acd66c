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
pub use prepare::checkout_for_reading;
mod queue;
mod run;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shared::engine::LaunchRequest;
use tokio::sync::{mpsc, watch, Notify};

use crate::infra::auth::Caller;
use crate::infra::config::EngineConfig;
use crate::infra::error::AppError;
use crate::infra::state::App;
use crate::infra::state::AppState;
use crate::store::actions::Hosts;
use crate::store::jobs::job_run;

/// The callback plugin, built into the binary so every engine runs the plugin of its own version.
pub const CALLBACK_PLUGIN: &str = include_str!("../../../deploy/collection/plugins/callback/playdeck.py");

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
    /// The listener's certificate when it serves HTTPS and the callback URL is our own: the
    /// plugin checks the chain against it (not the name: it calls a loopback address).
    callback_ca: Mutex<Option<PathBuf>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("instance", &self.instance).finish_non_exhaustive()
    }
}

impl Engine {
    /// This process's engine (a service registered by `start`).
    pub fn of(app: &App) -> &Engine {
        app.service::<Engine>()
    }

    pub fn new(config: &EngineConfig) -> Engine {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Engine {
            config: config.clone(),
            instance: crate::infra::secrets::random_token("")[..16].to_string(),
            hostname,
            running: Mutex::new(HashMap::new()),
            queue_wake: Notify::new(),
            ended: watch::channel(0).0,
            ingest_url: watch::channel(config.ingest_url.clone()).0,
            plugin_dir: OnceLock::new(),
            callback_ca: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Tells the engine the address the server listens on (when the callback URL is not set), so
    /// its playbooks' events come back here. Workers start taking jobs once this is known.
    pub fn set_listen_addr(&self, addr: SocketAddr) {
        self.set_listener(addr, None);
    }

    /// As `set_listen_addr`, for a listener that serves HTTPS with this certificate (PEM): the
    /// callback URL is `https://` and the plugin trusts the certificate.
    pub fn set_listener(&self, addr: SocketAddr, tls_cert: Option<&std::path::Path>) {
        if self.ingest_url.borrow().is_some() {
            return;
        }
        if let Ok(mut ca) = self.callback_ca.lock() {
            *ca = tls_cert.map(std::path::Path::to_path_buf);
        }
        let scheme = if tls_cert.is_some() { "https" } else { "http" };
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        // send_replace: stored even before the workers subscribed.
        self.ingest_url.send_replace(Some(format!("{scheme}://{addr}")));
    }

    /// The certificate the callback plugin trusts, when the engine calls our own HTTPS listener.
    pub fn callback_ca(&self) -> Option<PathBuf> {
        self.callback_ca.lock().ok().and_then(|c| c.clone())
    }

    /// Jobs running in this process now.
    pub fn running_jobs(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Writes the callback plugin, recovers jobs left by a crash and starts the queue's workers.
pub fn start(app: &AppState) {
    if app.config.listen.port() != 0 {
        Engine::of(app).set_listener(app.config.listen, app.config.tls.as_ref().map(|t| t.cert.as_path()));
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
            let _ = Engine::of(app).plugin_dir.set(d);
        }
        Err(e) => tracing::error!(dir = %dir.display(), error = %e, "cannot write the callback plugin"),
    }
    tokio::spawn(queue::work(app.clone()));
}

/// Stops the jobs running in this process (SIGTERM, then SIGKILL after the grace period) and
/// records them as ended by the shutdown; returns once they are recorded or the grace is over.
pub async fn stop(app: &AppState) {
    let senders: Vec<mpsc::Sender<Stop>> =
        Engine::of(app).running.lock().map(|r| r.values().cloned().collect()).unwrap_or_default();
    for s in senders {
        let _ = s.try_send(Stop::Shutdown);
    }
    let deadline = tokio::time::Instant::now() + Engine::of(app).config.kill_grace + Duration::from_secs(3);
    while Engine::of(app).running_jobs() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /api/v1/jobs` with a `source`: checks, queues, and answers at once (202 with `Location`)
/// or, with `"wait": true`, when the job ends. `masked`: extra vars shown as `********` in what is
/// recorded (a survey's password answers).
pub async fn launch(
    app: &AppState,
    caller: &Caller,
    body: Value,
    masked: &[String],
) -> Result<Response, AppError> {
    let (req, plan) = checked(app, caller, body, masked).await?;
    let job_id = queued(app, caller, &plan, None).await?;
    if req.wait {
        let bound = Duration::from_secs(plan.timeout_secs)
            + Engine::of(app).config.kill_grace
            + Duration::from_secs(30);
        return wait_for(app, job_id, bound).await;
    }
    accepted(app, job_id).await
}

/// A launch body checked as `POST /api/v1/jobs` checks it, and its plan.
async fn checked(
    app: &AppState,
    caller: &Caller,
    body: Value,
    masked: &[String],
) -> Result<(LaunchRequest, plan::Plan), AppError> {
    let req = plan::parse(body)?;
    let mut plan = plan::plan(&Engine::of(app).config, &req)?;
    plan.mask(masked);
    may_launch(caller, &plan, &req)?;
    check_references(app, &req).await?;
    if let Some(url) = &plan.callback_url {
        crate::infra::outbound::check_url(&app.config.deliveries, url)
            .await
            .map_err(|e| AppError::Unprocessable(format!("`options.callback_url`: {e}")))?;
    }
    Ok((req, plan))
}

/// Queues a checked launch, records who asked, and wakes the queue.
async fn queued(
    app: &AppState,
    caller: &Caller,
    plan: &plan::Plan,
    run: Option<i64>,
) -> Result<i64, AppError> {
    let job_id = queue::enqueue(app, caller, plan, run).await?;
    crate::store::actions::record(app, Some(job_id), "launch", caller, &json!({"request": plan.spec}))
        .await?;
    Engine::of(app).queue_wake.notify_one();
    tracing::info!(job = job_id, playbook = %plan.template, by = %caller.name, "queued a local job");
    Ok(job_id)
}

/// What a launch body would be refused with now (nothing is queued), and what it runs: the
/// playbook, the inventory's label, and the request as a job's record shows it (secrets masked).
pub async fn check(
    app: &AppState,
    caller: &Caller,
    body: Value,
    masked: &[String],
) -> Result<(String, Option<String>, Value), AppError> {
    let (_, plan) = checked(app, caller, body, masked).await?;
    Ok((plan.template, plan.inventory_label, plan.spec))
}

/// Queues a launch for a schedule's run (the job says which run; a second job for one run is
/// refused by the database). Answers the job's id.
pub async fn launch_for_run(
    app: &AppState,
    caller: &Caller,
    body: Value,
    run: i64,
    masked: &[String],
) -> Result<i64, AppError> {
    let (_, plan) = checked(app, caller, body, masked).await?;
    queued(app, caller, &plan, Some(run)).await
}

/// Whether the caller may launch this: an operator binding covers its playbook and inventory and
/// allows each stored credential it names.
fn may_launch(caller: &Caller, plan: &plan::Plan, req: &LaunchRequest) -> Result<(), AppError> {
    let target = crate::infra::access::Target {
        source: "local",
        template: Some(&plan.template),
        inventory: plan.inventory_label.as_deref(),
    };
    if !caller.access.allows(shared::Role::Operator, &target) {
        return Err(AppError::Forbidden(format!(
            "{:?} may not launch {:?}{}: no operator role over it",
            caller.name,
            plan.template,
            plan.inventory_label.as_deref().map(|i| format!(" on inventory {i:?}")).unwrap_or_default()
        )));
    }
    for name in stored_credentials(req) {
        if !caller.access.may_use_credential(&target, name) {
            return Err(AppError::Forbidden(format!(
                "{:?} may not use the credential {name:?} in launches of {:?}",
                caller.name, plan.template
            )));
        }
    }
    Ok(())
}

/// The stored credentials a launch names (by name, or as the Vault credential of a lookup).
fn stored_credentials(req: &LaunchRequest) -> Vec<&str> {
    use shared::credentials::{CredentialRef, SecretLookup};
    use shared::engine::{Inventory, PlaybookSource};
    let mut names = Vec::new();
    if let Some(c) = &req.credentials {
        for r in [&c.ssh, &c.password, &c.become_password, &c.vault_password].into_iter().flatten() {
            match r {
                CredentialRef::Name(n) => names.push(n.as_str()),
                CredentialRef::Lookup(SecretLookup::HashicorpVault { credential: Some(n), .. }) => {
                    names.push(n.as_str())
                }
                CredentialRef::Lookup(_) => {}
            }
        }
    }
    match &req.source {
        PlaybookSource::Git { git_credential: Some(n), .. }
        | PlaybookSource::Role { git_credential: Some(n), .. } => names.push(n),
        PlaybookSource::CollectionRole { galaxy_credential: Some(n), .. } => names.push(n),
        _ => {}
    }
    match &req.inventory {
        Some(Inventory::Git { git_credential: Some(n), .. })
        | Some(Inventory::Url { credential: Some(n), .. })
        | Some(Inventory::Dynamic { cloud_credential: Some(n), .. }) => names.push(n),
        _ => {}
    }
    names
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
                crate::infra::outbound::check_url(&app.config.deliveries, server)
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
            crate::infra::outbound::check_url(&app.config.deliveries, url)
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
    let mut ended = Engine::of(app).ended.subscribe();
    loop {
        {
            let db = app.pool.get().await?;
            let job = crate::store::jobs::fetch_job(&db, job_id)
                .await?
                .ok_or_else(|| AppError::not_found_job(job_id))?;
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

/// `POST /api/v1/jobs/{id}/cancel` of a local job: a queued job is canceled at once; a running
/// one is stopped (SIGTERM to its process group, SIGKILL after the grace period) by the process
/// that runs it.
pub async fn cancel(app: &AppState, caller: &Caller, id: i64) -> Result<Response, AppError> {
    let outcome = queue::request_cancel(app, id, &caller.name).await?;
    let detail = match outcome {
        queue::CancelOutcome::Canceled => json!({"was": "queued"}),
        queue::CancelOutcome::Requested => {
            let local = Engine::of(app).running.lock().ok().and_then(|r| r.get(&id).cloned());
            if let Some(tx) = local {
                let _ = tx.try_send(Stop::Cancel(caller.name.clone()));
            }
            json!({"was": "running"})
        }
    };
    crate::store::actions::record(app, Some(id), "cancel", caller, &detail).await?;
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
    let plan = plan::plan(&Engine::of(app).config, &req)?;
    may_launch(caller, &plan, &req)?;
    check_references(app, &req).await?;
    let new_id = queue::enqueue(app, caller, &plan, None).await?;
    crate::store::actions::record(
        app,
        Some(id),
        "relaunch",
        caller,
        &json!({"new_job_id": new_id, "hosts": if hosts == Hosts::Failed { "failed" } else { "all" }}),
    )
    .await?;
    crate::store::actions::record(
        app,
        Some(new_id),
        "launch",
        caller,
        &json!({"request": plan.spec, "relaunch_of": id}),
    )
    .await?;
    Engine::of(app).queue_wake.notify_one();
    accepted(app, new_id).await
}
