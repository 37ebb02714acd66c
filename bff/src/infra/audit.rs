//! Writes the audit log: who signed in (or failed to), changed keys, launched, canceled, edited
//! the knowledge base. The read API is the `audit` resource.

use serde_json::Value;

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::state::App;

/// Who did it: a caller (the person or service account, and the token when one was used), or a
/// plain name (a client address for refused sign-ins, `playdeck` for the server itself).
pub struct Actor {
    pub text: String,
    pub user_id: Option<i64>,
    pub key_id: Option<i64>,
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Actor {
        Actor { text: c.actor(), user_id: c.user_id, key_id: c.key_id }
    }
}

impl From<&str> for Actor {
    fn from(text: &str) -> Actor {
        Actor { text: text.to_string(), user_id: None, key_id: None }
    }
}

/// Records an entry. A failure to record is logged and does not fail the action it describes.
pub async fn record(app: &App, actor: impl Into<Actor>, action: &str, target: Option<&str>, detail: Value) {
    let actor = actor.into();
    let result = async {
        let db = app.pool.get().await?;
        db.execute(
            "insert into audit_log (actor, action, target, detail, user_id, key_id) values ($1, $2, $3, $4, $5, $6)",
            &[&actor.text, &action, &target, &detail, &actor.user_id, &actor.key_id],
        )
        .await?;
        Ok::<_, AppError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(action, error = %e, "could not write the audit log");
    }
}
