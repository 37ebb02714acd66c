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

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use shared::engine::{CreatedWebhook, DeliveryAttempt, NewWebhook, Webhook, WebhookDelivery, WebhookPayload};
use shared::{Page, Role};
use tokio_postgres::Row;

use crate::deliveries::policy::{
    self, attempts_of, end_pending, record_attempt, Attempted, Channel, DeliveryFilter, DeliveryId,
};
use crate::infra::auth::Caller;
use crate::infra::config::DeliveryConfig;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::{path_id_type, Q};
use crate::infra::outbound::{check_url, pinned_client, root_cause};
use crate::infra::secrets::Secret;
use crate::infra::state::AppState;
use crate::store::jobs::job_run;

/// The key bytes of a secret: a Standard Webhooks secret (`whsec_` + base64) is its decoded
/// bytes; any other (made before, or given by hand) is used as its raw bytes.
pub fn secret_key(secret: &str) -> Vec<u8> {
    use base64::Engine as _;
    secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// A new secret in the Standard Webhooks form: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(crate::infra::secrets::random_bytes::<32>())
    )
}

/// Standard Webhooks' `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over
/// `{webhook-id}.{webhook-timestamp}.{body}`. The id and the time are signed with the body, so a
/// captured delivery cannot be replayed later (receivers refuse old timestamps) or as another.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&secret_key(secret)) else { return String::new() };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// `sha256=<hex>`: HMAC-SHA256 of the body with the receiver's secret (`x-playdeck-signature`,
/// deprecated: kept for one release beside the Standard Webhooks headers).
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
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
pub(crate) async fn deliver_due(app: &AppState, callback_secret: Option<&Secret>) -> Result<usize, AppError> {
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
    let cfg = &app.config.deliveries;
    let body = match d.body.take() {
        Some(b) => b,
        None => {
            let run = job_run(app, d.job_id).await?;
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
    let attempted = Attempted {
        delivery: d.id,
        job: d.job_id,
        attempt: n,
        delivered: status.is_some_and(|s| (200..300).contains(&s)) && error.is_none(),
        code: status,
        error,
        permanent,
        duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
    };
    let db = app.pool.get().await?;
    record_attempt(&db, Channel::Webhooks, cfg, &attempted).await?;
    Ok(())
}

/// One POST: (status, error, whether retrying is pointless).
async fn send(
    cfg: &DeliveryConfig,
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
    // The message id stays the same across retries (receivers deduplicate on it).
    let message = format!("msg_{}", d.id);
    let timestamp = chrono::Utc::now().timestamp();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &message)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", standard_signature(secret, &message, timestamp, body.as_bytes()))
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

// ---- the API --------------------------------------------------------------------------------

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}", get(show_delivery))
        .route("/deliveries/{id}/redeliver", post(redeliver))
        .route("/{id}", get(show).delete(remove))
}

path_id_type!(
    /// A webhook's id from the path.
    WebhookId,
    "a webhook"
);

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

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), AppError> {
    caller.require(Role::Admin)?;
    check_url(&app.config.deliveries, &req.url)
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
        None => new_secret(),
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

async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Page<Webhook>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let rows = db.query(&format!("select {WEBHOOK_COLUMNS} from webhooks order by id"), &[]).await?;
    let results: Vec<Webhook> = rows.iter().map(webhook_from_row).collect();
    Ok(Json(crate::infra::extract::whole(results)))
}

async fn show(
    State(app): State<AppState>,
    caller: Caller,
    WebhookId(id): WebhookId,
) -> Result<Json<Webhook>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let row = db.query_opt(&format!("select {WEBHOOK_COLUMNS} from webhooks where id = $1"), &[&id]).await?;
    row.map(|r| Json(webhook_from_row(&r)))
        .ok_or_else(|| AppError::NotFound(format!("webhook {id} does not exist")))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    WebhookId(id): WebhookId,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    // With the webhook gone there is no secret to sign its pending deliveries with.
    end_pending(&tx, Channel::Webhooks, id, "the webhook was deleted").await?;
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
    let mut attempts = attempts_of(db, Channel::Webhooks, &ids).await?;
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
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| DeliveryAttempt {
                        attempt: a.attempt,
                        at: a.at,
                        status_code: a.code,
                        error: a.error,
                        duration_ms: a.duration_ms,
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
    let db = app.pool.get().await?;
    let f = DeliveryFilter {
        // Operators see their own jobs' callbacks only.
        scope: caller.access.sql(Role::Viewer, ""),
        job_id: q.job_id,
        owner: q.webhook_id,
        state: q.state,
        page: q.page,
        page_size: q.page_size,
    };
    let listed =
        policy::list_deliveries(&db, Channel::Webhooks, "webhook_deliveries d", DELIVERY_COLUMNS, &f).await?;
    Ok(Json(listed.page(deliveries_with_attempts(&db, &listed.rows).await?)))
}

async fn show_delivery(
    State(app): State<AppState>,
    caller: Caller,
    DeliveryId(id): DeliveryId,
) -> Result<Json<WebhookDelivery>, AppError> {
    caller.require(Role::Operator)?;
    let db = app.pool.get().await?;
    let scope = caller
        .access
        .sql(Role::Viewer, "")
        .map(|c| format!(" and job_id in (select id from jobs where {c})"))
        .unwrap_or_default();
    let rows = db
        .query(&format!("select {DELIVERY_COLUMNS} from webhook_deliveries where id = $1{scope}"), &[&id])
        .await?;
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
    DeliveryId(id): DeliveryId,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require(Role::Admin)?;
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
    crate::deliveries::wake(&app);
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"id": id, "state": "pending"}))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The specification's own example (standard-webhooks, spec/standard-webhooks.md).
        assert_eq!(
            standard_signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // A secret made before (not whsec_) is used as its raw bytes.
        assert_eq!(secret_key("pdw_old"), b"pdw_old");
        assert!(new_secret().starts_with("whsec_"));
        assert_eq!(secret_key(&new_secret()).len(), 32);
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
