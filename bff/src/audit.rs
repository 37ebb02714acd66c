//! The audit log: who signed in (or failed to), changed keys, launched, canceled, edited the
//! knowledge base. Admins read it at `GET /api/v1/audit`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{Page, Role};

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::extract::page_of;
use crate::infra::extract::{PageQuery, Q};
use crate::infra::state::AppState;

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

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list))
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<PageQuery>,
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
    Ok(Json(page_of::<_, &str>("/api/v1/audit", page, size, &[], count, results)))
}
