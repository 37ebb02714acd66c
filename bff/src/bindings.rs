//! `/api/v1/bindings`: the role bindings in force (from the settings, the access file and the
//! Settings page), and the Settings page's own, which admins add and delete. A binding added or
//! deleted counts on this replica at once and on the others within `Bindings::FRESH`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use shared::people::{NewRoleBinding, RoleBinding};
use shared::{Page, Role};

use crate::infra::access::{Binding, Glob, Subject};
use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list).post(create)).route("/{id}", delete(remove))
}

crate::infra::extract::path_id_type!(
    /// A binding's id from the path.
    BindingId,
    "a role binding"
);

fn shown(b: &Binding) -> RoleBinding {
    let (user, group) = match &b.subject {
        Subject::User(u) => (Some(u.clone()), None),
        Subject::Group(g) => (None, Some(g.clone())),
    };
    RoleBinding {
        id: b.id,
        origin: b.origin.clone(),
        user,
        group,
        role: b.role,
        sources: b.scope.sources.clone(),
        templates: b.scope.templates.iter().map(|g| g.text.clone()).collect(),
        inventories: b.scope.inventories.iter().map(|g| g.text.clone()).collect(),
        credentials: b.scope.credentials.iter().map(|g| g.text.clone()).collect(),
    }
}

/// Every binding in force, the fixed ones first.
async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Page<RoleBinding>>, AppError> {
    caller.require(Role::Admin)?;
    let all = app.bindings.all(&app.pool).await?;
    Ok(Json(crate::infra::extract::whole(all.iter().map(shown).collect())))
}

/// Checks a binding as the access file's are checked, saying what is wrong in words.
fn check(req: &NewRoleBinding) -> Result<(String, String), AppError> {
    let bad = |m: String| AppError::Unprocessable(m);
    let one_line =
        |v: &str| !v.trim().is_empty() && v.chars().count() <= 256 && !v.chars().any(char::is_control);
    let (kind, subject) = match (&req.user, &req.group) {
        (Some(u), None) if one_line(u) => ("user", u.trim().to_string()),
        (None, Some(g)) if one_line(g) => ("group", g.trim().to_string()),
        (Some(_), Some(_)) => return Err(bad("a binding names a `user` or a `group`, not both".into())),
        _ => return Err(bad("a binding needs a `user` or a `group` (1 to 256 printable characters)".into())),
    };
    for (what, list) in
        [("templates", &req.templates), ("inventories", &req.inventories), ("credentials", &req.credentials)]
    {
        if list.len() > 100 {
            return Err(bad(format!("`{what}`: at most 100")));
        }
        for g in list {
            Glob::parse(g).map_err(|e| bad(format!("`{what}`: {e}")))?;
        }
    }
    if req.sources.len() > 100 || req.sources.iter().any(|s| !one_line(s)) {
        return Err(bad("`sources`: at most 100 names (`local`, or controllers' names), none empty".into()));
    }
    Ok((kind.into(), subject))
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewRoleBinding>,
) -> Result<(StatusCode, Json<RoleBinding>), AppError> {
    caller.require(Role::Admin)?;
    let (kind, subject) = check(&req)?;
    let trim = |v: &[String]| v.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>();
    let (sources, templates, inventories) =
        (trim(&req.sources), trim(&req.templates), trim(&req.inventories));
    let credentials = trim(&req.credentials);
    let db = app.pool.get().await?;
    let id: i64 = db
        .query_one(
            "insert into role_bindings (subject_kind, subject, role, sources, templates, inventories, credentials, created_by)
             values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
            &[&kind, &subject, &req.role.as_str(), &sources, &templates, &inventories, &credentials, &caller.actor()],
        )
        .await?
        .get(0);
    drop(db);
    app.bindings.changed();
    let made = RoleBinding {
        id: Some(id),
        origin: "settings".into(),
        user: (kind == "user").then(|| subject.clone()),
        group: (kind == "group").then(|| subject.clone()),
        role: req.role,
        sources,
        templates,
        inventories,
        credentials,
    };
    crate::infra::audit::record(
        &app,
        &caller,
        "role binding added",
        Some(&format!("binding {id}")),
        serde_json::to_value(&made).unwrap_or_default(),
    )
    .await;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    BindingId(id): BindingId,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let row = db
        .query_opt("delete from role_bindings where id = $1 returning subject_kind, subject, role", &[&id])
        .await?
        .ok_or_else(|| AppError::NotFound(format!("role binding {id} does not exist (bindings from the access file or the group settings are changed there)")))?;
    drop(db);
    app.bindings.changed();
    crate::infra::audit::record(
        &app,
        &caller,
        "role binding deleted",
        Some(&format!("binding {id}")),
        serde_json::json!({"subject_kind": row.get::<_, String>(0), "subject": row.get::<_, String>(1), "role": row.get::<_, String>(2)}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
