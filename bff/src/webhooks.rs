//! Webhooks: when a job ends, whatever its source, its final state goes (as JSON, signed with
//! HMAC-SHA256 over the body) to the job's own `callback_url` and to every registered webhook that
//! asked for that end.
//!
//! Deliveries are an outbox: a trigger writes them in the transaction that finished the job
//! (migration 0004), and every replica's dispatcher takes due ones with `FOR UPDATE SKIP LOCKED`,
//! retries failures with exponential backoff and records each attempt, readable through the API.
//! URLs that point at loopback, link-local or private addresses are refused (when registered and
//! again at each attempt, since DNS can change) unless `PLAYDECK_WEBHOOK_ALLOW` lists them; the
//! request goes to the address that was checked, so a second lookup cannot redirect it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use shared::engine::{CreatedWebhook, DeliveryAttempt, NewWebhook, Webhook, WebhookDelivery, WebhookPayload};
use shared::{Page, Role};
use tokio_postgres::Row;

use crate::auth::Caller;
use crate::config::Secret;
use crate::error::{AppError, AppJson};
use crate::jobs::Q;
use crate::AppState;

/// Where webhooks may go and how deliveries are retried.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Addresses, networks (CIDR) and host names allowed even though private (`PLAYDECK_WEBHOOK_ALLOW`).
    pub allow: Vec<AllowRule>,
    /// Signs deliveries to jobs' `callback_url` (`PLAYDECK_WEBHOOK_SECRET`; unset: generated into
    /// `$PLAYDECK_DATA_DIR/webhook.secret`).
    pub secret: Option<Secret>,
    /// The wait before the first retry; each next one waits twice as long, up to an hour.
    pub backoff: Duration,
    /// Attempts before a delivery is given up (`failed`).
    pub max_attempts: i32,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// How often the dispatcher looks for due deliveries.
    pub poll: Duration,
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    Net(IpAddr, u8),
    Host(String),
}

impl AllowRule {
    pub fn parse(s: &str) -> Result<AllowRule, String> {
        let s = s.trim();
        if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| format!("{s:?} is not a network (address/bits)"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 =
                bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?;
            return Ok(AllowRule::Net(ip, bits));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowRule::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("{s:?} is not an address, a network or a host name"));
        }
        Ok(AllowRule::Host(s.to_ascii_lowercase()))
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let AllowRule::Net(net, bits) = self else { return false };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if *bits == 0 { 0 } else { u32::MAX << (32 - *bits as u32) };
                u32::from(*n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if *bits == 0 { 0 } else { u128::MAX << (128 - *bits as u32) };
                u128::from(*n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

impl WebhookConfig {
    pub fn from_env() -> Result<WebhookConfig, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let allow = match var("PLAYDECK_WEBHOOK_ALLOW") {
            None => Vec::new(),
            Some(v) => v
                .split([',', ' '])
                .filter(|s| !s.trim().is_empty())
                .map(AllowRule::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("PLAYDECK_WEBHOOK_ALLOW: {e}"))?,
        };
        let num = |name: &str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} must be a positive integer")),
            }
        };
        Ok(WebhookConfig {
            allow,
            secret: var("PLAYDECK_WEBHOOK_SECRET").map(Secret),
            backoff: Duration::from_secs(num("PLAYDECK_WEBHOOK_BACKOFF_SECS", 10)?),
            max_attempts: num("PLAYDECK_WEBHOOK_MAX_ATTEMPTS", 8)?.min(100) as i32,
            timeout: Duration::from_secs(num("PLAYDECK_WEBHOOK_TIMEOUT_SECS", 10)?),
            poll: Duration::from_secs(1),
        })
    }

    /// Nothing allowed beyond public addresses; quick retries.
    pub fn for_tests() -> WebhookConfig {
        WebhookConfig {
            allow: Vec::new(),
            secret: None,
            backoff: Duration::from_millis(200),
            max_attempts: 5,
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(200),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|r| matches!(r, AllowRule::Host(h) if *h == host))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|r| r.allows_ip(ip))
    }
}

/// What kind of non-public address this is, if it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0 {
                Some("link-local")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private")
            } else if v6.is_multicast() {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

/// Checks a receiver URL against the policy and answers the addresses a delivery may connect to.
pub async fn check_url(config: &WebhookConfig, url: &str) -> Result<(reqwest::Url, Vec<SocketAddr>), String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https URLs can receive webhooks"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("put no credentials in a webhook URL; receivers check the signature instead".into());
    }
    let host = parsed.host_str().ok_or_else(|| format!("{url:?} has no host"))?.to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((bare.as_str(), port)))
                .await
                .map_err(|_| format!("{host}: the name did not resolve within 5 s"))?
                .map_err(|e| format!("{host}: the name does not resolve ({e})"))?
                .collect()
        }
    };
    if addrs.is_empty() {
        return Err(format!("{host}: the name has no addresses"));
    }
    if !config.host_allowed(&bare) {
        for a in &addrs {
            if let Some(kind) = non_public(a.ip()) {
                if !config.ip_allowed(a.ip()) {
                    return Err(format!(
                        "{host} is {}a {kind} address ({}); webhooks to loopback, link-local and private \
                         addresses are refused unless PLAYDECK_WEBHOOK_ALLOW lists them",
                        if bare.parse::<IpAddr>().is_ok() { "" } else { "resolves to " },
                        a.ip()
                    ));
                }
            }
        }
    }
    Ok((parsed, addrs))
}

/// `sha256=<hex>`: HMAC-SHA256 of the body with the receiver's secret.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The secret deliveries to `callback_url`s are signed with: configured, or read from / generated
/// into `webhook.secret` in the data directory.
fn callback_secret(app: &AppState) -> Result<Secret, String> {
    if let Some(s) = &app.engine.config().webhooks.secret {
        return Ok(s.clone());
    }
    let path = app.config.data_dir.join("webhook.secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            return Ok(Secret(existing.trim().to_string()));
        }
    }
    std::fs::create_dir_all(&app.config.data_dir).map_err(|e| e.to_string())?;
    let s = crate::auth::random_token("pdw_");
    crate::embedded::write_private(&path, &s)?;
    Ok(Secret(s))
}

/// Starts this replica's dispatcher.
pub fn start(app: &AppState) {
    let secret = match callback_secret(app) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "no webhook secret: deliveries to callback_url cannot be signed");
            None
        }
    };
    tokio::spawn(dispatch(app.clone(), secret));
}

async fn dispatch(app: AppState, secret: Option<Secret>) {
    let shutdown = crate::shutting_down(app.shutdown.clone());
    tokio::pin!(shutdown);
    let poll = app.engine.config().webhooks.poll;
    loop {
        // Notifiers (mail, chat) share this loop, its wake-ups and its retry policy.
        let mut busy = false;
        match deliver_due(&app, secret.as_ref()).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::warn!(error = %e, "webhook dispatcher could not read its outbox"),
        }
        match crate::notifiers::deliver_due(&app).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::warn!(error = %e, "webhook dispatcher could not read the notifiers' outbox"),
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = app.engine.webhook_wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = &mut shutdown => return,
        }
    }
}

struct Due {
    id: i64,
    job_id: i64,
    webhook_id: Option<i64>,
    url: String,
    event: String,
    body: Option<String>,
    attempts: i32,
}

/// Takes the due deliveries (a lease of five minutes keeps other replicas off them) and tries each.
async fn deliver_due(app: &AppState, callback_secret: Option<&Secret>) -> Result<usize, AppError> {
    let rows = {
        let db = app.pool.get().await?;
        db.query(
            "update webhook_deliveries set next_attempt = now() + interval '5 minutes'
              where id in (select id from webhook_deliveries
                            where state = 'pending' and next_attempt <= now()
                            order by next_attempt, id limit 8
                              for update skip locked)
             returning id, job_id, webhook_id, url, event, body, attempts",
            &[],
        )
        .await?
    };
    let due: Vec<Due> = rows
        .iter()
        .map(|r| Due {
            id: r.get(0),
            job_id: r.get(1),
            webhook_id: r.get(2),
            url: r.get(3),
            event: r.get(4),
            body: r.get(5),
            attempts: r.get(6),
        })
        .collect();
    let n = due.len();
    let tries = due.into_iter().map(|d| attempt(app, d, callback_secret));
    for result in futures_util::future::join_all(tries).await {
        if let Err(e) = result {
            tracing::warn!(error = %e, "a webhook attempt could not be recorded");
        }
    }
    Ok(n)
}

async fn attempt(app: &AppState, mut d: Due, callback_secret: Option<&Secret>) -> Result<(), AppError> {
    let cfg = &app.engine.config().webhooks;
    let body = match d.body.take() {
        Some(b) => b,
        None => {
            let run = crate::engine::job_run(app, d.job_id).await?;
            let payload = WebhookPayload { event: d.event.clone(), delivery: d.id, run };
            let text = serde_json::to_string(&payload).map_err(|e| AppError::Internal(e.to_string()))?;
            let db = app.pool.get().await?;
            db.query_one(
                "update webhook_deliveries set body = coalesce(body, $2) where id = $1 returning body",
                &[&d.id, &text],
            )
            .await?
            .get(0)
        }
    };
    let secret = match d.webhook_id {
        Some(w) => {
            let db = app.pool.get().await?;
            db.query_opt("select secret from webhooks where id = $1", &[&w])
                .await?
                .map(|r| r.get::<_, String>(0))
        }
        None => callback_secret.map(|s| s.expose().to_string()),
    };
    let started = Instant::now();
    let n = d.attempts + 1;
    let (status, error, permanent) = match check_url(cfg, &d.url).await {
        Err(e) => (None, Some(e), true),
        Ok((url, addrs)) => match secret {
            None => (None, Some("no secret to sign with".to_string()), true),
            Some(secret) => send(cfg, url, &addrs, &d, n, &body, &secret).await,
        },
    };
    let ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let delivered = status.is_some_and(|s| (200..300).contains(&s)) && error.is_none();
    let state = next_state(cfg, delivered, permanent, n);
    let wait = retry_wait(cfg, n);
    let db = app.pool.get().await?;
    db.execute(
        "insert into webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
         values ($1, $2, $3, $4, $5)",
        &[&d.id, &n, &status, &error, &ms],
    )
    .await?;
    db.execute(
        "update webhook_deliveries set attempts = $2, last_status = $3, last_error = $4, state = $5,
                next_attempt = now() + make_interval(secs => $6),
                delivered = case when $5 = 'delivered' then now() else delivered end
          where id = $1",
        &[&d.id, &n, &status, &error, &state, &wait.as_secs_f64()],
    )
    .await?;
    if state == "failed" {
        tracing::warn!(delivery = d.id, job = d.job_id, attempts = n, error = ?error, "gave up a webhook delivery");
    }
    Ok(())
}

/// A delivery's state after its `n`th attempt.
pub(crate) fn next_state(cfg: &WebhookConfig, delivered: bool, permanent: bool, n: i32) -> &'static str {
    if delivered {
        "delivered"
    } else if permanent || n >= cfg.max_attempts {
        "failed"
    } else {
        "pending"
    }
}

/// The wait before the attempt after the `n`th: the backoff, doubled each time, at most an hour.
pub(crate) fn retry_wait(cfg: &WebhookConfig, n: i32) -> Duration {
    cfg.backoff.saturating_mul(1u32 << (n - 1).clamp(0, 20) as u32).min(Duration::from_secs(3600))
}

/// An HTTP client that connects only to the addresses `check_url` answered, follows no redirect
/// and gives up after the timeout.
pub(crate) fn pinned_client(
    cfg: &WebhookConfig,
    url: &reqwest::Url,
    addrs: &[SocketAddr],
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .resolve_to_addrs(url.host_str().unwrap_or_default(), addrs)
        .user_agent(concat!("Playdeck-Webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// One POST: (status, error, whether retrying is pointless).
async fn send(
    cfg: &WebhookConfig,
    url: reqwest::Url,
    addrs: &[SocketAddr],
    d: &Due,
    n: i32,
    body: &str,
    secret: &str,
) -> (Option<i32>, Option<String>, bool) {
    let client = match pinned_client(cfg, &url, addrs) {
        Ok(c) => c,
        Err(e) => return (None, Some(e), true),
    };
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-playdeck-event", &d.event)
        .header("x-playdeck-delivery", d.id.to_string())
        .header("x-playdeck-attempt", n.to_string())
        .header("x-playdeck-signature", sign(secret, body.as_bytes()))
        .body(body.to_string())
        .send()
        .await;
    match resp {
        Ok(r) => {
            let code = r.status().as_u16() as i32;
            if r.status().is_success() {
                (Some(code), None, false)
            } else {
                (Some(code), Some(format!("the receiver answered {}", r.status())), false)
            }
        }
        Err(e) if e.is_timeout() => {
            (None, Some(format!("no answer within {} s", cfg.timeout.as_secs())), false)
        }
        Err(e) => (None, Some(format!("cannot reach the receiver: {}", root_cause(&e))), false),
    }
}

pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

// ---- the API --------------------------------------------------------------------------------

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route("/webhooks/deliveries", get(list_deliveries))
        .route("/webhooks/deliveries/{id}", get(get_delivery))
        .route("/webhooks/deliveries/{id}/redeliver", post(redeliver))
        .route("/webhooks/{id}", get(get_webhook).delete(delete_webhook))
}

fn path_id(raw: &str, what: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::BadRequest(format!("{raw:?} is not a {what} id")))
}

fn webhook_from_row(r: &Row) -> Webhook {
    Webhook {
        id: r.get("id"),
        url: r.get("url"),
        events: r.get("events"),
        active: r.get("active"),
        created: r.get("created"),
        created_by: r.get("created_by"),
    }
}

const WEBHOOK_COLUMNS: &str = "id, url, events, active, created, created_by";

async fn create_webhook(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), AppError> {
    caller.require(Role::Admin)?;
    check_url(&app.engine.config().webhooks, &req.url)
        .await
        .map_err(|e| AppError::Unprocessable(format!("`url`: {e}")))?;
    let events = if req.events.is_empty() { vec!["job.finished".to_string()] } else { req.events.clone() };
    for e in &events {
        if !shared::engine::WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(AppError::Unprocessable(format!(
                "`events`: {e:?} is not an event; use {}",
                shared::engine::WEBHOOK_EVENTS.join(", ")
            )));
        }
    }
    let secret = match req.secret {
        Some(s) if s.chars().count() < 16 => {
            return Err(AppError::Unprocessable("`secret` must be at least 16 characters".into()))
        }
        Some(s) => s,
        None => crate::auth::random_token("pdw_"),
    };
    let db = app.pool.get().await?;
    let row = db
        .query_one(
            &format!(
                "insert into webhooks (url, secret, events, created_by) values ($1, $2, $3, $4)
                 returning {WEBHOOK_COLUMNS}"
            ),
            &[&req.url.trim(), &secret, &events, &caller.name],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedWebhook { webhook: webhook_from_row(&row), secret })))
}

async fn list_webhooks(State(app): State<AppState>, caller: Caller) -> Result<Json<Page<Webhook>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let rows = db.query(&format!("select {WEBHOOK_COLUMNS} from webhooks order by id"), &[]).await?;
    let results: Vec<Webhook> = rows.iter().map(webhook_from_row).collect();
    Ok(Json(Page { count: results.len() as i64, next: None, previous: None, results }))
}

async fn get_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<Webhook>, AppError> {
    caller.require(Role::Admin)?;
    let id = path_id(&raw, "webhook")?;
    let db = app.pool.get().await?;
    let row = db.query_opt(&format!("select {WEBHOOK_COLUMNS} from webhooks where id = $1"), &[&id]).await?;
    row.map(|r| Json(webhook_from_row(&r)))
        .ok_or_else(|| AppError::NotFound(format!("webhook {id} does not exist")))
}

async fn delete_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let id = path_id(&raw, "webhook")?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    // Its pending deliveries end here: with the webhook gone there is no secret to sign them with.
    tx.execute(
        "update webhook_deliveries set state = 'failed', last_error = 'the webhook was deleted'
          where webhook_id = $1 and state = 'pending'",
        &[&id],
    )
    .await?;
    let n = tx.execute("delete from webhooks where id = $1", &[&id]).await?;
    tx.commit().await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("webhook {id} does not exist")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct DeliveryQuery {
    job_id: Option<i64>,
    webhook_id: Option<i64>,
    state: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

const DELIVERY_COLUMNS: &str =
    "id, job_id, webhook_id, url, event, state, attempts, next_attempt, last_status, last_error, created, delivered";

async fn deliveries_with_attempts(
    db: &deadpool_postgres::Object,
    rows: &[Row],
) -> Result<Vec<WebhookDelivery>, AppError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect();
    let attempts = db
        .query(
            "select delivery_id, attempt, at, status_code, error, duration_ms from webhook_attempts
              where delivery_id = any($1) order by delivery_id, attempt",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id: i64 = r.get("id");
            let state: String = r.get("state");
            WebhookDelivery {
                id,
                job_id: r.get("job_id"),
                webhook_id: r.get("webhook_id"),
                url: r.get("url"),
                event: r.get("event"),
                next_attempt: (state == "pending").then(|| r.get("next_attempt")),
                state,
                attempts: r.get::<_, i32>("attempts") as i64,
                last_status: r.get::<_, Option<i32>>("last_status").map(i64::from),
                last_error: r.get("last_error"),
                created: r.get("created"),
                delivered: r.get("delivered"),
                attempt_log: attempts
                    .iter()
                    .filter(|a| a.get::<_, i64>(0) == id)
                    .map(|a| DeliveryAttempt {
                        attempt: a.get::<_, i32>(1) as i64,
                        at: a.get(2),
                        status_code: a.get::<_, Option<i32>>(3).map(i64::from),
                        error: a.get(4),
                        duration_ms: a.get::<_, i32>(5) as i64,
                    })
                    .collect(),
            }
        })
        .collect())
}

/// Deliveries, newest first, with their attempts (operators see them: CI pipelines check their
/// callbacks).
async fn list_deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<DeliveryQuery>,
) -> Result<Json<Page<WebhookDelivery>>, AppError> {
    caller.require(Role::Operator)?;
    let (page, page_size) = delivery_paging(q.page, q.page_size, q.state.as_deref())?;
    let db = app.pool.get().await?;
    let filter = "($1::bigint is null or job_id = $1) and ($2::bigint is null or webhook_id = $2)
                  and ($3::text is null or state = $3)";
    let count: i64 = db
        .query_one(
            &format!("select count(*) from webhook_deliveries where {filter}"),
            &[&q.job_id, &q.webhook_id, &q.state],
        )
        .await?
        .get(0);
    let rows = db
        .query(
            &format!(
                "select {DELIVERY_COLUMNS} from webhook_deliveries where {filter}
                  order by id desc limit {page_size} offset {}",
                (page - 1) * page_size
            ),
            &[&q.job_id, &q.webhook_id, &q.state],
        )
        .await?;
    let results = deliveries_with_attempts(&db, &rows).await?;
    let filters = [
        ("job_id", q.job_id.map(|j| j.to_string())),
        ("webhook_id", q.webhook_id.map(|w| w.to_string())),
        ("state", q.state.clone()),
    ];
    Ok(Json(delivery_page("/api/v1/webhooks/deliveries", page, page_size, &filters, count, results)))
}

/// The paging and `state` filter of a list of deliveries (webhooks' and notifiers'), checked:
/// (page, page_size).
pub(crate) fn delivery_paging(
    page: Option<i64>,
    page_size: Option<i64>,
    state: Option<&str>,
) -> Result<(i64, i64), AppError> {
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(25);
    if page < 1 || !(1..=200).contains(&page_size) {
        return Err(AppError::BadRequest("`page` starts at 1 and `page_size` is 1 to 200".into()));
    }
    if let Some(s) = state {
        if !matches!(s, "pending" | "delivered" | "failed") {
            return Err(AppError::BadRequest(format!("`state` is pending, delivered or failed, not {s:?}")));
        }
    }
    Ok((page, page_size))
}

/// One page of a list of deliveries with the links to its neighbours, which keep the filters
/// that were given.
pub(crate) fn delivery_page<T>(
    path: &str,
    page: i64,
    page_size: i64,
    filters: &[(&str, Option<String>)],
    count: i64,
    results: Vec<T>,
) -> Page<T> {
    let link = |p: i64| {
        let mut parts = vec![format!("page={p}"), format!("page_size={page_size}")];
        parts.extend(filters.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))));
        format!("{path}?{}", parts.join("&"))
    };
    Page {
        count,
        next: (page * page_size < count).then(|| link(page + 1)),
        previous: (page > 1).then(|| link(page - 1)),
        results,
    }
}

async fn get_delivery(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<WebhookDelivery>, AppError> {
    caller.require(Role::Operator)?;
    let id = path_id(&raw, "delivery")?;
    let db = app.pool.get().await?;
    let rows =
        db.query(&format!("select {DELIVERY_COLUMNS} from webhook_deliveries where id = $1"), &[&id]).await?;
    if rows.is_empty() {
        return Err(AppError::NotFound(format!("webhook delivery {id} does not exist")));
    }
    let mut found = deliveries_with_attempts(&db, &rows).await?;
    found.pop().map(Json).ok_or_else(|| AppError::NotFound(format!("webhook delivery {id} does not exist")))
}

/// Sends a delivery again now (after the receiver was fixed), keeping its attempts.
async fn redeliver(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require(Role::Admin)?;
    let id = path_id(&raw, "delivery")?;
    let db = app.pool.get().await?;
    let n = db
        .execute(
            "update webhook_deliveries set state = 'pending', next_attempt = now()
              where id = $1 and state <> 'pending'",
            &[&id],
        )
        .await?;
    if n == 0 {
        let exists = db.query_opt("select 1 from webhook_deliveries where id = $1", &[&id]).await?.is_some();
        if !exists {
            return Err(AppError::NotFound(format!("webhook delivery {id} does not exist")));
        }
    }
    app.engine.webhook_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"id": id, "state": "pending"}))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for (ip, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("::1", Some("loopback")),
            ("fe80::1", Some("link-local")),
            ("fd00::1", Some("private")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("93.184.216.34", None),
            ("2606:4700::1111", None),
        ] {
            assert_eq!(non_public(ip.parse().expect("ip")), kind, "{ip}");
        }
    }

    #[test]
    fn allow_rules_match_networks_and_hosts() {
        let r = AllowRule::parse("10.0.0.0/8").expect("cidr");
        assert!(r.allows_ip("10.9.8.7".parse().expect("ip")));
        assert!(!r.allows_ip("11.0.0.1".parse().expect("ip")));
        assert_eq!(
            AllowRule::parse("hooks.internal").expect("host"),
            AllowRule::Host("hooks.internal".into())
        );
        assert!(AllowRule::parse("10.0.0.0/40").is_err());
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
