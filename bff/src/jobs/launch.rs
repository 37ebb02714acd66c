//! `POST /api/v1/jobs`, `/jobs/{id}/cancel` and `/jobs/{id}/relaunch`: one front door for both
//! engines. A launch naming a `template` goes to an AAP/AWX controller; one naming a `source` (a
//! playbook) runs on the local engine, its extra vars first checked against the playbook's survey
//! (`playbooks::surveyed`). Cancel and relaunch go to the engine the job came from.
//! Every action is recorded with the API key that asked (`job_actions`).

use axum::extract::State;
use axum::response::Response;
use serde_json::Value;
use shared::Role;

use crate::infra::access::Target;
use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::JobId;
use crate::infra::state::AppState;
use crate::store::actions::Hosts;
use crate::store::jobs::visible_job;

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<Value>,
) -> Result<Response, AppError> {
    launch_as(&app, &caller, body).await
}

/// Launches for `caller` exactly as `POST /api/v1/jobs` with this body would (the request box
/// uses it after the operator confirms).
pub async fn launch_as(app: &AppState, caller: &Caller, body: Value) -> Result<Response, AppError> {
    caller.require(Role::Operator)?;
    if for_controller(&body)? {
        crate::aap::launch(app, caller, body).await
    } else {
        let (body, masked) = crate::playbooks::surveyed(app, caller, body).await?;
        crate::engine::launch(app, caller, body, &masked).await
    }
}

/// What a launch body runs: `local` or the controller, and the playbook or template (and the
/// inventory, for local runs).
pub struct LaunchTarget {
    pub source: String,
    pub target: String,
    pub inventory: Option<String>,
    /// The body as a job's record shows it: every secret masked.
    pub shown: Value,
}

/// Which engine a body is for: `true` for a controller's template.
fn for_controller(body: &Value) -> Result<bool, AppError> {
    let Some(obj) = body.as_object() else {
        return Err(AppError::Unprocessable("a launch is a JSON object".into()));
    };
    match (obj.contains_key("template"), obj.contains_key("source")) {
        (true, false) => Ok(true),
        (false, true) => Ok(false),
        (true, true) => Err(AppError::Unprocessable(
            "give either `template` (an AAP job template) or `source` (a local playbook), not both".into(),
        )),
        (false, false) => Err(AppError::Unprocessable(
            "say what to run: `template` (an AAP job template) or `source` (a local playbook)".into(),
        )),
    }
}

/// What `POST /api/v1/jobs` with this body would be refused with now, launching nothing.
pub async fn check_as(app: &AppState, caller: &Caller, body: Value) -> Result<LaunchTarget, AppError> {
    caller.require(Role::Operator)?;
    if for_controller(&body)? {
        let (source, target, shown) = crate::aap::check(app, caller, body).await?;
        Ok(LaunchTarget { source, target, inventory: None, shown })
    } else {
        let (body, masked) = crate::playbooks::surveyed(app, caller, body).await?;
        let (target, inventory, shown) = crate::engine::check(app, caller, body, &masked).await?;
        Ok(LaunchTarget { source: "local".into(), target, inventory, shown })
    }
}

/// Launches for a schedule's run as `caller`; the job records the run. Answers the job's id.
pub async fn launch_for_run(app: &AppState, caller: &Caller, body: Value, run: i64) -> Result<i64, AppError> {
    caller.require(Role::Operator)?;
    if for_controller(&body)? {
        crate::aap::launch_for_run(app, caller, body, run).await
    } else {
        let (body, masked) = crate::playbooks::surveyed(app, caller, body).await?;
        crate::engine::launch_for_run(app, caller, body, run, &masked).await
    }
}

/// Which engine owns the job, if the caller may act on it as an operator (a job they may not
/// see is a 404, one they may only see a 403).
async fn job_source(app: &AppState, caller: &Caller, id: i64) -> Result<String, AppError> {
    let db = app.pool.get().await?;
    let job = visible_job(&db, caller, id).await?;
    caller.may(Role::Operator, &Target::of(&job), &format!("job {id}"))?;
    Ok(job.source)
}

pub async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Response, AppError> {
    caller.require(Role::Operator)?;
    match job_source(&app, &caller, id).await?.as_str() {
        "local" => crate::engine::cancel(&app, &caller, id).await,
        controller => crate::aap::cancel(&app, &caller, controller, id).await,
    }
}

pub async fn relaunch(
    State(app): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    caller.require(Role::Operator)?;
    // The body is optional: no body relaunches on all hosts.
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("the body is not valid JSON: {e}")))?
    };
    let hosts = match body.get("hosts").and_then(Value::as_str).unwrap_or("all") {
        "all" => Hosts::All,
        "failed" => Hosts::Failed,
        other => {
            return Err(AppError::Unprocessable(format!("`hosts` is \"all\" or \"failed\", not {other:?}")))
        }
    };
    match job_source(&app, &caller, id).await?.as_str() {
        "local" => crate::engine::relaunch(&app, &caller, id, hosts).await,
        controller => crate::aap::relaunch(&app, &caller, controller, id, hosts).await,
    }
}
