//! The engine's queue in PostgreSQL: enqueue, take (`FOR UPDATE SKIP LOCKED`), heartbeat, cancel,
//! the final record, and the recovery of jobs whose Playdeck process died.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use shared::JobStatus;
use tokio::sync::Semaphore;

use super::plan::Plan;
use super::Engine;
use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::state::AppState;
use crate::writer::{self, Transition};

/// Creates the job (status `pending`) and its queue entry in one transaction.
pub async fn enqueue(
    app: &AppState,
    caller: &Caller,
    plan: &Plan,
    schedule_run: Option<i64>,
) -> Result<i64, AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let row = tx
        .query_one(
            "with next as (select nextval(pg_get_serial_sequence('jobs', 'id')) as id)
             insert into jobs (id, source, external_id, name, template, inventory, project, launched_by,
                               \"limit\", extra_vars, status, status_explicit, change_seq, schedule_run_id)
             select id, 'local', id::text, $1, $2, $3, $4, $5, $6, $7, 'pending', true, nextval('job_change_seq'), $8
               from next
             returning id",
            &[
                &plan.name,
                &plan.template,
                &plan.inventory_label,
                &plan.project,
                &caller.name,
                &plan.limit,
                &plan.masked_extra_vars,
                &schedule_run,
            ],
        )
        .await?;
    let job_id: i64 = row.get(0);
    // What only the run may see waits in the queue sealed under the credential key.
    let pending = app.sealer.seal_json(&pending_purpose(job_id), &plan.pending)?;
    tx.execute(
        "insert into engine_jobs (job_id, spec, pending, has_secrets, timeout_secs, callback_url)
         values ($1, $2, $3, $4, $5, $6)",
        &[&job_id, &plan.spec, &pending, &plan.has_secrets, &(plan.timeout_secs as i32), &plan.callback_url],
    )
    .await?;
    let queued = Transition { status: JobStatus::Pending, previous: None, by: caller.name.clone() };
    writer::changed(&tx, job_id, &[queued], 0, 0, false).await?;
    tx.commit().await?;
    Ok(job_id)
}

/// A job taken from the queue by this process.
#[derive(Debug)]
pub struct Claimed {
    pub job_id: i64,
    pub spec: Value,
    /// Extra vars, inline inventory and source as given (unmasked); cleared from the table.
    pub pending: Value,
    pub timeout: Duration,
}

/// Takes the oldest queued job nobody else is taking.
pub async fn claim(app: &AppState) -> Result<Option<Claimed>, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "with picked as (
                 select job_id, pending from engine_jobs
                  where state = 'queued' order by job_id limit 1
                    for update skip locked
             )
             update engine_jobs e
                set state = 'running', pending = null, worker = $1, hostname = $2, heartbeat = now(),
                    started_at = now()
               from picked
              where e.job_id = picked.job_id
             returning e.job_id, e.spec, picked.pending, e.timeout_secs",
            &[&Engine::of(app).instance, &Engine::of(app).hostname],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let job_id: i64 = r.get(0);
    let pending = match r.get::<_, Option<Value>>(2) {
        None => Value::Null,
        Some(v) => app.sealer.open_json(&pending_purpose(job_id), v).unwrap_or_else(|e| {
            tracing::error!(job = job_id, error = %e, "a queued job's settings do not open");
            serde_json::json!({"unreadable": e.to_string()})
        }),
    };
    Ok(Some(Claimed {
        job_id,
        spec: r.get(1),
        pending,
        timeout: Duration::from_secs(r.get::<_, i32>(3).max(1) as u64),
    }))
}

fn pending_purpose(job_id: i64) -> String {
    format!("queued job {job_id}")
}

/// Records the commit a job runs and its inventory's label with the inventory's commit.
pub async fn set_revision(
    app: &AppState,
    job_id: i64,
    revision: Option<&str>,
    inventory: Option<&str>,
) -> Result<(), AppError> {
    let db = app.pool.get().await?;
    db.execute(
        "update jobs set scm_revision = coalesce($2, scm_revision), inventory = coalesce($3, inventory)
          where id = $1",
        &[&job_id, &revision, &inventory],
    )
    .await?;
    Ok(())
}

/// The process started: its pid, and the job is running.
pub async fn started(app: &AppState, job_id: i64, pid: u32) -> Result<(), AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    tx.execute(
        "update engine_jobs set pid = $2, heartbeat = now() where job_id = $1",
        &[&job_id, &(pid as i32)],
    )
    .await?;
    writer::set_status(&tx, job_id, JobStatus::Running, "engine", None).await?;
    tx.commit().await?;
    Ok(())
}

/// What a heartbeat learned.
pub enum Pulse {
    Fine,
    /// Someone asked to cancel (through any replica).
    CancelRequested(String),
    /// The job is no longer this process's (recovered by another after a long stall).
    Lost,
}

pub async fn heartbeat(app: &AppState, job_id: i64) -> Result<Pulse, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "update engine_jobs set heartbeat = now()
              where job_id = $1 and state = 'running' and worker = $2
             returning cancel_requested_by",
            &[&job_id, &Engine::of(app).instance],
        )
        .await?;
    Ok(match row {
        None => Pulse::Lost,
        Some(r) => match r.get::<_, Option<String>>(0) {
            Some(by) => Pulse::CancelRequested(by),
            None => Pulse::Fine,
        },
    })
}

/// Records the end: the job's final status and explanation, the queue entry done, in one
/// transaction (which also writes the webhook deliveries, by trigger).
pub async fn finish(
    app: &AppState,
    job_id: i64,
    status: JobStatus,
    explanation: Option<&str>,
    exit_code: Option<i32>,
) -> Result<(), AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    tx.execute(
        "update engine_jobs set state = 'done', ended_at = now(), exit_code = $2 where job_id = $1",
        &[&job_id, &exit_code],
    )
    .await?;
    writer::set_status(&tx, job_id, status, "engine", explanation).await?;
    tx.commit().await?;
    Ok(())
}

pub enum CancelOutcome {
    /// It was queued: canceled now.
    Canceled,
    /// It is running: the process running it stops it.
    Requested,
}

pub async fn request_cancel(app: &AppState, job_id: i64, by: &str) -> Result<CancelOutcome, AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let row = tx.query_opt("select state from engine_jobs where job_id = $1 for update", &[&job_id]).await?;
    let Some(row) = row else {
        drop(tx);
        return Err(match crate::store::jobs::fetch_job(&db, job_id).await? {
            None => AppError::not_found_job(job_id),
            Some(_) => AppError::Conflict(format!(
                "job {job_id} was not launched by Playdeck's local engine (its events came from a callback \
                 plugin elsewhere), so Playdeck cannot stop it"
            )),
        });
    };
    let state: String = row.get(0);
    match state.as_str() {
        "queued" => {
            tx.execute(
                "update engine_jobs set state = 'done', pending = null, ended_at = now(),
                        cancel_requested_at = now(), cancel_requested_by = $2
                  where job_id = $1",
                &[&job_id, &by],
            )
            .await?;
            writer::set_status(
                &tx,
                job_id,
                JobStatus::Canceled,
                by,
                Some(&format!("canceled by {by} before it started")),
            )
            .await?;
            tx.commit().await?;
            Ok(CancelOutcome::Canceled)
        }
        "running" => {
            tx.execute(
                "update engine_jobs set cancel_requested_at = coalesce(cancel_requested_at, now()),
                        cancel_requested_by = coalesce(cancel_requested_by, $2)
                  where job_id = $1",
                &[&job_id, &by],
            )
            .await?;
            tx.commit().await?;
            Ok(CancelOutcome::Requested)
        }
        _ => {
            let status: String =
                tx.query_one("select status from jobs where id = $1", &[&job_id]).await?.get(0);
            Err(AppError::Conflict(format!(
                "job {job_id} has already ended ({status}); there is nothing to cancel"
            )))
        }
    }
}

/// The recorded request of a local job, and whether secrets were masked out of it.
pub async fn spec_of(app: &AppState, job_id: i64) -> Result<(Value, bool), AppError> {
    let db = app.pool.get().await?;
    match db.query_opt("select spec, has_secrets from engine_jobs where job_id = $1", &[&job_id]).await? {
        Some(r) => Ok((r.get(0), r.get(1))),
        None => Err(match crate::store::jobs::fetch_job(&db, job_id).await? {
            None => AppError::not_found_job(job_id),
            Some(_) => AppError::Conflict(format!(
                "job {job_id} was not launched by Playdeck's local engine, so Playdeck does not know how to run it again"
            )),
        }),
    }
}

/// Marks `error` every running job whose heartbeat stopped (its Playdeck process died), stopping
/// the playbook if it still runs on this host.
pub async fn recover(app: &AppState) -> Result<usize, AppError> {
    let lease = Engine::of(app).config.lease.as_secs_f64();
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let rows = tx
        .query(
            "select job_id, hostname, pid, heartbeat from engine_jobs
              where state = 'running' and worker <> $1
                and (heartbeat is null or heartbeat < now() - make_interval(secs => $2))
              for update skip locked",
            &[&Engine::of(app).instance, &lease],
        )
        .await?;
    let mut n = 0;
    for r in &rows {
        let job_id: i64 = r.get(0);
        let host: Option<String> = r.get(1);
        let pid: Option<i32> = r.get(2);
        let beat: Option<chrono::DateTime<chrono::Utc>> = r.get(3);
        let mut what = "its ansible-playbook process is gone".to_string();
        if let (Some(h), Some(pid)) = (host.as_deref(), pid) {
            if h == Engine::of(app).hostname && super::run::is_job_process(pid, job_id) {
                super::run::kill_tree(pid);
                what = format!("its ansible-playbook process ({pid}), still running, was stopped");
            } else if h != Engine::of(app).hostname {
                what = format!("it ran on {h}");
            }
        }
        let since = beat
            .map(|b| format!(" (last heartbeat {})", b.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        let explanation = format!(
            "the Playdeck process running this job stopped unexpectedly{since}; {what}. Relaunch the job if it should run."
        );
        tx.execute("update engine_jobs set state = 'done', ended_at = now() where job_id = $1", &[&job_id])
            .await?;
        writer::set_status(&tx, job_id, JobStatus::Error, "engine recovery", Some(&explanation)).await?;
        tracing::warn!(job = job_id, "marked a job left running by a stopped Playdeck as error");
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}

/// The worker loop: waits until the callback URL is known, recovers, then takes queued jobs while
/// fewer than `concurrency` run here.
pub async fn work(app: AppState) {
    let mut url = Engine::of(&app).ingest_url.subscribe();
    let shutdown = crate::infra::state::shutting_down(app.shutdown.clone());
    tokio::pin!(shutdown);
    tokio::select! {
        _ = url.wait_for(|u| u.is_some()) => {}
        _ = &mut shutdown => return,
    }
    if let Err(e) = recover(&app).await {
        tracing::warn!(error = %e, "the engine could not look for jobs left by a crash");
    }
    let permits = Arc::new(Semaphore::new(Engine::of(&app).config.concurrency.max(1)));
    let mut recover_every =
        tokio::time::interval((Engine::of(&app).config.lease / 2).max(Duration::from_millis(500)));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = &mut shutdown => return,
        };
        match claim(&app).await {
            Ok(Some(job)) => {
                tokio::spawn(super::run::run(app.clone(), job, permit));
                continue;
            }
            Ok(None) => drop(permit),
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "the engine could not read its queue");
            }
        }
        tokio::select! {
            _ = Engine::of(&app).queue_wake.notified() => {}
            _ = tokio::time::sleep(Engine::of(&app).config.poll) => {}
            _ = recover_every.tick() => {
                if let Err(e) = recover(&app).await {
                    tracing::warn!(error = %e, "the engine could not look for jobs left by a crash");
                }
            }
            _ = &mut shutdown => return,
        }
    }
}
