//! Reading jobs: the grid's list with its filters, one job, its events, hosts, output and status
//! history.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use shared::{Job, JobEvent, JobFilter, JobHost, JobStatus, Page, Role, StatusChange};
use tokio_postgres::types::ToSql;

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::extract::{filters_of, page_of, percent_encode, JobId, Q};
use crate::infra::state::AppState;
use crate::infra::text::strip_ansi;
use crate::store::events::{event_from_row, EVENT_COLUMNS};
use crate::store::jobs::{job_from_row, job_hosts, visible_job, JOB_COLUMNS};

const ORDERABLE: &[&str] =
    &["id", "started", "finished", "name", "status", "elapsed", "template", "modified"];

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
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
        let pattern = crate::infra::text::like_contains(q);
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
    if let Some(scope) = caller.access.sql(Role::Viewer, "") {
        conds.push(scope);
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
    let results = rows.iter().map(job_from_row).collect();
    Ok(Json(page_of("/api/v1/jobs", page, page_size, &filters_of(&f), count, results)))
}

pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Json<Job>, AppError> {
    let db = app.pool.get().await?;
    let mut job = visible_job(&db, &caller, id).await?;
    job.explanations = crate::kb::explanations(&db, id).await?;
    Ok(Json(job))
}

#[derive(Deserialize)]
pub struct EventQuery {
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
pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
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
    let job = visible_job(&db, &caller, id).await?;
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

pub async fn hosts(
    State(app): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Json<Page<JobHost>>, AppError> {
    let db = app.pool.get().await?;
    visible_job(&db, &caller, id).await?;
    let results = job_hosts(&db, id).await?;
    Ok(Json(crate::infra::extract::whole(results)))
}

#[derive(Deserialize)]
pub struct StdoutQuery {
    format: Option<String>,
}

/// The job's output rebuilt from its events' stdout in counter order, streamed page by page so a
/// job with 100k lines never sits in memory whole.
pub async fn stdout(
    State(app): State<AppState>,
    caller: Caller,
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
        visible_job(&db, &caller, id).await?;
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

pub async fn history(
    State(app): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
) -> Result<Json<Page<StatusChange>>, AppError> {
    let db = app.pool.get().await?;
    visible_job(&db, &caller, id).await?;
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
    Ok(Json(crate::infra::extract::whole(results)))
}
