//! `/api/v1/users` (admins): the people who signed in and the service accounts, with their
//! groups, role and last sign of life; service accounts are made here; anyone can be disabled
//! (their sessions and tokens stop at once, open streams within `auth.recheck`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::people::{NewServiceAccount, User, UserPatch};
use shared::{Page, Role};

use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::{page_of, Q};
use crate::infra::secrets::random_token;
use crate::infra::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list).post(create)).route("/{id}", patch(change))
}

crate::infra::extract::path_id_type!(
    /// A user's id from the path.
    UserId,
    "a user"
);

const USER_COLUMNS: &str =
    "u.id, u.kind, u.username, u.display_name, u.email, u.issuer, u.subject, u.groups, u.role,
     u.created, greatest(u.last_seen, (select max(last_seen) from sessions s where s.user_id = u.id),
                         (select max(last_used) from api_keys k where k.user_id = u.id)),
     u.disabled,
     (select count(*) from api_keys k where k.user_id = u.id and k.revoked is null
         and (k.expires is null or k.expires > now()))";

/// A person or service account as listed; `role` is the highest their bindings give anywhere.
fn user_from_row(bindings: &[crate::infra::access::Binding], r: &tokio_postgres::Row) -> User {
    let kind: String = r.get(1);
    let groups: Vec<String> = r.get(7);
    let username: String = r.get(2);
    let own = if kind == "service" { r.get::<_, Option<&str>>(8).and_then(Role::parse) } else { None };
    let role = crate::infra::access::Access::of(bindings, &username, &groups, own, None).max_role();
    User {
        id: r.get(0),
        kind,
        username: r.get(2),
        display_name: r.get(3),
        email: r.get(4),
        issuer: r.get(5),
        subject: r.get(6),
        groups,
        role,
        created: r.get(9),
        last_seen: r.get(10),
        disabled: r.get(11),
        tokens: r.get(12),
    }
}

#[derive(Deserialize, Serialize)]
struct ListQuery {
    kind: Option<String>,
    /// Part of the user name, display name or e-mail.
    q: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<ListQuery>,
) -> Result<Json<Page<User>>, AppError> {
    caller.require(Role::Admin)?;
    if let Some(k) = &q.kind {
        if !matches!(k.as_str(), "oidc" | "ldap" | "proxy" | "service") {
            return Err(AppError::BadRequest(format!("`kind` is oidc, ldap, proxy or service, not {k:?}")));
        }
    }
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let size = q.page_size.unwrap_or(50).clamp(1, 200);
    let pattern = q.q.as_ref().map(|s| crate::infra::text::like_contains(s));
    let filter = "($1::text is null or u.kind = $1)
        and ($2::text is null or u.username ilike $2 or u.display_name ilike $2 or coalesce(u.email, '') ilike $2)";
    let db = app.pool.get().await?;
    let count: i64 = db
        .query_one(&format!("select count(*) from users u where {filter}"), &[&q.kind, &pattern])
        .await?
        .get(0);
    let rows = db
        .query(
            &format!("select {USER_COLUMNS} from users u where {filter} order by u.kind = 'service', lower(u.username) limit $3 offset $4"),
            &[&q.kind, &pattern, &size, &((page - 1) * size)],
        )
        .await?;
    let results = {
        let bindings = app.bindings.all(&app.pool).await?;
        rows.iter().map(|r| user_from_row(&bindings, r)).collect()
    };
    let filters = [("kind", q.kind.clone()), ("q", q.q.clone())];
    Ok(Json(page_of("/api/v1/users", page, size, &filters, count, results)))
}

/// Makes a service account: a user without a sign-in whose tokens admins manage.
async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewServiceAccount>,
) -> Result<(StatusCode, Json<User>), AppError> {
    caller.require(Role::Admin)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::Unprocessable("`name`: 1 to 100 printable characters".into()));
    }
    let db = app.pool.get().await?;
    // Keys made at /api/v1/keys may share a name; exists() is true for one or many.
    let taken: bool = db
        .query_one(
            "select exists (select 1 from users where kind = 'service' and lower(username) = lower($1) and disabled is null)",
            &[&name],
        )
        .await?
        .get(0);
    if taken {
        return Err(AppError::Conflict(format!("a service account named {name:?} exists")));
    }
    let row = db
        .query_one(
            &format!(
                "with u as (insert into users (kind, subject, username, display_name, role, created_by)
                            values ('service', $1, $2, $2, $3, $4) returning *)
                 select {USER_COLUMNS} from u"
            ),
            &[&random_token("sa_"), &name, &req.role.as_str(), &caller.actor()],
        )
        .await?;
    let user = user_from_row(&app.bindings.all(&app.pool).await?, &row);
    crate::infra::audit::record(
        &app,
        &caller,
        "service account created",
        Some(&format!("user {}", user.id)),
        serde_json::json!({"name": user.username, "role": req.role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Disables or enables someone; sets a service account's role.
async fn change(
    State(app): State<AppState>,
    caller: Caller,
    UserId(id): UserId,
    AppJson(req): AppJson<UserPatch>,
) -> Result<Json<User>, AppError> {
    caller.require(Role::Admin)?;
    if req.disabled.is_none() && req.role.is_none() {
        return Err(AppError::Unprocessable("send `disabled` or `role`".into()));
    }
    if caller.user_id == Some(id) && (req.disabled == Some(true) || req.role.is_some()) {
        return Err(AppError::Conflict(
            "you cannot disable yourself or change your own role; another admin can".into(),
        ));
    }
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let kind: String = tx
        .query_opt("select kind from users where id = $1 for update", &[&id])
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no user {id}")))?
        .get(0);
    if let Some(role) = req.role {
        if kind != "service" {
            return Err(AppError::Unprocessable(
                "`role`: a person's role comes from their groups (PLAYDECK_*_GROUPS); only a service account's is set here".into(),
            ));
        }
        tx.execute("update users set role = $2 where id = $1", &[&id, &role.as_str()]).await?;
    }
    match req.disabled {
        Some(true) => {
            tx.execute("update users set disabled = coalesce(disabled, now()) where id = $1", &[&id]).await?;
            tx.execute("delete from sessions where user_id = $1 or key_id in (select id from api_keys where user_id = $1)", &[&id])
                .await?;
        }
        Some(false) => {
            tx.execute("update users set disabled = null where id = $1", &[&id]).await?;
        }
        None => {}
    }
    let row = tx.query_one(&format!("select {USER_COLUMNS} from users u where u.id = $1"), &[&id]).await?;
    tx.commit().await?;
    let user = user_from_row(&app.bindings.all(&app.pool).await?, &row);
    let action = match req.disabled {
        Some(true) => "user disabled",
        Some(false) => "user enabled",
        None => "user changed",
    };
    crate::infra::audit::record(
        &app,
        &caller,
        action,
        Some(&format!("user {id}")),
        serde_json::json!({"username": user.username, "role": req.role.map(|r| r.as_str())}),
    )
    .await;
    Ok(Json(user))
}
