//! Actions on jobs (launch, cancel, relaunch), recorded with who asked, in `job_actions` and the
//! audit log, whichever engine ran the job.

use serde_json::Value;

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::state::AppState;

/// Which hosts a relaunch runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    All,
    Failed,
}

/// Records an action on a job (or on no job yet, for a launch that failed) with who asked.
pub async fn record(
    app: &AppState,
    job_id: Option<i64>,
    action: &str,
    caller: &Caller,
    detail: &Value,
) -> Result<(), AppError> {
    let target = job_id.map(|id| format!("job {id}"));
    crate::infra::audit::record(app, caller, action, target.as_deref(), detail.clone()).await;
    let db = app.pool.get().await?;
    db.execute(
        "insert into job_actions (job_id, action, by, detail) values ($1, $2, $3, $4)",
        &[&job_id, &action, &caller.name, detail],
    )
    .await?;
    Ok(())
}
