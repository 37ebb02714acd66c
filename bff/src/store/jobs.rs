//! Reading jobs: a job's row as the API shows it, what changed since a point in the history, its
//! hosts, and the whole run (job, hosts, failed tasks) that webhooks and notifiers send.

use std::sync::LazyLock;

use deadpool_postgres::Object;
use serde_json::Value;
use shared::engine::{FailedTask, JobRun};
use shared::{HostCounts, Job, JobHost, JobStatus};
use tokio_postgres::Row;

use crate::infra::error::AppError;
use crate::infra::state::AppState;

/// The columns of a job, with `elapsed` ticking for a running job.
pub const JOB_COLUMNS: &str = "id, source, external_id, name, template, inventory, project, launched_by,
    \"limit\", status, created, modified, started, finished,
    coalesce(elapsed, case when started is not null and finished is null and status = 'running'
                           then extract(epoch from now() - started) end) as elapsed,
    hosts_ok, hosts_changed, hosts_failed, hosts_skipped, hosts_unreachable,
    current_play, current_task, plays, tasks, event_count, last_seq, explanation, events_expired, scm_revision";

pub fn job_from_row(r: &Row) -> Job {
    Job {
        id: r.get("id"),
        source: r.get("source"),
        external_id: r.get("external_id"),
        name: r.get("name"),
        template: r.get("template"),
        inventory: r.get("inventory"),
        project: r.get("project"),
        launched_by: r.get("launched_by"),
        limit: r.get("limit"),
        status: JobStatus::parse(r.get("status")).unwrap_or(JobStatus::New),
        created: r.get("created"),
        modified: r.get("modified"),
        started: r.get("started"),
        finished: r.get("finished"),
        elapsed: r.get("elapsed"),
        hosts: HostCounts {
            ok: r.get::<_, i32>("hosts_ok") as i64,
            changed: r.get::<_, i32>("hosts_changed") as i64,
            failed: r.get::<_, i32>("hosts_failed") as i64,
            skipped: r.get::<_, i32>("hosts_skipped") as i64,
            unreachable: r.get::<_, i32>("hosts_unreachable") as i64,
        },
        current_play: r.get("current_play"),
        current_task: r.get("current_task"),
        plays: r.get::<_, i32>("plays") as i64,
        tasks: r.get::<_, i32>("tasks") as i64,
        event_count: r.get("event_count"),
        cursor: r.get::<_, i64>("last_seq").to_string(),
        explanation: r.get("explanation"),
        events_expired: r.get("events_expired"),
        scm_revision: r.get("scm_revision"),
        explanations: Vec::new(),
    }
}

pub async fn fetch_job(db: &Object, id: i64) -> Result<Option<Job>, AppError> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("select {JOB_COLUMNS} from jobs where id = $1"));
    let row = db.query_opt(&db.prepare_cached(&SQL).await?, &[&id]).await?;
    Ok(row.as_ref().map(job_from_row))
}

/// Several jobs at once (those that exist), in no particular order.
pub async fn fetch_jobs(db: &Object, ids: &[i64]) -> Result<Vec<Job>, AppError> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("select {JOB_COLUMNS} from jobs where id = any($1)"));
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db.query(&db.prepare_cached(&SQL).await?, &[&ids]).await?;
    Ok(rows.iter().map(job_from_row).collect())
}

/// Jobs changed after `change_seq`, with their change_seq, oldest change first.
/// The job, if the caller may see it; one outside their scope does not exist for them (404).
/// Every handler that reads or acts on one job by its id starts here.
pub async fn visible_job(db: &Object, caller: &crate::infra::auth::Caller, id: i64) -> Result<Job, AppError> {
    let job = fetch_job(db, id).await?.ok_or_else(|| AppError::not_found_job(id))?;
    if !caller.access.allows(shared::Role::Viewer, &crate::infra::access::Target::of(&job)) {
        return Err(AppError::not_found_job(id));
    }
    Ok(job)
}

pub async fn jobs_changed_since(db: &Object, since: i64, limit: i64) -> Result<Vec<(Job, i64)>, AppError> {
    let rows = db
        .query(
            &format!("select {JOB_COLUMNS}, change_seq from jobs where change_seq > $1 order by change_seq limit $2"),
            &[&since, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (job_from_row(r), r.get("change_seq"))).collect())
}

/// A job's per-host results, by host name.
pub async fn job_hosts(db: &Object, id: i64) -> Result<Vec<JobHost>, AppError> {
    let rows = db
        .query(
            "select host, ok, changed, failures, dark, skipped, rescued, ignored, last_task, final_summary
               from job_hosts where job_id = $1 order by host",
            &[&id],
        )
        .await?;
    let results: Vec<JobHost> = rows
        .iter()
        .map(|r| {
            let n = |c: &str| r.get::<_, i32>(c) as i64;
            let (ok, changed, failures, dark, skipped) =
                (n("ok"), n("changed"), n("failures"), n("dark"), n("skipped"));
            let status = if failures > 0 {
                "failed"
            } else if dark > 0 {
                "unreachable"
            } else if changed > 0 {
                "changed"
            } else if ok > 0 {
                "ok"
            } else if skipped > 0 {
                "skipped"
            } else {
                "running"
            };
            JobHost {
                host: r.get("host"),
                status: status.into(),
                ok,
                changed,
                failures,
                dark,
                skipped,
                rescued: n("rescued"),
                ignored: n("ignored"),
                last_task: r.get("last_task"),
                final_summary: r.get("final_summary"),
            }
        })
        .collect();
    Ok(results)
}

/// The job, its hosts and its failed tasks.
pub async fn job_run(app: &AppState, job_id: i64) -> Result<JobRun, AppError> {
    let db = app.pool.get().await?;
    let job = fetch_job(&db, job_id).await?.ok_or_else(|| AppError::not_found_job(job_id))?;
    let hosts = job_hosts(&db, job_id).await?;
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
