//! What operators do on controllers through Playdeck: list templates, launch one, cancel and
//! relaunch jobs; and `GET /api/v1/controllers`. Every launch, cancel and relaunch is recorded
//! with the API key that asked, including those the controller refused.
//!
//! A controller's refusal comes back in its own words: 400 → 422, a cancel on a finished job
//! (405) → 409, 403 → 403, 404 → 404; a controller that rejects Playdeck's token → 502 (not the
//! caller's fault, nor fixable by them); one that cannot be reached → 503.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::aap::{
    CancelRequested, ControllerError, IdOrName, Survey, Template, TemplateLaunch, TemplateLaunched,
    TemplatePage,
};
use shared::{Page, Role};

use super::awx::{self, JobTemplate};
use super::client::{Client, ClientError};
use super::Connector;
use super::Controller;
use crate::infra::access::Target;
use crate::infra::auth::Caller;
use crate::infra::error::{error_response, AppError};
use crate::infra::state::AppState;
use crate::store::actions::{record, Hosts};
use crate::store::jobs::fetch_job;

/// An error of this module: Playdeck's own, or the controller's, answered with its status.
enum ApiError {
    App(AppError),
    Controller(StatusCode, String),
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}

impl ApiError {
    fn detail(&self) -> String {
        match self {
            ApiError::App(e) => e.to_string(),
            ApiError::Controller(_, d) => d.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::App(e) => e.into_response(),
            ApiError::Controller(status, detail) => error_response(status, detail),
        }
    }
}

/// The answer to give for a controller's error while trying to `what` (e.g. "cancel job 26").
fn controller_error(controller: &str, what: &str, e: &ClientError) -> ApiError {
    let (status, detail) = match e {
        ClientError::Unauthorized(m) => (StatusCode::BAD_GATEWAY, m.clone()),
        ClientError::Forbidden(m) => (StatusCode::FORBIDDEN, format!("cannot {what}: {m}")),
        ClientError::NotFound(m) => (StatusCode::NOT_FOUND, format!("cannot {what}: {m}")),
        ClientError::Refused { status, detail } => {
            let code = match *status {
                400 => StatusCode::UNPROCESSABLE_ENTITY,
                405 | 409 => StatusCode::CONFLICT,
                s => StatusCode::from_u16(s).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            };
            (code, format!("controller {controller} refused to {what} ({status}): {detail}"))
        }
        ClientError::Unreachable(m) => (StatusCode::SERVICE_UNAVAILABLE, format!("cannot {what}: {m}")),
        ClientError::Invalid(m) => (StatusCode::BAD_GATEWAY, format!("cannot {what}: {m}")),
    };
    ApiError::Controller(status, detail)
}

/// Turns this module's result into what the launch front door expects.
fn answer(r: Result<Response, ApiError>) -> Result<Response, AppError> {
    match r {
        Ok(resp) => Ok(resp),
        Err(ApiError::App(e)) => Err(e),
        Err(e) => Ok(e.into_response()),
    }
}

/// `GET /api/v1/controllers`: every configured controller and how its sync is doing.
pub async fn controllers(
    State(app): State<AppState>,
    _caller: Caller,
) -> Json<Page<shared::aap::Controller>> {
    let results: Vec<shared::aap::Controller> =
        Connector::of(&app).controllers.iter().map(|c| c.describe()).collect();
    Json(crate::infra::extract::whole(results))
}

#[derive(Deserialize)]
pub struct TemplateQuery {
    controller: Option<String>,
}

/// The controller the query names (404 if none is called that), or every one.
fn chosen<'a>(app: &'a AppState, q: &TemplateQuery) -> Result<Vec<&'a std::sync::Arc<Controller>>, AppError> {
    Ok(match q.controller.as_deref() {
        Some(name) => vec![Connector::of(app).pick(Some(name))?],
        None => Connector::of(app).controllers.iter().collect(),
    })
}

/// Surveys read at once per listing.
const SURVEY_READS: usize = 4;

/// `GET /api/v1/templates[?controller=]`: job templates with what each prompts for at launch and
/// its survey. A controller that does not answer is named in `errors`; the others' templates are
/// still listed.
pub async fn templates(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<TemplateQuery>,
) -> Result<Json<TemplatePage>, AppError> {
    caller.require(Role::Operator)?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for ctl in chosen(&app, &q)? {
        match controller_templates(ctl).await {
            Ok(t) => results.extend(t),
            Err(e) => {
                errors.push(ControllerError { controller: ctl.config.name.clone(), detail: e.to_string() })
            }
        }
    }
    // Only what the caller may launch (a template that prompts for its inventory is judged by
    // its own; the launch checks the one asked).
    results.retain(|t: &shared::aap::Template| {
        let target =
            Target { source: &t.controller, template: Some(&t.name), inventory: t.inventory.as_deref() };
        caller.access.allows(Role::Operator, &target)
    });
    Ok(Json(TemplatePage { count: results.len() as i64, next: None, previous: None, results, errors }))
}

/// `GET /api/v1/controllers/schedules[?controller=]`: the controllers' own schedules of job and
/// workflow templates (not their housekeeping system jobs), read-only with the next run the
/// controller computed; only those of templates the caller may see. A controller that does not
/// answer is named in `errors`.
pub async fn schedules(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<TemplateQuery>,
) -> Result<Json<shared::aap::ControllerSchedules>, AppError> {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for ctl in chosen(&app, &q)? {
        match controller_schedules(ctl).await {
            Ok(list) => results.extend(list),
            Err(e) => {
                errors.push(ControllerError { controller: ctl.config.name.clone(), detail: e.to_string() })
            }
        }
    }
    results.retain(|s: &shared::aap::ControllerSchedule| {
        caller.access.allows(
            Role::Viewer,
            &Target { source: &s.controller, template: Some(&s.template), inventory: None },
        )
    });
    results.sort_by(|a, b| {
        (a.next_run.is_none(), a.next_run, &a.name).cmp(&(b.next_run.is_none(), b.next_run, &b.name))
    });
    Ok(Json(shared::aap::ControllerSchedules { count: results.len() as i64, results, errors }))
}

async fn controller_schedules(ctl: &Controller) -> Result<Vec<shared::aap::ControllerSchedule>, ClientError> {
    #[derive(Deserialize, Default)]
    struct Ujt {
        #[serde(default)]
        id: i64,
        #[serde(default)]
        name: String,
        #[serde(default)]
        unified_job_type: String,
    }
    #[derive(Deserialize, Default)]
    struct Summary {
        #[serde(default)]
        unified_job_template: Option<Ujt>,
    }
    #[derive(Deserialize)]
    struct AwxSchedule {
        id: i64,
        #[serde(default)]
        name: String,
        #[serde(default)]
        rrule: Option<String>,
        #[serde(default)]
        timezone: Option<String>,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        next_run: Option<chrono::DateTime<chrono::Utc>>,
        #[serde(default)]
        summary_fields: Summary,
    }
    let client = ctl.client()?;
    let first =
        client.url("/schedules/", &[("order_by", "next_run".into()), ("page_size", "200".into())]).await?;
    let rows: Vec<AwxSchedule> = client.all(first, 50).await?;
    let name = ctl.config.name.as_str();
    Ok(rows
        .into_iter()
        .filter_map(|s| {
            let t = s.summary_fields.unified_job_template?;
            matches!(t.unified_job_type.as_str(), "job" | "workflow_job").then(|| {
                shared::aap::ControllerSchedule {
                    controller: name.to_string(),
                    id: s.id,
                    name: s.name,
                    template: t.name,
                    template_id: t.id,
                    kind: t.unified_job_type,
                    rrule: s.rrule.unwrap_or_default(),
                    time_zone: s.timezone.filter(|z| !z.is_empty()),
                    enabled: s.enabled,
                    next_run: s.next_run,
                }
            })
        })
        .collect())
}

async fn controller_templates(ctl: &Controller) -> Result<Vec<Template>, ClientError> {
    use futures_util::StreamExt;
    let client = ctl.client()?;
    let first =
        client.url("/job_templates/", &[("order_by", "name".into()), ("page_size", "200".into())]).await?;
    let rows: Vec<JobTemplate> = client.all(first, 100).await?;
    let name = ctl.config.name.as_str();
    let with_surveys: Vec<Result<Template, ClientError>> = futures_util::stream::iter(rows)
        .map(|t| async move {
            let survey = if t.survey_enabled {
                let url = client.url(&format!("/job_templates/{}/survey_spec/", t.id), &[]).await?;
                match client.get::<Survey>(url).await {
                    Ok(s) => Some(s),
                    // Enabled without a spec: AWX answers {} or 404; either way, no questions.
                    Err(ClientError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            Ok(t.into_template(name, survey))
        })
        .buffered(SURVEY_READS)
        .collect()
        .await;
    with_surveys.into_iter().collect()
}

/// What was sent, fit for the action log: secrets in extra_vars masked as at ingest, YAML text
/// only sized.
fn masked(body: &Value) -> Value {
    let mut out = body.clone();
    if let Some(vars) = out.get_mut("extra_vars") {
        match vars {
            Value::String(s) => *vars = json!(format!("({} bytes of YAML/JSON, not logged)", s.len())),
            other => crate::infra::secrets::mask_secrets(other),
        }
    }
    out
}

fn check_launch(req: &TemplateLaunch) -> Result<(), AppError> {
    if let Some(v) = req.verbosity {
        if v > 5 {
            return Err(AppError::Unprocessable(format!("`verbosity` is 0 to 5, not {v}")));
        }
    }
    if let Some(t) = &req.job_type {
        if t != "run" && t != "check" {
            return Err(AppError::Unprocessable(format!("`job_type` is \"run\" or \"check\", not {t:?}")));
        }
    }
    if let Some(v) = &req.extra_vars {
        if !(v.is_object() || v.is_string()) {
            return Err(AppError::Unprocessable("`extra_vars` is an object, or YAML/JSON text".into()));
        }
    }
    for (field, value) in [("limit", &req.limit), ("job_tags", &req.job_tags), ("skip_tags", &req.skip_tags)]
    {
        if value.as_ref().is_some_and(|v| v.len() > 10_000) {
            return Err(AppError::Unprocessable(format!("`{field}` is longer than 10000 characters")));
        }
    }
    if let IdOrName::Name(n) = &req.template {
        if n.trim().is_empty() {
            return Err(AppError::Unprocessable("`template` is a job template's id or name".into()));
        }
    }
    Ok(())
}

/// The id of the object of `kind` (`job_templates`, `inventories`) called `name`.
async fn id_by_name(
    client: &Client,
    controller: &str,
    kind: &str,
    what: &str,
    name: &str,
) -> Result<i64, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        id: i64,
    }
    let lookup = format!("look up {what} {name:?}");
    let url = client
        .url(&format!("/{kind}/"), &[("name", name.to_string()), ("page_size", "2".into())])
        .await
        .map_err(|e| controller_error(controller, &lookup, &e))?;
    let page: super::client::Page<Row> =
        client.get(url).await.map_err(|e| controller_error(controller, &lookup, &e))?;
    match page.results.as_slice() {
        [one] => Ok(one.id),
        [] => Err(ApiError::App(AppError::NotFound(format!(
            "controller {controller} has no {what} named {name:?}"
        )))),
        _ => Err(ApiError::App(AppError::Unprocessable(format!(
            "controller {controller} has several {kind} named {name:?}; give the id"
        )))),
    }
}

/// `POST /api/v1/jobs` with a `template`.
pub async fn launch(app: &AppState, caller: &Caller, body: Value) -> Result<Response, AppError> {
    answer(launch_template(app, caller, body).await)
}

async fn launch_template(app: &AppState, caller: &Caller, body: Value) -> Result<Response, ApiError> {
    let req: TemplateLaunch = serde_json::from_value(body)
        .map_err(|e| AppError::Unprocessable(format!("invalid template launch: {e}")))?;
    let (job, name, external_id, ignored) = launch_job(app, caller, &req).await?;
    let job = if req.wait == Some(true) { wait_for_end(app, job.id).await? } else { job };
    let body = TemplateLaunched { job, controller: name, external_id, ignored_fields: ignored };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A controller's refusal as Playdeck's own: what the controller refused (4xx) is the launch's
/// fault (422), anything else the controller's (502).
fn as_app_error(e: ApiError) -> AppError {
    match e {
        ApiError::App(e) => e,
        ApiError::Controller(status, d) if status.is_client_error() => AppError::Unprocessable(d),
        ApiError::Controller(_, d) => AppError::BadGateway(d),
    }
}

/// What a template launch would be refused with now (nothing is launched): the body, the
/// controller, the template (it exists and the caller may launch it). Answers the controller's
/// name and the template's.
pub async fn check(
    app: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<(String, String, Value), AppError> {
    let shown = masked(&body);
    let req: TemplateLaunch = serde_json::from_value(body)
        .map_err(|e| AppError::Unprocessable(format!("invalid template launch: {e}")))?;
    check_launch(&req)?;
    let ctl = Connector::of(app).pick(req.controller.as_deref())?;
    let name = ctl.config.name.as_str();
    let found = async {
        let client = ctl.client().map_err(|e| controller_error(name, "launch", &e))?;
        let template = match &req.template {
            IdOrName::Id(id) => *id,
            IdOrName::Name(n) => id_by_name(client, name, "job_templates", "job template", n.trim()).await?,
        };
        check_scope(client, name, template, req.inventory.as_ref(), caller).await?;
        Ok::<_, ApiError>(match &req.template {
            IdOrName::Id(id) => format!("job template {id}"),
            IdOrName::Name(n) => n.trim().to_string(),
        })
    }
    .await
    .map_err(as_app_error)?;
    Ok((name.to_string(), found, shown))
}

/// Launches a template for a schedule's run; the job row says which run. Answers its id.
pub async fn launch_for_run(app: &AppState, caller: &Caller, body: Value, run: i64) -> Result<i64, AppError> {
    let req: TemplateLaunch = serde_json::from_value(body)
        .map_err(|e| AppError::Unprocessable(format!("invalid template launch: {e}")))?;
    let (job, ..) = launch_job(app, caller, &req).await.map_err(as_app_error)?;
    let db = app.pool.get().await?;
    db.execute("update jobs set schedule_run_id = $2 where id = $1", &[&job.id, &run]).await?;
    Ok(job.id)
}

/// Launches at the controller and adopts the job it started: the job, the controller's name,
/// its id there and the fields it ignored.
async fn launch_job(
    app: &AppState,
    caller: &Caller,
    req: &TemplateLaunch,
) -> Result<(shared::Job, String, String, Value), ApiError> {
    check_launch(req)?;
    let ctl = Connector::of(app).pick(req.controller.as_deref())?;
    let name = ctl.config.name.as_str();
    // What the caller asked, as recorded whatever the controller answers.
    let mut detail =
        json!({"controller": name, "asked": masked(&serde_json::to_value(req).unwrap_or_default())});
    let (template, answer) = match send_launch(ctl, req, caller).await {
        Ok(sent) => sent,
        Err(e) => {
            detail["error"] = json!(e.detail());
            record(app, None, "launch", caller, &detail).await?;
            return Err(e);
        }
    };
    let ignored = answer.get("ignored_fields").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    detail["template"] = json!(template);
    detail["ignored_fields"] = masked(&ignored);
    let (job, external_id) = adopt(app, ctl, &answer, caller, "launch", detail).await?;
    Ok((job, name.to_string(), external_id, ignored))
}

/// Whether a caller whose scope is not everything may launch this template (with the inventory
/// asked, or the template's own): its name and inventory are read from the controller.
async fn check_scope(
    client: &Client,
    controller: &str,
    template: i64,
    inventory: Option<&IdOrName>,
    caller: &Caller,
) -> Result<(), ApiError> {
    #[derive(Deserialize, Default)]
    struct Named {
        #[serde(default)]
        name: String,
    }
    #[derive(Deserialize, Default)]
    struct Summary {
        #[serde(default)]
        inventory: Option<Named>,
    }
    #[derive(Deserialize)]
    struct Template {
        name: String,
        #[serde(default)]
        summary_fields: Summary,
    }
    let what = format!("read job template {template}");
    let url = client
        .url(&format!("/job_templates/{template}/"), &[])
        .await
        .map_err(|e| controller_error(controller, &what, &e))?;
    let t: Template = client.get(url).await.map_err(|e| controller_error(controller, &what, &e))?;
    let inventory = match inventory {
        Some(IdOrName::Name(n)) => Some(n.trim().to_string()),
        Some(IdOrName::Id(id)) => {
            let what = format!("read inventory {id}");
            let url = client
                .url(&format!("/inventories/{id}/"), &[])
                .await
                .map_err(|e| controller_error(controller, &what, &e))?;
            let i: Named = client.get(url).await.map_err(|e| controller_error(controller, &what, &e))?;
            Some(i.name)
        }
        None => t.summary_fields.inventory.map(|i| i.name),
    };
    let target = Target { source: controller, template: Some(&t.name), inventory: inventory.as_deref() };
    if caller.access.allows(Role::Operator, &target) {
        return Ok(());
    }
    Err(ApiError::App(AppError::Forbidden(format!(
        "{:?} may not launch {:?}{} on {controller}: no operator role over it",
        caller.name,
        t.name,
        inventory.map(|i| format!(" with inventory {i:?}")).unwrap_or_default()
    ))))
}

/// Resolves names to ids and launches; answers the template's id and the controller's answer.
async fn send_launch(
    ctl: &Controller,
    req: &TemplateLaunch,
    caller: &Caller,
) -> Result<(i64, Value), ApiError> {
    let name = ctl.config.name.as_str();
    let client = ctl.client().map_err(|e| controller_error(name, "launch", &e))?;
    let template = match &req.template {
        IdOrName::Id(id) => *id,
        IdOrName::Name(n) => id_by_name(client, name, "job_templates", "job template", n.trim()).await?,
    };
    if !caller.access.everywhere_as(Role::Operator) {
        check_scope(client, name, template, req.inventory.as_ref(), caller).await?;
    }
    let mut sent = Map::new();
    if let Some(v) = &req.extra_vars {
        sent.insert("extra_vars".into(), v.clone());
    }
    for (k, v) in [
        ("limit", &req.limit),
        ("job_tags", &req.job_tags),
        ("skip_tags", &req.skip_tags),
        ("job_type", &req.job_type),
    ] {
        if let Some(v) = v {
            sent.insert(k.into(), json!(v));
        }
    }
    match &req.inventory {
        Some(IdOrName::Id(id)) => {
            sent.insert("inventory".into(), json!(id));
        }
        Some(IdOrName::Name(n)) => {
            let id = id_by_name(client, name, "inventories", "inventory", n.trim()).await?;
            sent.insert("inventory".into(), json!(id));
        }
        None => {}
    }
    if let Some(v) = req.verbosity {
        sent.insert("verbosity".into(), json!(v));
    }
    if let Some(v) = req.diff_mode {
        sent.insert("diff_mode".into(), json!(v));
    }
    let what = format!("launch job template {template}");
    let result = async {
        let url = client.url(&format!("/job_templates/{template}/launch/"), &[]).await?;
        client.post(url, &Value::Object(sent)).await
    }
    .await;
    match result {
        Ok((_, answer)) => Ok((template, answer)),
        Err(e) => Err(controller_error(name, &what, &e)),
    }
}

/// Stores the job a controller just created (from its launch or relaunch answer), has the sync
/// follow it from its first event, and records who asked. Answers the Playdeck job.
async fn adopt(
    app: &AppState,
    ctl: &Controller,
    answer: &Value,
    caller: &Caller,
    action: &str,
    mut detail: Value,
) -> Result<(shared::Job, String), ApiError> {
    let name = ctl.config.name.as_str();
    let mut job: awx::Job = serde_json::from_value(answer.clone()).unwrap_or_default();
    if let Some(id) = answer.get("job").and_then(Value::as_i64) {
        job.id = id;
    }
    if job.id <= 0 {
        return Err(ApiError::Controller(
            StatusCode::BAD_GATEWAY,
            format!("controller {name} accepted the {action} but did not say which job it started"),
        ));
    }
    let stored = super::store(app, name, job.to_ingest(), Vec::new()).await?;
    super::sync::track(app, name, job.id, stored.job_id).await?;
    ctl.nudge();
    if let Some(d) = detail.as_object_mut() {
        d.insert("external_id".into(), json!(job.id));
    }
    record(app, Some(stored.job_id), action, caller, &detail).await?;
    let db = app.pool.get().await.map_err(AppError::from)?;
    let stored_job =
        fetch_job(&db, stored.job_id).await?.ok_or_else(|| AppError::not_found_job(stored.job_id))?;
    Ok((stored_job, job.id.to_string()))
}

/// Longest a `"wait": true` launch waits for its job to end.
const MAX_WAIT: Duration = Duration::from_secs(3600);

async fn wait_for_end(app: &AppState, id: i64) -> Result<shared::Job, ApiError> {
    let start = Instant::now();
    loop {
        let db = app.pool.get().await.map_err(AppError::from)?;
        let job = fetch_job(&db, id).await?.ok_or_else(|| AppError::not_found_job(id))?;
        drop(db);
        if job.status.is_finished() || start.elapsed() > MAX_WAIT || *app.shutdown.borrow() {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The controller and the controller's job id of a Playdeck job.
async fn locate<'a>(
    app: &'a AppState,
    controller: &str,
    id: i64,
) -> Result<(&'a std::sync::Arc<Controller>, shared::Job, i64), ApiError> {
    let ctl = Connector::of(app).get(controller).ok_or_else(|| {
        AppError::Unprocessable(format!(
            "job {id} came from controller {controller:?}, which is not configured here"
        ))
    })?;
    let db = app.pool.get().await.map_err(AppError::from)?;
    let job = fetch_job(&db, id).await?.ok_or_else(|| AppError::not_found_job(id))?;
    let external = job.external_id.trim().parse::<i64>().map_err(|_| {
        AppError::Unprocessable(format!("job {id} has no controller job id ({:?})", job.external_id))
    })?;
    Ok((ctl, job, external))
}

pub async fn cancel(
    app: &AppState,
    caller: &Caller,
    controller: &str,
    id: i64,
) -> Result<Response, AppError> {
    answer(cancel_job(app, caller, controller, id).await)
}

async fn cancel_job(
    app: &AppState,
    caller: &Caller,
    controller: &str,
    id: i64,
) -> Result<Response, ApiError> {
    let (ctl, job, external) = locate(app, controller, id).await?;
    let what = format!("cancel job {id} (job {external} there, {} here)", job.status);
    let result = async {
        let client = ctl.client()?;
        let url = client.url(&format!("/jobs/{external}/cancel/"), &[]).await?;
        client.post(url, &json!({})).await
    }
    .await;
    let mut detail = json!({"controller": controller, "external_id": external});
    match result {
        Ok(_) => {
            detail["answer"] = json!("accepted");
            record(app, Some(id), "cancel", caller, &detail).await?;
            ctl.nudge();
            let body = CancelRequested {
                job,
                detail: format!("controller {controller} accepted the cancel; the job ends shortly"),
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(e) => {
            detail["answer"] = json!(e.to_string());
            record(app, Some(id), "cancel", caller, &detail).await?;
            Err(controller_error(controller, &what, &e))
        }
    }
}

pub async fn relaunch(
    app: &AppState,
    caller: &Caller,
    controller: &str,
    id: i64,
    hosts: Hosts,
) -> Result<Response, AppError> {
    answer(relaunch_job(app, caller, controller, id, hosts).await)
}

async fn relaunch_job(
    app: &AppState,
    caller: &Caller,
    controller: &str,
    id: i64,
    hosts: Hosts,
) -> Result<Response, ApiError> {
    let (ctl, _job, external) = locate(app, controller, id).await?;
    let hosts = match hosts {
        Hosts::All => "all",
        Hosts::Failed => "failed",
    };
    let what = format!("relaunch job {id} (job {external} there) on {hosts} hosts");
    let result = async {
        let client = ctl.client()?;
        let url = client.url(&format!("/jobs/{external}/relaunch/"), &[]).await?;
        client.post(url, &json!({"hosts": hosts})).await
    }
    .await;
    let detail = json!({"controller": controller, "relaunch_of": id, "relaunch_of_external_id": external, "hosts": hosts});
    let answer = match result {
        Ok((_, answer)) => answer,
        Err(e) => {
            let mut detail = detail;
            detail["error"] = json!(e.to_string());
            // The relaunch created nothing: it is recorded on the job it was asked for.
            record(app, Some(id), "relaunch", caller, &detail).await?;
            return Err(controller_error(controller, &what, &e));
        }
    };
    let (job, external_id) = adopt(app, ctl, &answer, caller, "relaunch", detail).await?;
    let body =
        TemplateLaunched { job, controller: controller.to_string(), external_id, ignored_fields: json!({}) };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
