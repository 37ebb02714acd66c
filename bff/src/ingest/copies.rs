//! One copy of each event when a controller job's events come twice: from Playdeck's callback
//! plugin inside the controller's execution environment (`"provisional": true`,
//! `Origin::StandIn`) and from the controller itself (the sync and AAP's external logging,
//! `Origin::Controller`). The two copies number their events differently (the controller counts
//! runner's events, display-only ones included; the plugin counts its own), so the counter cannot
//! tell them apart.
//!
//! The matching rule: both copies come from the same callbacks of the same `ansible-playbook`
//! process, called in the same order. An event's key is what both copies carry of it: its type,
//! and for a host's result or start the task's uuid and the host, for a task's start the task's
//! uuid, for other playbook events the play's uuid (`playbook_on_start` and `playbook_on_stats`
//! are their type alone). Its number `n` is how many events of the same copy with the same key
//! came before it in that copy's counter order (a loop's items, `until` retries). Two events of
//! the two copies with the same key and number are one event.
//!
//! - The plugin's event comes first: it is stored, `provisional`, with the counter
//!   `PROVISIONAL` + its own counter (so it never takes a counter the controller's copy will use,
//!   and sorts after every event the controller's copy has brought so far). When the controller's
//!   copy comes, it replaces the row in place: the controller's counter, uuids, output, line
//!   numbers and data, the same `seq` (a follower's cursor does not move, nothing is sent twice).
//! - The controller's event comes first: the plugin's copy is a duplicate; the row notes the
//!   plugin's counter, so a resent plugin batch is a duplicate as well.
//!
//! Limits: events only the controller has (runner's `verbose`, warnings) are added in arrival
//! order, so a live view shows them where they arrive, and a reload in their place. Events that
//! carry no key (types other than `runner_*` and `playbook_on_*`) are never matched. A copy whose
//! events arrive out of their own order can number an event wrongly (each copy is read in order:
//! the plugin sends its batches one after the other, the sync reads pages in counter order).

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use crate::infra::error::AppError;
use crate::store::events::Event;

/// Counters of provisional events start above this; AWX's and the plugin's stay below it.
pub const PROVISIONAL: i64 = 1_000_000_000;

/// What both copies carry of an event; `None` for events only one copy has.
pub(super) fn key(e: &Event) -> Option<String> {
    let kind = e.event.as_str();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    if kind.starts_with("runner_") {
        Some(format!("{kind}\n{}\n{}", s(&e.task_uuid), s(&e.host)))
    } else if matches!(kind, "playbook_on_start" | "playbook_on_stats") {
        Some(kind.to_string())
    } else if kind.ends_with("_task_start") {
        Some(format!("{kind}\n{}", s(&e.task_uuid)))
    } else if kind.starts_with("playbook_on_") {
        Some(format!("{kind}\n{}", s(&e.play_uuid)))
    } else {
        None
    }
}

/// Each event's key and number in its copy (see the module's rule); `events` are one copy's,
/// not stored yet, in counter order.
pub(super) async fn number(
    tx: &Transaction<'_>,
    job_id: i64,
    stand_in: bool,
    events: &[&Event],
) -> Result<Vec<Option<(String, i32)>>, AppError> {
    let keys: Vec<Option<String>> = events.iter().map(|e| key(e)).collect();
    let mut wanted: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    // Where this copy's stored events of these keys are in its own order: the controller's
    // counter, or the plugin's.
    let sql = if stand_in {
        "select match_key, plugin_counter from job_events
          where job_id = $1 and match_key = any($2) and plugin_counter is not null"
    } else {
        "select match_key, counter from job_events
          where job_id = $1 and match_key = any($2) and not provisional"
    };
    let mut before: HashMap<String, Vec<i64>> = HashMap::new();
    if !wanted.is_empty() {
        for r in tx.query(&tx.prepare_cached(sql).await?, &[&job_id, &wanted]).await? {
            before.entry(r.get(0)).or_default().push(r.get(1));
        }
    }
    let mut in_batch: HashMap<&str, i32> = HashMap::new();
    Ok(events
        .iter()
        .zip(&keys)
        .map(|(e, k)| {
            let k = k.as_deref()?;
            let stored = before.get(k).map(|c| c.iter().filter(|c| **c < e.counter).count()).unwrap_or(0);
            let earlier = in_batch.entry(k).or_insert(0);
            let n = stored as i32 + *earlier;
            *earlier += 1;
            Some((k.to_string(), n))
        })
        .collect())
}

/// The stored events of the other copy with these keys and numbers that this copy's event has
/// not reached yet: for the controller's copy, the plugin's provisional events; for the plugin's,
/// the controller's events without a plugin copy. Answers (key, n) → (seq, counter).
pub(super) async fn partners(
    tx: &Transaction<'_>,
    job_id: i64,
    stand_in: bool,
    numbered: &[&(String, i32)],
) -> Result<HashMap<(String, i32), (i64, i64)>, AppError> {
    if numbered.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<&str> = numbered.iter().map(|(k, _)| k.as_str()).collect();
    let ns: Vec<i32> = numbered.iter().map(|(_, n)| *n).collect();
    let other = if stand_in { "not e.provisional and e.plugin_counter is null" } else { "e.provisional" };
    let sql = format!(
        "select e.match_key, e.match_n, e.seq, e.counter
           from job_events e join unnest($2::text[], $3::int[]) as u(k, n)
             on e.match_key = u.k and e.match_n = u.n
          where e.job_id = $1 and {other}"
    );
    let rows = tx.query(&tx.prepare_cached(&sql).await?, &[&job_id, &keys, &ns]).await?;
    Ok(rows.iter().map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3)))).collect())
}

/// The controller's copies of provisional events: each row takes the controller's counter,
/// uuids, output, line numbers and data, keeps its `seq`, and is no longer provisional. The
/// failures the knowledge base recorded for it follow its counter.
pub(super) async fn replace(
    tx: &Transaction<'_>,
    job_id: i64,
    pairs: &[(i64, i64, &Event)],
) -> Result<(), AppError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = pairs.iter().map(|(seq, _, _)| *seq).collect();
    let old: Vec<i64> = pairs.iter().map(|(_, old, _)| *old).collect();
    let counters: Vec<i64> = pairs.iter().map(|(_, _, e)| e.counter).collect();
    let uuids: Vec<Option<&str>> = pairs.iter().map(|(_, _, e)| e.uuid.as_deref()).collect();
    let parents: Vec<Option<&str>> = pairs.iter().map(|(_, _, e)| e.parent_uuid.as_deref()).collect();
    let created: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        pairs.iter().map(|(_, _, e)| e.created).collect();
    let stdout: Vec<&str> = pairs.iter().map(|(_, _, e)| e.stdout.as_str()).collect();
    let starts: Vec<i64> = pairs.iter().map(|(_, _, e)| e.start_line).collect();
    let ends: Vec<i64> = pairs.iter().map(|(_, _, e)| e.end_line).collect();
    let failed: Vec<bool> = pairs.iter().map(|(_, _, e)| e.failed).collect();
    let changed: Vec<bool> = pairs.iter().map(|(_, _, e)| e.changed).collect();
    let data: Vec<String> = pairs
        .iter()
        .map(|(_, _, e)| match &e.raw_data {
            Some(raw) => raw.get().to_string(),
            None => e.event_data.to_string(),
        })
        .collect();
    let update = tx
        .prepare_cached(
            "update job_events e set
                 counter = v.counter, uuid = v.uuid, parent_uuid = v.parent_uuid,
                 created = coalesce(v.created, e.created), stdout = v.stdout,
                 start_line = v.start_line, end_line = v.end_line, failed = v.failed,
                 changed = v.changed, event_data = v.data::jsonb, provisional = false
               from unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[],
                           $7::text[], $8::bigint[], $9::bigint[], $10::bool[], $11::bool[], $12::text[])
                    as v(seq, counter, uuid, parent_uuid, created, stdout, start_line, end_line,
                         failed, changed, data)
              where e.job_id = $1 and e.seq = v.seq",
        )
        .await?;
    tx.execute(
        &update,
        &[
            &job_id, &seqs, &counters, &uuids, &parents, &created, &stdout, &starts, &ends, &failed,
            &changed, &data,
        ],
    )
    .await?;
    let failures = tx
        .prepare_cached(
            "update job_failures f set counter = v.new
               from unnest($2::bigint[], $3::bigint[]) as v(old, new)
              where f.job_id = $1 and f.counter = v.old",
        )
        .await?;
    tx.execute(&failures, &[&job_id, &old, &counters]).await?;
    Ok(())
}

/// The plugin's copies of events the controller's copy brought already: noted on the rows, so
/// the same plugin events sent again are duplicates too.
pub(super) async fn note_plugin_copies(
    tx: &Transaction<'_>,
    job_id: i64,
    pairs: &[(i64, i64)],
) -> Result<(), AppError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = pairs.iter().map(|(seq, _)| *seq).collect();
    let plugin: Vec<i64> = pairs.iter().map(|(_, c)| *c).collect();
    let update = tx
        .prepare_cached(
            "update job_events e set plugin_counter = v.plugin
               from unnest($2::bigint[], $3::bigint[]) as v(seq, plugin)
              where e.job_id = $1 and e.seq = v.seq",
        )
        .await?;
    tx.execute(&update, &[&job_id, &seqs, &plugin]).await?;
    Ok(())
}
