//! `/api/v1/session`: a browser signs in with an API key and gets an HttpOnly session cookie, so
//! the page never holds the key; who am I; sign out.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared::{SessionInfo, SessionRequest};

use crate::infra::auth::{cookie, key_caller, Caller, SESSION_COOKIE};
use crate::infra::error::{AppError, AppJson};
use crate::infra::secrets::{hash_secret, random_token};
use crate::infra::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(show).post(create).delete(remove))
}

async fn show(caller: Caller) -> Json<SessionInfo> {
    Json(SessionInfo { name: caller.name, role: caller.role })
}

/// Exchanges an API key for an HttpOnly session cookie, so the browser never holds the key.
async fn create(
    State(app): State<AppState>,
    client: crate::infra::security::ClientAddr,
    headers: HeaderMap,
    AppJson(req): AppJson<SessionRequest>,
) -> Result<Response, AppError> {
    if let Err(wait) = app.signin_limit.check(&client.0) {
        crate::infra::audit::record(
            &app,
            &client.0,
            "sign-in refused",
            None,
            serde_json::json!({"reason": "rate limit"}),
        )
        .await;
        return Err(AppError::TooManyRequests(wait));
    }
    let caller = match key_caller(&app, req.key.trim()).await {
        Ok(c) => c,
        Err(e) => {
            crate::infra::audit::record(
                &app,
                &client.0,
                "sign-in refused",
                None,
                serde_json::json!({"reason": e.to_string()}),
            )
            .await;
            return Err(e);
        }
    };
    crate::infra::audit::record(&app, &caller.name, "sign-in", None, serde_json::json!({"from": client.0}))
        .await;
    let token = random_token("pds_");
    let db = app.pool.get().await?;
    db.execute(
        "insert into sessions (token_hash, key_id, expires)
         values ($1, $2, now() + make_interval(hours => $3))",
        &[&hash_secret(&token), &caller.key_id, &(app.config.session_hours as i32)],
    )
    .await?;
    let secure =
        headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        app.config.session_hours * 3600,
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Json(SessionInfo { name: caller.name, role: caller.role }).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

async fn remove(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let db = app.pool.get().await?;
        db.execute("delete from sessions where token_hash = $1", &[&hash_secret(token)]).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("playdeck_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(resp)
}
