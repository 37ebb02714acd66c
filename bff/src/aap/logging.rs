//! `POST /api/v1/ingest/aap-logging[/{controller}]`: what a controller's External Logging sends
//! over HTTP(S) for the `awx.analytics.job_events` logger.
//!
//! AWX's rsyslog posts each record as it comes, one JSON object per line (`job` is the job's id,
//! `host` a host id, `id` often null), or wrapped for Splunk as `{"time", "event": {…}}` with an
//! `Authorization: Splunk <token>` header. Records of other loggers (activity stream, system
//! tracking, …) are accepted and ignored, so one logging target can take everything.
//!
//! rsyslog retries a refused post forever, so only what no retry can fix gets a 4xx (a wrong
//! token, a body that is not JSON at all); a record that cannot be used is counted and skipped.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::IngestJob;

use super::Connector;
use crate::infra::error::AppError;
use crate::infra::secrets::same_secret;
use crate::infra::security::ClientAddr;
use crate::infra::state::AppState;

const JOB_EVENTS_LOGGER: &str = "awx.analytics.job_events";

#[derive(Deserialize)]
pub struct Params {
    controller: Option<String>,
}

/// What was done with the records.
#[derive(Debug, Default, Serialize)]
pub struct LoggingResult {
    /// Events stored now.
    pub accepted: i64,
    /// Events stored already (from the sync loop or an earlier post).
    pub duplicates: i64,
    /// Records of other loggers.
    pub ignored: i64,
    /// Job event records that could not be used, with the first few reasons.
    pub rejected: i64,
    pub errors: Vec<String>,
}

impl LoggingResult {
    fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.errors.len() < 5 {
            self.errors.push(why);
        }
    }
}

/// `POST /api/v1/ingest/aap-logging[/{controller}]`: the controller from the path, else from
/// `?controller=`, else the only one configured.
pub async fn receive(
    State(app): State<AppState>,
    client: ClientAddr,
    controller: Option<Path<String>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LoggingResult>, AppError> {
    let controller = controller.map(|Path(c)| c).or(params.controller);
    handle(app, client, controller, headers, body).await
}

/// The ingest token as a Splunk HTTP Event Collector sends it, or as the other ingest endpoints
/// take it (bearer, or basic auth with the token as the password).
fn check_token(app: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let splunk = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("splunk"))
        .map(|(_, token)| token.trim());
    match splunk {
        Some(t) if same_secret(t, app.ingest_token.expose()) => Ok(()),
        Some(_) => Err(AppError::Unauthorized("the ingest token is not valid".into())),
        None => crate::infra::auth::check_ingest_token(app, headers),
    }
}

/// Which controller sent the records: the one named in the path or query, else the only one
/// configured, else `aap` (the name the contract's variables give).
fn controller_name(app: &AppState, given: Option<String>) -> Result<String, AppError> {
    let name = match given.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
        // With controllers configured, a name that is none of them is a mistake in the logging
        // URL; without, logging alone feeds Playdeck and names its controllers.
        Some(n) if !Connector::of(app).controllers.is_empty() && Connector::of(app).get(&n).is_none() => {
            return Err(AppError::NotFound(format!(
                "no controller called {n:?} is configured here; post to /api/v1/ingest/aap-logging/{{controller}}"
            )))
        }
        Some(n) => n,
        None => match Connector::of(app).controllers.as_slice() {
            [] => "aap".to_string(),
            [only] => only.config.name.clone(),
            _ => {
                return Err(AppError::Unprocessable(
                    "several controllers are configured: post to /api/v1/ingest/aap-logging/{controller}"
                        .into(),
                ))
            }
        },
    };
    if name == "local" || name.len() > 100 {
        return Err(AppError::Unprocessable(format!("{name:?} cannot be a controller's name")));
    }
    Ok(name)
}

async fn handle(
    app: AppState,
    client: ClientAddr,
    controller: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LoggingResult>, AppError> {
    check_token(&app, &headers)?;
    // The same limit as the other ingest endpoint: a 429 makes rsyslog wait and send again.
    if let Err(wait) = app.ingest_limit.check(&client.0) {
        return Err(AppError::TooManyRequests(wait));
    }
    let controller = controller_name(&app, controller)?;
    let raw = crate::infra::extract::read_body(&headers, body, app.config.ingest_max_bytes).await?;
    let records = parse_records(&raw)?;
    let mut result = LoggingResult::default();
    // Records grouped by job, in the order they came; each job's batch is one ingest transaction.
    let mut by_job: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for record in records {
        let record = unwrap_splunk(record);
        let Value::Object(obj) = &record else {
            result.reject("a record is not a JSON object".into());
            continue;
        };
        match obj.get("logger_name").and_then(Value::as_str) {
            Some(JOB_EVENTS_LOGGER) => {}
            Some(_) => {
                result.ignored += 1;
                continue;
            }
            // Without a logger name, a record that looks like a job event is taken as one.
            None if obj.contains_key("counter") && obj.contains_key("event") => {}
            None => {
                result.ignored += 1;
                continue;
            }
        }
        let job = match obj.get("job").or_else(|| obj.get("job_id")) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match job.filter(|j| *j > 0) {
            Some(job) => by_job.entry(job).or_default().push(record),
            None => result.reject("a job event record without a job id (`job`)".into()),
        }
    }
    for (job, events) in by_job {
        let sent = events.len() as i64;
        let job_fields = IngestJob { external_id: job.to_string(), ..IngestJob::default() };
        let stored = super::store(&app, &controller, job_fields, events).await?;
        result.accepted += stored.accepted;
        result.duplicates += stored.duplicates;
        let left_out = sent - stored.accepted - stored.duplicates;
        for _ in 0..left_out.max(0) {
            result.reject(format!("job {job}: an event the ingest path refused (see the server's log)"));
        }
    }
    Ok(Json(result))
}

/// The records of a body: JSON objects one per line or simply one after the other, or a JSON
/// array of them. A line that cannot be read is skipped.
fn parse_records(raw: &[u8]) -> Result<Vec<Value>, AppError> {
    let text = String::from_utf8_lossy(raw);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(AppError::BadRequest("the body is not a JSON array of records".into())),
        };
    }
    let whole: Result<Vec<Value>, _> =
        serde_json::Deserializer::from_str(trimmed).into_iter::<Value>().collect();
    if let Ok(records) = whole {
        return Ok(records);
    }
    let mut records = Vec::new();
    for line in trimmed.lines() {
        for v in serde_json::Deserializer::from_str(line).into_iter::<Value>() {
            match v {
                Ok(v) => records.push(v),
                Err(_) => break,
            }
        }
    }
    if records.is_empty() {
        return Err(AppError::BadRequest(
            "the body holds no JSON record (one JSON object per line is expected)".into(),
        ));
    }
    Ok(records)
}

/// The record inside a Splunk envelope (`{"time": …, "event": {…}}`); a job event's own `event`
/// is a string such as `runner_on_ok`, so only an object (or JSON text of one) is unwrapped.
fn unwrap_splunk(record: Value) -> Value {
    let inner = match record.get("event") {
        Some(Value::Object(_)) => record.get("event").cloned(),
        Some(Value::String(s)) if s.trim_start().starts_with('{') && record.get("counter").is_none() => {
            serde_json::from_str::<Value>(s).ok().filter(Value::is_object)
        }
        _ => None,
    };
    inner.unwrap_or(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_come_as_lines_arrays_or_splunk_envelopes() {
        let lines = b"{\"counter\": 1, \"event\": \"playbook_on_start\", \"job\": 26}\n\n{\"counter\": 2, \"event\": \"x\", \"job\": 26}\n";
        assert_eq!(parse_records(lines).expect("lines").len(), 2);
        assert_eq!(parse_records(b"{\"a\":1}{\"b\":2}").expect("concatenated").len(), 2);
        assert_eq!(parse_records(b"[{\"a\":1},{\"b\":2}]").expect("array").len(), 2);
        assert_eq!(parse_records(b"{\"a\":1}\nnot json\n{\"b\":2}").expect("skips a bad line").len(), 2);
        assert!(parse_records(b"no json at all").is_err());

        let wrapped =
            json!({"time": 1686075778.18, "event": {"counter": 3, "event": "runner_on_ok", "job": 26}});
        assert_eq!(unwrap_splunk(wrapped)["counter"], 3);
        let as_text = json!({"time": 1, "event": "{\"counter\": 4, \"event\": \"runner_on_ok\"}"});
        assert_eq!(unwrap_splunk(as_text)["counter"], 4);
        let plain = json!({"counter": 5, "event": "runner_on_ok", "job": 26});
        assert_eq!(unwrap_splunk(plain.clone()), plain);
    }

    #[test]
    fn any_body_is_read_or_refused_with_a_400_never_a_panic() {
        // xorshift64*: deterministic, so a failure reproduces.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let sample = br#"{"time": 1, "event": {"counter": 3, "event": "runner_on_ok", "job": 26, "host": 1}}
[{"counter": 1}]
{"logger_name": "awx.analytics.job_events", "job": 26, "counter": 2, "event": "x", "event_data": {}}"#;
        let (mut read, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut body = sample.to_vec();
            match round % 3 {
                0 => body = (0..next() % 80).map(|_| next() as u8).collect(),
                1 => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % body.len();
                        body[i] = b"{}[]\":,\n\0x"[(next() as usize) % b"{}[]\":,\n\0x".len()];
                    }
                }
                _ => body.truncate((next() as usize) % body.len()),
            }
            match parse_records(&body) {
                Ok(records) => {
                    read += 1;
                    for r in records {
                        let _ = unwrap_splunk(r);
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert_eq!(e.status().as_u16(), 400, "{e}");
                }
            }
        }
        assert!(read > 1000 && refused > 1000, "read {read}, refused {refused}");
    }
}
