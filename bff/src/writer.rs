//! The one writer of a job's state changes: every write of a job's row (the ingest path's batch,
//! the local engine's explicit statuses) ends here, with the job's elapsed time, its status
//! history and the notice that tells the live relay, all in the caller's transaction.

use deadpool_postgres::Transaction;
use shared::JobStatus;
use tokio_postgres::types::ToSql;

use crate::infra::error::AppError;

/// One status change: to `status` from `previous` (none for a new job), by whom or what.
#[derive(Debug, Clone)]
pub struct Transition {
    pub status: JobStatus,
    pub previous: Option<JobStatus>,
    pub by: String,
}

/// Moves a job to `status` (unless it already ended or is there), with who or what did it and
/// why. The source states the status itself from now on (`status_explicit`), so later events no
/// longer move it. Returns whether it changed.
///
/// `modified` is the time of the write, behind the row's lock, and never goes back: this
/// transaction may have begun (PostgreSQL's `now()`) before a batch that reached the row first,
/// and the pages keep the copy of a job with the newest `modified`.
pub async fn set_status(
    tx: &Transaction<'_>,
    job_id: i64,
    status: JobStatus,
    by: &str,
    explanation: Option<&str>,
) -> Result<bool, AppError> {
    let Some(row) =
        tx.query_opt("select status, last_seq from jobs where id = $1 for update", &[&job_id]).await?
    else {
        return Ok(false);
    };
    let current = JobStatus::parse(row.get(0)).unwrap_or(JobStatus::New);
    if current.is_finished() || current == status {
        return Ok(false);
    }
    let last_seq: i64 = row.get(1);
    let finished = tx
        .query_one(
            "update jobs set
                 status = $2::text,
                 status_explicit = true,
                 explanation = coalesce($3, explanation),
                 started = case when $2::text = 'running' then coalesce(started, now()) else started end,
                 finished = case when $2::text in ('successful', 'failed', 'error', 'canceled')
                                 then coalesce(finished, now()) else finished end,
                 change_seq = nextval('job_change_seq'),
                 modified = greatest(modified, clock_timestamp())
              where id = $1
             returning finished is not null",
            &[&job_id, &status.as_str(), &explanation],
        )
        .await?
        .get(0);
    let moved = Transition { status, previous: Some(current), by: by.to_string() };
    changed(tx, job_id, &[moved], last_seq, last_seq, finished).await?;
    Ok(true)
}

/// What follows every write of a job's row: its elapsed time once it has ended (`finished`: the
/// row now says it has), the status changes in its history, and one notice for the live relay
/// (new events are seq `(from_seq, to_seq]`; the notice carries the row's `change_seq` as the
/// caller's update left it). The statements are sent at once, behind whatever the caller sent
/// before on the same transaction (the ingest path sends its row update with them: one round
/// trip).
pub async fn changed(
    tx: &Transaction<'_>,
    job_id: i64,
    transitions: &[Transition],
    from_seq: i64,
    to_seq: i64,
    finished: bool,
) -> Result<(), AppError> {
    // Prepared once per connection (this runs for every batch of every job), then sent together:
    // the three are independent, so one round trip serves them all.
    let elapsed = tx
        .prepare_cached(
            "update jobs set elapsed = extract(epoch from finished - started)
              where id = $1 and finished is not null and started is not null",
        )
        .await?;
    let history = tx
        .prepare_cached(
            "insert into job_status_history (job_id, status, previous, by) values ($1, $2, $3, $4)",
        )
        .await?;
    let statuses: Vec<(&str, Option<&str>)> =
        transitions.iter().map(|t| (t.status.as_str(), t.previous.map(|p| p.as_str()))).collect();
    let params: Vec<[&(dyn ToSql + Sync); 4]> = transitions
        .iter()
        .zip(&statuses)
        .map(|(t, (status, previous))| [&job_id as &(dyn ToSql + Sync), status, previous, &t.by])
        .collect();
    let inserts = params.iter().map(|p| tx.execute(&history, p));
    let (_, _, ()) = tokio::try_join!(
        async {
            // Only an ended job's row has both times; a running one's update would change nothing.
            if finished {
                tx.execute(&elapsed, &[&job_id]).await?;
            }
            Ok::<_, AppError>(())
        },
        async { Ok::<_, AppError>(futures_util::future::try_join_all(inserts).await?) },
        crate::live::notify(tx, job_id, from_seq, to_seq, !transitions.is_empty())
    )?;
    Ok(())
}
