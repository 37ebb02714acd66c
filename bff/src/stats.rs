//! `GET /api/v1/stats`: the dashboard's figures — jobs by status, success rate, median and 95th
//! percentile durations overall and per template, the trend, running jobs, the templates that fail
//! most and the knowledge base entry that explains them most often.

use std::collections::BTreeMap;

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
    let db = app.pool.get().await?;
    // Only the jobs the caller may see count.
    let since =
        format!("created >= now() - interval '{interval}'{}", caller.access.and_sql(Role::Viewer, ""));
    let scoped = caller.access.and_sql(Role::Viewer, "j.");

    let mut by_status: BTreeMap<String, i64> =
        JobStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
    for r in
        db.query(&format!("select status, count(*) from jobs where {since} group by status"), &[]).await?
    {
        by_status.insert(r.get(0), r.get(1));
    }
    let jobs: i64 = by_status.values().sum();
    let rate = |ok: i64, finished: i64| (finished > 0).then(|| ok as f64 / finished as f64);
    let finished = by_status["successful"] + by_status["failed"] + by_status["error"];
    let success_rate = rate(by_status["successful"], finished);

    // Durations of jobs that finished on their own (successful or failed).
    let durations_sql = "percentile_cont(0.5) within group (order by elapsed) filter (where status in ('successful','failed') and elapsed is not null),
                         percentile_cont(0.95) within group (order by elapsed) filter (where status in ('successful','failed') and elapsed is not null)";
    let overall = db.query_one(&format!("select {durations_sql} from jobs where {since}"), &[]).await?;
    let durations = Durations { median: overall.get(0), p95: overall.get(1) };

    let rows = db
        .query(
            &format!(
                "select {GROUP} as t, count(*),
                        count(*) filter (where status = 'successful'),
                        count(*) filter (where status = 'failed'),
                        count(*) filter (where status in ('successful','failed','error')),
                        {durations_sql}
                   from jobs where {since} group by t order by count(*) desc, t"
            ),
            &[],
        )
        .await?;
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
    let templates: Vec<TemplateStats> = rows
        .iter()
        .map(|r| {
            let t: String = r.get(0);
            let top_failure = top_rows.iter().find(|x| x.get::<_, String>(0) == t).map(|x| TopFailure {
                kb_id: x.get(1),
                title: x.get(2),
                count: x.get(3),
            });
            TemplateStats {
                template: t,
                jobs: r.get(1),
                successful: r.get(2),
                failed: r.get(3),
                success_rate: rate(r.get(2), r.get(4)),
                durations: Durations { median: r.get(5), p95: r.get(6) },
                top_failure,
            }
        })
        .collect();
    let mut failing: Vec<TemplateStats> = templates.iter().filter(|t| t.failed > 0).cloned().collect();
    failing.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.template.cmp(&b.template)));
    failing.truncate(5);

    let trend = db
        .query(
            &format!(
                "with buckets as (
                    select generate_series(date_trunc('{bucket}', now()) - interval '1 {bucket}' * ($1 - 1),
                                           date_trunc('{bucket}', now()), interval '1 {bucket}') as start)
                 select b.start,
                        count(j.id) filter (where j.status = 'successful'),
                        count(j.id) filter (where j.status = 'failed'),
                        count(j.id) filter (where j.status not in ('successful', 'failed'))
                   from buckets b
                   left join jobs j on date_trunc('{bucket}', j.created) = b.start{scoped}
                  group by b.start order by b.start"
            ),
            &[&{ buckets }],
        )
        .await?
        .iter()
        .map(|r| TrendPoint { start: r.get(0), successful: r.get(1), failed: r.get(2), other: r.get(3) })
        .collect();

    let running_ids: Vec<i64> = db
        .query(
            &format!(
                "select id from jobs where status = 'running'{} order by id desc limit 50",
                caller.access.and_sql(Role::Viewer, "")
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut running = Vec::new();
    for id in running_ids {
        if let Some(job) = crate::store::jobs::fetch_job(&db, id).await? {
            running.push(job);
        }
    }
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
