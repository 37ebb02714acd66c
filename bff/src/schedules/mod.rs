//! `/api/v1/schedules`: launches (a `POST /api/v1/jobs` body) fired by cron in a time zone, or
//! once, minus exclusion windows (`timing`); what each replica's ticker fires and how exactly one
//! replica fires each run (`fire`).
//!
//! Anyone who may see what a schedule runs sees the schedule; operators who may launch it make
//! one; its owner or an admin changes or deletes it. Each run is launched with the access its
//! owner has then (the token it was made with, or the person), so a revoked token or a narrowed
//! binding stops its runs, each skipped run saying why.

pub mod fire;
pub mod timing;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::schedules::{Exclusion, Preview, PreviewRequest, Schedule, ScheduleInput, ScheduleRun};
use shared::{Page, Role};

use crate::infra::access::Target;
use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::{page_of, path_id_type, Q};
use crate::infra::state::AppState;
use timing::Timing;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/preview", post(preview))
        .route("/{id}", get(show).patch(change).delete(remove))
        .route("/{id}/runs", get(runs))
}

path_id_type!(
    /// A schedule's id from the path.
    ScheduleId,
    "a schedule"
);

fn bad(m: impl Into<String>) -> AppError {
    AppError::Unprocessable(m.into())
}

/// A schedule row as read by `SELECT_SCHEDULE`.
pub(crate) struct Row {
    pub id: i64,
    pub name: String,
    pub cron: Option<String>,
    pub at: Option<NaiveDateTime>,
    pub time_zone: String,
    pub exclusions: Vec<Exclusion>,
    pub overlap: String,
    pub catch_up: String,
    pub enabled: bool,
    pub launch: Value,
    pub source: String,
    pub target: String,
    pub inventory: Option<String>,
    pub created_by: String,
    pub owner_user: Option<i64>,
    pub owner_key: Option<i64>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub next_run: Option<DateTime<Utc>>,
    launch_sealed: Value,
}

pub(crate) const SELECT_SCHEDULE: &str = "select id, name, cron, once_at, time_zone, exclusions, overlap, catch_up,
        enabled, launch, source, target, inventory, created_by, owner_user, owner_key, created, modified, next_run,
        launch_sealed
   from schedules s";

/// What a schedule's sealed launch body is bound to.
const SEALED_LAUNCH: &str = "schedule launch";

impl Row {
    pub fn read(r: &tokio_postgres::Row) -> Row {
        Row {
            id: r.get(0),
            name: r.get(1),
            cron: r.get(2),
            at: r.get(3),
            time_zone: r.get(4),
            exclusions: serde_json::from_value(r.get(5)).unwrap_or_default(),
            overlap: r.get(6),
            catch_up: r.get(7),
            enabled: r.get(8),
            launch: r.get(9),
            source: r.get(10),
            target: r.get(11),
            inventory: r.get(12),
            created_by: r.get(13),
            owner_user: r.get(14),
            owner_key: r.get(15),
            created: r.get(16),
            modified: r.get(17),
            next_run: r.get(18),
            launch_sealed: r.get(19),
        }
    }

    /// The launch body itself (secrets and all), for the run.
    pub fn launch_body(&self, app: &crate::infra::state::App) -> Result<Value, AppError> {
        app.sealer.open_json(SEALED_LAUNCH, self.launch_sealed.clone())
    }

    fn at_text(&self) -> Option<String> {
        self.at.map(|a| a.format("%Y-%m-%dT%H:%M:%S").to_string())
    }

    /// Its timing as stored (checked when it was written).
    pub fn timing(&self) -> Result<Timing, String> {
        Timing::parse(self.cron.as_deref(), self.at_text().as_deref(), &self.time_zone, &self.exclusions)
    }

    fn target(&self) -> Target<'_> {
        Target { source: &self.source, template: Some(&self.target), inventory: self.inventory.as_deref() }
    }

    fn owned_by(&self, caller: &Caller) -> bool {
        match (self.owner_key, caller.key_id, self.owner_user, caller.user_id) {
            (Some(k), Some(c), _, _) if k == c => true,
            (_, _, Some(u), Some(c)) => u == c,
            _ => false,
        }
    }
}

fn local(zone: &str, t: DateTime<Utc>) -> DateTime<FixedOffset> {
    match timing::parse_zone(zone) {
        Ok(z) => t.with_timezone(&z).fixed_offset(),
        Err(_) => t.fixed_offset(),
    }
}

fn run_of(r: &tokio_postgres::Row, zone: &str) -> ScheduleRun {
    ScheduleRun {
        id: r.get("id"),
        schedule_id: r.get("schedule_id"),
        scheduled_for: local(zone, r.get("scheduled_for")),
        state: r.get("state"),
        job_id: r.get("job_id"),
        job_status: r.get("job_status"),
        reason: r.get("reason"),
        created: local(zone, r.get("created")),
    }
}

const SELECT_RUN: &str =
    "select r.id, r.schedule_id, r.scheduled_for, r.state, r.job_id, j.status as job_status,
        r.reason, r.created
   from schedule_runs r left join jobs j on j.id = r.job_id";

/// The latest run of each of these schedules, in one query.
async fn last_runs(
    db: &deadpool_postgres::Object,
    rows: &[Row],
) -> Result<std::collections::HashMap<i64, ScheduleRun>, AppError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let found = db
        .query(
            &format!(
                "{} where r.schedule_id = any($1) order by r.schedule_id, r.scheduled_for desc",
                SELECT_RUN.replacen("select", "select distinct on (r.schedule_id)", 1)
            ),
            &[&ids],
        )
        .await?;
    let zone = |id: i64| rows.iter().find(|r| r.id == id).map_or("UTC", |r| r.time_zone.as_str());
    Ok(found
        .iter()
        .map(|r| {
            let id: i64 = r.get("schedule_id");
            (id, run_of(r, zone(id)))
        })
        .collect())
}

/// A schedule as answered, with its latest run.
async fn shown(db: &deadpool_postgres::Object, row: Row) -> Result<Schedule, AppError> {
    let mut last = last_runs(db, std::slice::from_ref(&row)).await?;
    Ok(shown_with(row.id, &mut last, row))
}

fn shown_with(id: i64, last: &mut std::collections::HashMap<i64, ScheduleRun>, row: Row) -> Schedule {
    let last = last.remove(&id);
    Schedule {
        id: row.id,
        cron: row.cron.clone(),
        at: row.at_text(),
        name: row.name,
        exclusions: row.exclusions,
        overlap: row.overlap,
        catch_up: row.catch_up,
        enabled: row.enabled,
        launch: row.launch,
        target: row.target,
        source: row.source,
        created_by: row.created_by,
        created: local(&row.time_zone, row.created),
        modified: local(&row.time_zone, row.modified),
        next_run: row.next_run.map(|t| local(&row.time_zone, t)),
        last_run: last,
        time_zone: row.time_zone,
    }
}

/// A schedule the caller may see, or 404 (one outside their scope does not exist for them).
async fn visible(db: &deadpool_postgres::Object, caller: &Caller, id: i64) -> Result<Row, AppError> {
    let row = db
        .query_opt(&format!("{SELECT_SCHEDULE} where id = $1"), &[&id])
        .await?
        .map(|r| Row::read(&r))
        .filter(|r| caller.access.allows(Role::Viewer, &r.target()))
        .ok_or_else(|| AppError::NotFound(format!("schedule {id} does not exist")))?;
    Ok(row)
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<i64>,
    page_size: Option<i64>,
    /// Only enabled (`true`) or paused (`false`) ones.
    enabled: Option<bool>,
}

/// Every schedule the caller may see, the next to fire first (paused ones last).
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<ListQuery>,
) -> Result<Json<Page<Schedule>>, AppError> {
    let (page, size) = paging(q.page, q.page_size)?;
    let db = app.pool.get().await?;
    let rows = db
        .query(
            &format!(
                "{SELECT_SCHEDULE} where ($1::bool is null or enabled = $1)
                  order by next_run asc nulls last, id limit 10000"
            ),
            &[&q.enabled],
        )
        .await?;
    let all: Vec<Row> =
        rows.iter().map(Row::read).filter(|r| caller.access.allows(Role::Viewer, &r.target())).collect();
    let count = all.len() as i64;
    let on_page: Vec<Row> = all.into_iter().skip(((page - 1) * size) as usize).take(size as usize).collect();
    let mut last = last_runs(&db, &on_page).await?;
    let results = on_page.into_iter().map(|row| shown_with(row.id, &mut last, row)).collect();
    let filters = [("enabled", q.enabled.map(|e| e.to_string()))];
    Ok(Json(page_of("/api/v1/schedules", page, size, &filters, count, results)))
}

fn paging(page: Option<i64>, page_size: Option<i64>) -> Result<(i64, i64), AppError> {
    let (page, size) = (page.unwrap_or(1), page_size.unwrap_or(25));
    if !(1..=1_000_000).contains(&page) || !(1..=200).contains(&size) {
        return Err(AppError::BadRequest("`page` starts at 1 and `page_size` is 1 to 200".into()));
    }
    Ok((page, size))
}

async fn show(
    State(app): State<AppState>,
    caller: Caller,
    ScheduleId(id): ScheduleId,
) -> Result<Json<Schedule>, AppError> {
    let db = app.pool.get().await?;
    let row = visible(&db, &caller, id).await?;
    Ok(Json(shown(&db, row).await?))
}

/// A schedule's fields once checked: what is written.
struct Checked {
    name: String,
    cron: Option<String>,
    at: Option<NaiveDateTime>,
    time_zone: String,
    exclusions: Vec<Exclusion>,
    overlap: String,
    catch_up: String,
    enabled: bool,
    launch: Value,
    shown: Value,
    source: String,
    target: String,
    inventory: Option<String>,
    next_run: Option<DateTime<Utc>>,
}

/// Checks a whole schedule (a new one, or a stored one with a change applied): its timing, its
/// choices, and that its launch would be accepted now from this caller.
async fn check(app: &AppState, caller: &Caller, s: ScheduleInput) -> Result<Checked, AppError> {
    let name = s.name.map(|n| n.trim().to_string()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(bad("`name` is 1 to 200 printable characters"));
    }
    let time_zone = s.time_zone.map(|z| z.trim().to_string()).unwrap_or_else(|| app.config.time_zone.clone());
    let cron = s.cron.map(|c| c.trim().to_string());
    let exclusions = s.exclusions.unwrap_or_default();
    let timing = Timing::parse(cron.as_deref(), s.at.as_deref(), &time_zone, &exclusions).map_err(bad)?;
    let at = match &s.at {
        Some(a) => Some(timing::parse_local("at", a).map_err(bad)?),
        None => None,
    };
    let overlap = s.overlap.unwrap_or_else(|| "skip".into());
    if !matches!(overlap.as_str(), "skip" | "queue" | "run") {
        return Err(bad(format!("`overlap` is \"skip\", \"queue\" or \"run\", not {overlap:?}")));
    }
    let catch_up = s.catch_up.unwrap_or_else(|| "once".into());
    if !matches!(catch_up.as_str(), "once" | "skip") {
        return Err(bad(format!("`catch_up` is \"once\" or \"skip\", not {catch_up:?}")));
    }
    let enabled = s.enabled.unwrap_or(true);
    let Some(launch) = s.launch else {
        return Err(bad("`launch` is what to run: a `POST /api/v1/jobs` body"));
    };
    if launch.get("wait").is_some_and(|w| w != &Value::Bool(false)) {
        return Err(bad("`launch.wait`: a scheduled launch does not wait for its job"));
    }
    if serde_json::to_vec(&launch).map(|v| v.len()).unwrap_or(0) > 256 * 1024 {
        return Err(bad("`launch` is larger than 256 KiB"));
    }
    let what = crate::jobs::launch::check_as(app, caller, launch.clone()).await.map_err(|e| match e {
        AppError::Unavailable(_)
        | AppError::BadGateway(_)
        | AppError::InsufficientStorage(_)
        | AppError::Internal(_) => e,
        other => bad(format!("`launch` would be refused now: {other}")),
    })?;
    let now = Utc::now();
    // A one-time schedule in the past can still be paused (and is, once it fired).
    if let (timing::When::Once(t), true) = (&timing.when, enabled) {
        if *t <= now {
            return Err(bad(format!(
                "`at`: {} is in the past (it is {} in {time_zone} now)",
                timing.local(*t).format("%Y-%m-%dT%H:%M:%S%:z"),
                timing.local(now).format("%Y-%m-%dT%H:%M:%S%:z")
            )));
        }
        if timing.is_excluded(*t) {
            return Err(bad("`at` falls in one of the `exclusions`: the schedule would never run"));
        }
    }
    let next_run = if enabled { timing.next_after(now) } else { None };
    if enabled && next_run.is_none() {
        return Err(bad("`cron`: no run in the next five years (after the exclusions)"));
    }
    Ok(Checked {
        name,
        cron,
        at,
        time_zone: timing.zone.name().to_string(),
        exclusions,
        overlap,
        catch_up,
        enabled,
        launch,
        shown: what.shown,
        source: what.source,
        target: what.target,
        inventory: what.inventory,
        next_run,
    })
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(input): AppJson<ScheduleInput>,
) -> Result<(StatusCode, Json<Schedule>), AppError> {
    Ok((StatusCode::CREATED, Json(create_as(&app, &caller, input).await?)))
}

/// Makes a schedule for `caller` exactly as `POST /api/v1/schedules` with this body would (the
/// request box's "tonight at 22:00" uses it after the operator confirms).
pub async fn create_as(app: &AppState, caller: &Caller, input: ScheduleInput) -> Result<Schedule, AppError> {
    caller.require(Role::Operator)?;
    let c = check(app, caller, input).await?;
    // Made with a token (not a browser's cookie): runs act as that token; else as the person.
    let owner_key = if caller.via_cookie && caller.user_id.is_some() { None } else { caller.key_id };
    let sealed = app.sealer.seal_json(SEALED_LAUNCH, &c.launch)?;
    let db = app.pool.get().await?;
    let row = db
        .query_one(
            &format!(
                "with s as (
                   insert into schedules (name, cron, once_at, time_zone, exclusions, overlap, catch_up, enabled,
                                          launch, source, target, inventory, created_by, owner_user, owner_key, next_run,
                                          launch_sealed)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                   returning *)
                 {} ",
                SELECT_SCHEDULE.replace("from schedules s", "from s")
            ),
            &[
                &c.name,
                &c.cron,
                &c.at,
                &c.time_zone,
                &json!(c.exclusions),
                &c.overlap,
                &c.catch_up,
                &c.enabled,
                &c.shown,
                &c.source,
                &c.target,
                &c.inventory,
                &caller.name,
                &caller.user_id,
                &owner_key,
                &c.next_run,
                &sealed,
            ],
        )
        .await?;
    let row = Row::read(&row);
    crate::infra::audit::record(
        app,
        caller,
        "schedule.create",
        Some(&format!("schedule {}", row.id)),
        json!({"name": row.name, "cron": row.cron, "at": row.at_text(), "time_zone": row.time_zone, "target": row.target}),
    )
    .await;
    fire::wake(app);
    shown(&db, row).await
}

/// Who may change or delete it: its owner, or an admin.
fn may_change(caller: &Caller, row: &Row) -> Result<(), AppError> {
    caller.require(Role::Operator)?;
    if row.owned_by(caller) || caller.access.allows(Role::Admin, &row.target()) {
        return Ok(());
    }
    Err(AppError::Forbidden(format!(
        "schedule {} is {:?}'s: only they or an admin may change it",
        row.id, row.created_by
    )))
}

async fn change(
    State(app): State<AppState>,
    caller: Caller,
    ScheduleId(id): ScheduleId,
    AppJson(patch): AppJson<ScheduleInput>,
) -> Result<Json<Schedule>, AppError> {
    let db = app.pool.get().await?;
    let row = visible(&db, &caller, id).await?;
    may_change(&caller, &row)?;
    // Timing is one thing: a patch naming `cron` or `at` replaces both.
    let (cron, at) = if patch.cron.is_some() || patch.at.is_some() {
        (patch.cron.clone(), patch.at.clone())
    } else {
        (row.cron.clone(), row.at_text())
    };
    let timing_changed = patch.cron.is_some()
        || patch.at.is_some()
        || patch.time_zone.is_some()
        || patch.exclusions.is_some()
        || patch.enabled == Some(true);
    let merged = ScheduleInput {
        name: patch.name.or(Some(row.name.clone())),
        cron,
        at,
        time_zone: patch.time_zone.or(Some(row.time_zone.clone())),
        exclusions: patch.exclusions.or(Some(row.exclusions.clone())),
        overlap: patch.overlap.or(Some(row.overlap.clone())),
        catch_up: patch.catch_up.or(Some(row.catch_up.clone())),
        enabled: patch.enabled.or(Some(row.enabled)),
        launch: Some(match patch.launch {
            Some(l) => l,
            None => row.launch_body(&app)?,
        }),
    };
    let c = check(&app, &caller, merged).await?;
    let sealed = app.sealer.seal_json(SEALED_LAUNCH, &c.launch)?;
    // Unchanged timing keeps its next run (a run due now is not moved by renaming it).
    let next_run = match (c.enabled, timing_changed || !row.enabled) {
        (false, _) => None,
        (true, true) => c.next_run,
        (true, false) => row.next_run.or(c.next_run),
    };
    let updated = db
        .execute(
            "update schedules set name = $2, cron = $3, once_at = $4, time_zone = $5, exclusions = $6, overlap = $7,
                    catch_up = $8, enabled = $9, launch = $10, source = $11, target = $12, inventory = $13,
                    next_run = $14, launch_sealed = $15, modified = now()
              where id = $1",
            &[
                &id,
                &c.name,
                &c.cron,
                &c.at,
                &c.time_zone,
                &json!(c.exclusions),
                &c.overlap,
                &c.catch_up,
                &c.enabled,
                &c.shown,
                &c.source,
                &c.target,
                &c.inventory,
                &next_run,
                &sealed,
            ],
        )
        .await?;
    if updated == 0 {
        return Err(AppError::NotFound(format!("schedule {id} does not exist")));
    }
    let action = match (row.enabled, c.enabled) {
        (true, false) => "schedule.pause",
        (false, true) => "schedule.resume",
        _ => "schedule.change",
    };
    crate::infra::audit::record(
        &app,
        &caller,
        action,
        Some(&format!("schedule {id}")),
        json!({"name": c.name}),
    )
    .await;
    fire::wake(&app);
    let row = visible(&db, &caller, id).await?;
    Ok(Json(shown(&db, row).await?))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    ScheduleId(id): ScheduleId,
) -> Result<StatusCode, AppError> {
    let db = app.pool.get().await?;
    let row = visible(&db, &caller, id).await?;
    may_change(&caller, &row)?;
    db.execute("delete from schedules where id = $1", &[&id]).await?;
    crate::infra::audit::record(
        &app,
        &caller,
        "schedule.delete",
        Some(&format!("schedule {id}")),
        json!({"name": row.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct RunsQuery {
    page: Option<i64>,
    page_size: Option<i64>,
}

/// Each time it came due, newest first: the job it launched or why it did not.
async fn runs(
    State(app): State<AppState>,
    caller: Caller,
    ScheduleId(id): ScheduleId,
    Q(q): Q<RunsQuery>,
) -> Result<Json<Page<ScheduleRun>>, AppError> {
    let (page, size) = paging(q.page, q.page_size)?;
    let db = app.pool.get().await?;
    let row = visible(&db, &caller, id).await?;
    let count: i64 =
        db.query_one("select count(*) from schedule_runs where schedule_id = $1", &[&id]).await?.get(0);
    let rows = db
        .query(
            &format!(
                "{SELECT_RUN} where r.schedule_id = $1 order by r.scheduled_for desc limit $2 offset $3"
            ),
            &[&id, &size, &((page - 1) * size)],
        )
        .await?;
    let results = rows.iter().map(|r| run_of(r, &row.time_zone)).collect();
    let path = format!("/api/v1/schedules/{id}/runs");
    Ok(Json(page_of(&path, page, size, &[] as &[(&str, Option<String>)], count, results)))
}

/// The next runs of a timing, in its zone, so the page needs no time-zone data of its own.
async fn preview(
    State(app): State<AppState>,
    _caller: Caller,
    AppJson(req): AppJson<PreviewRequest>,
) -> Result<Json<Preview>, AppError> {
    let count = req.count.unwrap_or(5);
    if !(1..=100).contains(&count) {
        return Err(bad(format!("`count` is 1 to 100, not {count}")));
    }
    let t = req.timing;
    let zone = t.time_zone.unwrap_or_else(|| app.config.time_zone.clone());
    let timing = Timing::parse(t.cron.as_deref(), t.at.as_deref(), &zone, &t.exclusions).map_err(bad)?;
    let runs = timing.upcoming(Utc::now(), count as usize).into_iter().map(|r| timing.local(r)).collect();
    Ok(Json(Preview { time_zone: timing.zone.name().to_string(), runs }))
}
