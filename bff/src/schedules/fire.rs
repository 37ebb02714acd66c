//! Each replica's ticker: every second (or when a schedule changed) it claims the schedules that
//! came due and launches their runs.
//!
//! Exactly once, across replicas and restarts:
//! - **Claiming** locks due schedules `FOR UPDATE SKIP LOCKED`, inserts one `schedule_runs` row
//!   per (schedule, time) (unique) and moves `next_run` on, in one transaction: a run is claimed
//!   by one replica, and a crash before the commit leaves it due.
//! - **Launching** locks the run's row for the launch. A run still `launching` that nobody holds
//!   (its launcher died) is taken over after `STALE`; the job it may already have launched says
//!   so (`jobs.schedule_run_id`, unique), so it is linked, never launched twice.
//!
//! After downtime (a run found more than `GRACE` after its time), `catch_up` decides: `once`
//! fires the latest missed time once, `skip` records it skipped; either way the run says how
//! many were missed. Times inside an exclusion never come due.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{Row, SELECT_SCHEDULE};
use crate::infra::error::AppError;
use crate::infra::state::{shutting_down, AppState};

/// A run found later than this after its time was missed (Playdeck was not running).
const GRACE: chrono::Duration = chrono::Duration::seconds(60);
/// A run left `launching` this long without a lock on it lost its launcher.
const STALE_SECS: i32 = 30;
/// A job still going, as SQL: a run whose job is in one of these has not finished.
const GOING: &str = "('new', 'pending', 'waiting', 'running')";
/// The ticker's pace when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

/// The ticker's service: wakes it when a schedule was made or changed.
#[derive(Default)]
pub struct Ticker {
    wake: Notify,
}

pub fn wake(app: &AppState) {
    app.service::<Ticker>().wake.notify_one();
}

/// Starts this replica's ticker.
pub fn start(app: &AppState) {
    tokio::spawn(run(app.clone()));
}

async fn run(app: AppState) {
    let shutdown = shutting_down(app.shutdown.clone());
    tokio::pin!(shutdown);
    loop {
        match claim_due(&app).await {
            Ok(claimed) => {
                if let Err(e) = launch_ready(&app, &claimed).await {
                    tracing::warn!(error = %e, "schedules: could not launch the runs that came due");
                }
            }
            Err(e) => tracing::warn!(error = %e, "schedules: could not read the schedules that came due"),
        }
        tokio::select! {
            _ = app.service::<Ticker>().wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = &mut shutdown => return,
        }
    }
}

/// What a run that came due does, by the schedule's `overlap` and the runs still open.
async fn decide(
    tx: &deadpool_postgres::Transaction<'_>,
    row: &Row,
) -> Result<(&'static str, Option<String>), AppError> {
    let open = tx
        .query(
            &format!(
                "select r.state, r.job_id from schedule_runs r left join jobs j on j.id = r.job_id
                  where r.schedule_id = $1
                    and (r.state in ('launching', 'waiting')
                         or (r.state = 'fired' and j.status in {GOING}))
                  order by r.scheduled_for"
            ),
            &[&row.id],
        )
        .await?;
    let Some(first) = open.first() else { return Ok(("launching", None)) };
    let previous = match first.get::<_, Option<i64>>(1) {
        Some(job) => format!("the previous run (job {job})"),
        None => "the previous run".to_string(),
    };
    Ok(match row.overlap.as_str() {
        "run" => ("launching", None),
        "queue" if !open.iter().any(|r| r.get::<_, &str>(0) == "waiting") => {
            ("waiting", Some(format!("waits for {previous} to finish")))
        }
        "queue" => ("skipped", Some(format!("{previous} has not finished and a run already waits for it"))),
        _ => ("skipped", Some(format!("{previous} has not finished (overlap: skip)"))),
    })
}

/// Claims every schedule that came due (on this replica only), records its run and moves its
/// next run on. Answers the runs to launch now.
async fn claim_due(app: &AppState) -> Result<Vec<i64>, AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let rows = tx
        .query(
            &format!(
                "{SELECT_SCHEDULE} where enabled and next_run <= now()
                  order by next_run limit 50 for update skip locked"
            ),
            &[],
        )
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let now: DateTime<Utc> = tx.query_one("select now()", &[]).await?.get(0);
    let mut launch = Vec::new();
    for r in &rows {
        let row = Row::read(r);
        let Some(due_at) = row.next_run else { continue };
        let timing = match row.timing() {
            Ok(t) => t,
            Err(e) => {
                // Stored timings were checked when written; one that no longer reads (a zone
                // gone from the tz database) stops, saying why.
                tracing::warn!(schedule = row.id, error = %e, "schedule paused: its timing no longer reads");
                tx.execute("update schedules set enabled = false, next_run = null where id = $1", &[&row.id])
                    .await?;
                continue;
            }
        };
        let (times, n) = timing.due(due_at - chrono::Duration::microseconds(1), now, 60);
        let latest = times.last().copied().unwrap_or(due_at);
        // Found in time (a tick that came late): every time gets its run. Found after downtime:
        // `catch_up` decides for all of them at once.
        let missed = now - due_at > GRACE;
        let plan: Vec<(DateTime<Utc>, Option<String>)> = if !missed {
            if times.is_empty() {
                vec![(due_at, None)]
            } else {
                times.iter().map(|t| (*t, None)).collect()
            }
        } else {
            let counted =
                if n >= super::timing::DUE_COUNTED { format!("more than {n}") } else { n.to_string() };
            let note = format!(
                "{counted} run{} missed while Playdeck was not running ({} to {})",
                if n == 1 { "" } else { "s" },
                timing.local(due_at).format("%Y-%m-%d %H:%M:%S%:z"),
                timing.local(latest).format("%Y-%m-%d %H:%M:%S%:z"),
            );
            vec![(latest, Some(note))]
        };
        for (at, missed_note) in plan {
            let (state, reason) = match missed_note {
                Some(note) if row.catch_up == "skip" => ("skipped", Some(format!("{note} (catch_up: skip)"))),
                Some(note) => {
                    let (state, reason) = decide(&tx, &row).await?;
                    let reason = match reason {
                        Some(r) => format!("{r}; {note} (catch_up: once)"),
                        None => format!("{note}; this is the one catch-up run (catch_up: once)"),
                    };
                    (state, Some(reason))
                }
                None => decide(&tx, &row).await?,
            };
            let inserted = tx
                .query_opt(
                    "insert into schedule_runs (schedule_id, scheduled_for, state, reason) values ($1, $2, $3, $4)
                     on conflict (schedule_id, scheduled_for) do nothing returning id",
                    &[&row.id, &at, &state, &reason],
                )
                .await?;
            if let (Some(run), "launching") = (inserted, state) {
                launch.push(run.get::<_, i64>(0));
            }
            tracing::info!(schedule = row.id, name = %row.name, at = %at, state, "schedule came due");
        }
        let next = timing.next_after(latest.max(now));
        tx.execute("update schedules set next_run = $2 where id = $1", &[&row.id, &next]).await?;
    }
    tx.commit().await?;
    Ok(launch)
}

/// Launches the runs that are ready: the ones just claimed, waiting ones whose previous run
/// ended, and launching ones whose launcher died.
async fn launch_ready(app: &AppState, claimed: &[i64]) -> Result<(), AppError> {
    for _ in 0..100 {
        if !launch_one(app, claimed).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Takes one ready run (locked while it launches) and launches it. Answers whether there was one.
async fn launch_one(app: &AppState, claimed: &[i64]) -> Result<bool, AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let Some(run) = tx
        .query_opt(
            &format!(
                "select r.id, r.schedule_id, r.state from schedule_runs r
              where (r.state = 'launching'
                     and (r.id = any($1) or r.modified < now() - make_interval(secs => $2)))
                 or (r.state = 'waiting' and not exists (
                       select 1 from schedule_runs p left join jobs j on j.id = p.job_id
                        where p.schedule_id = r.schedule_id and p.scheduled_for < r.scheduled_for
                          and (p.state = 'launching'
                               or (p.state = 'fired' and j.status in {GOING}))))
              order by r.scheduled_for limit 1 for update of r skip locked"
            ),
            &[&claimed, &(STALE_SECS as f64)],
        )
        .await?
    else {
        return Ok(false);
    };
    let (run_id, schedule_id): (i64, i64) = (run.get(0), run.get(1));
    // A launcher that died after its job was made: that job is this run's.
    if let Some(job) = tx.query_opt("select id from jobs where schedule_run_id = $1", &[&run_id]).await? {
        finish(&tx, run_id, "fired", Some(job.get(0)), None).await?;
        tx.commit().await?;
        return Ok(true);
    }
    let Some(s) = tx.query_opt(&format!("{SELECT_SCHEDULE} where id = $1"), &[&schedule_id]).await? else {
        tx.commit().await?;
        return Ok(true);
    };
    let s = Row::read(&s);
    let launched = match crate::infra::auth::caller_of(app, s.owner_user, s.owner_key).await {
        Err(why) => Err(format!("not launched: {why}")),
        Ok(caller) => match s.launch_body(app) {
            Ok(body) => crate::jobs::launch::launch_for_run(app, &caller, body, run_id)
                .await
                .map_err(|e| format!("the launch was refused: {e}")),
            Err(e) => Err(format!("its launch could not be read: {e}")),
        },
    };
    match launched {
        Ok(job) => {
            finish(&tx, run_id, "fired", Some(job), None).await?;
            tracing::info!(schedule = s.id, run = run_id, job, "schedule fired");
        }
        Err(why) => {
            // Recorded as a job that ended in error before it started, so the grid shows it and
            // notifiers and webhooks are told (`job.error`, or `schedule.failed` for its receivers).
            let job = refused_job(&tx, &s, run_id, &why).await?;
            finish(&tx, run_id, "failed", Some(job), Some(why.clone())).await?;
            tracing::warn!(schedule = s.id, run = run_id, job, reason = %why, "schedule could not launch");
        }
    }
    tx.commit().await?;
    crate::deliveries::wake(app);
    Ok(true)
}

/// The job a run that could not launch is recorded as: `error`, never started, explained.
async fn refused_job(
    tx: &deadpool_postgres::Transaction<'_>,
    s: &Row,
    run_id: i64,
    why: &str,
) -> Result<i64, AppError> {
    use crate::writer::{changed, set_status, Transition};
    let row = tx
        .query_one(
            "with next as (select nextval(pg_get_serial_sequence('jobs', 'id')) as id)
             insert into jobs (id, source, external_id, name, template, inventory, launched_by, status,
                               status_explicit, change_seq, schedule_run_id)
             select id, $1, 'schedule-run-' || $2::bigint, $3, $4, $5, $6, 'pending', true,
                    nextval('job_change_seq'), $2
               from next
             returning id",
            &[&s.source, &run_id, &s.name, &s.target, &s.inventory, &s.created_by],
        )
        .await?;
    let job: i64 = row.get(0);
    let by = format!("schedule {}", s.id);
    let queued = Transition { status: shared::JobStatus::Pending, previous: None, by: by.clone() };
    changed(tx, job, &[queued], 0, 0, false).await?;
    let explanation = format!("Schedule {:?} could not launch this run: {why}", s.name);
    set_status(tx, job, shared::JobStatus::Error, &by, Some(&explanation)).await?;
    Ok(job)
}

/// A run's end: the job it launched, or why it launched none.
async fn finish(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: i64,
    state: &str,
    job: Option<i64>,
    reason: Option<String>,
) -> Result<(), AppError> {
    tx.execute(
        "update schedule_runs set state = $2, job_id = $3, reason = coalesce($4, reason), modified = now()
          where id = $1",
        &[&run_id, &state, &job, &reason],
    )
    .await?;
    Ok(())
}
