//! The one ingest path every source goes through: a batch of one job's events, written in one
//! transaction, idempotent on (job, counter), followed by one notification for the live relay.

mod copies;
mod delta;
mod wire;
mod write;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use shared::{IngestBatch, IngestJob, IngestResult};

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
/// Events are read as `wire` reads them (their data kept as sent when it can be).
pub fn parse_and_prepare(raw: &[u8]) -> Result<Prepared, AppError> {
    let wire::WireBatch { source, job, events, provisional } =
        serde_json::from_slice(raw).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => AppError::Unprocessable(format!("invalid batch: {e}")),
            _ => AppError::BadRequest(format!("the body is not valid JSON: {e}")),
        })?;
    let origin = if provisional { Origin::StandIn } else { Origin::Sole };
    prepare_events(source, job, origin, events.into_iter().map(event_from_wire))
}

/// Events that the knowledge base or the hosts' final counts read the data of: always read as a
/// tree.
const READ_WHOLE: &[&str] = &[
    "playbook_on_stats",
    "runner_on_failed",
    "runner_on_unreachable",
    "runner_item_on_failed",
    "runner_on_async_failed",
];

fn event_from_wire(ev: wire::WireEvent) -> Result<Event, String> {
    let wire::WireEvent::Object(mut fields, data) = ev else {
        return Err("an event must be a JSON object".into());
    };
    let Some(raw) = data.filter(|d| d.get() != "null") else {
        return event_from_json(Value::Object(fields));
    };
    let kind = fields.get("event").and_then(Value::as_str).unwrap_or("");
    let found = (!READ_WHOLE.contains(&kind)).then(|| wire::data_fields(raw.get())).flatten();
    match found {
        Some(small) => {
            // Checked and turned into columns from what the columns read; stored as sent.
            fields.insert("event_data".into(), Value::Object(small));
            let mut ev = event_from_json(Value::Object(fields))?;
            ev.event_data = Value::Null;
            ev.raw_data = Some(raw);
            Ok(ev)
        }
        None => {
            let data: Value = serde_json::from_str(raw.get()).map_err(|e| format!("`event_data`: {e}"))?;
            fields.insert("event_data".into(), data);
            event_from_json(Value::Object(fields))
        }
    }
}

/// Which copy of a job's events a batch belongs to (see `copies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The job's only copy: events are told apart by their counter alone.
    Sole,
    /// The controller's own (the sync, AAP's external logging): its counters are the job's.
    Controller,
    /// The callback plugin's, inside the controller's execution environment: stored until the
    /// controller's copy of the same event replaces it.
    StandIn,
}

/// A checked batch, ready to store.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: String,
    pub job: IngestJob,
    pub origin: Origin,
    /// Unique counters, ascending.
    pub events: Vec<Event>,
    /// Events whose counter appeared earlier in the same batch.
    pub repeated_in_batch: i64,
}

const MAX_NAME: usize = 1024;

/// Validates a batch and pulls out the indexed columns. Nothing is stored if any event is wrong,
/// and the error names the event and the field.
pub fn prepare(batch: IngestBatch) -> Result<Prepared, AppError> {
    let IngestBatch { source, job, events, provisional } = batch;
    let origin = if provisional { Origin::StandIn } else { Origin::Sole };
    prepare_events(source, job, origin, events.into_iter().map(event_from_json))
}

/// `prepare` for events read either way.
fn prepare_events(
    source: String,
    mut job: IngestJob,
    origin: Origin,
    events: impl Iterator<Item = Result<Event, String>>,
) -> Result<Prepared, AppError> {
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
    for (i, ev) in events.enumerate() {
        let ev = ev.map_err(|e| AppError::Unprocessable(format!("events[{i}]: {e}")))?;
        if origin == Origin::StandIn && ev.counter >= copies::PROVISIONAL {
            return Err(AppError::Unprocessable(format!(
                "events[{i}]: `counter` of a provisional event must be below {}",
                copies::PROVISIONAL
            )));
        }
        if let std::collections::btree_map::Entry::Vacant(e) = by_counter.entry(ev.counter) {
            e.insert(ev);
        } else {
            repeated += 1;
        }
    }
    Ok(Prepared {
        source,
        job,
        origin,
        events: by_counter.into_values().collect(),
        repeated_in_batch: repeated,
    })
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

/// `clean` at every depth, in place: only the strings (and keys) that hold a NUL are rewritten.
fn clean_value(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(a) => a.iter_mut().for_each(clean_value),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                *o = std::mem::take(o).into_iter().map(|(k, v)| (clean(k), v)).collect();
            }
            o.values_mut().for_each(clean_value);
        }
        _ => {}
    }
}

fn event_from_json(mut raw: Value) -> Result<Event, String> {
    clean_value(&mut raw);
    let Value::Object(mut obj) = raw else {
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
    // Moved out, not copied: the output is most of an event.
    let stdout = match obj.remove("stdout") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(_) => return Err("`stdout` must be a string".into()),
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
        play_uuid: named("play_uuid"),
        task_uuid: named("task_uuid"),
        stdout,
        start_line: line("start_line")?,
        end_line: line("end_line")?,
        failed,
        changed,
        ignore_errors,
        event,
        event_data,
        raw_data: None,
    })
}

/// RFC 3339, or ansible-runner's naive ISO time (UTC without an offset).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// Writes a prepared batch in one transaction and sends one notification. Returns the job's id
/// and how many events were new.
pub async fn store(app: &App, batch: Prepared) -> Result<IngestResult, AppError> {
    let started = std::time::Instant::now();
    let source = batch.source.clone();
    let result = write::write(app, batch).await?;
    let m = &app.metrics;
    m.inc("playdeck_ingest_batches_total", &[("source", &source)]);
    m.add("playdeck_ingest_events_total", &[("source", &source)], result.accepted as f64);
    m.add("playdeck_ingest_duplicates_total", &[("source", &source)], result.duplicates as f64);
    m.observe("playdeck_ingest_seconds", &[], started.elapsed().as_secs_f64());
    Ok(result)
}
