//! Writing one checked batch, in one transaction, as named steps: lock (or create) the job's row,
//! insert the events that are new, add to the hosts' counts, record the failures the knowledge
//! base knows, move the status, update the row, and hand the rest to the job writer (elapsed,
//! history, the live relay's notice).

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::Utc;
use deadpool_postgres::Transaction;
use shared::{IngestJob, IngestResult, JobStatus};
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::Statement;

use super::delta::{host_deltas, job_delta, JobDelta};
use super::{copies, Origin, Prepared};
use crate::infra::copy::CopyWriter;
use crate::infra::error::AppError;
use crate::infra::state::App;
use crate::store::events::Event;
use crate::writer::{self, Transition};

/// The new events go in by binary COPY, straight into `job_events`, as fast as PostgreSQL takes
/// rows: the job's row is locked, so which counters are stored and the next `seq` cannot change
/// until this transaction ends.
const COPY_EVENTS: &str =
    "copy job_events (job_id, seq, counter, event, uuid, parent_uuid, created, host, play,
                           task, role, stdout, start_line, end_line, failed, changed, event_data,
                           match_key, match_n, plugin_counter, provisional)
                      from stdin (format binary)";
const COPY_TYPES: [Type; 21] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::BOOL,
    Type::JSONB,
    Type::TEXT,
    Type::INT4,
    Type::INT8,
    Type::BOOL,
];

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
    let Prepared { source, job, origin, mut events, repeated_in_batch } = batch;
    let mut client = app.pool.get().await?;
    let tx = client.transaction().await?;

    let (locked, stored) = lock_job(&tx, &source, &job.external_id, origin, &events).await?;
    let mut history = Vec::new();
    if locked.inserted {
        history.push(Transition { status: JobStatus::New, previous: None, by: format!("source {source}") });
    }
    let written = insert_events(&tx, &locked, origin, &stored, &mut events).await?;
    let fresh: Vec<&Event> = written.inserted.iter().map(|i| &events[*i]).collect();
    let accepted = fresh.len() as i64;
    let duplicates = events.len() as i64 - accepted - written.replaced + repeated_in_batch;

    crate::kb::record_failures(&tx, locked.id, &fresh).await?;

    let delta = job_delta(&fresh, locked.status, locked.explicit || job.status.is_some());
    let status = next_status(&locked, &job, &delta, &source, &mut history);
    // The hosts' counts and the job's row are sent together (one round trip) and run in this
    // order, as the row's counts read the hosts': both statements are prepared first, so
    // neither waits for its own preparation while the other goes ahead.
    let upsert = tx.prepare_cached(UPSERT_HOSTS.as_str()).await?;
    let update = tx.prepare_cached(UPDATE_JOB).await?;
    // The row is locked, so its new `last_seq` is known before the update answers: the writer's
    // statements (elapsed, history, the relay's notice) go in the same round trip, behind it.
    let new_seq = locked.last_seq + accepted;
    let ((), stored_seq, ()) = tokio::try_join!(
        add_host_counts(&tx, &upsert, locked.id, &fresh),
        update_job(&tx, &update, locked.id, &job, status, &delta, accepted),
        writer::changed(&tx, locked.id, &history, locked.last_seq, new_seq, status.is_finished())
    )?;
    debug_assert_eq!(stored_seq, new_seq, "the locked row's last_seq moved");
    drop(fresh);
    tx.commit().await?;
    hand_to_relay(app, locked.id, locked.last_seq, events, &written.inserted);
    Ok(IngestResult { job_id: locked.id, accepted: accepted + written.replaced, duplicates })
}

/// Gives the live relay the committed batch as it is stored, when someone here follows the job,
/// so that the relay need not read it back (`live::Written`). The events are moved, not copied:
/// the batch is done with them. `inserted` are ascending indices, in seq order.
fn hand_to_relay(app: &App, job_id: i64, last_seq: i64, events: Vec<Event>, inserted: &[usize]) {
    let hub = crate::live::Hub::of(app);
    if inserted.is_empty() || !hub.is_followed(job_id) {
        return;
    }
    let mut wanted = inserted.iter().peekable();
    let mut stored = Vec::with_capacity(inserted.len());
    for (i, e) in events.into_iter().enumerate() {
        if wanted.next_if_eq(&&i).is_none() {
            continue;
        }
        // Data only PostgreSQL's read would give back faithfully is left to that read.
        let Some(event) = e.into_stored(job_id, last_seq + 1 + stored.len() as i64) else { return };
        stored.push(event);
    }
    hub.written.put(job_id, last_seq, last_seq + stored.len() as i64, stored);
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
/// sequence on every batch of an existing job. Answers the row and which of the batch's counters
/// are stored already (`Stored`), read in the same round trip behind the lock: it runs once the
/// lock is held, so it sees every batch of the job committed before this one.
async fn lock_job(
    tx: &Transaction<'_>,
    source: &str,
    external_id: &str,
    origin: Origin,
    events: &[Event],
) -> Result<(Locked, HashSet<i64>), AppError> {
    const LOCK_JOB: &str = "select id, status, status_explicit, last_seq from jobs
                             where source = $1 and external_id = $2 for update";
    let stored = Stored::of(origin, events);
    // Both prepared first, so that the lock is sent before the read.
    let lock = tx.prepare_cached(LOCK_JOB).await?;
    let by_key = match &stored {
        Some(s) => Some(tx.prepare_cached(&s.sql(BY_KEY)).await?),
        None => None,
    };
    let job_key: [&(dyn ToSql + Sync); 2] = [&source, &external_id];
    let (row, rows) = tokio::try_join!(tx.query_opt(&lock, &job_key), async {
        match (&stored, &by_key) {
            (Some(s), Some(st)) => tx.query(st, &s.params(&job_key)).await,
            _ => Ok(Vec::new()),
        }
    })?;
    if let Some(row) = row {
        return Ok((Locked::from_row(&row, false), counters(&rows)));
    }
    let inserted = tx
        .query_opt(
            &tx.prepare_cached(
                "insert into jobs (source, external_id) values ($1, $2) on conflict do nothing
                 returning id, status, status_explicit, last_seq",
            )
            .await?,
            &job_key,
        )
        .await?;
    if let Some(row) = inserted {
        // A new job: nothing of it is stored.
        return Ok((Locked::from_row(&row, true), HashSet::new()));
    }
    // Another batch of the same new job got there first; its insert is committed now, and so
    // may be its events: read them again, behind the lock.
    let locked = Locked::from_row(&tx.query_one(&lock, &job_key).await?, false);
    let rows = match &stored {
        Some(s) => {
            let id: [&(dyn ToSql + Sync); 1] = [&locked.id];
            tx.query(&tx.prepare_cached(&s.sql(BY_ID)).await?, &s.params(&id)).await?
        }
        None => Vec::new(),
    };
    Ok((locked, counters(&rows)))
}

impl Locked {
    fn from_row(row: &tokio_postgres::Row, inserted: bool) -> Locked {
        Locked {
            id: row.get(0),
            status: JobStatus::parse(row.get(1)).unwrap_or(JobStatus::New),
            explicit: row.get(2),
            last_seq: row.get(3),
            inserted,
        }
    }
}

/// The job in `Stored`'s read: by its source's key (`$1`, `$2`), or by id (`$1`).
const BY_KEY: &str = "(select id from jobs where source = $1 and external_id = $2)";
const BY_ID: &str = "$1";

/// How to read which of a batch's counters are stored. Counters come ascending and mostly dense
/// (a plugin's batch is the next run of them), so one range of the primary key answers in one
/// index descent; a sparse batch asks for its counters one by one. The plugin's copy is told
/// apart by the plugin's own counters.
enum Stored {
    Range(i64, i64),
    Each(&'static str, Vec<i64>),
}

impl Stored {
    fn of(origin: Origin, events: &[Event]) -> Option<Stored> {
        let (first, last) = (events.first()?, events.last()?);
        let counters = || events.iter().map(|e| e.counter).collect();
        Some(if origin == Origin::StandIn {
            Stored::Each("plugin_counter", counters())
        } else if last.counter - first.counter < 4 * events.len() as i64 {
            Stored::Range(first.counter, last.counter)
        } else {
            Stored::Each("counter", counters())
        })
    }

    fn sql(&self, job: &str) -> String {
        // The first parameter after the job's.
        let n = if job == BY_ID { 2 } else { 3 };
        match self {
            Stored::Range(..) => format!(
                "select counter from job_events where job_id = {job} and counter between ${n} and ${}",
                n + 1
            ),
            Stored::Each(column, _) => {
                format!("select {column} from job_events where job_id = {job} and {column} = any(${n})")
            }
        }
    }

    fn params<'a>(&'a self, job: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut p = job.to_vec();
        match self {
            Stored::Range(low, high) => p.extend([low as &(dyn ToSql + Sync), high]),
            Stored::Each(_, counters) => p.push(counters),
        }
        p
    }
}

fn counters(rows: &[tokio_postgres::Row]) -> HashSet<i64> {
    rows.iter().map(|r| r.get(0)).collect()
}

/// What `insert_events` did with a batch.
struct Written {
    /// The events stored as new rows (indices into the batch).
    inserted: Vec<usize>,
    /// Provisional events the controller's copy replaced (see `copies`).
    replaced: i64,
}

/// Inserts the events not stored yet, numbered on from the job's last `seq` in counter order.
/// A copy of a controller job's events is matched against the other copy first (`copies`): the
/// controller's replaces the plugin's provisional events, the plugin's is a duplicate of the
/// controller's; the plugin's events stored are given their provisional counters.
async fn insert_events(
    tx: &Transaction<'_>,
    job: &Locked,
    origin: Origin,
    stored: &HashSet<i64>,
    events: &mut [Event],
) -> Result<Written, AppError> {
    let mut written = Written { inserted: Vec::new(), replaced: 0 };
    if events.is_empty() {
        return Ok(written);
    }
    let stand_in = origin == Origin::StandIn;
    let fresh: Vec<usize> = (0..events.len()).filter(|i| !stored.contains(&events[*i].counter)).collect();
    if fresh.is_empty() {
        return Ok(written);
    }
    // Keys and numbers, and the other copy's events they match.
    let mut keys: Vec<Option<(String, i32)>> = vec![None; fresh.len()];
    let mut matched: Vec<Option<(i64, i64)>> = vec![None; fresh.len()];
    if origin != Origin::Sole {
        let batch: Vec<&Event> = fresh.iter().map(|i| &events[*i]).collect();
        keys = copies::number(tx, job.id, stand_in, &batch).await?;
        let numbered: Vec<&(String, i32)> = keys.iter().flatten().collect();
        let found = copies::partners(tx, job.id, stand_in, &numbered).await?;
        matched = keys.iter().map(|k| k.as_ref().and_then(|k| found.get(k).copied())).collect();
        if stand_in {
            let pairs: Vec<(i64, i64)> = fresh
                .iter()
                .zip(&matched)
                .filter_map(|(i, m)| m.map(|(seq, _)| (seq, events[*i].counter)))
                .collect();
            copies::note_plugin_copies(tx, job.id, &pairs).await?;
        } else {
            let pairs: Vec<(i64, i64, &Event)> = fresh
                .iter()
                .zip(&matched)
                .filter_map(|(i, m)| m.map(|(seq, old)| (seq, old, &events[*i])))
                .collect();
            copies::replace(tx, job.id, &pairs).await?;
            written.replaced = pairs.len() as i64;
        }
    }
    let new: Vec<(usize, Option<(String, i32)>)> = fresh
        .iter()
        .zip(keys)
        .zip(&matched)
        .filter(|(_, m)| m.is_none())
        .map(|((i, k), _)| (*i, k))
        .collect();
    if new.is_empty() {
        return Ok(written);
    }
    // Prepared once per connection, like every statement here: a round trip less per batch.
    let sink = tx.copy_in(&tx.prepare_cached(COPY_EVENTS).await?).await?;
    let mut writer = CopyWriter::new(sink, &COPY_TYPES);
    // `events` are in counter order, so `seq` follows it, as when they come one batch at a time.
    for (seq, (i, key)) in (job.last_seq + 1..).zip(&new) {
        let e = &mut events[*i];
        let plugin_counter = stand_in.then_some(e.counter);
        if stand_in {
            e.counter += copies::PROVISIONAL;
        }
        let (match_key, match_n) = match key {
            Some((k, n)) => (Some(k.as_str()), Some(*n)),
            None => (None, None),
        };
        let raw = e.raw_data.as_deref().map(Json);
        let data: &(dyn ToSql + Sync) = match &raw {
            Some(raw) => raw,
            None => &e.event_data,
        };
        writer
            .write(&[
                &job.id,
                &seq,
                &e.counter,
                &e.event,
                &e.uuid,
                &e.parent_uuid,
                &e.created,
                &e.host,
                &e.play,
                &e.task,
                &e.role,
                &e.stdout,
                &e.start_line,
                &e.end_line,
                &e.failed,
                &e.changed,
                data,
                &match_key,
                &match_n,
                &plugin_counter,
                &stand_in,
            ])
            .await?;
    }
    writer.finish().await?;
    written.inserted = new.into_iter().map(|(i, _)| i).collect();
    Ok(written)
}

/// Adds what the new events say to each host's counts (or sets Ansible's final summary).
async fn add_host_counts(
    tx: &Transaction<'_>,
    upsert: &Statement,
    job_id: i64,
    fresh: &[&Event],
) -> Result<(), AppError> {
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
        upsert,
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

/// See `update_job`.
const UPDATE_JOB: &str = "with counts as (
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
                 modified = greatest(modified, clock_timestamp()),
                 name = coalesce($15, name),
                 template = coalesce($16, template),
                 inventory = coalesce($17, inventory),
                 project = coalesce($18, project),
                 launched_by = coalesce($19, launched_by),
                 \"limit\" = coalesce($20, \"limit\"),
                 scm_revision = coalesce($21, scm_revision)
               from counts
              where id = $1
             returning last_seq";

/// The row's progress: status, times, current play and task, counts, `last_seq`, the hosts'
/// outcome counts, a new `change_seq`, and what the source says about the job beyond its events
/// (name, template, inventory, …; kept when a batch leaves them out): one update of the row per
/// batch. Answers the new `last_seq`. `modified` never goes back (see `writer::set_status`).
async fn update_job(
    tx: &Transaction<'_>,
    update: &Statement,
    job_id: i64,
    job: &IngestJob,
    status: JobStatus,
    delta: &JobDelta,
    accepted: i64,
) -> Result<i64, AppError> {
    let finished_now = status.is_finished().then(|| delta.finished.unwrap_or_else(Utc::now));
    let (cur_counter, cur_play, cur_task) = match &delta.current {
        Some((c, p, t)) => (*c, p.clone(), t.clone()),
        None => (0, None, None),
    };
    let row = tx
        .query_one(
            update,
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
                &job.name,
                &job.template,
                &job.inventory,
                &job.project,
                &job.launched_by,
                &job.limit,
                &job.scm_revision,
            ],
        )
        .await?;
    Ok(row.get(0))
}
