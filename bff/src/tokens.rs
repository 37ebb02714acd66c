//! `/api/v1/tokens`: personal access tokens (a signed-in person makes them for pipelines, with a
//! name, an expiry and at most their own role) and service accounts' tokens (admins make them).
//! A token is an API key with an owner: stored only as its SHA-256, shown once, capped at each
//! use by what its owner may do then.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use shared::people::{CreatedToken, NewToken, Token};
use shared::{Page, Role};

use crate::infra::auth::{key_prefix, token_hash, Caller};
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::Q;
use crate::infra::secrets::random_token;
use crate::infra::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list).post(create)).route("/{id}", delete(revoke))
}

crate::infra::extract::path_id_type!(
    /// A token's id from the path.
    TokenId,
    "a token"
);

const TOKEN_COLUMNS: &str =
    "k.id, k.name, k.role, k.prefix, k.user_id, coalesce(u.username, k.name), k.created,
     k.created_by, k.last_used, k.expires";

pub(crate) fn token_from_row(r: &tokio_postgres::Row) -> Token {
    Token {
        id: r.get(0),
        name: r.get(1),
        role: Role::parse(r.get(2)).unwrap_or(Role::Viewer),
        prefix: r.get(3),
        user_id: r.get(4),
        owner: r.get(5),
        created: r.get(6),
        created_by: r.get(7),
        last_used: r.get(8),
        expires: r.get(9),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    user_id: Option<i64>,
}

/// The caller's own tokens; admins may name anyone's (`?user_id=`).
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<ListQuery>,
) -> Result<Json<Page<Token>>, AppError> {
    let owner = match q.user_id {
        Some(id) if Some(id) != caller.user_id => {
            caller.require(Role::Admin)?;
            id
        }
        _ => caller
            .user_id
            .ok_or_else(|| AppError::NotFound("this caller has no account to own tokens".into()))?,
    };
    let db = app.pool.get().await?;
    let rows = db
        .query(
            &format!(
                "select {TOKEN_COLUMNS} from api_keys k left join users u on u.id = k.user_id
                  where k.user_id = $1 and k.revoked is null and (k.expires is null or k.expires > now())
                  order by k.id desc"
            ),
            &[&owner],
        )
        .await?;
    Ok(Json(crate::infra::extract::whole(rows.iter().map(token_from_row).collect())))
}

/// Makes a token for the caller (a person) or, for admins, for a service account.
async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), AppError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::Unprocessable(
            "`name`: a token needs a name of 1 to 100 printable characters".into(),
        ));
    }
    let db = app.pool.get().await?;
    // Whose token, and the most it may grant.
    let (owner, ceiling, service) = match req.user_id {
        Some(id) if Some(id) != caller.user_id => {
            caller.require(Role::Admin)?;
            let row = db
                .query_opt("select kind, role, disabled is not null from users where id = $1", &[&id])
                .await?
                .ok_or_else(|| AppError::Unprocessable(format!("`user_id`: there is no user {id}")))?;
            if row.get::<_, &str>(0) != "service" {
                return Err(AppError::Unprocessable(format!(
                    "`user_id`: user {id} is a person; people make their own tokens"
                )));
            }
            if row.get::<_, bool>(2) {
                return Err(AppError::Conflict(format!("service account {id} is disabled")));
            }
            (id, row.get::<_, Option<&str>>(1).and_then(Role::parse).unwrap_or(Role::Viewer), true)
        }
        _ => {
            let Some(me) = caller.user_id else {
                return Err(AppError::Unprocessable("this caller has no account to own tokens".into()));
            };
            // A token (as a bearer, or behind a session opened with the key form) makes no tokens:
            // a leaked one could otherwise outlive its own revocation.
            if caller.key_id.is_some() {
                return Err(AppError::Forbidden(
                    "a token cannot make tokens; sign in, or ask an admin for a service account's token"
                        .into(),
                ));
            }
            (me, caller.role, false)
        }
    };
    let role = req.role.unwrap_or(ceiling);
    if role > ceiling {
        return Err(AppError::Unprocessable(format!(
            "`role`: a token carries at most its owner's role ({}), not {}",
            ceiling.as_str(),
            role.as_str()
        )));
    }
    let most = if service { 3650 } else { 366 };
    let days = req.expires_days.unwrap_or(90);
    if days == 0 || days > most {
        return Err(AppError::Unprocessable(format!("`expires_days`: 1 to {most} days, not {days}")));
    }
    let secret = random_token("pdt_");
    let row = db
        .query_one(
            &format!(
                "with k as (
                   insert into api_keys (name, role, key_hash, prefix, user_id, created_by, expires)
                   values ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))
                   returning *)
                 select {TOKEN_COLUMNS} from k left join users u on u.id = k.user_id"
            ),
            &[
                &name,
                &role.as_str(),
                &token_hash(&secret),
                &key_prefix(&secret),
                &owner,
                &caller.actor(),
                &(days as i32),
            ],
        )
        .await?;
    let token = token_from_row(&row);
    crate::infra::audit::record(
        &app,
        &caller,
        "token created",
        Some(&format!("token {}", token.id)),
        serde_json::json!({"name": token.name, "role": token.role.as_str(), "owner": token.owner, "expires": token.expires}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

/// Revokes one of the caller's tokens (admins: anyone's); its sessions end with it.
async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    TokenId(id): TokenId,
) -> Result<StatusCode, AppError> {
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let admin = caller.role >= Role::Admin;
    crate::infra::auth::keep_an_admin_key(&tx, id).await?;
    let n = tx
        .execute(
            "update api_keys set revoked = now()
              where id = $1 and revoked is null and ($2 or user_id = $3)",
            &[&id, &admin, &caller.user_id],
        )
        .await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("you have no token {id}")));
    }
    tx.execute("delete from sessions where key_id = $1", &[&id]).await?;
    tx.commit().await?;
    crate::infra::audit::record(
        &app,
        &caller,
        "token revoked",
        Some(&format!("token {id}")),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
