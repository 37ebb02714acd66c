//! The read API of jobs: the grid's list with its filters, one job, its events, hosts, output and
//! status history.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deadpool_postgres::Object;
use futures_util::StreamExt;
use serde::Deserialize;
use shared::{HostCounts, Job, JobEvent, JobFilter, JobHost, JobStatus, Page, StatusChange};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::auth::Caller;
use crate::error::AppError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/events", get(list_events))
        .route("/jobs/{id}/hosts", get(list_hosts))
        .route("/jobs/{id}/stdout", get(stdout))
        .route("/jobs/{id}/history", get(history))
}

/// The columns of a job, with `elapsed` ticking for a running job.
const JOB_COLUMNS: &str = "id, source, external_id, name, template, inventory, project, launched_by,
    \"limit\", status, created, modified, started, finished,
    coalesce(elapsed, case when started is not null and finished is null and status = 'running'
                           then extract(epoch from now() - started) end) as elapsed,
    hosts_ok, hosts_changed, hosts_failed, hosts_skipped, hosts_unreachable,
    current_play, current_task, plays, tasks, event_count, last_seq, explanation, events_expired, scm_revision";

fn job_from_row(r: &Row) -> Job {
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
    let row = db.query_opt(&format!("select {JOB_COLUMNS} from jobs where id = $1"), &[&id]).await?;
    Ok(row.as_ref().map(job_from_row))
}

/// Jobs changed after `change_seq`, with their change_seq, oldest change first.
pub async fn jobs_changed_since(db: &Object, since: i64, limit: i64) -> Result<Vec<(Job, i64)>, AppError> {
    let rows = db
        .query(
            &format!("select {JOB_COLUMNS}, change_seq from jobs where change_seq > $1 order by change_seq limit $2"),
            &[&since, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (job_from_row(r), r.get("change_seq"))).collect())
}

const EVENT_COLUMNS: &str = "job_id, counter, seq, event, uuid, parent_uuid, created, host, play, task,
    role, stdout, start_line, end_line, failed, changed, event_data";

fn event_from_row(r: &Row) -> JobEvent {
    JobEvent {
        job_id: r.get("job_id"),
        counter: r.get("counter"),
        cursor: r.get::<_, i64>("seq").to_string(),
        event: r.get("event"),
        uuid: r.get("uuid"),
        parent_uuid: r.get("parent_uuid"),
        created: r.get("created"),
        host: r.get("host"),
        play: r.get("play"),
        task: r.get("task"),
        role: r.get("role"),
        stdout: r.get("stdout"),
        start_line: r.get("start_line"),
        end_line: r.get("end_line"),
        failed: r.get("failed"),
        changed: r.get("changed"),
        event_data: r.get("event_data"),
    }
}

/// Events in arrival order with seq in `(after, upto]`.
pub async fn events_by_seq(
    db: &Object,
    job_id: i64,
    after: i64,
    upto: Option<i64>,
    limit: i64,
) -> Result<Vec<JobEvent>, AppError> {
    let rows = db
        .query(
            &format!(
                "select {EVENT_COLUMNS} from job_events
                  where job_id = $1 and seq > $2 and ($3::bigint is null or seq <= $3)
                  order by seq limit $4"
            ),
            &[&job_id, &after, &upto, &limit],
        )
        .await?;
    Ok(rows.iter().map(event_from_row).collect())
}

async fn job_or_404(db: &Object, id: i64) -> Result<Job, AppError> {
    fetch_job(db, id).await?.ok_or_else(|| AppError::not_found_job(id))
}

/// Reads the `{id}` of a path: a clear 400 for `/jobs/abc`, in the contract's shape.
pub async fn path_id(parts: &mut axum::http::request::Parts, what: &str) -> Result<i64, AppError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, &())
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::BadRequest(format!("{raw:?} is not {what} id")))
}

/// A job's id from the path.
pub struct JobId(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for JobId {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        path_id(parts, "a job").await.map(JobId)
    }
}

/// Query strings read into a type, with a 400 in the contract's shape when they don't fit.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

const ORDERABLE: &[&str] =
    &["id", "started", "finished", "name", "status", "elapsed", "template", "modified"];

async fn list_jobs(
    State(app): State<AppState>,
    _caller: Caller,
    Q(f): Q<JobFilter>,
) -> Result<Json<Page<Job>>, AppError> {
    let page = f.page.unwrap_or(1);
    let page_size = f.page_size.unwrap_or(25);
    if page < 1 {
        return Err(AppError::BadRequest("`page` starts at 1".into()));
    }
    if !(1..=200).contains(&page_size) {
        return Err(AppError::BadRequest("`page_size` must be between 1 and 200".into()));
    }
    let order_by = f.order_by.clone().unwrap_or_else(|| "-id".into());
    let (field, desc) = match order_by.strip_prefix('-') {
        Some(f) => (f, true),
        None => (order_by.as_str(), false),
    };
    if !ORDERABLE.contains(&field) {
        return Err(AppError::BadRequest(format!(
            "cannot order by {order_by:?}; use one of {} (with - for descending)",
            ORDERABLE.join(", ")
        )));
    }
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |sql: &str, p: Box<dyn ToSql + Sync + Send>, conds: &mut Vec<String>| {
        params.push(p);
        conds.push(sql.replace('?', &format!("${}", params.len())));
    };
    if let Some(s) = f.status.as_deref().filter(|s| !s.is_empty()) {
        let mut statuses = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = JobStatus::parse(part)
                .ok_or_else(|| AppError::BadRequest(format!("{part:?} is not a job status")))?;
            statuses.push(st.as_str().to_string());
        }
        push("status = any(?)", Box::new(statuses), &mut conds);
    }
    for (col, value) in [
        ("template", &f.template),
        ("inventory", &f.inventory),
        ("launched_by", &f.launched_by),
        ("source", &f.source),
        ("external_id", &f.external_id),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            push(&format!("{col} = ?"), Box::new(v.to_string()), &mut conds);
        }
    }
    if let Some(t) = f.started_after {
        push("started >= ?", Box::new(t), &mut conds);
    }
    if let Some(t) = f.started_before {
        push("started < ?", Box::new(t), &mut conds);
    }
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        push(
            "(name ilike ? or template ilike $# or inventory ilike $# or launched_by ilike $#
              or \"limit\" ilike $# or external_id ilike $# or id::text = $+)",
            Box::new(pattern),
            &mut conds,
        );
        // The same pattern for each column, and the bare text for an id match.
        let n = params.len();
        params.push(Box::new(q.to_string()));
        if let Some(last) = conds.last_mut() {
            *last = last.replace("$#", &format!("${n}")).replace("$+", &format!("${}", n + 1));
        }
    }
    let filter = if conds.is_empty() { String::new() } else { format!("where {}", conds.join(" and ")) };
    let dir = if desc { "desc" } else { "asc" };
    let nulls = if desc { "nulls last" } else { "nulls first" };
    let order = if field == "id" {
        format!("id {dir}")
    } else {
        format!("{} {dir} {nulls}, id {dir}", if field == "limit" { "\"limit\"" } else { field })
    };
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let db = app.pool.get().await?;
    let count: i64 = db.query_one(&format!("select count(*) from jobs {filter}"), &refs).await?.get(0);
    let rows = db
        .query(
            &format!(
                "select {JOB_COLUMNS} from jobs {filter} order by {order} limit {page_size} offset {}",
                (page - 1) * page_size
            ),
            &refs,
        )
        .await?;
    let link = |p: i64| {
        let mut f = f.clone();
        f.page = Some(p);
        f.page_size = Some(page_size);
        serde_urlencode(&f).map(|q| format!("/api/v1/jobs?{q}"))
    };
    Ok(Json(Page {
        count,
        next: if page * page_size < count { link(page + 1) } else { None },
        previous: if page > 1 { link(page - 1) } else { None },
        results: rows.iter().map(job_from_row).collect(),
    }))
}

/// A flat struct as a query string (the filter's own field names and values).
fn serde_urlencode<T: serde::Serialize>(v: &T) -> Option<String> {
    let value = serde_json::to_value(v).ok()?;
    let obj = value.as_object()?;
    let parts: Vec<String> = obj
        .iter()
        .filter_map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(format!("{k}={}", percent_encode(&s)))
        })
        .collect();
    Some(parts.join("&"))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get_job(
    State(app): State<AppState>,
    _caller: Caller,
    JobId(id): JobId,
) -> Result<Json<Job>, AppError> {
    let db = app.pool.get().await?;
    let mut job = job_or_404(&db, id).await?;
    job.explanations = crate::kb::explanations(&db, id).await?;
    Ok(Json(job))
}

#[derive(Deserialize)]
struct EventQuery {
    after_counter: Option<i64>,
    limit: Option<i64>,
    /// Only this host's events (a host's drill-down on the job page).
    host: Option<String>,
    /// Events without their `event_data` but its timing (`start`, `end`, `duration`): what the
    /// page needs to rebuild the output and the timeline of a 100k-line job, at a fraction of the
    /// size, so pages may be longer.
    #[serde(default)]
    brief: bool,
}

/// Longest page of events, and of brief ones.
const EVENTS_MAX: i64 = 1000;
const BRIEF_EVENTS_MAX: i64 = 10_000;

/// Events in counter order (Ansible's own order), after `after_counter`.
async fn list_events(
    State(app): State<AppState>,
    _caller: Caller,
    JobId(id): JobId,
    Q(q): Q<EventQuery>,
) -> Result<Json<Page<JobEvent>>, AppError> {
    let limit = q.limit.unwrap_or(100);
    let max = if q.brief { BRIEF_EVENTS_MAX } else { EVENTS_MAX };
    if !(1..=max).contains(&limit) {
        let brief = if q.brief { " with brief=true" } else { "" };
        return Err(AppError::BadRequest(format!("`limit` must be between 1 and {max}{brief}")));
    }
    let after = q.after_counter.unwrap_or(-1);
    let host = q.host.as_deref().filter(|h| !h.is_empty());
    let db = app.pool.get().await?;
    let job = job_or_404(&db, id).await?;
    let columns = if q.brief {
        EVENT_COLUMNS.replace(
            "event_data",
            "jsonb_strip_nulls(jsonb_build_object('start', event_data->'start', 'end', event_data->'end',
                 'duration', event_data->'duration')) as event_data",
        )
    } else {
        EVENT_COLUMNS.to_string()
    };
    let rows = db
        .query(
            &format!(
                "select {columns} from job_events
                  where job_id = $1 and counter > $2 and ($3::text is null or host = $3)
                  order by counter limit $4"
            ),
            &[&id, &after, &host, &(limit + 1)],
        )
        .await?;
    let mut results: Vec<JobEvent> = rows.iter().map(event_from_row).collect();
    let more = results.len() as i64 > limit;
    results.truncate(limit as usize);
    let next = match (more, results.last()) {
        (true, Some(last)) => {
            let mut next = format!("/api/v1/jobs/{id}/events?after_counter={}&limit={limit}", last.counter);
            if let Some(host) = host {
                next.push_str(&format!("&host={}", percent_encode(host)));
            }
            if q.brief {
                next.push_str("&brief=true");
            }
            Some(next)
        }
        _ => None,
    };
    // `count` is the job's events; with a host, the events of that host.
    let count = match host {
        None => job.event_count,
        Some(host) => db
            .query_one("select count(*) from job_events where job_id = $1 and host = $2", &[&id, &host])
            .await?
            .get(0),
    };
    Ok(Json(Page { count, next, previous: None, results }))
}

async fn list_hosts(
    State(app): State<AppState>,
    _caller: Caller,
    JobId(id): JobId,
) -> Result<Json<Page<JobHost>>, AppError> {
    let db = app.pool.get().await?;
    job_or_404(&db, id).await?;
    let results = job_hosts(&db, id).await?;
    Ok(Json(Page { count: results.len() as i64, next: None, previous: None, results }))
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

#[derive(Deserialize)]
struct StdoutQuery {
    format: Option<String>,
}

/// The job's output rebuilt from its events' stdout in counter order, streamed page by page so a
/// job with 100k lines never sits in memory whole.
async fn stdout(
    State(app): State<AppState>,
    _caller: Caller,
    JobId(id): JobId,
    Q(q): Q<StdoutQuery>,
) -> Result<Response, AppError> {
    let ansi = match q.format.as_deref().unwrap_or("txt") {
        "txt" => false,
        "ansi" => true,
        other => return Err(AppError::BadRequest(format!("format {other:?}: use txt or ansi"))),
    };
    {
        let db = app.pool.get().await?;
        job_or_404(&db, id).await?;
    }
    let pool = app.pool.clone();
    let pages = futures_util::stream::unfold(Some(-1i64), move |after| {
        let pool = pool.clone();
        async move {
            let after = after?;
            let page: Result<(String, Option<i64>), AppError> = async {
                let db = pool.get().await?;
                let rows = db
                    .query(
                        "select counter, stdout from job_events
                          where job_id = $1 and counter > $2 and stdout <> ''
                          order by counter limit 2000",
                        &[&id, &after],
                    )
                    .await?;
                let mut text = String::new();
                for r in &rows {
                    let s: &str = r.get(1);
                    if ansi {
                        text.push_str(s);
                    } else {
                        text.push_str(&strip_ansi(s));
                    }
                    text.push('\n');
                }
                let next = if rows.len() == 2000 { rows.last().map(|r| r.get::<_, i64>(0)) } else { None };
                Ok((text, next))
            }
            .await;
            match page {
                Ok((text, next)) => Some((Ok::<_, std::io::Error>(text), next)),
                Err(e) => {
                    tracing::error!(job = id, error = %e, "stdout stream failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let mut resp = Body::from_stream(pages.boxed()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(resp)
}

/// Removes ANSI escape sequences (colours, cursor moves) for the plain-text output.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // OSC: up to BEL or ESC \
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

async fn history(
    State(app): State<AppState>,
    _caller: Caller,
    JobId(id): JobId,
) -> Result<Json<Page<StatusChange>>, AppError> {
    let db = app.pool.get().await?;
    job_or_404(&db, id).await?;
    let rows = db
        .query(
            "select status, previous, at, by from job_status_history where job_id = $1 order by id",
            &[&id],
        )
        .await?;
    let results: Vec<StatusChange> = rows
        .iter()
        .map(|r| StatusChange {
            status: JobStatus::parse(r.get(0)).unwrap_or(JobStatus::New),
            previous: r.get::<_, Option<&str>>(1).and_then(JobStatus::parse),
            at: r.get(2),
            by: r.get(3),
        })
        .collect();
    Ok(Json(Page { count: results.len() as i64, next: None, previous: None, results }))
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_colours_and_keeps_text() {
        assert_eq!(strip_ansi("\u{1b}[0;32mok: [web-01]\u{1b}[0m"), "ok: [web-01]");
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}x"), "x");
    }
}
