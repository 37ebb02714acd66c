//! One async fn per bff endpoint the page calls; every failure becomes an [`ApiError`] a person can
//! read, with the server's own `{"errors":[{"detail":…}]}` text when it sent one.
//!
//! Requests are same-origin, so the browser sends the HttpOnly session cookie itself: the page never
//! sees or keeps the API key after signing in. A 401 on any call tells the session (`session.rs`),
//! which signs the page out the same way wherever it happened.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use gloo_net::http::Request;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::aap::TemplatePage;
use shared::credentials::{Credential, NewCredential};
use shared::kb::{KbEntry, KbEntryInput, KbTryMatch};
use shared::notifiers::{NewNotifier, Notifier, NotifierDelivery, NotifierPatch, NotifierTest};
use shared::people::{CreatedToken, NewToken, SignInOptions, SignedOut, Token, User, UserPatch, UserSession};
use shared::requests::{Request as UserRequest, RequestSummary, RequestText};
use shared::stats::Stats;
use shared::{ErrorBody, Job, JobAnswer, JobEvent, JobHost, Page, SessionInfo, SessionRequest, StatusChange};
use yew::Callback;

/// Sent with every write: the bff refuses cookie-authenticated writes without it, since a page on
/// another site cannot send it without a CORS preflight, which the bff never grants.
const CSRF_HEADER: &str = "X-Playdeck-Csrf";

/// Async state of anything the page fetches.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Loaded(Result<T, ApiError>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 401: no session (never signed in, signed out elsewhere, expired) or a wrong key.
    Unauthorized(String),
    /// Any other failed answer, with the server's detail.
    Server { status: u16, detail: String },
    /// No answer at all: the bff is down or the network is gone.
    Network(String),
    /// An answer that does not match the contract (a bff and a page of different versions).
    Decode(String),
}

impl ApiError {
    /// The error in the words every page uses: what the server said, and for a refusal by role,
    /// that the role is the reason.
    pub fn words(&self) -> String {
        match self {
            ApiError::Server { status: 403, detail } => format!("Your role may not do this ({detail})."),
            e => e.to_string(),
        }
    }
}

thread_local! {
    /// What a 401 tells: the session's sign-out (set by the session provider).
    static ON_UNAUTHORIZED: RefCell<Option<Callback<()>>> = const { RefCell::new(None) };
}

/// The session provider's sign-out, called on any 401 but those of checking the session and of
/// signing in (where "not signed in" is the answer, not a change).
pub fn on_unauthorized(signed_out: Callback<()>) {
    ON_UNAUTHORIZED.with(|h| *h.borrow_mut() = Some(signed_out));
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized(detail) => f.write_str(detail),
            ApiError::Server { status, detail } => write!(f, "{detail} (HTTP {status})"),
            ApiError::Network(e) => write!(f, "Playdeck cannot be reached: {e}"),
            ApiError::Decode(e) => write!(f, "Unexpected answer from Playdeck: {e}"),
        }
    }
}

/// `GET /api/v1/session`: who is signed in, `None` when nobody is.
pub async fn session() -> Result<Option<SessionInfo>, ApiError> {
    let answer = match send_quiet(Request::get("/api/v1/session").build()).await {
        Ok(answer) => decode(&answer),
        Err(e) => Err(e),
    };
    match answer {
        Ok(info) => Ok(Some(info)),
        Err(ApiError::Unauthorized(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Asks whether the session still holds (a WebSocket hides the status of a refused upgrade);
/// when it does not, the session signs the page out as a 401 would.
pub async fn recheck_session() {
    if let Ok(None) = session().await {
        if let Some(signed_out) = ON_UNAUTHORIZED.with(|h| h.borrow().clone()) {
            signed_out.emit(());
        }
    }
}

/// `GET /api/v1/session/options`: what the sign-in page offers.
pub async fn sign_in_options() -> Result<SignInOptions, ApiError> {
    decode(&send_quiet(Request::get("/api/v1/session/options").build()).await?)
}

/// `POST /api/v1/session`: trades a key, or a user name and password, for a session cookie.
pub async fn sign_in(request: &SessionRequest) -> Result<SessionInfo, ApiError> {
    let body = serde_json::to_string(request).map_err(|e| ApiError::Decode(e.to_string()))?;
    let request = Request::post("/api/v1/session")
        .header("Content-Type", "application/json")
        .header(CSRF_HEADER, "1")
        .body(body);
    decode(&send_quiet(request).await?)
}

/// `POST /api/v1/session/handoff`: a one-time code for a framed page of this browser.
pub async fn session_handoff() -> Result<shared::SessionHandoff, ApiError> {
    json(Request::post("/api/v1/session/handoff").header(CSRF_HEADER, "1").build()).await
}

/// `DELETE /api/v1/session`: after single sign-on, the provider's logout page to open.
pub async fn sign_out() -> Result<Option<String>, ApiError> {
    let answer = send(Request::delete("/api/v1/session").header(CSRF_HEADER, "1").build()).await?;
    if answer.status == 204 {
        return Ok(None);
    }
    let out: SignedOut = decode(&answer)?;
    Ok(out.logout_url)
}

/// `GET /api/v1/session/sessions`: the caller's browsers signed in.
pub async fn my_sessions() -> Result<Page<UserSession>, ApiError> {
    json(Request::get("/api/v1/session/sessions").build()).await
}

/// `DELETE /api/v1/session/sessions/{id}`.
pub async fn end_session(id: i64) -> Result<(), ApiError> {
    send(Request::delete(&format!("/api/v1/session/sessions/{id}")).header(CSRF_HEADER, "1").build())
        .await
        .map(drop)
}

/// `GET /api/v1/tokens`: the caller's tokens.
pub async fn tokens() -> Result<Page<Token>, ApiError> {
    json(Request::get("/api/v1/tokens").build()).await
}

/// `POST /api/v1/tokens`.
pub async fn token_create(input: &NewToken) -> Result<CreatedToken, ApiError> {
    write_json("/api/v1/tokens", input).await
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn token_delete(id: i64) -> Result<(), ApiError> {
    send(Request::delete(&format!("/api/v1/tokens/{id}")).header(CSRF_HEADER, "1").build()).await.map(drop)
}

/// `GET /api/v1/bindings` (admins): every role binding in force.
pub async fn bindings() -> Result<Page<shared::people::RoleBinding>, ApiError> {
    json(Request::get("/api/v1/bindings").build()).await
}

/// `POST /api/v1/bindings`.
pub async fn binding_create(
    input: &shared::people::NewRoleBinding,
) -> Result<shared::people::RoleBinding, ApiError> {
    write_json("/api/v1/bindings", input).await
}

/// `DELETE /api/v1/bindings/{id}`.
pub async fn binding_delete(id: i64) -> Result<(), ApiError> {
    send(Request::delete(&format!("/api/v1/bindings/{id}")).header(CSRF_HEADER, "1").build()).await.map(drop)
}

/// `GET /api/v1/users` (admins).
pub async fn users() -> Result<Page<User>, ApiError> {
    json(Request::get("/api/v1/users?page_size=200").build()).await
}

/// `PATCH /api/v1/users/{id}`: disable or enable.
pub async fn user_disable(id: i64, disabled: bool) -> Result<User, ApiError> {
    let body = serde_json::to_string(&UserPatch { disabled: Some(disabled), role: None })
        .map_err(|e| ApiError::Decode(e.to_string()))?;
    json(
        Request::patch(&format!("/api/v1/users/{id}"))
            .header("Content-Type", "application/json")
            .header(CSRF_HEADER, "1")
            .body(body),
    )
    .await
}

/// One entry of the audit log (as `GET /api/v1/audit` lists it).
#[derive(Clone, PartialEq, serde::Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Value,
}

/// `GET /api/v1/audit?<query>`.
pub async fn audit(query: &str) -> Result<Page<AuditEntry>, ApiError> {
    json(Request::get(&format!("/api/v1/audit?{query}")).build()).await
}

/// `GET /api/v1/audit/actions`.
pub async fn audit_actions() -> Result<Vec<String>, ApiError> {
    json(Request::get("/api/v1/audit/actions").build()).await
}

/// `GET /api/v1/jobs?<query>`: one page of the grid, with the filters as the URL has them.
pub async fn jobs(query: &str) -> Result<Page<Job>, ApiError> {
    json(Request::get(&format!("/api/v1/jobs?{query}")).build()).await
}

/// `GET /api/v1/jobs/{id}`.
pub async fn job(id: i64) -> Result<Job, ApiError> {
    json(Request::get(&format!("/api/v1/jobs/{id}")).build()).await
}

/// `GET /api/v1/jobs/{id}/events`: events after `after_counter` in Ansible's order; `brief` drops
/// their `event_data` (all but its timing), which allows long pages; `host` keeps one host's.
pub async fn events(
    id: i64,
    after_counter: i64,
    limit: usize,
    brief: bool,
    host: Option<&str>,
) -> Result<Page<JobEvent>, ApiError> {
    let mut query = vec![("after_counter", after_counter.to_string()), ("limit", limit.to_string())];
    if brief {
        query.push(("brief", "true".into()));
    }
    if let Some(host) = host {
        query.push(("host", host.to_owned()));
    }
    let query = crate::route::query_string(query);
    json(Request::get(&format!("/api/v1/jobs/{id}/events?{query}")).build()).await
}

/// `GET /api/v1/live/poll`: one job's state and next events past `cursor`, as the live feed's
/// messages (polling, when neither a WebSocket nor SSE gets through).
pub async fn live_poll(id: i64, cursor: Option<&str>) -> Result<shared::LivePoll, ApiError> {
    let mut query = vec![("job", id.to_string())];
    if let Some(c) = cursor {
        query.push(("cursor", c.to_owned()));
    }
    let query = crate::route::query_string(query);
    json(Request::get(&format!("/api/v1/live/poll?{query}")).build()).await
}

/// One event with all its data, by counter.
pub async fn event(id: i64, counter: i64) -> Result<Option<JobEvent>, ApiError> {
    let page = events(id, counter - 1, 1, false, None).await?;
    Ok(page.results.into_iter().find(|e| e.counter == counter))
}

/// `GET /api/v1/jobs/{id}/hosts`.
pub async fn hosts(id: i64) -> Result<Page<JobHost>, ApiError> {
    json(Request::get(&format!("/api/v1/jobs/{id}/hosts")).build()).await
}

/// `GET /api/v1/jobs/{id}/history`.
pub async fn history(id: i64) -> Result<Page<StatusChange>, ApiError> {
    json(Request::get(&format!("/api/v1/jobs/{id}/history")).build()).await
}

/// `GET /api/v1/templates`: what an AAP launch may name, on every controller that answered.
pub async fn templates() -> Result<TemplatePage, ApiError> {
    json(Request::get("/api/v1/templates").build()).await
}

/// `GET /api/v1/playbooks`: the local engine's playbooks with their plays and surveys.
pub async fn playbooks() -> Result<Page<shared::playbooks::Playbook>, ApiError> {
    json(Request::get("/api/v1/playbooks").build()).await
}

/// `GET /api/v1/playbooks?repo=&branch=`: the playbooks of a git repository at a branch.
pub async fn repo_playbooks(repo: &str, branch: &str) -> Result<Page<shared::playbooks::Playbook>, ApiError> {
    let query = crate::route::query_string([("repo", repo.to_owned()), ("branch", branch.to_owned())]);
    json(Request::get(&format!("/api/v1/playbooks?{query}")).build()).await
}

/// `GET /api/v1/inventories`: the inventory files with their groups and host counts.
pub async fn inventories() -> Result<Page<shared::playbooks::InventoryFile>, ApiError> {
    json(Request::get("/api/v1/inventories").build()).await
}

/// `GET /api/v1/inventories/{name}/hosts`: one file's groups and hosts.
pub async fn inventory_hosts(name: &str) -> Result<shared::playbooks::InventoryFile, ApiError> {
    let name = String::from(js_sys::encode_uri_component(name));
    json(Request::get(&format!("/api/v1/inventories/{name}/hosts")).build()).await
}

/// `POST /api/v1/playbooks/survey` (`body`: a `SurveyRequest`): a playbook's survey with its
/// choices for this inventory and these answers.
pub async fn playbook_survey(body: String) -> Result<shared::playbooks::ResolvedSurvey, ApiError> {
    json(
        Request::post("/api/v1/playbooks/survey")
            .header("Content-Type", "application/json")
            .header(CSRF_HEADER, "1")
            .body(body),
    )
    .await
}

/// `POST /api/v1/playbooks/hosts`: the hosts a launch would touch.
pub async fn playbook_hosts(req: &Value) -> Result<shared::playbooks::HostCount, ApiError> {
    write_json("/api/v1/playbooks/hosts", req).await
}

/// `POST /api/v1/jobs`: launches a template or a local playbook (the body as the form built it).
pub async fn launch(body: &Value) -> Result<JobAnswer, ApiError> {
    write_json("/api/v1/jobs", body).await
}

/// `POST /api/v1/jobs/{id}/cancel`.
pub async fn cancel(id: i64) -> Result<JobAnswer, ApiError> {
    write_json(&format!("/api/v1/jobs/{id}/cancel"), &serde_json::json!({})).await
}

/// `POST /api/v1/jobs/{id}/relaunch` with `{"hosts": "all"|"failed"}`; the answer is the new job.
pub async fn relaunch(id: i64, failed_only: bool) -> Result<JobAnswer, ApiError> {
    let hosts = if failed_only { "failed" } else { "all" };
    write_json(&format!("/api/v1/jobs/{id}/relaunch"), &serde_json::json!({ "hosts": hosts })).await
}

async fn json<T: DeserializeOwned>(request: Result<Request, gloo_net::Error>) -> Result<T, ApiError> {
    decode(&send(request).await?)
}

fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, ApiError> {
    crate::json::from_str(&answer.text).map_err(|e| ApiError::Decode(e.to_string()))
}

/// [`send_quiet`]'s future.
type Sending = Pin<Box<dyn Future<Output = Result<Answer, ApiError>>>>;

/// A 2xx answer, read whole.
struct Answer {
    status: u16,
    text: String,
}

/// Sends a request; a 401 also tells the session (see [`on_unauthorized`]).
async fn send(request: Result<Request, gloo_net::Error>) -> Result<Answer, ApiError> {
    let result = send_quiet(request).await;
    if matches!(result, Err(ApiError::Unauthorized(_))) {
        if let Some(signed_out) = ON_UNAUTHORIZED.with(|h| h.borrow().clone()) {
            signed_out.emit(());
        }
    }
    result
}

/// Sends a request and reads its answer, turning every non-2xx answer into an [`ApiError`].
///
/// One boxed future, the same for every call: each endpoint's typed fn (and each page's task that
/// awaits it) then holds this future behind a pointer instead of a copy of its whole state machine,
/// which keeps the web app smaller (issue "Live and on the wire").
fn send_quiet(request: Result<Request, gloo_net::Error>) -> Sending {
    Box::pin(async move {
        let request = request.map_err(|e| ApiError::Network(e.to_string()))?;
        let response = request.send().await.map_err(|e| ApiError::Network(e.to_string()))?;
        let status = response.status();
        if response.ok() {
            let text = response.text().await.map_err(|e| ApiError::Network(e.to_string()))?;
            return Ok(Answer { status, text });
        }
        // A proxy in front of the bff may answer with HTML or nothing; fall back to the status line.
        let body = response.text().await.ok().and_then(|t| crate::json::from_str::<ErrorBody>(&t).ok());
        let detail = match body {
            Some(body) if !body.errors.is_empty() => body.message(),
            _ => format!("{} {}", status, response.status_text()).trim().to_owned(),
        };
        Err(match status {
            401 => ApiError::Unauthorized(detail),
            _ => ApiError::Server { status, detail },
        })
    })
}

/// `GET /api/v1/kb?q=&tag=`: the knowledge base, by title.
pub async fn kb_list(q: &str, tag: &str) -> Result<Page<KbEntry>, ApiError> {
    let query = crate::route::query_string([("q", q.to_owned()), ("tag", tag.to_owned())]);
    json(Request::get(&format!("/api/v1/kb?{query}")).build()).await
}

/// `POST /api/v1/kb` (no id) or `PUT /api/v1/kb/{id}`.
pub async fn kb_save(id: Option<i64>, input: &KbEntryInput) -> Result<KbEntry, ApiError> {
    let body = serde_json::to_string(input).map_err(|e| ApiError::Decode(e.to_string()))?;
    let request = match id {
        None => Request::post("/api/v1/kb"),
        Some(id) => Request::put(&format!("/api/v1/kb/{id}")),
    };
    json(request.header("Content-Type", "application/json").header(CSRF_HEADER, "1").body(body)).await
}

/// `DELETE /api/v1/kb/{id}`.
pub async fn kb_delete(id: i64) -> Result<(), ApiError> {
    send(Request::delete(&format!("/api/v1/kb/{id}")).header(CSRF_HEADER, "1").build()).await.map(drop)
}

/// `POST /api/v1/kb/try`: the recent failures the rule would match.
pub async fn kb_try(input: &KbEntryInput) -> Result<Page<KbTryMatch>, ApiError> {
    write_json("/api/v1/kb/try", input).await
}

/// `POST /api/v1/requests`: a request in plain words.
pub async fn request_new(text: &str) -> Result<UserRequest, ApiError> {
    let time_zone = Some(crate::schedules::browser_zone());
    write_json("/api/v1/requests", &RequestText { text: text.to_owned(), time_zone }).await
}

/// `POST /api/v1/requests/{id}/reply`.
pub async fn request_reply(id: i64, text: &str) -> Result<UserRequest, ApiError> {
    write_json(
        &format!("/api/v1/requests/{id}/reply"),
        &RequestText { text: text.to_owned(), time_zone: None },
    )
    .await
}

/// `POST /api/v1/requests/{id}/confirm`: launches it.
pub async fn request_confirm(id: i64) -> Result<UserRequest, ApiError> {
    write_json(&format!("/api/v1/requests/{id}/confirm"), &serde_json::json!({})).await
}

/// `GET /api/v1/requests/{id}`.
pub async fn request_get(id: i64) -> Result<UserRequest, ApiError> {
    json(Request::get(&format!("/api/v1/requests/{id}")).build()).await
}

/// `GET /api/v1/requests`: the latest requests.
pub async fn requests() -> Result<Page<RequestSummary>, ApiError> {
    json(Request::get("/api/v1/requests?page_size=10").build()).await
}

/// `GET /api/v1/stats?window=`.
pub async fn stats(window: &str) -> Result<Stats, ApiError> {
    json(Request::get(&format!("/api/v1/stats?window={window}")).build()).await
}

/// Posts JSON and reads the typed answer.
async fn write_json<B: serde::Serialize, T: DeserializeOwned>(url: &str, body: &B) -> Result<T, ApiError> {
    let body = serde_json::to_string(body).map_err(|e| ApiError::Decode(e.to_string()))?;
    json(Request::post(url).header("Content-Type", "application/json").header(CSRF_HEADER, "1").body(body))
        .await
}

/// `GET /api/v1/credentials`: names and kinds, never the secrets.
pub async fn credentials() -> Result<Page<Credential>, ApiError> {
    json(Request::get("/api/v1/credentials").build()).await
}

/// `POST /api/v1/credentials`.
pub async fn credential_create(input: &NewCredential) -> Result<Credential, ApiError> {
    write_json("/api/v1/credentials", input).await
}

/// `DELETE /api/v1/credentials/{name}`.
pub async fn credential_delete(name: &str) -> Result<(), ApiError> {
    let path = format!("/api/v1/credentials/{}", js_sys::encode_uri_component(name));
    send(Request::delete(&path).header(CSRF_HEADER, "1").build()).await.map(drop)
}

/// `GET /api/v1/notifiers`.
pub async fn notifiers() -> Result<Page<Notifier>, ApiError> {
    json(Request::get("/api/v1/notifiers").build()).await
}

/// `POST /api/v1/notifiers`.
pub async fn notifier_create(input: &NewNotifier) -> Result<Notifier, ApiError> {
    write_json("/api/v1/notifiers", input).await
}

/// `PATCH /api/v1/notifiers/{id}`.
pub async fn notifier_patch(id: i64, patch: &NotifierPatch) -> Result<Notifier, ApiError> {
    let body = serde_json::to_string(patch).map_err(|e| ApiError::Decode(e.to_string()))?;
    json(
        Request::patch(&format!("/api/v1/notifiers/{id}"))
            .header("Content-Type", "application/json")
            .header(CSRF_HEADER, "1")
            .body(body),
    )
    .await
}

/// `DELETE /api/v1/notifiers/{id}`.
pub async fn notifier_delete(id: i64) -> Result<(), ApiError> {
    send(Request::delete(&format!("/api/v1/notifiers/{id}")).header(CSRF_HEADER, "1").build()).await.map(drop)
}

/// `POST /api/v1/notifiers/{id}/test`: a test message now.
pub async fn notifier_test(id: i64) -> Result<NotifierTest, ApiError> {
    write_json(&format!("/api/v1/notifiers/{id}/test"), &serde_json::json!({})).await
}

/// `GET /api/v1/notifiers/deliveries`: the latest notifications.
pub async fn notifier_deliveries() -> Result<Page<NotifierDelivery>, ApiError> {
    json(Request::get("/api/v1/notifiers/deliveries?page_size=20").build()).await
}

/// `POST /api/v1/notifiers/deliveries/{id}/redeliver`.
pub async fn notifier_redeliver(id: i64) -> Result<(), ApiError> {
    let path = format!("/api/v1/notifiers/deliveries/{id}/redeliver");
    send(Request::post(&path).header("Content-Type", "application/json").header(CSRF_HEADER, "1").body("{}"))
        .await
        .map(drop)
}

/// `GET /api/v1/schedules`: every schedule the caller may see, the next to fire first.
pub async fn schedules() -> Result<Page<shared::schedules::Schedule>, ApiError> {
    json(Request::get("/api/v1/schedules?page_size=200").build()).await
}

/// `GET /api/v1/schedules/{id}/runs`: its latest runs.
pub async fn schedule_runs(id: i64) -> Result<Page<shared::schedules::ScheduleRun>, ApiError> {
    json(Request::get(&format!("/api/v1/schedules/{id}/runs?page_size=50")).build()).await
}

/// `POST /api/v1/schedules`.
pub async fn schedule_create(
    input: &shared::schedules::ScheduleInput,
) -> Result<shared::schedules::Schedule, ApiError> {
    write_json("/api/v1/schedules", input).await
}

/// `PATCH /api/v1/schedules/{id}` (pause: `enabled: false`; resume: `true`).
pub async fn schedule_patch(
    id: i64,
    patch: &shared::schedules::ScheduleInput,
) -> Result<shared::schedules::Schedule, ApiError> {
    let body = serde_json::to_string(patch).map_err(|e| ApiError::Decode(e.to_string()))?;
    json(
        Request::patch(&format!("/api/v1/schedules/{id}"))
            .header("Content-Type", "application/json")
            .header(CSRF_HEADER, "1")
            .body(body),
    )
    .await
}

/// `POST /api/v1/schedules/preview`: the next runs of a timing, in its zone.
pub async fn schedule_preview(
    req: &shared::schedules::PreviewRequest,
) -> Result<shared::schedules::Preview, ApiError> {
    write_json("/api/v1/schedules/preview", req).await
}

/// `GET /api/v1/controllers/schedules`: the controllers' own schedules, read-only.
pub async fn controller_schedules() -> Result<shared::aap::ControllerSchedules, ApiError> {
    json(Request::get("/api/v1/controllers/schedules").build()).await
}
