//! API keys, roles, browser sessions and the ingest token.
//!
//! Keys are 256-bit random strings stored only as their SHA-256: a fast hash is enough for secrets
//! that cannot be guessed, and it lets a request find its key with one indexed lookup.

use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::{ApiKey, CreatedApiKey, NewApiKey, Role, SessionInfo, SessionRequest};

use crate::error::{AppError, AppJson};
use crate::{App, AppState};

pub const SESSION_COOKIE: &str = "playdeck_session";

/// A random secret: `prefix` then 64 hex digits.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who is calling: the API key (directly, or behind a browser session) and its role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: i64,
    pub name: String,
    pub role: Role,
    /// Whether the key came from the session cookie (a browser), which matters for WebSockets:
    /// those must come from our own origin.
    pub via_cookie: bool,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {} role; the key {:?} has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        if let Some(key) = bearer(&parts.headers) {
            return key_caller(&app, key).await;
        }
        if let Some(token) = cookie(&parts.headers, SESSION_COOKIE) {
            let caller = session_caller(&app, token).await?;
            // A cookie is sent by the browser whoever made the page; a write must also carry a
            // header that only our own pages send (another site would need a CORS preflight).
            if !parts.method.is_safe() && !parts.headers.contains_key(crate::security::CSRF_HEADER) {
                return Err(AppError::Forbidden(format!(
                    "a write from the browser needs the {} header",
                    crate::security::CSRF_HEADER
                )));
            }
            return Ok(caller);
        }
        // WebSockets from scripts cannot set headers in browsers; `?key=` is accepted there.
        if parts.uri.path().ends_with("/ws") {
            if let Ok(Query(KeyQuery { key: Some(key) })) = Query::<KeyQuery>::try_from_uri(&parts.uri) {
                return key_caller(&app, &key).await;
            }
        }
        Err(AppError::Unauthorized(
            "an API key is needed: send `Authorization: Bearer <key>` or sign in".into(),
        ))
    }
}

async fn key_caller(app: &App, key: &str) -> Result<Caller, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "update api_keys set last_used = now()
              where key_hash = $1 and revoked is null
             returning id, name, role",
            &[&hash_secret(key)],
        )
        .await?;
    let row = row.ok_or_else(|| AppError::Unauthorized("this API key is not valid".into()))?;
    Ok(Caller {
        key_id: row.get(0),
        name: row.get(1),
        role: Role::parse(row.get(2)).unwrap_or(Role::Viewer),
        via_cookie: false,
    })
}

async fn session_caller(app: &App, token: &str) -> Result<Caller, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "select k.id, k.name, k.role
               from sessions s join api_keys k on k.id = s.key_id
              where s.token_hash = $1 and s.expires > now() and k.revoked is null",
            &[&hash_secret(token)],
        )
        .await?;
    let row = row.ok_or_else(|| {
        AppError::Unauthorized("the session has ended or its key was revoked; sign in again".into())
    })?;
    Ok(Caller {
        key_id: row.get(0),
        name: row.get(1),
        role: Role::parse(row.get(2)).unwrap_or(Role::Viewer),
        via_cookie: true,
    })
}

/// Checks the ingest token of a request (bearer, or basic auth with it as the password, which is
/// what AAP's external logging can send).
pub fn check_ingest_token(app: &App, headers: &HeaderMap) -> Result<(), AppError> {
    let given = bearer(headers).map(str::to_string).or_else(|| basic_password(headers));
    match given {
        Some(t) if same_secret(&t, app.ingest_token.expose()) => Ok(()),
        Some(_) => Err(AppError::Unauthorized("the ingest token is not valid".into())),
        None => Err(AppError::Unauthorized(
            "the ingest token is needed: send `Authorization: Bearer <token>`".into(),
        )),
    }
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Makes sure an admin key exists: the configured one, the one in `admin.key`, or a new one
/// written there (mode 0600). Returns the key when it was created now, for printing once.
pub async fn bootstrap_admin(app: &App) -> Result<Option<String>, String> {
    let db = app.pool.get().await.map_err(|e| format!("database: {e}"))?;
    let ensure = |key: String| async move {
        db.execute(
            "insert into api_keys (name, role, key_hash, prefix) values ('bootstrap admin', 'admin', $1, $2)
             on conflict (key_hash) do update set role = 'admin', revoked = null",
            &[&hash_secret(&key), &key_prefix(&key)],
        )
        .await
        .map_err(|e| format!("bootstrap admin key: {e}"))
    };
    if let Some(key) = &app.config.bootstrap_admin_key {
        ensure(key.expose().to_string()).await?;
        return Ok(None);
    }
    let path = app.config.data_dir.join("admin.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let key = existing.trim().to_string();
        if !key.is_empty() {
            ensure(key).await?;
            return Ok(None);
        }
    }
    let key = random_token("pdk_");
    crate::embedded::write_private(&path, &key)?;
    ensure(key.clone()).await?;
    Ok(Some(key))
}

/// The ingest token: configured, or read from / generated into `ingest.token`.
pub fn ingest_token(config: &crate::config::Config) -> Result<crate::config::Secret, String> {
    if let Some(t) = &config.ingest_token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("ingest.token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_string();
        if !t.is_empty() {
            return Ok(crate::config::Secret(t));
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let t = random_token("pdi_");
    crate::embedded::write_private(&path, &t)?;
    Ok(crate::config::Secret(t))
}

fn key_prefix(key: &str) -> String {
    key.chars().take(8).collect()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session", get(whoami).post(sign_in).delete(sign_out))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
}

async fn whoami(caller: Caller) -> Json<SessionInfo> {
    Json(SessionInfo { name: caller.name, role: caller.role })
}

/// Exchanges an API key for an HttpOnly session cookie, so the browser never holds the key.
async fn sign_in(
    State(app): State<AppState>,
    client: crate::security::ClientAddr,
    headers: HeaderMap,
    AppJson(req): AppJson<SessionRequest>,
) -> Result<Response, AppError> {
    if let Err(wait) = app.signin_limit.check(&client.0) {
        crate::audit::record(
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
            crate::audit::record(
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
    crate::audit::record(&app, &caller.name, "sign-in", None, serde_json::json!({"from": client.0})).await;
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

async fn sign_out(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
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

async fn list_keys(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<shared::Page<ApiKey>>, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let rows = db
        .query(
            "select id, name, role, prefix, created, last_used from api_keys
              where revoked is null order by id",
            &[],
        )
        .await?;
    let results: Vec<ApiKey> = rows.iter().map(api_key_from_row).collect();
    Ok(Json(shared::Page { count: results.len() as i64, next: None, previous: None, results }))
}

async fn create_key(
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
            "insert into api_keys (name, role, key_hash, prefix) values ($1, $2, $3, $4)
             returning id, name, role, prefix, created, last_used",
            &[&name, &req.role.as_str(), &hash_secret(&secret), &key_prefix(&secret)],
        )
        .await?;
    let key = api_key_from_row(&row);
    crate::audit::record(
        &app,
        &caller.name,
        "key created",
        Some(&format!("key {}", key.id)),
        serde_json::json!({"name": key.name, "role": key.role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, secret })))
}

async fn revoke_key(
    State(app): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let n =
        db.execute("update api_keys set revoked = now() where id = $1 and revoked is null", &[&id]).await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("API key {id} does not exist")));
    }
    db.execute("delete from sessions where key_id = $1", &[&id]).await?;
    crate::audit::record(
        &app,
        &caller.name,
        "key revoked",
        Some(&format!("key {id}")),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
