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
use crate::infra::extract::{filters_of, percent_encode, JobId, Q};
use crate::infra::state::AppState;
use crate::infra::text::strip_ansi;
use crate::store::events::{event_from_row, EVENT_COLUMNS};
use crate::store::jobs::{job_from_row, job_hosts, visible_job, JOB_COLUMNS};

const ORDERABLE: &[&str] =
    &["id", "started", "finished", "name", "status", "elapsed", "template", "modified"];

/// Orderable columns that may be null (sorted last when descending, first when ascending).
const NULLABLE: &[&str] = &["started", "finished", "elapsed", "template"];

/// What `q` searches: the same expression as the trigram index `jobs_search` and its statistics
/// (migration 0013), so the index answers `ilike '%…%'` and the planner knows how common a word is.
pub const SEARCH_TEXT: &str =
    "(name || E'\\n' || coalesce(template, '') || E'\\n' || coalesce(inventory, '') || E'\\n' \
    || coalesce(launched_by, '') || E'\\n' || coalesce(\"limit\", '') || E'\\n' || external_id)";

/// A page counts the matching jobs exactly when the planner expects up to this many and expects
/// counting them to cost up to `EXACT_COUNT_COST` (its units: about reading that many pages);
/// otherwise it gives the planner's estimate with `count_exact: false`. Counting a million rows,
/// or twenty thousand scattered ones, costs more than the page.
const EXACT_COUNT_UP_TO: f64 = 20_000.0;
const EXACT_COUNT_COST: f64 = 10_000.0;

/// Up to this many jobs in a date range, the newest of the range are found by reading the range;
/// up to `FEW_FIRST_UP_TO` counted matches of any filter, by reading the matches.
const RANGE_FIRST_UP_TO: i64 = 100_000;
const FEW_FIRST_UP_TO: i64 = 10_000;

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
    let keyset = match (f.page_after, f.page_before) {
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest("give `page_after` or `page_before`, not both".into()))
        }
        (Some(id), None) => Some(Keyset { anchor: id, after: true }),
        (None, Some(id)) => Some(Keyset { anchor: id, after: false }),
        (None, None) => None,
    };
    if keyset.is_some() && f.page.is_some_and(|p| p != 1) {
        return Err(AppError::BadRequest(
            "`page` cannot be combined with `page_after` or `page_before`".into(),
        ));
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
        // A number is also a job's id.
        match q.parse::<i64>() {
            Ok(id) => {
                push(&format!("({SEARCH_TEXT} ilike ? or id = $+)"), Box::new(pattern), &mut conds);
                params.push(Box::new(id));
                let n = params.len();
                if let Some(last) = conds.last_mut() {
                    *last = last.replace("$+", &format!("${n}"));
                }
            }
            Err(_) => push(&format!("{SEARCH_TEXT} ilike ?"), Box::new(pattern), &mut conds),
        }
    }
    if let Some(scope) = caller.access.sql(Role::Viewer, "") {
        conds.push(scope);
    }
    let filter = if conds.is_empty() { String::new() } else { format!("where {}", conds.join(" and ")) };
    // The table's column (the listed `elapsed` of a running job is computed, and not indexed).
    let column = match field {
        "elapsed" => "jobs.elapsed",
        other => other,
    };
    let db = app.pool.get().await?;
    let (count, count_exact) = count_jobs(&db, &filter, &refs(&params)).await?;
    // Newest first, from a filter's matches rather than from the newest job back: the planner
    // walks ids from the newest back until it has a page, which is slow when the matches lie
    // far back (a date range: it cannot know ids grow with time) or are few (a template and a
    // status with no job: it walks the whole table). Reading the matches first and taking the
    // newest of them is fast while they are up to about a tenth of a million (a range, read
    // from its index) or counted few.
    let range = f.started_after.is_some() || f.started_before.is_some();
    let range_first = field == "id"
        && ((range && count <= RANGE_FIRST_UP_TO)
            || (count_exact && count <= FEW_FIRST_UP_TO && !conds.is_empty()));
    let limit = page_size + 1;
    let mut rows = match &keyset {
        None => {
            let order = order_clause(field, column, desc);
            let offset = (page - 1) * page_size;
            let sql = if range_first {
                format!(
                    "select {JOB_COLUMNS} from jobs where id in (
                         select id from (select id from jobs {filter} offset 0) r order by {order} limit {limit} offset {offset})
                      order by {order}"
                )
            } else {
                format!(
                    "select {JOB_COLUMNS} from jobs {filter} order by {order} limit {limit} offset {offset}"
                )
            };
            db.query(&sql, &refs(&params)).await?
        }
        Some(k) => {
            let anchor_null: bool = db
                .query_opt(&format!("select {column} is null from jobs where id = $1"), &[&k.anchor])
                .await?
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "`{}`: there is no job {} (any more); start again from the first page",
                        if k.after { "page_after" } else { "page_before" },
                        k.anchor
                    ))
                })?
                .get(0);
            params.push(Box::new(k.anchor));
            let anchor = format!("${}", params.len());
            // Before the anchor in the chosen order is after it in the reverse order.
            let down = desc == k.after;
            let parts = keyset_parts(field, column, down, anchor_null, &anchor);
            let selects: Vec<String> = parts
                .iter()
                .map(|(cond, order)| {
                    let wh = if conds.is_empty() {
                        cond.clone()
                    } else {
                        format!("{} and {cond}", conds.join(" and "))
                    };
                    if range_first {
                        format!(
                            "(select {JOB_COLUMNS} from jobs where id in (
                                  select id from (select id from jobs where {wh} offset 0) r order by {order} limit {limit})
                              order by {order})"
                        )
                    } else {
                        format!("(select {JOB_COLUMNS} from jobs where {wh} order by {order} limit {limit})")
                    }
                })
                .collect();
            db.query(
                &format!("select * from ({}) t limit {limit}", selects.join(" union all ")),
                &refs(&params),
            )
            .await?
        }
    };
    let more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    if keyset.as_ref().is_some_and(|k| !k.after) {
        rows.reverse();
    }
    let results: Vec<Job> = rows.iter().map(job_from_row).collect();
    let filters = filters_of(&f);
    let link = |paging: String| {
        let mut parts = vec![paging, format!("page_size={page_size}")];
        parts.extend(
            filters.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v)))),
        );
        format!("/api/v1/jobs?{}", parts.join("&"))
    };
    let (first, last) = (results.first().map(|j| j.id), results.last().map(|j| j.id));
    let (next, previous) = match &keyset {
        None => (
            more.then(|| last.map(|id| link(format!("page_after={id}")))).flatten(),
            (page > 1).then(|| link(format!("page={}", page - 1))),
        ),
        Some(k) if k.after => (
            more.then(|| last.map(|id| link(format!("page_after={id}")))).flatten(),
            Some(link(format!("page_before={}", first.unwrap_or(k.anchor)))),
        ),
        Some(k) => (
            Some(link(format!("page_after={}", last.unwrap_or(k.anchor)))),
            more.then(|| first.map(|id| link(format!("page_before={id}")))).flatten(),
        ),
    };
    Ok(Json(Page { count, count_exact, next, previous, results }))
}

/// The query's parameters as the driver takes them.
fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// A keyset page: the jobs after (or before) the `anchor` job in the list's order.
struct Keyset {
    anchor: i64,
    after: bool,
}

/// `field dir nulls …, id dir`: what the list is sorted by, with the id to break ties.
fn order_clause(field: &str, column: &str, desc: bool) -> String {
    let dir = if desc { "desc" } else { "asc" };
    if field == "id" {
        return format!("id {dir}");
    }
    let nulls = if desc { "nulls last" } else { "nulls first" };
    format!("{column} {dir} {nulls}, id {dir}")
}

/// The rows that follow the anchor when reading `down` (descending, nulls last) or up
/// (ascending, nulls first), as parts read one after the other, each `(condition, order)`:
/// row comparisons an index answers, with the nulls (which compare to nothing) as a part of
/// their own.
fn keyset_parts(
    field: &str,
    column: &str,
    down: bool,
    anchor_null: bool,
    anchor: &str,
) -> Vec<(String, String)> {
    // The nulls as the index has them, though a part has none, so the index gives the order.
    let (op, dir, nulls) = if down { ("<", "desc", "nulls last") } else { (">", "asc", "nulls first") };
    if field == "id" {
        return vec![(format!("id {op} {anchor}"), format!("id {dir}"))];
    }
    let value = format!("(select {column} from jobs where id = {anchor})");
    let sorted =
        (format!("({column}, id) {op} ({value}, {anchor})"), format!("{column} {dir} {nulls}, id {dir}"));
    if !NULLABLE.contains(&field) {
        return vec![sorted];
    }
    let nulls_from = |cond: String| (cond, format!("id {dir}"));
    match (down, anchor_null) {
        // Descending: the values, then the nulls.
        (true, false) => vec![sorted, nulls_from(format!("{column} is null"))],
        (true, true) => vec![nulls_from(format!("{column} is null and id < {anchor}"))],
        // Ascending: the nulls, then the values.
        (false, true) => vec![
            nulls_from(format!("{column} is null and id > {anchor}")),
            (format!("{column} is not null"), format!("{column} asc nulls first, id asc")),
        ],
        (false, false) => vec![sorted],
    }
}

/// How many jobs match: exact when the planner expects it to be small and cheap to count (see
/// `EXACT_COUNT_UP_TO`), else the estimate, flagged.
async fn count_jobs(
    db: &deadpool_postgres::Object,
    filter: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(i64, bool), AppError> {
    let plan: serde_json::Value =
        db.query_one(&format!("explain (format json) select 1 from jobs {filter}"), params).await?.get(0);
    let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
    let cost = plan[0]["Plan"]["Total Cost"].as_f64().unwrap_or(f64::MAX);
    if estimate <= EXACT_COUNT_UP_TO && cost <= EXACT_COUNT_COST {
        let n: i64 = db.query_one(&format!("select count(*) from jobs {filter}"), params).await?.get(0);
        return Ok((n, true));
    }
    Ok((round_estimate(estimate), false))
}

/// An estimate to three significant digits (1 000 002 → 1 000 000): no more precise than it is.
fn round_estimate(estimate: f64) -> i64 {
    let digits = estimate.max(1.0).log10().floor() as i32;
    let unit = 10f64.powi((digits - 2).max(0));
    ((estimate / unit).round() * unit) as i64
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
    Ok(Json(Page { count, count_exact: true, next, previous: None, results }))
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

#[cfg(test)]
mod tests {
    #[test]
    fn estimates_keep_three_significant_digits() {
        assert_eq!(super::round_estimate(1_000_002.0), 1_000_000);
        assert_eq!(super::round_estimate(34_567.0), 34_600);
        assert_eq!(super::round_estimate(20_001.4), 20_000);
        assert_eq!(super::round_estimate(999.0), 999);
    }
}
