//! Writing one checked batch, in one transaction, as named steps: lock (or create) the job's row,
//! insert the events that are new, add to the hosts' counts, record the failures the knowledge
//! base knows, move the status, update the row, and hand the rest to the job writer (elapsed,
//! history, the live relay's notice).

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::{IngestJob, IngestResult, JobStatus};
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

use super::delta::{host_deltas, job_delta, JobDelta};
use super::Prepared;
use crate::infra::error::AppError;
use crate::infra::state::App;
use crate::store::events::Event;
use crate::writer::{self, Transition};

const INSERT_EVENTS: &str = "
    with input as (
        select * from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                             $12::bigint[], $13::bigint[], $14::bool[], $15::bool[], $16::jsonb[])
            as t(counter, event, uuid, parent_uuid, created, host, play, task, role, stdout,
                 start_line, end_line, failed, changed, event_data)
    ), fresh as (
        -- The job row is locked by this transaction, so no other batch of this job can insert
        -- between this check and the insert.
        select i.* from input i
         where not exists (select 1 from job_events e where e.job_id = $1 and e.counter = i.counter)
    )
    insert into job_events (job_id, seq, counter, event, uuid, parent_uuid, created, host, play, task,
                            role, stdout, start_line, end_line, failed, changed, event_data)
    select $1, $17 + row_number() over (order by counter), counter, event, uuid, parent_uuid, created,
           host, play, task, role, stdout, start_line, end_line, failed, changed, event_data
      from fresh
    returning counter";

/// A host's outcome counts, in `job_hosts` and in the upsert's parameters.
const HOST_COUNTS: [&str; 7] = ["ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"];

/// Adds a batch's counts to each host's, unless Ansible's final summary (`playbook_on_stats`)
/// came: that replaces them and stays.
static UPSERT_HOSTS: LazyLock<String> = LazyLock::new(|| {
    let counts: Vec<String> = HOST_COUNTS
        .iter()
        .map(|c| {
            format!(
                "{c} = case when excluded.final_summary then excluded.{c}
                            when job_hosts.final_summary then job_hosts.{c}
                            else job_hosts.{c} + excluded.{c} end"
            )
        })
        .collect();
    format!(
        "insert into job_hosts (job_id, host, {columns}, last_task, last_counter, final_summary)
         select $1, * from unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
                                  $8::int[], $9::int[], $10::text[], $11::bigint[], $12::bool[])
         on conflict (job_id, host) do update set
             {counts},
             last_task = case when excluded.last_counter > job_hosts.last_counter
                              then excluded.last_task else job_hosts.last_task end,
             last_counter = greatest(job_hosts.last_counter, excluded.last_counter),
             final_summary = job_hosts.final_summary or excluded.final_summary",
        columns = HOST_COUNTS.join(", "),
        counts = counts.join(",\n             ")
    )
});

/// Writes a prepared batch in one transaction and sends one notification.
pub(super) async fn write(app: &App, batch: Prepared) -> Result<IngestResult, AppError> {
    let Prepared { source, job, events, repeated_in_batch } = batch;
    let mut client = app.pool.get().await?;
    let tx = client.transaction().await?;

    let locked = lock_job(&tx, &source, &job.external_id).await?;
    let mut history = Vec::new();
    if locked.inserted {
        history.push(Transition { status: JobStatus::New, previous: None, by: format!("source {source}") });
    }
    let fresh_counters = insert_events(&tx, &locked, &events).await?;
    let fresh: Vec<&Event> = events.iter().filter(|e| fresh_counters.contains(&e.counter)).collect();
    let accepted = fresh.len() as i64;
    let duplicates = events.len() as i64 - accepted + repeated_in_batch;

    add_host_counts(&tx, locked.id, &fresh).await?;
    crate::kb::record_failures(&tx, locked.id, &fresh).await?;

    let delta = job_delta(&fresh, locked.status, locked.explicit || job.status.is_some());
    let status = next_status(&locked, &job, &delta, &source, &mut history);
    update_details(&tx, locked.id, &job).await?;
    let (new_seq, change) = update_job(&tx, locked.id, &job, status, &delta, accepted).await?;
    writer::changed(&tx, locked.id, &history, locked.last_seq, new_seq, change).await?;
    tx.commit().await?;
    Ok(IngestResult { job_id: locked.id, accepted, duplicates })
}

/// The job's row, locked for the rest of the transaction.
struct Locked {
    id: i64,
    status: JobStatus,
    /// The source states the status itself; events no longer move it.
    explicit: bool,
    last_seq: i64,
    /// Created by this batch.
    inserted: bool,
}

/// Locks the job's row (creating it if new): batches of one job are serialised, which is what
/// makes `seq` a gap-free arrival order. Not an upsert, which would use up a job id from the
/// sequence on every batch of an existing job.
async fn lock_job(tx: &Transaction<'_>, source: &str, external_id: &str) -> Result<Locked, AppError> {
    const LOCK_JOB: &str = "select id, status, status_explicit, last_seq from jobs
                             where source = $1 and external_id = $2 for update";
    let (row, inserted) = match tx.query_opt(LOCK_JOB, &[&source, &external_id]).await? {
        Some(row) => (row, false),
        None => match tx
            .query_opt(
                "insert into jobs (source, external_id) values ($1, $2) on conflict do nothing
                 returning id, status, status_explicit, last_seq",
                &[&source, &external_id],
            )
            .await?
        {
            Some(row) => (row, true),
            // Another batch of the same new job got there first; its insert is committed now.
            None => (tx.query_one(LOCK_JOB, &[&source, &external_id]).await?, false),
        },
    };
    Ok(Locked {
        id: row.get(0),
        status: JobStatus::parse(row.get(1)).unwrap_or(JobStatus::New),
        explicit: row.get(2),
        last_seq: row.get(3),
        inserted,
    })
}

/// Inserts the events not stored yet, numbered on from the job's last `seq`; answers their counters.
async fn insert_events(
    tx: &Transaction<'_>,
    job: &Locked,
    events: &[Event],
) -> Result<HashSet<i64>, AppError> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let col = |f: fn(&Event) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
    let counters: Vec<i64> = events.iter().map(|e| e.counter).collect();
    let names: Vec<String> = events.iter().map(|e| e.event.clone()).collect();
    let created: Vec<Option<DateTime<Utc>>> = events.iter().map(|e| e.created).collect();
    let stdout: Vec<String> = events.iter().map(|e| e.stdout.clone()).collect();
    let start: Vec<i64> = events.iter().map(|e| e.start_line).collect();
    let end: Vec<i64> = events.iter().map(|e| e.end_line).collect();
    let failed: Vec<bool> = events.iter().map(|e| e.failed).collect();
    let changed: Vec<bool> = events.iter().map(|e| e.changed).collect();
    let data: Vec<Value> = events.iter().map(|e| e.event_data.clone()).collect();
    let rows = tx
        .query(
            INSERT_EVENTS,
            &[
                &job.id,
                &counters,
                &names,
                &col(|e| e.uuid.clone()),
                &col(|e| e.parent_uuid.clone()),
                &created,
                &col(|e| e.host.clone()),
                &col(|e| e.play.clone()),
                &col(|e| e.task.clone()),
                &col(|e| e.role.clone()),
                &stdout,
                &start,
                &end,
                &failed,
                &changed,
                &data,
                &job.last_seq,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Adds what the new events say to each host's counts (or sets Ansible's final summary).
async fn add_host_counts(tx: &Transaction<'_>, job_id: i64, fresh: &[&Event]) -> Result<(), AppError> {
    let hosts = host_deltas(fresh);
    if hosts.is_empty() {
        return Ok(());
    }
    let mut names = Vec::new();
    let mut counts: [Vec<i32>; 7] = Default::default();
    let (mut last_task, mut last_counter, mut is_final) = (Vec::new(), Vec::new(), Vec::new());
    for (name, h) in hosts {
        names.push(name);
        for (i, v) in
            [h.ok, h.changed, h.failures, h.dark, h.skipped, h.rescued, h.ignored].into_iter().enumerate()
        {
            counts[i].push(v);
        }
        last_task.push(h.last_task);
        last_counter.push(h.last_counter);
        is_final.push(h.is_final);
    }
    let [ok, changed, failures, dark, skipped, rescued, ignored] = &counts;
    tx.execute(
        UPSERT_HOSTS.as_str(),
        &[
            &job_id,
            &names,
            ok,
            changed,
            failures,
            dark,
            skipped,
            rescued,
            ignored,
            &last_task,
            &last_counter,
            &is_final,
        ],
    )
    .await?;
    Ok(())
}

/// The status after this batch: the source's word when it gives one, else where the events move
/// it. Each change is added to `history`.
fn next_status(
    locked: &Locked,
    job: &IngestJob,
    delta: &JobDelta,
    source: &str,
    history: &mut Vec<Transition>,
) -> JobStatus {
    let current = locked.status;
    let mut status = current;
    if let Some(given) = job.status {
        if given != current {
            status = given;
            history.push(Transition {
                status: given,
                previous: Some(current),
                by: format!("source {source}"),
            });
        }
    } else {
        for (st, by) in &delta.statuses {
            history.push(Transition { status: *st, previous: Some(status), by: by.clone() });
            status = *st;
        }
    }
    status
}

/// What the source says about the job beyond its events (name, template, inventory, …); kept
/// when a later batch leaves them out.
async fn update_details(tx: &Transaction<'_>, job_id: i64, job: &IngestJob) -> Result<(), AppError> {
    let details = [
        &job.name,
        &job.template,
        &job.inventory,
        &job.project,
        &job.launched_by,
        &job.limit,
        &job.scm_revision,
    ];
    if details.iter().all(|v| v.is_none()) {
        return Ok(());
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&job_id];
    params.extend(details.iter().map(|d| *d as &(dyn ToSql + Sync)));
    tx.execute(
        "update jobs set
             name = coalesce($2, name),
             template = coalesce($3, template),
             inventory = coalesce($4, inventory),
             project = coalesce($5, project),
             launched_by = coalesce($6, launched_by),
             \"limit\" = coalesce($7, \"limit\"),
             scm_revision = coalesce($8, scm_revision)
          where id = $1",
        &params,
    )
    .await?;
    Ok(())
}

/// The row's progress: status, times, current play and task, counts, `last_seq`, the hosts'
/// outcome counts, and a new `change_seq`. Answers (last_seq, change_seq).
async fn update_job(
    tx: &Transaction<'_>,
    job_id: i64,
    job: &IngestJob,
    status: JobStatus,
    delta: &JobDelta,
    accepted: i64,
) -> Result<(i64, i64), AppError> {
    let finished_now = status.is_finished().then(|| delta.finished.unwrap_or_else(Utc::now));
    let (cur_counter, cur_play, cur_task) = match &delta.current {
        Some((c, p, t)) => (*c, p.clone(), t.clone()),
        None => (0, None, None),
    };
    let row = tx
        .query_one(
            "with counts as (
                 select count(*) filter (where failures > 0) as failed,
                        count(*) filter (where failures = 0 and dark > 0) as unreachable,
                        count(*) filter (where failures = 0 and dark = 0 and changed > 0) as changed,
                        count(*) filter (where failures = 0 and dark = 0 and changed = 0 and ok > 0) as ok,
                        count(*) filter (where failures = 0 and dark = 0 and changed = 0 and ok = 0
                                           and skipped > 0) as skipped
                   from job_hosts where job_id = $1
             )
             update jobs set
                 status = $2,
                 status_explicit = status_explicit or $3,
                 started = case when $12::timestamptz is not null then $12
                                when $2 in ('new', 'pending', 'waiting') then started
                                else coalesce(least(started, $4), $4, started, now()) end,
                 finished = case when $2 in ('successful', 'failed', 'error', 'canceled')
                                 then coalesce($13, finished, $5) else null end,
                 explanation = coalesce($14, explanation),
                 current_play = case when $6 > current_counter then $7 else current_play end,
                 current_task = case when $6 > current_counter then $8 else current_task end,
                 current_counter = greatest(current_counter, $6),
                 plays = plays + $9,
                 tasks = tasks + $10,
                 event_count = event_count + $11,
                 last_seq = last_seq + $11,
                 hosts_ok = counts.ok, hosts_changed = counts.changed, hosts_failed = counts.failed,
                 hosts_skipped = counts.skipped, hosts_unreachable = counts.unreachable,
                 change_seq = nextval('job_change_seq'),
                 modified = now()
               from counts
              where id = $1
             returning last_seq, change_seq",
            &[
                &job_id,
                &status.as_str(),
                &job.status.is_some(),
                &delta.earliest,
                &finished_now,
                &cur_counter,
                &cur_play,
                &cur_task,
                &delta.plays,
                &delta.tasks,
                &accepted,
                &job.started,
                &job.finished,
                &job.explanation,
            ],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
