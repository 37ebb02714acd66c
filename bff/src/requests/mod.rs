//! The request box: an operator types "Patch server web-01 with Group-1", Playdeck answers with
//! what it understood and exactly what it would run, asks for what is missing, refuses unknown
//! hosts, and launches only when the operator confirms. The conversation, the interpretation and
//! the job stay together in `requests` and `request_messages`; once launched, the request shows
//! the job's progress as the action's phases.
//!
//! - `POST /api/v1/requests` `{"text"}` (operator) → 201, the request
//! - `POST /api/v1/requests/{id}/reply` `{"text"}` (operator) → the request, re-interpreted
//! - `POST /api/v1/requests/{id}/confirm` (operator) → the request with its job
//! - `GET /api/v1/requests/{id}`, `GET /api/v1/requests` (any key)
//!
//! Phases are computed from the job's stored play and task starts on each `GET`, so a client follows
//! them live by subscribing to the job (`/api/v1/ws` `job` messages, or the job's SSE stream) and
//! reading the request again when the job changes.

pub mod catalog;
pub mod parse;
pub mod when;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::GenericClient;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::requests::{
    Message, Outcome, Phase, Progress, Request, RequestStatus, RequestSummary, RequestText,
};
use shared::{Job, Page, Role};
use tokio_postgres::Row;

use crate::infra::access::Target;
use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::page_of;
use crate::infra::extract::{path_id_type, Q};
use crate::infra::state::AppState;
use crate::store::jobs::fetch_job;

use catalog::{Catalog, PhaseDef};
use parse::Interpretation;

/// The longest message an operator may type, in characters.
pub const MAX_TEXT: usize = 1000;
/// Operator messages in one conversation; a longer one should start afresh.
const MAX_MESSAGES: i64 = 20;
/// A launch that has not finished after this long was cut short (a crash between claiming the
/// request and storing the job); the request may be confirmed again.
const LAUNCH_STALE_SECS: f64 = 600.0;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/{id}", get(show))
        .route("/{id}/reply", post(reply))
        .route("/{id}/confirm", post(confirm))
}

path_id_type!(
    /// A request's id from the path: a clear 400 for `/requests/abc`.
    RequestId,
    "a request"
);

/// Records what happened to request `id` in the audit log.
async fn audit(app: &AppState, caller: &Caller, id: i64, action: &str, detail: Value) {
    crate::infra::audit::record(app, caller, action, Some(&format!("request {id}")), detail).await;
}

/// The request's row, locked for the transaction; refused (409) once it was launched.
async fn lock_open(tx: &tokio_postgres::Transaction<'_>, id: i64) -> Result<tokio_postgres::Row, AppError> {
    let row = tx
        .query_opt(&format!("select {REQUEST_COLUMNS} from requests where id = $1 for update"), &[&id])
        .await?
        .ok_or_else(|| not_found(id))?;
    refuse_if_launched(&row)?;
    Ok(row)
}

fn not_found(id: i64) -> AppError {
    AppError::NotFound(format!("request {id} does not exist"))
}

/// The text as stored: control characters (escapes; a NUL is refused at the edge) become spaces; empty and overlong texts
/// are refused.
pub fn check_text(text: &str) -> Result<String, AppError> {
    let cleaned: String =
        text.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { ' ' } else { c }).collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() {
        return Err(AppError::Unprocessable(
            "say what you need, for example \"Patch server web-01 with Group-1\"".into(),
        ));
    }
    let n = cleaned.chars().count();
    if n > MAX_TEXT {
        return Err(AppError::Unprocessable(format!(
            "a request is at most {MAX_TEXT} characters (this one has {n}); say it in a sentence or two"
        )));
    }
    Ok(cleaned)
}

/// Reads the catalog and its inventories (small files, read for each request so edits apply at
/// once), keeping only the actions the caller may run: a request can only become what its
/// author could launch.
async fn load_catalog(app: &AppState, caller: &Caller) -> Result<Catalog, AppError> {
    // The inventories it names are read as the launch form reads them (`ansible-inventory`,
    // cached until the file changes), so the box suggests the hosts and groups the form lists.
    let config = app.config.requests.clone();
    let names = tokio::task::spawn_blocking(move || Catalog::inventories_named(&config))
        .await
        .map_err(|e| AppError::Internal(format!("catalog task: {e}")))?;
    let mut read: std::collections::BTreeMap<String, Result<catalog::Inventory, String>> = Default::default();
    for name in names {
        let listing = match crate::inventories::Inventories::read(app, &name).await {
            Ok(l) => match l.as_ref() {
                Ok(file) => Ok(catalog::Inventory::from_listing(file)),
                // Without ansible-core (a server that only talks to controllers) the file is read
                // by the catalog's own reader of INI and YAML inventories.
                Err(e) => {
                    let path = app.config.engine.inventory_dir.join(&name);
                    match tokio::fs::read_to_string(&path).await {
                        Ok(text) => catalog::Inventory::parse(&name, &text)
                            .map_err(|own| format!("inventory {name}: {e}; read as INI or YAML: {own}")),
                        Err(_) => Err(format!("inventory {name}: {e}")),
                    }
                }
            },
            Err(e) => Err(format!("inventory {name}: {e}")),
        };
        read.insert(name, listing);
    }
    let config = app.config.requests.clone();
    let mut catalog = tokio::task::spawn_blocking(move || {
        Catalog::load(&config, |name| {
            read.get(name).cloned().unwrap_or_else(|| Err(format!("inventory {name} was not read")))
        })
    })
    .await
    .map_err(|e| AppError::Internal(format!("catalog task: {e}")))?
    .map_err(AppError::Internal)?;
    if !caller.access.everywhere_as(Role::Operator) {
        catalog.actions.retain(|a| {
            let inventory = a.inventory.as_ref().map(|i| i.name.as_str());
            let (source, template) = match &a.run {
                catalog::Run::Playbook { path, .. } => ("local".to_string(), path.as_str()),
                catalog::Run::Template { name, controller } => {
                    let source = match controller {
                        Some(c) => c.clone(),
                        None => crate::aap::Connector::of(app)
                            .pick(None)
                            .map(|c| c.config.name.clone())
                            .unwrap_or_default(),
                    };
                    (source, name.as_str())
                }
            };
            caller
                .access
                .allows(Role::Operator, &Target { source: &source, template: Some(template), inventory })
        });
    }
    Ok(catalog)
}

const REQUEST_COLUMNS: &str = "id, text, status, created, created_by, modified, interpretation, phases,
    job_id, confirmed, confirmed_by, extract(epoch from now() - modified)::float8 as age, time_zone, schedule_id";

/// Interprets the operator's messages with their time phrase ("tonight at 22:00") taken out, and
/// what it names in the person's `zone`, resolved against `made` (when the request was made). A
/// time that has passed is asked again; a later "now" drops the time.
fn interpret_at(
    catalog: &Catalog,
    messages: &[&str],
    zone: &str,
    made: chrono::DateTime<chrono::Utc>,
) -> Interpretation {
    let mut phrase = None;
    let stripped: Vec<String> = messages
        .iter()
        .map(|m| {
            let (rest, p) = when::take(m);
            if p.is_some() {
                phrase = p;
            } else if m
                .split_whitespace()
                .any(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).eq_ignore_ascii_case("now"))
            {
                phrase = None;
            }
            rest
        })
        .collect();
    let refs: Vec<&str> = stripped.iter().map(String::as_str).collect();
    let mut i = parse::interpret(catalog, &refs);
    let (Some(p), Ok(tz)) = (phrase, crate::schedules::timing::parse_zone(zone)) else { return i };
    let local = p.resolve(when::local_in(tz, made));
    let shown = local.format("%a %Y-%m-%d %H:%M").to_string();
    if local <= when::local_in(tz, chrono::Utc::now()) {
        if i.status == RequestStatus::Ready {
            i.status = RequestStatus::NeedsInput;
        }
        i.missing.push(shared::requests::Missing {
            slot: "when".into(),
            question: format!(
                "“{}” is {shown} in {zone}, which has passed: when should it run (or “now”)?",
                p.words
            ),
            choices: Vec::new(),
        });
        i.answer = format!(
            "{} But “{}” is {shown} in {zone}, which has passed: say another time, or “now”.",
            i.answer, p.words
        );
        return i;
    }
    i.understood.when = Some(local.format("%Y-%m-%dT%H:%M:%S").to_string());
    i.understood.time_zone = Some(zone.to_string());
    if i.status == RequestStatus::Ready {
        i.answer = format!(
            "{} It will run once, at {shown} ({zone}): confirming makes a one-time schedule.",
            i.answer.replace("Confirm to launch it.", "Confirm to schedule it.")
        );
    }
    i
}

fn status_of(row: &Row) -> RequestStatus {
    RequestStatus::parse(row.get("status")).unwrap_or(RequestStatus::NeedsInput)
}

fn interpretation_of(row: &Row) -> Result<Interpretation, AppError> {
    serde_json::from_value(row.get("interpretation")).map_err(|e| {
        AppError::Internal(format!("request {}: stored interpretation: {e}", row.get::<_, i64>("id")))
    })
}

async fn add_message(
    db: &impl GenericClient,
    id: i64,
    author: &str,
    by: &str,
    text: &str,
) -> Result<(), AppError> {
    db.execute(
        "insert into request_messages (request_id, author, by, text) values ($1, $2, $3, $4)",
        &[&id, &author, &by, &text],
    )
    .await?;
    Ok(())
}

async fn operator_messages(db: &impl GenericClient, id: i64) -> Result<Vec<String>, AppError> {
    let rows = db
        .query(
            "select text from request_messages where request_id = $1 and author = 'operator' order by id",
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn store_interpretation(db: &impl GenericClient, id: i64, i: &Interpretation) -> Result<(), AppError> {
    let stored = serde_json::to_value(i).map_err(|e| AppError::Internal(format!("interpretation: {e}")))?;
    db.execute(
        "update requests set status = $2, action = $3, interpretation = $4, modified = now() where id = $1",
        &[&id, &i.status.as_str(), &i.understood.action, &stored],
    )
    .await?;
    add_message(db, id, "playdeck", "playdeck", &i.answer).await
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<RequestText>,
) -> Result<(StatusCode, Json<Request>), AppError> {
    caller.require(Role::Operator)?;
    let text = check_text(&body.text)?;
    let zone = match body.time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => {
            crate::schedules::timing::parse_zone(z).map_err(AppError::Unprocessable)?.name().to_string()
        }
        None => app.config.time_zone.clone(),
    };
    let catalog = load_catalog(&app, &caller).await?;
    let i = interpret_at(&catalog, &[&text], &zone, chrono::Utc::now());
    let stored = serde_json::to_value(&i).map_err(|e| AppError::Internal(format!("interpretation: {e}")))?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let id: i64 = tx
        .query_one(
            "insert into requests (created_by, text, status, action, interpretation, time_zone)
             values ($1, $2, $3, $4, $5, $6) returning id",
            &[&caller.name, &text, &i.status.as_str(), &i.understood.action, &stored, &zone],
        )
        .await?
        .get(0);
    add_message(&tx, id, "operator", &caller.name, &text).await?;
    add_message(&tx, id, "playdeck", "playdeck", &i.answer).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(fetch(&app, id).await?)))
}

async fn reply(
    State(app): State<AppState>,
    caller: Caller,
    RequestId(id): RequestId,
    AppJson(body): AppJson<RequestText>,
) -> Result<Json<Request>, AppError> {
    caller.require(Role::Operator)?;
    let text = check_text(&body.text)?;
    let catalog = load_catalog(&app, &caller).await?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let row = lock_open(&tx, id).await?;
    let mut messages = operator_messages(&tx, id).await?;
    if messages.len() as i64 >= MAX_MESSAGES {
        return Err(AppError::Unprocessable(format!(
            "request {id} already has {MAX_MESSAGES} messages; start a new request with the whole of it"
        )));
    }
    add_message(&tx, id, "operator", &caller.name, &text).await?;
    messages.push(text);
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let i = interpret_at(&catalog, &refs, &zone_of(&app, &row), row.get("created"));
    store_interpretation(&tx, id, &i).await?;
    tx.commit().await?;
    Ok(Json(fetch(&app, id).await?))
}

/// A launched request (or one being launched) takes no more words.
fn refuse_if_launched(row: &Row) -> Result<(), AppError> {
    let id: i64 = row.get("id");
    match status_of(row) {
        RequestStatus::Launched => {
            let job: Option<i64> = row.get("job_id");
            Err(AppError::Conflict(match job {
                Some(j) => {
                    format!("request {id} was already launched as job {j}; start a new request for more")
                }
                None => format!("request {id} was already launched; start a new request for more"),
            }))
        }
        RequestStatus::Scheduled => Err(AppError::Conflict(format!(
            "request {id} was already scheduled as schedule {}; start a new request for more",
            row.get::<_, Option<i64>>("schedule_id").unwrap_or_default()
        ))),
        RequestStatus::Launching if row.get::<_, f64>("age") < LAUNCH_STALE_SECS => {
            Err(AppError::Conflict(format!("request {id} is being launched right now")))
        }
        _ => Ok(()),
    }
}

async fn confirm(
    State(app): State<AppState>,
    caller: Caller,
    RequestId(id): RequestId,
) -> Result<Json<Request>, AppError> {
    caller.require(Role::Operator)?;
    let catalog = load_catalog(&app, &caller).await?;
    let (would_run, at) = match claim(&app, &catalog, id).await {
        Ok(claimed) => claimed,
        Err(e) => {
            if matches!(e, AppError::Conflict(_)) {
                audit(&app, &caller, id, "request confirm refused", json!({"reason": e.to_string()})).await;
            }
            return Err(e);
        }
    };
    match at {
        Some(at) => schedule_claimed(&app, &caller, id, would_run, at).await.map(Json),
        None => launch_claimed(&app, &caller, id, would_run).await.map(Json),
    }
}

/// Makes a claimed request with a time a one-time schedule in the person's zone, or puts it
/// back to ready with the schedule's refusal. Both are recorded.
async fn schedule_claimed(
    app: &AppState,
    caller: &Caller,
    id: i64,
    would_run: Value,
    at: String,
) -> Result<Request, AppError> {
    let db = app.pool.get().await?;
    let row = db.query_one("select time_zone, text from requests where id = $1", &[&id]).await?;
    drop(db);
    let zone: String = row.get::<_, Option<String>>(0).unwrap_or_else(|| app.config.time_zone.clone());
    // Named by what the operator asked: "Patch server web-01 with Group-1 tonight at 22:00 (request 7)".
    let text: String = row.get(1);
    let short: String = text.chars().take(150).collect();
    let name = format!("{short} (request {id})");
    let input = shared::schedules::ScheduleInput {
        name: Some(name),
        at: Some(at.clone()),
        time_zone: Some(zone.clone()),
        launch: Some(would_run.clone()),
        ..Default::default()
    };
    match crate::schedules::create_as(app, caller, input).await {
        Ok(schedule) => {
            let mut db = app.pool.get().await?;
            let tx = db.transaction().await?;
            tx.execute(
                "update requests set status = 'scheduled', schedule_id = $2, confirmed = now(), confirmed_by = $3,
                        modified = now()
                  where id = $1",
                &[&id, &schedule.id, &caller.name],
            )
            .await?;
            let said = format!(
                "Scheduled as schedule {}: it runs once at {} ({zone}). Pause or delete it on the Schedules page.",
                schedule.id,
                at.replace('T', " ")
            );
            add_message(&tx, id, "playdeck", "playdeck", &said).await?;
            tx.commit().await?;
            audit(
                app,
                caller,
                id,
                "request scheduled",
                json!({"schedule_id": schedule.id, "at": at, "time_zone": zone}),
            )
            .await;
            fetch(app, id).await
        }
        Err(e) => {
            let detail = e.to_string();
            let db = back_to_ready(app, id).await?;
            add_message(
                &db,
                id,
                "playdeck",
                "playdeck",
                &format!("The schedule was refused: {detail}. Nothing was scheduled."),
            )
            .await?;
            Err(with_context(e, &format!("request {id} was not scheduled")))
        }
    }
}

/// Marks a ready request as being launched and returns its launch body; refuses (409) one that
/// is not ready, was launched, or would now run something else than the operator was shown.
async fn claim(app: &AppState, catalog: &Catalog, id: i64) -> Result<(Value, Option<String>), AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let row = lock_open(&tx, id).await?;
    let seen = interpretation_of(&row)?;
    // What is confirmed is what the operator saw; if the catalog or an inventory changed since,
    // the operator sees the new interpretation before anything runs.
    let messages = operator_messages(&tx, id).await?;
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let now = interpret_at(catalog, &refs, &zone_of(app, &row), row.get("created"));
    if now.status != seen.status
        || now.would_run != seen.would_run
        || now.understood.when != seen.understood.when
    {
        store_interpretation(&tx, id, &now).await?;
        tx.commit().await?;
        return Err(AppError::Conflict(if now.status == RequestStatus::Ready {
            format!(
                "request {id} changed since it was shown (the catalog or an inventory was edited); \
                 it would now run {}; read it again and confirm",
                now.would_run.as_ref().map(Value::to_string).unwrap_or_default()
            )
        } else {
            format!(
                "request {id} is no longer ready (the catalog or an inventory was edited): {}",
                now.answer
            )
        }));
    }
    let Some(would_run) = seen.would_run.clone().filter(|_| seen.status == RequestStatus::Ready) else {
        return Err(AppError::Conflict(format!("request {id} is not ready to launch: {}", seen.answer)));
    };
    let phases: Vec<PhaseDef> = seen
        .understood
        .action
        .as_deref()
        .and_then(|a| catalog.action(a))
        .map(|a| a.phases.clone())
        .unwrap_or_default();
    let phases = serde_json::to_value(&phases).map_err(|e| AppError::Internal(format!("phases: {e}")))?;
    tx.execute(
        "update requests set status = 'launching', phases = $2, modified = now() where id = $1",
        &[&id, &phases],
    )
    .await?;
    tx.commit().await?;
    Ok((would_run, seen.understood.when.clone()))
}

/// A claimed request whose launch or schedule was refused is ready to confirm again. Answers the
/// connection, for the message that says why.
async fn back_to_ready(app: &AppState, id: i64) -> Result<deadpool_postgres::Object, AppError> {
    let db = app.pool.get().await?;
    db.execute(
        "update requests set status = 'ready', modified = now() where id = $1 and status = 'launching'",
        &[&id],
    )
    .await?;
    Ok(db)
}

/// The zone a request's times are in.
fn zone_of(app: &AppState, row: &Row) -> String {
    row.get::<_, Option<String>>("time_zone").unwrap_or_else(|| app.config.time_zone.clone())
}

/// Launches a claimed request and stores its job, or puts it back to ready with the engine's words.
/// Both are recorded.
async fn launch_claimed(
    app: &AppState,
    caller: &Caller,
    id: i64,
    would_run: Value,
) -> Result<Request, AppError> {
    // No lock is held while the engine launches; the 'launching' status keeps a second confirm out.
    match launch(app, caller, would_run.clone()).await {
        Ok(job_id) => {
            let mut db = app.pool.get().await?;
            let tx = db.transaction().await?;
            tx.execute(
                "update requests set status = 'launched', job_id = $2, confirmed = now(), confirmed_by = $3,
                        modified = now()
                  where id = $1",
                &[&id, &job_id, &caller.name],
            )
            .await?;
            let said = match job_id {
                Some(j) => format!("Launched as job {j}. I will show its progress here."),
                None => "Launched.".to_string(),
            };
            add_message(&tx, id, "playdeck", "playdeck", &said).await?;
            tx.commit().await?;
            audit(app, caller, id, "request confirmed", json!({"job_id": job_id, "would_run": would_run}))
                .await;
            fetch(app, id).await
        }
        Err(e) => {
            let detail = e.to_string();
            let db = back_to_ready(app, id).await?;
            // The engine's own refusals mean nothing ran; a failure on the server may have come
            // after the engine took the job, so the operator is told to look first.
            let said = match &e {
                AppError::Internal(_) | AppError::Unavailable(_) => {
                    "The launch failed on the server. Look at the \
                    jobs list before confirming again: the job may have started."
                        .to_string()
                }
                _ => format!(
                    "The launch failed: {detail}. Nothing was started; confirm again once that is fixed."
                ),
            };
            add_message(&db, id, "playdeck", "playdeck", &said).await?;
            audit(app, caller, id, "request launch failed", json!({"error": detail, "would_run": would_run}))
                .await;
            Err(with_context(e, &format!("request {id} was not launched")))
        }
    }
}

/// Launches through the front door, as `POST /api/v1/jobs` would, and finds the job's id in the
/// answer (`{"job": {"id": …}}` from either engine).
async fn launch(app: &AppState, caller: &Caller, body: Value) -> Result<Option<i64>, AppError> {
    let resp = crate::jobs::launch::launch_as(app, caller, body).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 4 * 1024 * 1024)
        .await
        .map_err(|e| AppError::Internal(format!("reading the launch answer: {e}")))?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = answer["errors"][0]["detail"].as_str().unwrap_or("the launch was refused").to_string();
        return Err(AppError::Unprocessable(detail));
    }
    let job_id = answer["job"]["id"].as_i64().or_else(|| answer["id"].as_i64());
    if job_id.is_none() {
        tracing::warn!(%status, "a launch answered without a job id");
    }
    Ok(job_id)
}

/// The same error, its words prefixed, unless they are the server's own (logged, never shown).
fn with_context(e: AppError, context: &str) -> AppError {
    match e {
        AppError::BadRequest(m) => AppError::BadRequest(format!("{context}: {m}")),
        AppError::Forbidden(m) => AppError::Forbidden(format!("{context}: {m}")),
        AppError::NotFound(m) => AppError::NotFound(format!("{context}: {m}")),
        AppError::Conflict(m) => AppError::Conflict(format!("{context}: {m}")),
        AppError::Unprocessable(m) => AppError::Unprocessable(format!("{context}: {m}")),
        other => other,
    }
}

/// Whom a request is shown to: everyone whose scope is everything; otherwise its author, and
/// those who may see the job it became (a condition on `requests r`, `$n` the caller's name).
fn shown_to(caller: &Caller, n: usize) -> String {
    match caller.access.sql(Role::Viewer, "") {
        // The parameter is named either way, so its type is known.
        None => format!("(${n}::text is null or true)"),
        Some(scope) => format!("(r.created_by = ${n} or r.job_id in (select id from jobs where {scope}))"),
    }
}

async fn show(
    State(app): State<AppState>,
    caller: Caller,
    RequestId(id): RequestId,
) -> Result<Json<Request>, AppError> {
    if caller.access.sql(Role::Viewer, "").is_some() {
        let db = app.pool.get().await?;
        let sql = format!("select 1 from requests r where r.id = $1 and {}", shown_to(&caller, 2));
        if db.query_opt(&sql, &[&id, &caller.name]).await?.is_none() {
            return Err(not_found(id));
        }
    }
    Ok(Json(fetch(&app, id).await?))
}

/// The request in full: interpretation, conversation, job and progress.
pub async fn fetch(app: &AppState, id: i64) -> Result<Request, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(&format!("select {REQUEST_COLUMNS} from requests where id = $1"), &[&id])
        .await?
        .ok_or_else(|| not_found(id))?;
    let i = interpretation_of(&row)?;
    let conversation = db
        .query("select at, author, by, text from request_messages where request_id = $1 order by id", &[&id])
        .await?
        .iter()
        .map(|r| Message { at: r.get(0), author: r.get(1), by: r.get(2), text: r.get(3) })
        .collect();
    let job_id: Option<i64> = row.get("job_id");
    let job = match job_id {
        Some(j) => match fetch_job(&db, j).await? {
            Some(mut job) => {
                job.explanations = crate::kb::explanations(&db, j).await?;
                Some(job)
            }
            None => None,
        },
        None => None,
    };
    let progress = match &job {
        Some(job) => {
            let defs: Vec<PhaseDef> = serde_json::from_value(row.get("phases")).unwrap_or_default();
            Some(progress(&db, job, &defs).await?)
        }
        None => None,
    };
    Ok(Request {
        id,
        text: row.get("text"),
        status: status_of(&row),
        created: row.get("created"),
        created_by: row.get("created_by"),
        modified: row.get("modified"),
        understood: i.understood,
        missing: i.missing,
        refused: i.refused,
        would_run: i.would_run,
        conversation,
        confirmed: row.get("confirmed"),
        confirmed_by: row.get("confirmed_by"),
        job_id,
        schedule_id: row.get("schedule_id"),
        job,
        progress,
    })
}

/// The job's progress in the action's phases: a phase is reached when a play (or task) whose name
/// contains the phase's words starts.
async fn progress(db: &impl GenericClient, job: &Job, defs: &[PhaseDef]) -> Result<Progress, AppError> {
    let starts = db
        .query(
            "select counter, event, play, task, created from job_events
              where job_id = $1
                and event in ('playbook_on_play_start', 'playbook_on_task_start', 'playbook_on_handler_task_start')
              order by counter
              limit 5000",
            &[&job.id],
        )
        .await?;
    let finished = job.status.is_finished();
    let reached: Vec<Option<(i64, Option<chrono::DateTime<chrono::Utc>>)>> = defs
        .iter()
        .map(|d| {
            starts.iter().find_map(|r| {
                let event: &str = r.get("event");
                let hit = match (&d.play, &d.task) {
                    (Some(play), _) => event == "playbook_on_play_start" && contains(r.get("play"), play),
                    (None, Some(task)) => event != "playbook_on_play_start" && contains(r.get("task"), task),
                    (None, None) => false,
                };
                hit.then(|| (r.get::<_, i64>("counter"), r.get("created")))
            })
        })
        .collect();
    let latest = reached.iter().enumerate().filter_map(|(k, r)| r.map(|(c, _)| (c, k))).max().map(|(_, k)| k);
    let phases = defs
        .iter()
        .zip(&reached)
        .enumerate()
        .map(|(k, (d, r))| {
            let later_reached = reached[k + 1..].iter().any(Option::is_some);
            let state = match r {
                Some(_) if !finished && Some(k) == latest => "active",
                Some(_) => "done",
                None if finished || later_reached => "skipped",
                None => "pending",
            };
            Phase { name: d.name.clone(), state: state.into(), at: r.and_then(|(_, at)| at) }
        })
        .collect();
    let current = if finished {
        None
    } else {
        match (&job.current_play, &job.current_task) {
            (Some(p), Some(t)) => Some(format!("{p} › {t}")),
            (Some(p), None) => Some(p.clone()),
            (None, Some(t)) => Some(t.clone()),
            (None, None) => None,
        }
    };
    let result = finished.then(|| outcome(job));
    Ok(Progress { phases, current, result })
}

fn contains(name: Option<&str>, needle: &str) -> bool {
    name.is_some_and(|n| n.to_lowercase().contains(&needle.to_lowercase()))
}

/// How a finished job ended, in a sentence: the first failure and the knowledge base entry that
/// explains it (the job's `explanations` carry them all).
fn outcome(job: &Job) -> Outcome {
    let h = &job.hosts;
    let counts =
        format!("{} ok, {} changed, {} failed, {} unreachable", h.ok, h.changed, h.failed, h.unreachable);
    let summary = match job.status {
        shared::JobStatus::Successful => format!("Job {} finished successfully ({counts}).", job.id),
        status => {
            let mut s = format!("Job {} ended {status} ({counts}).", job.id);
            if let Some(f) = job.explanations.first() {
                s.push_str(&format!(
                    " {} {} at \"{}\": {}",
                    f.host.as_deref().unwrap_or("a host"),
                    if f.event == "runner_on_unreachable" { "was unreachable" } else { "failed" },
                    f.task.as_deref().unwrap_or("a task"),
                    f.error.trim_end_matches('.')
                ));
                s.push('.');
                match f.matches.first() {
                    Some(m) => s.push_str(&format!(" Known error: {} (see its solution).", m.title)),
                    None => s.push_str(" No knowledge base entry explains it yet."),
                }
                if job.explanations.len() > 1 {
                    s.push_str(&format!(" {} failures in all.", job.explanations.len()));
                }
            }
            if let Some(e) = &job.explanation {
                s.push_str(&format!(" {e}"));
            }
            s
        }
    };
    Outcome { status: job.status, summary }
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<i64>,
    page_size: Option<i64>,
    status: Option<String>,
}

/// Recent requests, newest first.
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<ListQuery>,
) -> Result<Json<Page<RequestSummary>>, AppError> {
    let page = q.page.unwrap_or(1);
    let size = q.page_size.unwrap_or(25);
    if page < 1 {
        return Err(AppError::BadRequest("`page` starts at 1".into()));
    }
    if !(1..=200).contains(&size) {
        return Err(AppError::BadRequest("`page_size` must be between 1 and 200".into()));
    }
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            RequestStatus::parse(s)
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "{s:?} is not a request status (needs_input, refused, ready, launching, launched)"
                    ))
                })?
                .as_str(),
        ),
    };
    let db = app.pool.get().await?;
    let count: i64 = db
        .query_one(
            &format!(
                "select count(*) from requests r where ($1::text is null or r.status = $1) and {}",
                shown_to(&caller, 2)
            ),
            &[&status, &caller.name],
        )
        .await?
        .get(0);
    let rows = db
        .query(
            &format!(
                "select r.id, r.text, r.status, r.action, r.created, r.created_by, r.modified, r.job_id,
                        j.status as job_status
                   from requests r left join jobs j on j.id = r.job_id
                  where ($1::text is null or r.status = $1) and {}
                  order by r.id desc limit $2 offset $3",
                shown_to(&caller, 4)
            ),
            &[&status, &size, &((page - 1) * size), &caller.name],
        )
        .await?;
    let results = rows
        .iter()
        .map(|r| RequestSummary {
            id: r.get("id"),
            text: r.get("text"),
            status: status_of(r),
            action: r.get("action"),
            created: r.get("created"),
            created_by: r.get("created_by"),
            modified: r.get("modified"),
            job_id: r.get("job_id"),
            job_status: r.get::<_, Option<&str>>("job_status").and_then(shared::JobStatus::parse),
        })
        .collect();
    let filters = [("status", status.map(str::to_string))];
    Ok(Json(page_of("/api/v1/requests", page, size, &filters, count, results)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cleaned_and_bounded() {
        assert_eq!(check_text("  patch web-01\u{0}now \u{1b}[0m ").expect("ok"), "patch web-01 now  [0m");
        for bad in ["", "   \n\t ", "\u{0}\u{0}"] {
            assert!(matches!(check_text(bad), Err(AppError::Unprocessable(_))), "{bad:?}");
        }
        assert!(check_text(&"x".repeat(MAX_TEXT)).is_ok());
        match check_text(&"é".repeat(MAX_TEXT + 1)) {
            Err(AppError::Unprocessable(m)) => assert!(m.contains("at most 1000 characters"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
