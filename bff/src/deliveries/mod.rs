//! The outbox: what Playdeck sends when a job ends, through two channels, webhooks (signed JSON
//! to a URL) and notifiers (mail, chat). A trigger writes each channel's deliveries in the
//! transaction that finished the job (migrations 0004 and 0009); every replica's dispatcher takes
//! due ones with `FOR UPDATE SKIP LOCKED`, retries failures by one policy (`policy`) and records
//! each attempt, readable through each channel's API.

pub mod notifiers;
pub mod policy;
pub mod webhooks;

use axum::Router;
use tokio::sync::Notify;

use crate::infra::secrets::{random_token, write_private, Secret};
use crate::infra::state::{shutting_down, AppState};

/// The dispatcher's service: wakes it before its poll interval is over.
#[derive(Default)]
pub struct Dispatcher {
    wake: Notify,
}

/// Wakes this replica's dispatcher: a delivery was queued (a job ended, one was sent again).
pub fn wake(app: &AppState) {
    app.service::<Dispatcher>().wake.notify_one();
}

/// `/webhooks…` and `/notifiers…`.
pub fn router() -> Router<AppState> {
    Router::new().nest("/webhooks", webhooks::router()).nest("/notifiers", notifiers::router())
}

/// The secret deliveries to `callback_url`s are signed with: configured, or read from / generated
/// into `webhook.secret` in the data directory.
fn callback_secret(app: &AppState) -> Result<Secret, String> {
    if let Some(s) = &app.config.deliveries.secret {
        return Ok(s.clone());
    }
    let path = app.config.data_dir.join("webhook.secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            return Ok(Secret(existing.trim().to_string()));
        }
    }
    std::fs::create_dir_all(&app.config.data_dir).map_err(|e| e.to_string())?;
    let s = random_token("pdw_");
    write_private(&path, &s)?;
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
    let shutdown = shutting_down(app.shutdown.clone());
    tokio::pin!(shutdown);
    let poll = app.config.deliveries.poll;
    loop {
        // Every channel shares this loop, its wake-ups and its retry policy.
        let mut busy = false;
        match webhooks::deliver_due(&app, secret.as_ref()).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::warn!(error = %e, "webhook dispatcher could not read its outbox"),
        }
        match notifiers::deliver_due(&app).await {
            Ok(n) => busy |= n > 0,
            Err(e) => tracing::warn!(error = %e, "webhook dispatcher could not read the notifiers' outbox"),
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = app.service::<Dispatcher>().wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = &mut shutdown => return,
        }
    }
}
