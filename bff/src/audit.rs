//! The audit log: who signed in (or failed to), changed keys, launched, canceled, edited the
//! knowledge base. Admins read it at `GET /api/v1/audit`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{Page, Role};

use crate::auth::Caller;
use crate::error::AppError;
use crate::jobs::Q;
use crate::{App, AppState};

/// One entry of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Value,
}

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

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize)]
struct AuditQuery {
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, AppError> {
    caller.require(Role::Admin)?;
    let page = q.page.unwrap_or(1).max(1);
    let size = q.page_size.unwrap_or(50).clamp(1, 200);
    let db = app.pool.get().await?;
    let count: i64 = db.query_one("select count(*) from audit_log", &[]).await?.get(0);
    let rows = db
        .query(
            "select id, at, actor, action, target, detail from audit_log order by id desc limit $1 offset $2",
            &[&size, &((page - 1) * size)],
        )
        .await?;
    let results = rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            target: r.get(4),
            detail: r.get(5),
        })
        .collect();
    let link = |p: i64| Some(format!("/api/v1/audit?page={p}&page_size={size}"));
    Ok(Json(Page {
        count,
        next: if page * size < count { link(page + 1) } else { None },
        previous: if page > 1 { link(page - 1) } else { None },
        results,
    }))
}
