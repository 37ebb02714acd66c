//! Retention: raw events of jobs finished longer ago than `PLAYDECK_EVENT_RETENTION_DAYS` are
//! deleted in bounded batches, so the database does not grow forever. The job's summary, host
//! results, status history and explanation stay, and the job says when its events expired.

use crate::infra::error::AppError;
use crate::infra::state::App;
use crate::infra::state::AppState;

/// Jobs whose events one pass deletes; each job's events go in one statement.
const JOBS_PER_PASS: i64 = 50;

/// Starts the sweep (hourly by default) when retention is configured.
pub fn start(app: &AppState) {
    let Some(days) = app.config.event_retention_days else { return };
    let app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(app.config.retention_interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::infra::state::shutting_down(app.shutdown.clone()) => return,
            }
            match sweep(&app, days as i64).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, days, "deleted expired raw events"),
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
        }
    });
}

/// Deletes the raw events of jobs finished more than `days` ago, in passes of a few jobs each so
/// no transaction grows large. Returns how many jobs' events were deleted.
pub async fn sweep(app: &App, days: i64) -> Result<usize, AppError> {
    let mut total = 0;
    loop {
        let mut db = app.pool.get().await?;
        let tx = db.transaction().await?;
        let ids: Vec<i64> = tx
            .query(
                "select id from jobs
                  where finished < now() - make_interval(days => $1) and events_expired is null
                  order by finished limit $2 for update skip locked",
                &[&(days as i32), &JOBS_PER_PASS],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.is_empty() {
            return Ok(total);
        }
        tx.execute("delete from job_events where job_id = any($1)", &[&ids]).await?;
        tx.execute("update jobs set events_expired = now() where id = any($1)", &[&ids]).await?;
        tx.commit().await?;
        total += ids.len();
    }
}
