//! `GET /api/v1/stats`: the dashboard's figures — jobs by status, success rate, median and 95th
//! percentile durations overall and per template, the trend, running jobs, the templates that fail
//! most and the knowledge base entry that explains them most often.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shared::stats::{Durations, Stats, TemplateStats, TopFailure, TrendPoint};
use shared::{JobStatus, Role};

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::extract::Q;
use crate::infra::state::AppState;
use crate::store::jobs::{job_from_row, JOB_COLUMNS};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(stats))
}

#[derive(Deserialize)]
struct StatsQuery {
    window: Option<String>,
}

/// A template's name as the dashboard groups it: the template, else the job's name.
const GROUP: &str = "coalesce(nullif(template, ''), nullif(name, ''), '(unnamed)')";

async fn stats(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<StatsQuery>,
) -> Result<Json<Stats>, AppError> {
    let window = q.window.unwrap_or_else(|| "24h".into());
    let (interval, bucket, buckets) = match window.as_str() {
        "24h" => ("24 hours", "hour", 24),
        "7d" => ("7 days", "day", 7),
        "30d" => ("30 days", "day", 30),
        other => return Err(AppError::BadRequest(format!("window {other:?}: use 24h, 7d or 30d"))),
    };
    // Only the jobs the caller may see count. Three passes over the window, each read from an
    // index alone (`jobs_created_stats`, `jobs_finished_stats`), on two connections side by
    // side: the counts by template, status and trend bucket, then the overall durations; and
    // the durations by template.
    let since =
        format!("created >= now() - interval '{interval}'{}", caller.access.and_sql(Role::Viewer, ""));
    let scoped = caller.access.and_sql(Role::Viewer, "j.");
    let (mut db, mut other) = tokio::try_join!(app.pool.get(), app.pool.get())?;
    // Sorting a month of durations in memory, not in files (`set local`: for this transaction).
    let (tx, other_tx) = tokio::try_join!(db.transaction(), other.transaction())?;
    tokio::try_join!(
        tx.batch_execute("set local work_mem = '64MB'"),
        other_tx.batch_execute("set local work_mem = '64MB'")
    )?;
    let counts_sql = format!(
        "select {GROUP} collate \"C\" as t, status, date_trunc('{bucket}', created), count(*)
           from jobs where {since} group by 1, 2, 3"
    );
    // Durations of jobs that finished on their own (successful or failed).
    let finished_on_their_own = "status in ('successful', 'failed') and elapsed is not null";
    let durations_sql = format!(
        "select {GROUP} collate \"C\" as t, percentile_cont(array[0.5, 0.95]) within group (order by elapsed)
           from jobs where {since} and {finished_on_their_own} group by 1"
    );
    let overall_sql = format!(
        "select percentile_cont(array[0.5, 0.95]) within group (order by elapsed)
           from jobs where {since} and {finished_on_their_own}"
    );
    let ((count_rows, overall), duration_rows) = tokio::try_join!(
        async {
            let counts = tx.query(&counts_sql, &[]).await?;
            Ok::<_, tokio_postgres::Error>((counts, tx.query_one(&overall_sql, &[]).await?))
        },
        other_tx.query(&durations_sql, &[])
    )?;
    drop((tx, other_tx));

    let mut by_status: BTreeMap<String, i64> =
        JobStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
    // Per template: jobs, successful, failed, finished (successful, failed or error).
    let mut per_template: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    // Per trend bucket: successful, failed, other.
    let mut per_bucket: BTreeMap<DateTime<Utc>, [i64; 3]> = BTreeMap::new();
    for r in &count_rows {
        let (t, status, at, n): (String, String, DateTime<Utc>, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        *by_status.entry(status.clone()).or_default() += n;
        let c = per_template.entry(t).or_default();
        c[0] += n;
        match status.as_str() {
            "successful" => c[1] += n,
            "failed" => c[2] += n,
            _ => {}
        }
        if matches!(status.as_str(), "successful" | "failed" | "error") {
            c[3] += n;
        }
        let kind = match status.as_str() {
            "successful" => 0,
            "failed" => 1,
            _ => 2,
        };
        per_bucket.entry(at).or_default()[kind] += n;
    }
    let jobs: i64 = by_status.values().sum();
    let rate = |ok: i64, finished: i64| (finished > 0).then(|| ok as f64 / finished as f64);
    let finished = by_status["successful"] + by_status["failed"] + by_status["error"];
    let success_rate = rate(by_status["successful"], finished);

    let none = || Durations { median: None, p95: None };
    // Null (not an array) when no job of the window finished.
    let durations_of = |p: Option<Vec<Option<f64>>>| {
        let p = p.unwrap_or_default();
        Durations { median: p.first().copied().flatten(), p95: p.get(1).copied().flatten() }
    };
    let durations = durations_of(overall.get(0));
    let mut per_template_durations: BTreeMap<String, Durations> =
        duration_rows.iter().map(|r| (r.get(0), durations_of(r.get(1)))).collect();

    // The most frequent explaining entry per template.
    let top_rows = db
        .query(
            &format!(
                "select t, kb_id, title, n from (
                    select {GROUP} as t, k.id as kb_id, k.title, count(*) as n,
                           row_number() over (partition by {GROUP} order by count(*) desc, k.id) as rank
                      from jobs j
                      join job_failures f on f.job_id = j.id
                      join kb_entries k on k.id = any(f.kb_ids) and k.deleted is null
                     where j.created >= now() - interval '{interval}'{scoped}
                     group by 1, k.id, k.title) ranked
                  where rank = 1"
            ),
            &[],
        )
        .await?;
    let mut templates: Vec<TemplateStats> = per_template
        .into_iter()
        .map(|(t, [jobs, successful, failed, finished])| {
            let top_failure = top_rows.iter().find(|x| x.get::<_, String>(0) == t).map(|x| TopFailure {
                kb_id: x.get(1),
                title: x.get(2),
                count: x.get(3),
            });
            TemplateStats {
                durations: per_template_durations.remove(&t).unwrap_or_else(none),
                template: t,
                jobs,
                successful,
                failed,
                success_rate: rate(successful, finished),
                top_failure,
            }
        })
        .collect();
    // Most jobs first, then by name.
    templates.sort_by(|a, b| b.jobs.cmp(&a.jobs).then(a.template.cmp(&b.template)));
    let mut failing: Vec<TemplateStats> = templates.iter().filter(|t| t.failed > 0).cloned().collect();
    failing.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.template.cmp(&b.template)));
    failing.truncate(5);

    let trend = db
        .query(
            &format!(
                "select generate_series(date_trunc('{bucket}', now()) - interval '1 {bucket}' * ($1 - 1),
                                        date_trunc('{bucket}', now()), interval '1 {bucket}')"
            ),
            &[&{ buckets }],
        )
        .await?
        .iter()
        .map(|r| {
            let start: DateTime<Utc> = r.get(0);
            let [successful, failed, other] = per_bucket.get(&start).copied().unwrap_or_default();
            TrendPoint { start, successful, failed, other }
        })
        .collect();

    let running: Vec<shared::Job> = db
        .query(
            &format!(
                "select {JOB_COLUMNS} from jobs where status = 'running'{} order by id desc limit 50",
                caller.access.and_sql(Role::Viewer, "")
            ),
            &[],
        )
        .await?
        .iter()
        .map(job_from_row)
        .collect();
    Ok(Json(Stats {
        window,
        jobs,
        by_status,
        success_rate,
        durations,
        templates,
        trend,
        running,
        failing_templates: failing,
    }))
}
