//! Notifiers: people told when a job ends, by mail (SMTP) or in a chat channel (Slack, Mattermost
//! or Teams incoming webhook), with the job's status, its failing hosts and what the knowledge base
//! says about the failures. Each listens for some ends (`job.failed`, …), for every job or for the
//! jobs of some templates.
//!
//! They share the webhooks' machinery: a trigger writes one delivery per matching notifier in the
//! transaction that finished the job (migration 0009), and the webhook dispatcher takes due ones
//! with `FOR UPDATE SKIP LOCKED`, retries with the same backoff and records each attempt. Their
//! secrets (the SMTP password or OAuth client secret, the chat URL with its token) are sealed with
//! the credential key and never returned. Chat URLs and OAuth token endpoints go through the
//! webhooks' address policy; mail servers through a looser one (private networks allowed, as a
//! relay usually is internal; loopback, link-local and metadata addresses not).

mod message;
pub mod smtp;

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::notifiers::{
    ChatConfig, ChatInput, MailAuth, MailConfig, MailInput, MailOAuth, NewNotifier, Notifier,
    NotifierAttempt, NotifierConfig, NotifierDelivery, NotifierKind, NotifierPatch, NotifierTest,
};
use shared::{Page, Role};
use tokio_postgres::Row;

use crate::deliveries::policy::{self, Channel, DeliveryId};
use crate::infra::auth::Caller;
use crate::infra::config::DeliveryConfig;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::{path_id_type, Q};
use crate::infra::state::AppState;

pub use message::Report;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}/redeliver", post(redeliver))
        .route("/{id}", get(show).patch(update).delete(remove))
        .route("/{id}/test", post(test))
}

const COLUMNS: &str = "id, name, kind, events, templates, config, active, created, created_by";

/// The sealed secret is bound to the notifier's name (names never change).
fn purpose(name: &str) -> String {
    format!("notifier {name}")
}

fn kind_of(s: &str) -> NotifierKind {
    if s == "chat" {
        NotifierKind::Chat
    } else {
        NotifierKind::Mail
    }
}

fn config_of(kind: NotifierKind, v: Value) -> Result<NotifierConfig, AppError> {
    let bad = |e: serde_json::Error| AppError::Internal(format!("a stored notifier's config: {e}"));
    Ok(match kind {
        NotifierKind::Mail => NotifierConfig::Mail(serde_json::from_value(v).map_err(bad)?),
        NotifierKind::Chat => NotifierConfig::Chat(serde_json::from_value(v).map_err(bad)?),
    })
}

fn notifier_from_row(r: &Row) -> Result<Notifier, AppError> {
    let kind = kind_of(r.get("kind"));
    Ok(Notifier {
        id: r.get("id"),
        name: r.get("name"),
        kind,
        events: r.get("events"),
        templates: r.get("templates"),
        config: config_of(kind, r.get("config"))?,
        active: r.get("active"),
        created: r.get("created"),
        created_by: r.get("created_by"),
    })
}

path_id_type!(
    /// A notifier's id from the path.
    NotifierId,
    "a notifier"
);

fn unprocessable(msg: impl Into<String>) -> AppError {
    AppError::Unprocessable(msg.into())
}

/// `keep_password`: a stored password goes with the username given alone.
fn check_mail(m: &MailInput, keep_password: bool) -> Result<(), AppError> {
    let host = m.host.trim();
    if host.is_empty()
        || host.len() > 253
        || host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(unprocessable(
            "`config.host`: the mail server's name or address, without spaces or slashes",
        ));
    }
    if m.port == 0 {
        return Err(unprocessable("`config.port` must be 1 to 65535"));
    }
    if !smtp::valid_address(&m.from) {
        return Err(unprocessable(format!(
            "`config.from`: {:?} is not a mail address (local@domain)",
            m.from
        )));
    }
    if m.to.is_empty() || m.to.len() > 50 {
        return Err(unprocessable("`config.to` lists 1 to 50 recipients"));
    }
    if let Some(bad) = m.to.iter().find(|t| !smtp::valid_address(t)) {
        return Err(unprocessable(format!("`config.to`: {bad:?} is not a mail address (local@domain)")));
    }
    if let Some(p) = &m.subject_prefix {
        if !smtp::header_safe(p) || p.chars().count() > 100 {
            return Err(unprocessable(
                "`config.subject_prefix`: at most 100 characters, no line breaks or control characters",
            ));
        }
    }
    match (&m.username, &m.password) {
        (Some(u), Some(p)) => {
            if u.is_empty()
                || p.is_empty()
                || u.contains(['\0', '\r', '\n'])
                || p.contains(['\0', '\r', '\n'])
            {
                return Err(unprocessable(
                    "`config.username` and `config.password` must be non-empty single lines",
                ));
            }
        }
        (Some(u), None) if keep_password => {
            if u.is_empty() || u.contains(['\0', '\r', '\n']) {
                return Err(unprocessable("`config.username` must be a non-empty single line"));
            }
        }
        (None, None) => {}
        _ => return Err(unprocessable("`config.username` and `config.password` go together")),
    }
    match (m.auth, &m.oauth) {
        (MailAuth::Password, None) => {}
        (MailAuth::Password, Some(_)) => {
            return Err(unprocessable("`config.oauth` goes with `config.auth: xoauth2`"));
        }
        (MailAuth::Xoauth2, None) => {
            return Err(unprocessable("`config.auth: xoauth2` needs `config.oauth` (token_url, client_id)"));
        }
        (MailAuth::Xoauth2, Some(o)) => {
            if m.username.is_none() {
                return Err(unprocessable(
                    "`config.auth: xoauth2` needs `config.username` (the mailbox) and `config.password` \
                     (the OAuth client's secret)",
                ));
            }
            let line = |v: &str| !v.trim().is_empty() && v.len() <= 2000 && !v.contains(['\0', '\r', '\n']);
            if !line(&o.client_id) {
                return Err(unprocessable("`config.oauth.client_id` must be a non-empty single line"));
            }
            if o.scope.as_deref().is_some_and(|s| !line(s))
                || o.refresh_token.as_deref().is_some_and(|r| !line(r))
            {
                return Err(unprocessable(
                    "`config.oauth.scope` and `config.oauth.refresh_token` must be non-empty single lines",
                ));
            }
            if o.refresh_token.is_some() && m.password.is_none() {
                return Err(unprocessable(
                    "`config.oauth.refresh_token` is given again with `config.password`",
                ));
            }
        }
    }
    Ok(())
}

/// What is sealed for a mail notifier: the password, or with XOAUTH2 the client secret and the
/// refresh token as JSON.
fn mail_secret(m: &MailInput) -> Option<String> {
    let password = m.password.clone()?;
    Some(match (m.auth, &m.oauth) {
        (MailAuth::Xoauth2, Some(o)) => {
            json!({"client_secret": password, "refresh_token": o.refresh_token}).to_string()
        }
        _ => password,
    })
}

fn check_events(given: &[String]) -> Result<Vec<String>, AppError> {
    let mut events = if given.is_empty() {
        vec!["job.failed".to_string(), "job.error".to_string()]
    } else {
        given.to_vec()
    };
    for e in &events {
        if !shared::engine::WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(unprocessable(format!(
                "`events`: {e:?} is not an event; use {}",
                shared::engine::WEBHOOK_EVENTS.join(", ")
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| seen.insert(e.clone()));
    Ok(events)
}

fn check_templates(given: &[String]) -> Result<Vec<String>, AppError> {
    let templates: Vec<String> = given.iter().map(|t| t.trim().to_string()).collect();
    if templates.len() > 100 || templates.iter().any(|t| t.is_empty() || t.len() > 500) {
        return Err(unprocessable("`templates`: up to 100 non-empty template names or playbook paths"));
    }
    Ok(templates)
}

/// What to do with the stored secret when the settings are replaced.
enum Secret {
    /// Seal this one (or store none).
    New(Option<String>),
    /// Keep the sealed one (a mail notifier's password, when the username is given without it).
    Keep,
}

/// Reads and checks `config` by the notifier's kind: what the API shows and the secret to seal.
/// `stored_password`: a mail notifier being changed has a sealed password that may be kept.
async fn check_config(
    app: &AppState,
    kind: NotifierKind,
    config: Value,
    stored_password: bool,
) -> Result<(NotifierConfig, Secret), AppError> {
    Ok(match kind {
        NotifierKind::Mail => {
            let mut m: MailInput =
                serde_json::from_value(config).map_err(|e| unprocessable(format!("`config`: {e}")))?;
            m.host = m.host.trim().to_string();
            let keep = stored_password && m.username.is_some() && m.password.is_none();
            check_mail(&m, keep)?;
            crate::infra::outbound::check_mail_server(&app.config.deliveries, &m.host, m.port, false)
                .await
                .map_err(|e| unprocessable(format!("`config.host`: {e}")))?;
            let oauth = match &m.oauth {
                None => None,
                Some(o) => {
                    crate::infra::outbound::check_url(&app.config.deliveries, &o.token_url)
                        .await
                        .map_err(|e| unprocessable(format!("`config.oauth.token_url`: {e}")))?;
                    Some(MailOAuth {
                        token_url: o.token_url.trim().to_string(),
                        client_id: o.client_id.trim().to_string(),
                        scope: o.scope.clone(),
                        grant: if o.refresh_token.is_some() { "refresh_token" } else { "client_credentials" }
                            .to_string(),
                    })
                }
            };
            let public = MailConfig {
                host: m.host.clone(),
                port: m.port,
                tls: m.tls,
                username: m.username.clone(),
                has_password: m.password.is_some() || keep,
                auth: m.auth,
                oauth,
                from: m.from.clone(),
                to: m.to.clone(),
                subject_prefix: m.subject_prefix.clone().filter(|p| !p.is_empty()),
            };
            (NotifierConfig::Mail(public), if keep { Secret::Keep } else { Secret::New(mail_secret(&m)) })
        }
        NotifierKind::Chat => {
            let c: ChatInput =
                serde_json::from_value(config).map_err(|e| unprocessable(format!("`config`: {e}")))?;
            let (url, _) = crate::infra::outbound::check_url(&app.config.deliveries, &c.url)
                .await
                .map_err(|e| unprocessable(format!("`config.url`: {e}")))?;
            let host = url.host_str().unwrap_or_default().to_string();
            (
                NotifierConfig::Chat(ChatConfig { style: c.style, host }),
                Secret::New(Some(c.url.trim().to_string())),
            )
        }
    })
}

fn config_json(config: &NotifierConfig) -> Result<Value, AppError> {
    serde_json::to_value(config).map_err(|e| AppError::Internal(e.to_string()))
}

/// `POST /api/v1/notifiers`.
async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewNotifier>,
) -> Result<(StatusCode, Json<Notifier>), AppError> {
    caller.require(Role::Admin)?;
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || !smtp::header_safe(&name) {
        return Err(unprocessable("`name` must be 1 to 100 characters on one line"));
    }
    let events = check_events(&req.events)?;
    let templates = check_templates(&req.templates)?;
    let (config, secret) = check_config(&app, req.kind, req.config, false).await?;
    let secret = match secret {
        Secret::New(s) => s,
        Secret::Keep => None,
    };
    let sealed = secret.map(|s| app.sealer.seal(&purpose(&name), s.as_bytes())).transpose()?;
    let config_json = config_json(&config)?;
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            &format!(
                "insert into notifiers (name, kind, events, templates, config, sealed, key_id, created_by)
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (name) do nothing returning {COLUMNS}"
            ),
            &[
                &name,
                &req.kind.as_str(),
                &events,
                &templates,
                &config_json,
                &sealed,
                &app.sealer.key_id(),
                &caller.name,
            ],
        )
        .await?
        .ok_or_else(|| AppError::Conflict(format!("a notifier named {name:?} exists already")))?;
    let n = notifier_from_row(&row)?;
    crate::infra::audit::record(
        &app,
        &caller,
        "notifier created",
        Some(&format!("notifier {}", n.id)),
        json!({"name": n.name, "kind": n.kind.as_str(), "events": n.events, "templates": n.templates}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(n)))
}

/// `PATCH /api/v1/notifiers/{id}`: turn it off or on, change what it listens for or its settings.
async fn update(
    State(app): State<AppState>,
    caller: Caller,
    NotifierId(id): NotifierId,
    AppJson(req): AppJson<NotifierPatch>,
) -> Result<Json<Notifier>, AppError> {
    caller.require(Role::Admin)?;
    let events = req.events.as_deref().map(check_events).transpose()?;
    let templates = req.templates.as_deref().map(check_templates).transpose()?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let Some(row) = tx
        .query_opt("select name, kind, sealed is not null from notifiers where id = $1 for update", &[&id])
        .await?
    else {
        return Err(AppError::NotFound(format!("notifier {id} does not exist")));
    };
    let (name, kind, has_secret): (String, NotifierKind, bool) =
        (row.get(0), kind_of(row.get(1)), row.get(2));
    let mut changed: Vec<&str> = Vec::new();
    if let Some(config) = req.config {
        let (config, secret) = check_config(&app, kind, config, has_secret).await?;
        let config_json = config_json(&config)?;
        match secret {
            Secret::Keep => {
                tx.execute("update notifiers set config = $2 where id = $1", &[&id, &config_json]).await?;
            }
            Secret::New(s) => {
                let sealed = s.map(|s| app.sealer.seal(&purpose(&name), s.as_bytes())).transpose()?;
                tx.execute(
                    "update notifiers set config = $2, sealed = $3, key_id = $4 where id = $1",
                    &[&id, &config_json, &sealed, &app.sealer.key_id()],
                )
                .await?;
            }
        }
        changed.push("config");
    }
    if let Some(events) = &events {
        tx.execute("update notifiers set events = $2 where id = $1", &[&id, events]).await?;
        changed.push("events");
    }
    if let Some(templates) = &templates {
        tx.execute("update notifiers set templates = $2 where id = $1", &[&id, templates]).await?;
        changed.push("templates");
    }
    if let Some(active) = req.active {
        tx.execute("update notifiers set active = $2 where id = $1", &[&id, &active]).await?;
        changed.push("active");
    }
    let row = tx.query_one(&format!("select {COLUMNS} from notifiers where id = $1"), &[&id]).await?;
    tx.commit().await?;
    let n = notifier_from_row(&row)?;
    if !changed.is_empty() {
        crate::infra::audit::record(
            &app,
            &caller,
            "notifier changed",
            Some(&format!("notifier {id}")),
            json!({"name": n.name, "changed": changed, "active": n.active, "events": n.events,
                   "templates": n.templates}),
        )
        .await;
    }
    Ok(Json(n))
}

/// `GET /api/v1/notifiers`.
async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Page<Notifier>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let rows = db.query(&format!("select {COLUMNS} from notifiers order by id"), &[]).await?;
    let results = rows.iter().map(notifier_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(crate::infra::extract::whole(results)))
}

/// `GET /api/v1/notifiers/{id}`.
async fn show(
    State(app): State<AppState>,
    caller: Caller,
    NotifierId(id): NotifierId,
) -> Result<Json<Notifier>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let row = db.query_opt(&format!("select {COLUMNS} from notifiers where id = $1"), &[&id]).await?;
    match row {
        Some(r) => Ok(Json(notifier_from_row(&r)?)),
        None => Err(AppError::NotFound(format!("notifier {id} does not exist"))),
    }
}

/// `DELETE /api/v1/notifiers/{id}`: its pending deliveries end with it.
async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    NotifierId(id): NotifierId,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    policy::end_pending(&tx, Channel::Notifiers, id, "the notifier was deleted").await?;
    let name: Option<String> =
        tx.query_opt("delete from notifiers where id = $1 returning name", &[&id]).await?.map(|r| r.get(0));
    tx.commit().await?;
    let Some(name) = name else {
        return Err(AppError::NotFound(format!("notifier {id} does not exist")));
    };
    crate::infra::audit::record(
        &app,
        &caller,
        "notifier deleted",
        Some(&format!("notifier {id}")),
        json!({"name": name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    notifier_id: Option<i64>,
    job_id: Option<i64>,
    state: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// `GET /api/v1/notifiers/deliveries`: the newest first, with their attempts; by notifier, job
/// or state.
async fn list_deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<DeliveryQuery>,
) -> Result<Json<Page<NotifierDelivery>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let f = policy::DeliveryFilter {
        // Admins over everything only: every delivery.
        scope: None,
        job_id: q.job_id,
        owner: q.notifier_id,
        state: q.state,
        page: q.page,
        page_size: q.page_size,
    };
    let listed = policy::list_deliveries(
        &db,
        Channel::Notifiers,
        "notifier_deliveries d left join notifiers n on n.id = d.notifier_id",
        "d.id, d.job_id, d.notifier_id, n.name, d.event, d.state, d.attempts, d.next_attempt, d.last_error,
         d.created, d.delivered",
        &f,
    )
    .await?;
    let rows = &listed.rows;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let mut attempts = policy::attempts_of(&db, Channel::Notifiers, &ids).await?;
    let results = rows
        .iter()
        .map(|r| {
            let id: i64 = r.get(0);
            let state: String = r.get(5);
            NotifierDelivery {
                id,
                job_id: r.get(1),
                notifier_id: r.get(2),
                notifier_name: r.get(3),
                event: r.get(4),
                next_attempt: (state == "pending").then(|| r.get(7)),
                state,
                attempts: r.get::<_, i32>(6) as i64,
                last_error: r.get(8),
                created: r.get(9),
                delivered: r.get(10),
                attempt_log: attempts
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| NotifierAttempt {
                        attempt: a.attempt,
                        at: a.at,
                        code: a.code,
                        error: a.error,
                        duration_ms: a.duration_ms,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(listed.page(results)))
}

/// `POST /api/v1/notifiers/deliveries/{id}/redeliver`: send a delivered or given-up notification
/// again (one more attempt, then the usual retries).
async fn redeliver(
    State(app): State<AppState>,
    caller: Caller,
    DeliveryId(id): DeliveryId,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let Some(row) = db.query_opt("select notifier_id from notifier_deliveries where id = $1", &[&id]).await?
    else {
        return Err(AppError::NotFound(format!("notifier delivery {id} does not exist")));
    };
    if row.get::<_, Option<i64>>(0).is_none() {
        return Err(AppError::Conflict(format!("the notifier of delivery {id} was deleted")));
    }
    db.execute(
        "update notifier_deliveries set state = 'pending', next_attempt = now() where id = $1 and state <> 'pending'",
        &[&id],
    )
    .await?;
    crate::infra::audit::record(
        &app,
        &caller,
        "notification redelivered",
        Some(&format!("notifier delivery {id}")),
        json!({}),
    )
    .await;
    crate::deliveries::wake(&app);
    Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "state": "pending"}))))
}

/// `POST /api/v1/notifiers/{id}/test`: sends a test message now and says how it went.
async fn test(
    State(app): State<AppState>,
    caller: Caller,
    NotifierId(id): NotifierId,
) -> Result<Json<NotifierTest>, AppError> {
    caller.require(Role::Admin)?;
    let stored =
        load(&app, id).await?.ok_or_else(|| AppError::NotFound(format!("notifier {id} does not exist")))?;
    let started = Instant::now();
    let report = Report::test(&stored.name, app.config.public_url.as_deref());
    let outcome = deliver(&app, &stored, &report).await;
    Ok(Json(NotifierTest {
        delivered: outcome.error.is_none(),
        error: outcome.error,
        duration_ms: started.elapsed().as_millis().min(i64::MAX as u128) as i64,
    }))
}

/// A notifier as the dispatcher needs it.
struct Stored {
    name: String,
    config: NotifierConfig,
    sealed: Option<Vec<u8>>,
}

async fn load(app: &AppState, id: i64) -> Result<Option<Stored>, AppError> {
    let db = app.pool.get().await?;
    let Some(r) =
        db.query_opt("select name, kind, config, sealed from notifiers where id = $1", &[&id]).await?
    else {
        return Ok(None);
    };
    Ok(Some(Stored { name: r.get(0), config: config_of(kind_of(r.get(1)), r.get(2))?, sealed: r.get(3) }))
}

/// How one attempt went.
struct Outcome {
    /// The SMTP reply code or HTTP status that ended it.
    code: Option<i32>,
    error: Option<String>,
    permanent: bool,
}

impl Outcome {
    fn failed(error: impl Into<String>, permanent: bool) -> Outcome {
        Outcome { code: None, error: Some(error.into()), permanent }
    }
}

/// Sends one message through a notifier.
async fn deliver(app: &AppState, n: &Stored, report: &Report) -> Outcome {
    let cfg = &app.config.deliveries;
    let secret = match &n.sealed {
        None => None,
        Some(sealed) => match app.sealer.open(&purpose(&n.name), sealed) {
            Ok(plain) => Some(String::from_utf8_lossy(&plain).into_owned()),
            Err(e) => return Outcome::failed(e.to_string(), true),
        },
    };
    match &n.config {
        NotifierConfig::Mail(m) => {
            #[derive(Deserialize)]
            struct OAuthSecret {
                client_secret: String,
                refresh_token: Option<String>,
            }
            let oauth_secret = match (m.auth, secret.as_deref()) {
                (MailAuth::Xoauth2, Some(s)) => match serde_json::from_str::<OAuthSecret>(s) {
                    Ok(o) => Some(o),
                    Err(_) => {
                        return Outcome::failed(
                            "the stored OAuth client secret is unreadable; set it again",
                            true,
                        )
                    }
                },
                _ => None,
            };
            let login = match (m.username.as_deref(), secret.as_deref(), &m.oauth, &oauth_secret) {
                (Some(user), _, Some(oauth), Some(o)) => smtp::Login::Xoauth2 {
                    user,
                    oauth,
                    client_secret: &o.client_secret,
                    refresh_token: o.refresh_token.as_deref(),
                },
                (Some(user), Some(password), None, _) => smtp::Login::Password { user, password },
                _ => smtp::Login::None,
            };
            let server = smtp::Server { host: &m.host, port: m.port, tls: m.tls, login };
            let subject = report.subject(m.subject_prefix.as_deref());
            let body = report.plain();
            let mail = smtp::Mail { from: &m.from, to: &m.to, subject: &subject, body: &body };
            match app.service::<smtp::Mailers>().send(cfg, &n.name, &server, &mail).await {
                Ok(()) => Outcome { code: Some(250), error: None, permanent: false },
                Err(e) => {
                    Outcome { code: e.code.map(i32::from), error: Some(e.message), permanent: e.permanent }
                }
            }
        }
        NotifierConfig::Chat(c) => match secret {
            None => Outcome::failed("no webhook URL is stored", true),
            Some(url) => post_chat(cfg, &url, &report.chat(c.style)).await,
        },
    }
}

/// POSTs a chat payload, to the address the policy checked.
async fn post_chat(cfg: &DeliveryConfig, url: &str, payload: &Value) -> Outcome {
    let (url, addrs) = match crate::infra::outbound::check_url(cfg, url).await {
        Ok(checked) => checked,
        Err(e) => return Outcome::failed(e, true),
    };
    let client = match crate::infra::outbound::pinned_client(cfg, &url, &addrs) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(e, true),
    };
    match client.post(url).json(payload).send().await {
        Ok(r) => {
            let status = r.status();
            if status.is_success() {
                return Outcome { code: Some(status.as_u16() as i32), error: None, permanent: false };
            }
            let text = r.text().await.unwrap_or_default();
            let said: String = text.chars().take(200).collect();
            Outcome {
                code: Some(status.as_u16() as i32),
                error: Some(format!("the chat answered {status}: {}", said.trim())),
                permanent: false,
            }
        }
        Err(e) if e.is_timeout() => {
            Outcome::failed(format!("no answer within {} s", cfg.timeout.as_secs()), false)
        }
        Err(e) => Outcome::failed(
            format!("cannot reach the chat: {}", crate::infra::outbound::root_cause(&e)),
            false,
        ),
    }
}

struct Due {
    id: i64,
    job_id: i64,
    notifier_id: Option<i64>,
    attempts: i32,
}

/// Takes the due deliveries (leased for five minutes, as the webhooks' are) and tries each; called
/// by the webhook dispatcher.
pub(crate) async fn deliver_due(app: &AppState) -> Result<usize, AppError> {
    let rows = {
        let db = app.pool.get().await?;
        db.query(
            "update notifier_deliveries set next_attempt = now() + interval '5 minutes'
              where id in (select id from notifier_deliveries
                            where state = 'pending' and next_attempt <= now()
                            order by next_attempt, id limit 8
                              for update skip locked)
             returning id, job_id, notifier_id, attempts",
            &[],
        )
        .await?
    };
    let due: Vec<Due> = rows
        .iter()
        .map(|r| Due { id: r.get(0), job_id: r.get(1), notifier_id: r.get(2), attempts: r.get(3) })
        .collect();
    let n = due.len();
    for result in futures_util::future::join_all(due.into_iter().map(|d| attempt(app, d))).await {
        if let Err(e) = result {
            tracing::warn!(error = %e, "a notification attempt could not be recorded");
        }
    }
    Ok(n)
}

async fn attempt(app: &AppState, d: Due) -> Result<(), AppError> {
    let cfg = &app.config.deliveries;
    let started = Instant::now();
    let n = d.attempts + 1;
    let stored = match d.notifier_id {
        Some(id) => load(app, id).await?,
        None => None,
    };
    let outcome = match stored {
        None => Outcome::failed("the notifier was deleted", true),
        Some(stored) => {
            let run = crate::store::jobs::job_run(app, d.job_id).await?;
            let explanations = {
                let db = app.pool.get().await?;
                crate::kb::explanations(&db, d.job_id).await?
            };
            let report = Report::of_job(&run, &explanations, app.config.public_url.as_deref());
            deliver(app, &stored, &report).await
        }
    };
    let attempted = policy::Attempted {
        delivery: d.id,
        job: d.job_id,
        attempt: n,
        delivered: outcome.error.is_none(),
        code: outcome.code,
        error: outcome.error,
        permanent: outcome.permanent,
        duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
    };
    let db = app.pool.get().await?;
    policy::record_attempt(&db, Channel::Notifiers, cfg, &attempted).await?;
    Ok(())
}
