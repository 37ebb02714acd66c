//! `/api/v1/keys`: API keys (admins list, create and revoke them). Keys are 256-bit random
//! strings stored only as their SHA-256; the secret is shown once, when it is created. Each key
//! is a service account's token: a new key makes a service account of its name (listed under
//! `/api/v1/users`); people's own tokens are under `/api/v1/tokens`, not here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use shared::{ApiKey, CreatedApiKey, NewApiKey, Role};

use crate::infra::auth::{key_prefix, Caller};
use crate::infra::error::{AppError, AppJson};
use crate::infra::secrets::{hash_secret, random_token};
use crate::infra::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list).post(create)).route("/{id}", delete(remove))
}

fn api_key_from_row(row: &tokio_postgres::Row) -> ApiKey {
    ApiKey {
        id: row.get("id"),
        name: row.get("name"),
        role: Role::parse(row.get("role")).unwrap_or(Role::Viewer),
        prefix: row.get("prefix"),
        created: row.get("created"),
        last_used: row.get("last_used"),
    }
}

async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<shared::Page<ApiKey>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let rows = db
        .query(
            "select k.id, k.name, k.role, k.prefix, k.created, k.last_used
               from api_keys k left join users u on u.id = k.user_id
              where k.revoked is null and (k.expires is null or k.expires > now())
                and coalesce(u.kind, 'service') = 'service'
              order by k.id",
            &[],
        )
        .await?;
    let results: Vec<ApiKey> = rows.iter().map(api_key_from_row).collect();
    Ok(Json(crate::infra::extract::whole(results)))
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), AppError> {
    caller.require(Role::Admin)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::Unprocessable("a key needs a name of 1 to 100 characters".into()));
    }
    let secret = random_token("pdk_");
    let db = app.pool.get().await?;
    let row = db
        .query_one(
            "with u as (
               insert into users (kind, subject, username, display_name, role, created_by)
               values ('service', $5, $1, $1, $2, $6) returning id)
             insert into api_keys (name, role, key_hash, prefix, user_id, created_by)
             select $1, $2, $3, $4, u.id, $6 from u
             returning id, name, role, prefix, created, last_used",
            &[
                &name,
                &req.role.as_str(),
                &hash_secret(&secret),
                &key_prefix(&secret),
                &random_token("sa_"),
                &caller.actor(),
            ],
        )
        .await?;
    let key = api_key_from_row(&row);
    crate::infra::audit::record(
        &app,
        &caller,
        "key created",
        Some(&format!("key {}", key.id)),
        serde_json::json!({"name": key.name, "role": key.role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, secret })))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    crate::infra::auth::keep_an_admin_key(&tx, id).await?;
    let n =
        tx.execute("update api_keys set revoked = now() where id = $1 and revoked is null", &[&id]).await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("API key {id} does not exist")));
    }
    tx.execute("delete from sessions where key_id = $1", &[&id]).await?;
    tx.commit().await?;
    crate::infra::audit::record(
        &app,
        &caller,
        "key revoked",
        Some(&format!("key {id}")),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
