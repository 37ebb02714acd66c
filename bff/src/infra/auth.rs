//! API keys, roles, browser sessions and the ingest token.
//!
//! Keys are 256-bit random strings stored only as their SHA-256: a fast hash is enough for secrets
//! that cannot be guessed, and it lets a request find its key with one indexed lookup.

use axum::extract::{FromRef, FromRequestParts, Query};
use axum::http::{header, request::Parts, HeaderMap};
use serde::Deserialize;
use shared::Role;

use crate::infra::error::AppError;
use crate::infra::secrets::{hash_secret, random_token, same_secret, write_private};
use crate::infra::state::App;
use crate::infra::state::AppState;

pub const SESSION_COOKIE: &str = "playdeck_session";

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

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
            if !parts.method.is_safe() && !parts.headers.contains_key(crate::infra::security::CSRF_HEADER) {
                return Err(AppError::Forbidden(format!(
                    "a write from the browser needs the {} header",
                    crate::infra::security::CSRF_HEADER
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

pub(crate) async fn key_caller(app: &App, key: &str) -> Result<Caller, AppError> {
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
    write_private(&path, &key)?;
    ensure(key.clone()).await?;
    Ok(Some(key))
}

/// The ingest token: configured, or read from / generated into `ingest.token`.
pub fn ingest_token(config: &crate::infra::config::Config) -> Result<crate::infra::secrets::Secret, String> {
    if let Some(t) = &config.ingest_token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("ingest.token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_string();
        if !t.is_empty() {
            return Ok(crate::infra::secrets::Secret(t));
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let t = random_token("pdi_");
    write_private(&path, &t)?;
    Ok(crate::infra::secrets::Secret(t))
}

pub(crate) fn key_prefix(key: &str) -> String {
    key.chars().take(8).collect()
}
