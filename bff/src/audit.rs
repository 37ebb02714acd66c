//! The audit log: who signed in (or failed to), changed keys, tokens and users, launched,
//! canceled, edited the knowledge base. Admins read it at `GET /api/v1/audit`, filtered by person,
//! action, object and time, and download the same selection as CSV at `GET /api/v1/audit/csv`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{Page, Role};

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::extract::{filters_of, page_of, Q};
use crate::infra::state::AppState;

/// One entry of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who did it: a person's user name, a service account's name (with the token used), or the
    /// client's address for a refused sign-in.
    pub actor: String,
    pub user_id: Option<i64>,
    pub key_id: Option<i64>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Value,
}

/// The filters (the same for the page and the CSV).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct AuditFilter {
    /// Part of who did it (user name, service account, address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Exactly this person or service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// Exactly this action (`sign-in`, `launch`, `key revoked`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Part of the object (`job 42`, `key 3`, `user 7`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// From this time on (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Paging of the list (the CSV ignores it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list)).route("/csv", get(csv)).route("/actions", get(actions))
}

/// A substring pattern for ILIKE, with the caller's `%`, `_` and `\` taken literally.
fn contains(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| crate::infra::text::like_contains(s))
}

const WHERE: &str = "($1::text is null or actor ilike $1) and ($2::bigint is null or user_id = $2)
    and ($3::text is null or action = $3) and ($4::text is null or coalesce(target, '') ilike $4)
    and ($5::timestamptz is null or at >= $5) and ($6::timestamptz is null or at < $6)";

fn entry(r: &tokio_postgres::Row) -> AuditEntry {
    AuditEntry {
        id: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        action: r.get(3),
        target: r.get(4),
        detail: r.get(5),
        user_id: r.get(6),
        key_id: r.get(7),
    }
}

async fn select(
    db: &deadpool_postgres::Object,
    f: &AuditFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditEntry>, AppError> {
    let rows = db
        .query(
            &format!(
                "select id, at, actor, action, target, detail, user_id, key_id from audit_log
                  where {WHERE} order by id desc limit $7 offset $8"
            ),
            &[
                &contains(&f.actor),
                &f.user_id,
                &f.action,
                &contains(&f.target),
                &f.since,
                &f.until,
                &limit,
                &offset,
            ],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<AuditFilter>,
) -> Result<Json<Page<AuditEntry>>, AppError> {
    caller.require(Role::Admin)?;
    let f = &q;
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let size = q.page_size.unwrap_or(50).clamp(1, 200);
    let db = app.pool.get().await?;
    let count: i64 = db
        .query_one(
            &format!("select count(*) from audit_log where {WHERE}"),
            &[&contains(&f.actor), &f.user_id, &f.action, &contains(&f.target), &f.since, &f.until],
        )
        .await?
        .get(0);
    let results = select(&db, f, size, (page - 1) * size).await?;
    Ok(Json(page_of("/api/v1/audit", page, size, &filters_of(f), count, results)))
}

/// The distinct actions recorded, for the page's filter.
async fn actions(State(app): State<AppState>, caller: Caller) -> Result<Json<Vec<String>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let rows = db.query("select distinct action from audit_log order by action limit 500", &[]).await?;
    Ok(Json(rows.iter().map(|r| r.get(0)).collect()))
}

/// The most rows one download carries (newest first).
const CSV_ROWS: i64 = 100_000;

/// A cell a spreadsheet would run as a formula gets a leading `'`.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

async fn csv(
    State(app): State<AppState>,
    caller: Caller,
    Q(f): Q<AuditFilter>,
) -> Result<Response, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let entries = select(&db, &f, CSV_ROWS, 0).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, rec: [String; 7]| {
        out.write_record(rec.iter().map(|c| cell(c))).map_err(|e| AppError::Internal(format!("csv: {e}")))
    };
    write(&mut out, ["id", "at", "actor", "user_id", "action", "target", "detail"].map(String::from))?;
    for e in entries {
        write(
            &mut out,
            [
                e.id.to_string(),
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.actor,
                e.user_id.map(|u| u.to_string()).unwrap_or_default(),
                e.action,
                e.target.unwrap_or_default(),
                e.detail.to_string(),
            ],
        )?;
    }
    let body = out.into_inner().map_err(|e| AppError::Internal(format!("csv: {e}")))?;
    let name = format!("playdeck-audit-{}.csv", Utc::now().format("%Y%m%d-%H%M%S"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}
