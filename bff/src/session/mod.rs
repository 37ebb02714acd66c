//! `/api/v1/session`: signing in (an API key, a user name and password checked against LDAP, or
//! OpenID Connect single sign-on) for an HttpOnly session cookie, so the page never holds a
//! secret; who am I; a person's sessions; sign out (and the provider's logout page).

mod ldap;
pub mod oidc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use shared::people::{AccessGroups, SignInOptions, SignedOut, UserSession};
use shared::{Page, SessionInfo, SessionRequest};

use crate::infra::audit::Actor;
use crate::infra::auth::{cookie, key_identity, Identity, SESSION_COOKIE};
use crate::infra::error::{AppError, AppJson};
use crate::infra::secrets::{hash_secret, random_token};
use crate::infra::security::ClientAddr;
use crate::infra::state::{App, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(show).post(create).delete(remove))
        .route("/options", get(options))
        .route("/handoff", post(handoff))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", delete(end_session))
        .route("/oidc/start", get(oidc::start))
        .route("/oidc/callback", get(oidc::callback))
}

/// A person as a sign-in (OpenID Connect or LDAP) describes them.
pub(crate) struct Seen<'a> {
    pub kind: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub groups: &'a [String],
}

/// Records (or updates) a person who just signed in; a disabled person is refused.
pub(crate) async fn remember(app: &App, seen: Seen<'_>) -> Result<(i64, String), AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_one(
            "insert into users (kind, issuer, subject, username, display_name, email, groups, last_seen)
             values ($1, $2, $3, $4, $5, $6, $7, now())
             on conflict (kind, issuer, subject) do update
                set username = excluded.username, display_name = excluded.display_name,
                    email = excluded.email, groups = excluded.groups, last_seen = now()
             returning id, disabled is not null, display_name",
            &[
                &seen.kind,
                &seen.issuer,
                &seen.subject,
                &seen.username,
                &seen.display_name,
                &seen.email,
                &seen.groups,
            ],
        )
        .await?;
    if row.get::<_, bool>(1) {
        return Err(AppError::Unauthorized(format!("the account {:?} is disabled", seen.username)));
    }
    Ok((row.get(0), row.get(2)))
}

/// What `GET /api/v1/session` says of an identity.
pub(crate) fn info(app: &App, id: Identity) -> SessionInfo {
    let access_groups = id.role.is_none().then(|| AccessGroups {
        admin: app.config.auth.admin_groups.clone(),
        operator: app.config.auth.operator_groups.clone(),
        viewer: app.config.auth.viewer_groups.clone(),
    });
    let scoped = id.role.is_some_and(|r| !id.access.everywhere_as(r));
    SessionInfo {
        scoped,
        name: id.name,
        role: id.role,
        kind: id.kind,
        display_name: id.display_name,
        email: id.email,
        groups: id.groups,
        user_id: id.user_id,
        access_groups,
    }
}

async fn show(State(app): State<AppState>, id: Identity) -> Json<SessionInfo> {
    Json(info(&app, id))
}

async fn options(State(app): State<AppState>) -> Json<SignInOptions> {
    let auth = &app.config.auth;
    Json(SignInOptions {
        key: auth.api_key_signin,
        password: auth.ldap.is_some(),
        oidc: auth.oidc.as_ref().map(|o| o.name.clone()),
    })
}

/// Records a refused sign-in and answers with the refusal.
pub(crate) async fn refused(
    app: &App,
    client: &str,
    reason: &AppError,
    detail: serde_json::Value,
) -> AppError {
    let mut detail = detail;
    detail["reason"] = serde_json::Value::String(reason.to_string());
    detail["from"] = serde_json::Value::String(client.to_string());
    crate::infra::audit::record(app, client, "sign-in refused", None, detail).await;
    reason.clone()
}

/// Signs in with an API key (`{"key"}`) or a user name and password (`{"username", "password"}`,
/// checked against LDAP).
async fn create(
    State(app): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    AppJson(req): AppJson<SessionRequest>,
) -> Result<Response, AppError> {
    if let Err(wait) = app.signin_limit.check(&client.0) {
        return Err(refused(&app, &client.0, &AppError::TooManyRequests(wait), serde_json::json!({})).await);
    }
    if let Some(code) = req.handoff {
        if req.key.is_some() || req.username.is_some() || req.password.is_some() {
            return Err(AppError::Unprocessable("a `handoff` comes alone".into()));
        }
        return take_handoff(&app, &client.0, &headers, &code).await;
    }
    let (method, identity) = match (req.key, req.username, req.password) {
        (Some(key), None, None) => {
            if !app.config.auth.api_key_signin {
                let e = AppError::Forbidden(
                    "signing in with an API key is switched off here (PLAYDECK_API_KEY_SIGNIN=false); keys still work as bearer tokens".into(),
                );
                return Err(refused(&app, &client.0, &e, serde_json::json!({"method": "key"})).await);
            }
            match key_identity(&app, key.trim()).await {
                Ok(id) => ("key", id),
                Err(e) => {
                    return Err(refused(&app, &client.0, &e, serde_json::json!({"method": "key"})).await)
                }
            }
        }
        (None, Some(username), Some(password)) => {
            let detail = serde_json::json!({"method": "ldap", "username": username});
            if let Err(wait) = app.signin_user_limit.check(&username.trim().to_lowercase()) {
                return Err(refused(&app, &client.0, &AppError::TooManyRequests(wait), detail).await);
            }
            match ldap::sign_in(&app, &username, &password).await {
                Ok(id) => ("ldap", id),
                Err(e) => return Err(refused(&app, &client.0, &e, detail).await),
            }
        }
        _ => {
            return Err(AppError::Unprocessable(
                "send either {\"key\"} or {\"username\", \"password\"}".into(),
            ))
        }
    };
    let cookie = open_session(&app, &identity, method, None, &client.0, &headers).await?;
    let mut resp = Json(info(&app, identity)).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// `POST /api/v1/session/handoff`: a one-time code (60 s) for this browser session, with which a
/// framed Playdeck page (another cookie partition) opens a session of its own for the same
/// sign-in. Only from the browser session itself, never with a token.
async fn handoff(
    State(app): State<AppState>,
    identity: Identity,
    headers: HeaderMap,
) -> Result<Json<shared::SessionHandoff>, AppError> {
    let Some(token) =
        cookie(&headers, SESSION_COOKIE).filter(|_| identity.session_id.is_some() && identity.via_cookie)
    else {
        return Err(AppError::Forbidden("a handoff is made from a browser session".into()));
    };
    let code = crate::infra::secrets::random_token("pdh_");
    let db = app.pool.get().await?;
    db.execute("delete from session_handoffs where created < now() - interval '60 seconds'", &[]).await?;
    db.execute(
        "insert into session_handoffs (code_hash, token_hash) values ($1, $2)",
        &[&hash_secret(&code), &hash_secret(token)],
    )
    .await?;
    Ok(Json(shared::SessionHandoff { code }))
}

/// Signs in with a handoff code: a new session for the sign-in it was made from (once, within 60 s).
async fn take_handoff(
    app: &App,
    client: &str,
    headers: &HeaderMap,
    code: &str,
) -> Result<Response, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "with h as (delete from session_handoffs where code_hash = $1 returning token_hash, created)
             select h.token_hash, s.method, s.id_token from h join sessions s on s.token_hash = h.token_hash
              where h.created > now() - interval '60 seconds'",
            &[&hash_secret(code.trim())],
        )
        .await?;
    drop(db);
    let Some(row) = row else {
        let e = AppError::Unauthorized(
            "this sign-in code is not valid (unknown, used or older than a minute)".into(),
        );
        return Err(refused(app, client, &e, serde_json::json!({"method": "handoff"})).await);
    };
    let token_hash: String = row.get(0);
    let method: String = row.get(1);
    let id_token: Option<String> = row.get(2);
    let identity = crate::infra::auth::session_identity_by_hash(app, &token_hash).await?;
    let cookie = open_session(app, &identity, &method, id_token.as_deref(), client, headers).await?;
    let mut resp = Json(info(app, identity)).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// Opens a session for someone who just proved who they are, records the sign-in, and gives
/// the cookie to set.
pub(crate) async fn open_session(
    app: &App,
    identity: &Identity,
    method: &str,
    id_token: Option<&str>,
    client: &str,
    headers: &HeaderMap,
) -> Result<HeaderValue, AppError> {
    let token = random_token("pds_");
    let user_agent: Option<String> = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().filter(|c| !c.is_control()).take(200).collect());
    // A key's session belongs to the key; a person's (and a service account's) to the user.
    let (user_id, key_id) = if method == "key" { (None, identity.key_id) } else { (identity.user_id, None) };
    let db = app.pool.get().await?;
    db.execute(
        "insert into sessions (token_hash, key_id, user_id, method, client, user_agent, id_token, expires)
         values ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(hours => $8))",
        &[
            &hash_secret(&token),
            &key_id,
            &user_id,
            &method,
            &client,
            &user_agent,
            &id_token,
            &(app.config.session_hours as i32),
        ],
    )
    .await?;
    if let Some(user) = identity.user_id {
        db.execute("update users set last_seen = now() where id = $1", &[&user]).await?;
    }
    let actor = Actor { text: identity.name.clone(), user_id: identity.user_id, key_id: identity.key_id };
    crate::infra::audit::record(
        app,
        actor,
        "sign-in",
        None,
        serde_json::json!({"from": client, "method": method}),
    )
    .await;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Max-Age={}{}",
        app.config.session_hours * 3600,
        same_site(app, headers)
    );
    HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.to_string()))
}

/// The session cookie's `SameSite` (and `Secure`): `None; Secure; Partitioned` when other sites
/// may frame Playdeck (a portal's iframe is a third-party context, where `Lax` cookies are not
/// sent, and browsers that block third-party cookies still keep a partitioned one: CHIPS, kept
/// for that portal only), `Lax` otherwise.
pub(crate) fn same_site(app: &App, headers: &HeaderMap) -> &'static str {
    if app.config.framed_by_others() {
        "; SameSite=None; Secure; Partitioned"
    } else if secure(app, headers) {
        "; SameSite=Lax; Secure"
    } else {
        "; SameSite=Lax"
    }
}

/// Whether cookies get `Secure`: the page is served over HTTPS (here, by the public URL, or the
/// proxy's `X-Forwarded-Proto`).
pub(crate) fn secure(app: &App, headers: &HeaderMap) -> bool {
    app.config.tls.is_some()
        || app.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
        || headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Signs out: ends this session; after an OpenID Connect sign-in, answers with the provider's
/// logout page for the browser to open (RP-initiated logout).
async fn remove(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let mut logout_url = None;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let db = app.pool.get().await?;
        let row = db
            .query_opt(
                "delete from sessions s where token_hash = $1
                 returning method, id_token, coalesce(user_id, (select user_id from api_keys k where k.id = s.key_id)), key_id",
                &[&hash_secret(token)],
            )
            .await?;
        if let Some(row) = row {
            let user: Option<i64> = row.get(2);
            let text = user_name(&app, user).await.unwrap_or_else(|| "a key's session".into());
            let actor = Actor { text, user_id: user, key_id: row.get(3) };
            crate::infra::audit::record(&app, actor, "sign-out", None, serde_json::json!({})).await;
            if row.get::<_, &str>(0) == "oidc" {
                logout_url = oidc::logout_url(&app, row.get(1)).await;
            }
        }
    }
    let mut resp = match logout_url {
        Some(url) => Json(SignedOut { logout_url: Some(url) }).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Max-Age=0{}", same_site(&app, &headers));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(|e| AppError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

async fn user_name(app: &App, user: Option<i64>) -> Option<String> {
    let db = app.pool.get().await.ok()?;
    db.query_opt("select username from users where id = $1", &[&user?]).await.ok()?.map(|r| r.get(0))
}

/// The sessions of the caller's person (or of the key they signed in with), newest first.
async fn list_sessions(
    State(app): State<AppState>,
    id: Identity,
) -> Result<Json<Page<UserSession>>, AppError> {
    let db = app.pool.get().await?;
    let (owner_sql, owner) = owner_of(&id)?;
    let rows = db
        .query(
            &format!(
                "select id, method, created, last_seen, expires,
                        last_seen + make_interval(mins => $2), client, user_agent
                   from sessions
                  where {owner_sql} = $1 and expires > now() and last_seen > now() - make_interval(mins => $2)
                  order by last_seen desc limit 200"
            ),
            &[&owner, &(app.config.auth.session_idle_minutes as i32)],
        )
        .await?;
    let results = rows
        .iter()
        .map(|r| UserSession {
            id: r.get(0),
            method: r.get(1),
            created: r.get(2),
            last_seen: r.get(3),
            expires: r.get::<_, chrono::DateTime<chrono::Utc>>(4),
            idle_expires: r.get(5),
            client: r.get(6),
            user_agent: r.get(7),
            current: id.session_id == Some(r.get(0)),
        })
        .map(|mut s| {
            s.idle_expires = s.idle_expires.min(s.expires);
            s
        })
        .collect();
    Ok(Json(crate::infra::extract::whole(results)))
}

/// Whose sessions these are: the person's, else the key's.
fn owner_of(id: &Identity) -> Result<(&'static str, i64), AppError> {
    if id.session_id.is_some() && id.token_name.is_some() {
        return Ok(("key_id", id.key_id.unwrap_or_default()));
    }
    match (id.user_id, id.key_id) {
        (Some(user), _) => Ok(("user_id", user)),
        (None, Some(key)) => Ok(("key_id", key)),
        _ => Err(AppError::NotFound("this caller has no sessions".into())),
    }
}

crate::infra::extract::path_id_type!(
    /// A session's id from the path.
    SessionId,
    "a session"
);

/// Ends one of the caller's sessions (signs that browser out).
async fn end_session(
    State(app): State<AppState>,
    id: Identity,
    SessionId(session): SessionId,
) -> Result<StatusCode, AppError> {
    let (owner_sql, owner) = owner_of(&id)?;
    let db = app.pool.get().await?;
    let n = db
        .execute(&format!("delete from sessions where id = $1 and {owner_sql} = $2"), &[&session, &owner])
        .await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("you have no session {session}")));
    }
    let actor = Actor { text: id.name.clone(), user_id: id.user_id, key_id: id.key_id };
    crate::infra::audit::record(
        &app,
        actor,
        "session ended",
        Some(&format!("session {session}")),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
