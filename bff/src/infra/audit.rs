//! Writes the audit log: who signed in (or failed to), changed keys, launched, canceled, edited
//! the knowledge base. The read API is the `audit` resource.

use serde_json::Value;

use crate::infra::error::AppError;
use crate::infra::state::App;

/// Records an entry. A failure to record is logged and does not fail the action it describes.
pub async fn record(app: &App, actor: &str, action: &str, target: Option<&str>, detail: Value) {
    let result = async {
        let db = app.pool.get().await?;
        db.execute(
            "insert into audit_log (actor, action, target, detail) values ($1, $2, $3, $4)",
            &[&actor, &action, &target, &detail],
        )
        .await?;
        Ok::<_, AppError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(action, error = %e, "could not write the audit log");
    }
}
