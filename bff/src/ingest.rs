//! The one ingest path every source goes through: a batch of one job's events, written in one
//! transaction, idempotent on (job, counter), followed by one notification for the live relay.

use std::collections::{BTreeMap, HashSet};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use shared::{IngestBatch, IngestJob, IngestResult, JobStatus};

use crate::infra::error::AppError;
use crate::infra::extract::read_body;
use crate::infra::state::{App, AppState};
use crate::store::events::Event;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", post(ingest_events))
}

async fn ingest_events(
    State(app): State<AppState>,
    client: crate::infra::security::ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResult>, AppError> {
    let result = async {
        crate::infra::auth::check_ingest_token(&app, &headers)?;
        if let Err(wait) = app.ingest_limit.check(&client.0) {
            return Err(AppError::TooManyRequests(wait));
        }
        let raw = read_body(&headers, body, app.config.ingest_max_bytes).await?;
        let prepared = parse_and_prepare(&raw)?;
        store(&app, prepared).await
    }
    .await;
    if let Err(e) = &result {
        app.metrics.inc("playdeck_ingest_rejected_total", &[("status", e.status().as_str())]);
    }
    Ok(Json(result?))
}

/// Reads and checks a request body: what the endpoint does before it touches the database.
pub fn parse_and_prepare(raw: &[u8]) -> Result<Prepared, AppError> {
    prepare(parse_batch(raw)?)
}

fn parse_batch(raw: &[u8]) -> Result<IngestBatch, AppError> {
    serde_json::from_slice::<IngestBatch>(raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => AppError::Unprocessable(format!("invalid batch: {e}")),
        _ => AppError::BadRequest(format!("the body is not valid JSON: {e}")),
    })
}

/// A checked batch, ready to store.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: String,
    pub job: IngestJob,
    /// Unique counters, ascending.
    pub events: Vec<Event>,
    /// Events whose counter appeared earlier in the same batch.
    pub repeated_in_batch: i64,
}

const MAX_NAME: usize = 1024;

/// Validates a batch and pulls out the indexed columns. Nothing is stored if any event is wrong,
/// and the error names the event and the field.
pub fn prepare(batch: IngestBatch) -> Result<Prepared, AppError> {
    let IngestBatch { source, mut job, events } = batch;
    let source = clean(source);
    if source.trim().is_empty() || source.chars().count() > 100 {
        return Err(AppError::Unprocessable("`source` must be 1 to 100 characters".into()));
    }
    job.external_id = clean(job.external_id);
    if job.external_id.trim().is_empty() || job.external_id.chars().count() > 200 {
        return Err(AppError::Unprocessable("`job.external_id` must be 1 to 200 characters".into()));
    }
    for (field, value) in [
        ("name", &mut job.name),
        ("template", &mut job.template),
        ("inventory", &mut job.inventory),
        ("project", &mut job.project),
        ("launched_by", &mut job.launched_by),
        ("limit", &mut job.limit),
        ("scm_revision", &mut job.scm_revision),
    ] {
        if let Some(v) = value.take() {
            if v.chars().count() > MAX_NAME {
                return Err(AppError::Unprocessable(format!(
                    "`job.{field}` is longer than {MAX_NAME} characters"
                )));
            }
            *value = Some(clean(v));
        }
    }
    job.explanation = job.explanation.map(clean);
    let mut by_counter: BTreeMap<i64, Event> = BTreeMap::new();
    let mut repeated = 0;
    for (i, raw) in events.into_iter().enumerate() {
        let ev = event_from_json(raw).map_err(|e| AppError::Unprocessable(format!("events[{i}]: {e}")))?;
        if let std::collections::btree_map::Entry::Vacant(e) = by_counter.entry(ev.counter) {
            e.insert(ev);
        } else {
            repeated += 1;
        }
    }
    Ok(Prepared { source, job, events: by_counter.into_values().collect(), repeated_in_batch: repeated })
}

/// PostgreSQL text and jsonb cannot hold NUL; an event carrying one is kept with U+FFFD instead
/// of being refused or failing the whole batch.
fn clean(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

fn clean_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(a) => Value::Array(a.into_iter().map(clean_value).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (clean(k), clean_value(v))).collect()),
        other => other,
    }
}

fn event_from_json(raw: Value) -> Result<Event, String> {
    let Value::Object(mut obj) = clean_value(raw) else {
        return Err("an event must be a JSON object".into());
    };
    let counter = match obj.get("counter") {
        Some(Value::Number(n)) => n.as_i64().filter(|c| *c >= 0),
        _ => None,
    }
    .ok_or("`counter` must be a non-negative integer")?;
    let event = match obj.get("event") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => s.clone(),
        _ => return Err("`event` must be a non-empty string (e.g. runner_on_ok)".into()),
    };
    let mut event_data = match obj.remove("event_data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(o)) => Value::Object(o),
        Some(_) => return Err("`event_data` must be an object".into()),
    };
    // Secrets never reach the database: passwords, tokens, keys, and no_log results.
    crate::infra::secrets::mask_secrets(&mut event_data);
    let data = event_data.as_object();
    let text = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    // AWX puts play/task/role/host beside event_data as well; its `host` there is a numeric id,
    // the name is `host_name`.
    let named = |key: &str| -> Option<String> {
        data.and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .or_else(|| obj.get(key).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let line = |key: &str| -> Result<i64, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("`{key}` must be an integer")),
            Some(_) => Err(format!("`{key}` must be an integer")),
        }
    };
    let created = match text("created")? {
        None => None,
        Some(s) => Some(parse_time(&s).ok_or_else(|| format!("`created` is not a timestamp: {s:?}"))?),
    };
    let ignore_errors = data.and_then(|d| d.get("ignore_errors")).and_then(Value::as_bool).unwrap_or(false);
    let failed = match obj.get("failed") {
        Some(Value::Bool(b)) => *b,
        _ => {
            matches!(
                event.as_str(),
                "runner_on_failed"
                    | "runner_item_on_failed"
                    | "runner_on_async_failed"
                    | "runner_on_unreachable"
            ) && !ignore_errors
        }
    };
    let changed = match obj.get("changed") {
        Some(Value::Bool(b)) => *b,
        _ => data
            .and_then(|d| d.get("res"))
            .and_then(|r| r.get("changed"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    Ok(Event {
        counter,
        uuid: text("uuid")?,
        parent_uuid: text("parent_uuid")?,
        created,
        host: named("host").or_else(|| named("host_name")).or_else(|| named("remote_addr")),
        play: named("play"),
        task: named("task"),
        role: named("role"),
        stdout: text("stdout")?.unwrap_or_default(),
        start_line: line("start_line")?,
        end_line: line("end_line")?,
        failed,
        changed,
        ignore_errors,
        event,
        event_data,
    })
}

/// RFC 3339, or ansible-runner's naive ISO time (UTC without an offset).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// Per-host changes a batch brings: rolling increments, or Ansible's final summary.
#[derive(Debug, Default, Clone)]
struct HostDelta {
    ok: i32,
    changed: i32,
    failures: i32,
    dark: i32,
    skipped: i32,
    rescued: i32,
    ignored: i32,
    last_task: Option<String>,
    last_counter: i64,
    is_final: bool,
}

fn host_deltas(events: &[&Event]) -> BTreeMap<String, HostDelta> {
    let mut hosts: BTreeMap<String, HostDelta> = BTreeMap::new();
    for ev in events {
        if ev.event == "playbook_on_stats" {
            let Some(data) = ev.event_data.as_object() else { continue };
            let stat = |key: &str, host: &str| -> i32 {
                data.get(key).and_then(|m| m.get(host)).and_then(Value::as_i64).unwrap_or(0) as i32
            };
            let mut names: HashSet<String> = HashSet::new();
            for key in ["ok", "changed", "dark", "failures", "skipped", "rescued", "ignored", "processed"] {
                if let Some(m) = data.get(key).and_then(Value::as_object) {
                    names.extend(m.keys().cloned());
                }
            }
            for name in names {
                let h = hosts.entry(name.clone()).or_default();
                h.ok = stat("ok", &name);
                h.changed = stat("changed", &name);
                h.dark = stat("dark", &name);
                h.failures = stat("failures", &name);
                h.skipped = stat("skipped", &name);
                h.rescued = stat("rescued", &name);
                h.ignored = stat("ignored", &name);
                h.is_final = true;
            }
            continue;
        }
        let Some(host) = &ev.host else { continue };
        let counts = matches!(
            ev.event.as_str(),
            "runner_on_ok" | "runner_on_failed" | "runner_on_skipped" | "runner_on_unreachable"
        );
        let h = hosts.entry(host.clone()).or_default();
        if ev.counter > h.last_counter && ev.task.is_some() {
            h.last_counter = ev.counter;
            h.last_task = ev.task.clone();
        }
        if !counts || h.is_final {
            continue;
        }
        match ev.event.as_str() {
            "runner_on_ok" => {
                h.ok += 1;
                h.changed += ev.changed as i32;
            }
            "runner_on_failed" if ev.ignore_errors => {
                h.ok += 1;
                h.ignored += 1;
            }
            "runner_on_failed" => h.failures += 1,
            "runner_on_skipped" => h.skipped += 1,
            "runner_on_unreachable" => h.dark += 1,
            _ => {}
        }
    }
    hosts
}

/// What the events of a batch say about the job.
#[derive(Debug, Default)]
struct JobDelta {
    /// Each status the events move the job through, with the event that did it.
    statuses: Vec<(JobStatus, String)>,
    earliest: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
    current: Option<(i64, Option<String>, Option<String>)>,
    plays: i32,
    tasks: i32,
}

fn job_delta(events: &[&Event], current: JobStatus, explicit: bool) -> JobDelta {
    let mut d = JobDelta::default();
    let mut status = current;
    for ev in events {
        if let Some(t) = ev.created {
            d.earliest = Some(d.earliest.map_or(t, |e| e.min(t)));
        }
        match ev.event.as_str() {
            "playbook_on_play_start" => {
                d.plays += 1;
                d.current = Some((ev.counter, ev.play.clone(), None));
            }
            "playbook_on_task_start" | "playbook_on_handler_task_start" => {
                d.tasks += 1;
                d.current = Some((ev.counter, ev.play.clone(), ev.task.clone()));
            }
            "playbook_on_stats" => {
                d.finished = ev.created.or_else(|| Some(Utc::now()));
            }
            _ => {}
        }
        if explicit {
            continue;
        }
        // Statuses only move forward: a late playbook_on_start never reopens a finished job.
        if ev.event == "playbook_on_stats" && !status.is_finished() {
            let data = ev.event_data.as_object();
            let any = |key: &str| {
                data.and_then(|d| d.get(key))
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.values().any(|v| v.as_i64().unwrap_or(0) > 0))
            };
            status = if any("failures") || any("dark") { JobStatus::Failed } else { JobStatus::Successful };
            d.statuses.push((status, format!("event {}", ev.event)));
        } else if matches!(status, JobStatus::New | JobStatus::Pending | JobStatus::Waiting)
            && ev.event != "playbook_on_stats"
        {
            status = JobStatus::Running;
            d.statuses.push((status, format!("event {}", ev.event)));
        }
    }
    d
}

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

const UPSERT_HOSTS: &str = "
    insert into job_hosts (job_id, host, ok, changed, failures, dark, skipped, rescued, ignored,
                           last_task, last_counter, final_summary)
    select $1, * from unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
                             $8::int[], $9::int[], $10::text[], $11::bigint[], $12::bool[])
    on conflict (job_id, host) do update set
        ok       = case when excluded.final_summary then excluded.ok
                        when job_hosts.final_summary then job_hosts.ok
                        else job_hosts.ok + excluded.ok end,
        changed  = case when excluded.final_summary then excluded.changed
                        when job_hosts.final_summary then job_hosts.changed
                        else job_hosts.changed + excluded.changed end,
        failures = case when excluded.final_summary then excluded.failures
                        when job_hosts.final_summary then job_hosts.failures
                        else job_hosts.failures + excluded.failures end,
        dark     = case when excluded.final_summary then excluded.dark
                        when job_hosts.final_summary then job_hosts.dark
                        else job_hosts.dark + excluded.dark end,
        skipped  = case when excluded.final_summary then excluded.skipped
                        when job_hosts.final_summary then job_hosts.skipped
                        else job_hosts.skipped + excluded.skipped end,
        rescued  = case when excluded.final_summary then excluded.rescued
                        when job_hosts.final_summary then job_hosts.rescued
                        else job_hosts.rescued + excluded.rescued end,
        ignored  = case when excluded.final_summary then excluded.ignored
                        when job_hosts.final_summary then job_hosts.ignored
                        else job_hosts.ignored + excluded.ignored end,
        last_task = case when excluded.last_counter > job_hosts.last_counter
                         then excluded.last_task else job_hosts.last_task end,
        last_counter = greatest(job_hosts.last_counter, excluded.last_counter),
        final_summary = job_hosts.final_summary or excluded.final_summary";

/// Writes a prepared batch in one transaction and sends one notification. Returns the job's id
/// and how many events were new.
pub async fn store(app: &App, batch: Prepared) -> Result<IngestResult, AppError> {
    let started = std::time::Instant::now();
    let source = batch.source.clone();
    let result = write(app, batch).await?;
    let m = &app.metrics;
    m.inc("playdeck_ingest_batches_total", &[("source", &source)]);
    m.add("playdeck_ingest_events_total", &[("source", &source)], result.accepted as f64);
    m.add("playdeck_ingest_duplicates_total", &[("source", &source)], result.duplicates as f64);
    m.observe("playdeck_ingest_seconds", &[], started.elapsed().as_secs_f64());
    Ok(result)
}

async fn write(app: &App, batch: Prepared) -> Result<IngestResult, AppError> {
    let Prepared { source, job, events, repeated_in_batch } = batch;
    let mut client = app.pool.get().await?;
    let tx = client.transaction().await?;

    // Lock the job's row (creating it if new) for the rest of the transaction: batches of one job
    // are serialised, which is what makes `seq` a gap-free arrival order. Not an upsert, which
    // would use up a job id from the sequence on every batch of an existing job.
    const LOCK_JOB: &str = "select id, status, status_explicit, last_seq from jobs
                             where source = $1 and external_id = $2 for update";
    let (row, inserted) = match tx.query_opt(LOCK_JOB, &[&source, &job.external_id]).await? {
        Some(row) => (row, false),
        None => match tx
            .query_opt(
                "insert into jobs (source, external_id) values ($1, $2) on conflict do nothing
                 returning id, status, status_explicit, last_seq",
                &[&source, &job.external_id],
            )
            .await?
        {
            Some(row) => (row, true),
            // Another batch of the same new job got there first; its insert is committed now.
            None => (tx.query_one(LOCK_JOB, &[&source, &job.external_id]).await?, false),
        },
    };
    let job_id: i64 = row.get(0);
    let current = JobStatus::parse(row.get(1)).unwrap_or(JobStatus::New);
    let explicit: bool = row.get(2);
    let last_seq: i64 = row.get(3);

    let mut history: Vec<(JobStatus, Option<JobStatus>, String)> = Vec::new();
    if inserted {
        history.push((JobStatus::New, None, format!("source {source}")));
    }

    let fresh_counters: HashSet<i64> = if events.is_empty() {
        HashSet::new()
    } else {
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
        tx.query(
            INSERT_EVENTS,
            &[
                &job_id,
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
                &last_seq,
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let fresh: Vec<&Event> = events.iter().filter(|e| fresh_counters.contains(&e.counter)).collect();
    let accepted = fresh.len() as i64;
    let duplicates = events.len() as i64 - accepted + repeated_in_batch;

    let hosts = host_deltas(&fresh);
    if !hosts.is_empty() {
        let mut cols: (Vec<String>, [Vec<i32>; 7], Vec<Option<String>>, Vec<i64>, Vec<bool>) =
            Default::default();
        for (name, h) in hosts {
            cols.0.push(name);
            for (i, v) in
                [h.ok, h.changed, h.failures, h.dark, h.skipped, h.rescued, h.ignored].into_iter().enumerate()
            {
                cols.1[i].push(v);
            }
            cols.2.push(h.last_task);
            cols.3.push(h.last_counter);
            cols.4.push(h.is_final);
        }
        let [ok, changed, failures, dark, skipped, rescued, ignored] = &cols.1;
        tx.execute(
            UPSERT_HOSTS,
            &[
                &job_id, &cols.0, ok, changed, failures, dark, skipped, rescued, ignored, &cols.2, &cols.3,
                &cols.4,
            ],
        )
        .await?;
    }

    crate::kb::record_failures(&tx, job_id, &fresh).await?;

    let delta = job_delta(&fresh, current, explicit || job.status.is_some());
    let mut new_status = current;
    if let Some(given) = job.status {
        if given != current {
            new_status = given;
            history.push((given, Some(current), format!("source {source}")));
        }
    } else {
        for (st, by) in &delta.statuses {
            history.push((*st, Some(new_status), by.clone()));
            new_status = *st;
        }
    }
    let finished_now = new_status.is_finished().then(|| delta.finished.unwrap_or_else(Utc::now));
    let (cur_counter, cur_play, cur_task) = match delta.current {
        Some((c, p, t)) => (c, p, t),
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
                 started = case when $18::timestamptz is not null then $18
                                when $2 in ('new', 'pending', 'waiting') then started
                                else coalesce(least(started, $4), $4, started, now()) end,
                 finished = case when $2 in ('successful', 'failed', 'error', 'canceled')
                                 then coalesce($19, finished, $5) else null end,
                 explanation = coalesce($20, explanation),
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
                 modified = now(),
                 name = coalesce($12, name),
                 template = coalesce($13, template),
                 inventory = coalesce($14, inventory),
                 project = coalesce($15, project),
                 launched_by = coalesce($16, launched_by),
                 \"limit\" = coalesce($17, \"limit\"),
                 scm_revision = coalesce($21, scm_revision)
               from counts
              where id = $1
             returning last_seq, change_seq",
            &[
                &job_id,
                &new_status.as_str(),
                &job.status.is_some(),
                &delta.earliest,
                &finished_now,
                &cur_counter,
                &cur_play,
                &cur_task,
                &delta.plays,
                &delta.tasks,
                &accepted,
                &job.name,
                &job.template,
                &job.inventory,
                &job.project,
                &job.launched_by,
                &job.limit,
                &job.started,
                &job.finished,
                &job.explanation,
                &job.scm_revision,
            ],
        )
        .await?;
    let new_seq: i64 = row.get(0);
    let change_seq: i64 = row.get(1);
    tx.execute(
        "update jobs set elapsed = extract(epoch from finished - started)
          where id = $1 and finished is not null and started is not null",
        &[&job_id],
    )
    .await?;

    for (status, previous, by) in &history {
        tx.execute(
            "insert into job_status_history (job_id, status, previous, by) values ($1, $2, $3, $4)",
            &[&job_id, &status.as_str(), &previous.map(|p| p.as_str()), by],
        )
        .await?;
    }
    crate::live::notify(&tx, job_id, last_seq, new_seq, change_seq).await?;
    tx.commit().await?;
    Ok(IngestResult { job_id, accepted, duplicates })
}
