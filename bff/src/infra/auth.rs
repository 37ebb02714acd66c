//! Who is calling: tokens (API keys, personal and service account tokens), browser sessions, a
//! trusted proxy's sign-in; roles from groups; the ingest token; the bootstrap admin.
//!
//! Keys are 256-bit random strings stored only as their SHA-256: a fast hash is enough for secrets
//! that cannot be guessed, and it lets a request find its key with one indexed lookup.

use axum::extract::{FromRef, FromRequestParts, Query};
use axum::http::{header, request::Parts, HeaderMap};
use serde::Deserialize;
use shared::Role;

use crate::infra::access::{Access, Binding};
use crate::infra::error::AppError;
use crate::infra::secrets::{hash_secret, random_token, same_secret, write_private};
use crate::infra::state::App;
use crate::infra::state::AppState;

pub const SESSION_COOKIE: &str = "playdeck_session";

/// Who is calling, once they have a role: a person (session, personal token, proxy), a service
/// account's token, or an API key behind a browser session.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The person or service account (none only for keys a previous release made, until adopted).
    pub user_id: Option<i64>,
    /// The token (API key) used, when one was.
    pub key_id: Option<i64>,
    pub token_name: Option<String>,
    /// The browser session, when the request came with one.
    pub session_id: Option<i64>,
    /// The person's user name or the service account's name: what the audit log and the job
    /// records say.
    pub name: String,
    /// The highest role the caller holds anywhere; what they may do to a given job is
    /// `access.allows(role, job)`.
    pub role: Role,
    /// Their role bindings' grants (capped by the token used).
    pub access: Access,
    /// Whether the caller came from a browser (session cookie, or a proxy's sign-in), which
    /// matters for writes (CSRF header) and WebSockets (our own origin only).
    pub via_cookie: bool,
}

/// Who is calling, with or without a role: a person whose groups grant none is signed in, and
/// `GET /api/v1/session` tells them which groups grant access.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: Option<i64>,
    pub key_id: Option<i64>,
    pub token_name: Option<String>,
    pub session_id: Option<i64>,
    pub name: String,
    pub role: Option<Role>,
    pub access: Access,
    pub via_cookie: bool,
    /// `oidc`, `ldap`, `proxy`, `service` or `key`.
    pub kind: String,
    pub display_name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

impl Caller {
    /// The role somewhere (viewer, operator): what the job at hand allows is checked with
    /// `access`. Admin pages (keys, people, the audit log, bindings, credentials, notifiers,
    /// webhooks) are not about some jobs: they need admin over everything.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if role == Role::Admin && self.role == Role::Admin && !self.access.everywhere_as(Role::Admin) {
            return Err(AppError::Forbidden(format!(
                "this needs the admin role over everything; {:?} is admin over some jobs only",
                self.name
            )));
        }
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {} role; {:?} has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }

    /// Whether the caller may act on `target` with `role`; a job they may not even see is a
    /// 404 (it is not theirs to know about), one they may see but not act on a 403.
    pub fn may(
        &self,
        role: Role,
        target: &crate::infra::access::Target<'_>,
        what: &str,
    ) -> Result<(), AppError> {
        if self.access.allows(role, target) {
            return Ok(());
        }
        if role > Role::Viewer && self.access.allows(Role::Viewer, target) {
            return Err(AppError::Forbidden(format!(
                "{:?} may see {what} but has no {} role over it",
                self.name,
                role.as_str()
            )));
        }
        Err(AppError::NotFound(format!("{what} does not exist")))
    }

    /// What the audit log says did it: the person, and the token when one was used.
    pub fn actor(&self) -> String {
        match &self.token_name {
            Some(t) if *t != self.name => format!("{} (token {t})", self.name),
            _ => self.name.clone(),
        }
    }
}

impl Identity {
    pub fn into_caller(self) -> Result<Caller, AppError> {
        let Some(role) = self.role else {
            return Err(AppError::Forbidden(format!(
                "{:?} is signed in, but none of their groups grants access to Playdeck",
                self.name
            )));
        };
        Ok(Caller {
            user_id: self.user_id,
            key_id: self.key_id,
            token_name: self.token_name,
            session_id: self.session_id,
            name: self.name,
            role,
            access: self.access,
            via_cookie: self.via_cookie,
        })
    }
}

/// A person's access from the bindings that name them or their groups (at sign-in).
pub async fn person_access(app: &App, username: &str, groups: &[String]) -> Result<Access, AppError> {
    let bindings = app.bindings.all(&app.pool).await?;
    Ok(Access::of(&bindings, username, groups, None, None))
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

impl<S> FromRequestParts<S> for Identity
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let identity = resolve(&app, parts).await?;
        // Each token, session or proxied person has its own budget on the whole API.
        let budget = match (identity.key_id, identity.session_id, identity.user_id) {
            (Some(k), _, _) => format!("key:{k}"),
            (None, Some(s), _) => format!("session:{s}"),
            (None, None, Some(u)) => format!("user:{u}"),
            _ => format!("name:{}", identity.name),
        };
        if let Err(wait) = app.api_limit.check(&budget) {
            return Err(AppError::TooManyRequests(wait));
        }
        Ok(identity)
    }
}

/// Who the request says it comes from, checked: a token, a trusted proxy's person, a session.
async fn resolve(app: &App, parts: &Parts) -> Result<Identity, AppError> {
    {
        if let Some(key) = bearer(&parts.headers) {
            return key_identity(app, key).await;
        }
        // A trusted proxy's sign-in, else the session cookie, else a refusal of forged headers.
        let browser = match proxy_identity(app, parts).await? {
            Some(identity) => Some(identity),
            None => match cookie(&parts.headers, SESSION_COOKIE) {
                Some(token) => Some(session_identity(app, token).await?),
                None => {
                    refuse_forged_proxy_headers(app, parts).await?;
                    None
                }
            },
        };
        if let Some(identity) = browser {
            // A cookie is sent by the browser whoever made the page; a write must also carry a
            // header that only our own pages send (another site would need a CORS preflight).
            if !parts.method.is_safe() && !parts.headers.contains_key(crate::infra::security::CSRF_HEADER) {
                return Err(AppError::Forbidden(format!(
                    "a write from the browser needs the {} header",
                    crate::infra::security::CSRF_HEADER
                )));
            }
            return Ok(identity);
        }
        // WebSockets from scripts cannot set headers in browsers; `?key=` is accepted there.
        if parts.uri.path().ends_with("/ws") {
            if let Ok(Query(KeyQuery { key: Some(key) })) = Query::<KeyQuery>::try_from_uri(&parts.uri) {
                return key_identity(app, &key).await;
            }
        }
        Err(AppError::Unauthorized("sign in, or send a token: `Authorization: Bearer <token>`".into()))
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Identity::from_request_parts(parts, state).await?.into_caller()
    }
}

/// The columns of the owner (`users`) every lookup reads, from index `at` on.
struct Owner {
    kind: Option<String>,
    username: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    groups: Vec<String>,
    role: Option<Role>,
    disabled: bool,
}

const OWNER_COLUMNS: &str =
    "u.kind, u.username, u.display_name, u.email, coalesce(u.groups, '{}'), u.role, u.disabled is not null";

impl Owner {
    fn read(row: &tokio_postgres::Row, at: usize) -> Owner {
        Owner {
            kind: row.get(at),
            username: row.get(at + 1),
            display_name: row.get(at + 2),
            email: row.get(at + 3),
            groups: row.get(at + 4),
            role: row.get::<_, Option<&str>>(at + 5).and_then(Role::parse),
            disabled: row.get::<_, Option<bool>>(at + 6).unwrap_or(false),
        }
    }

    /// What a token of this owner may do: the owner's bindings now (a service account's own
    /// role over everything among them), each at most the token's own role.
    fn access(&self, bindings: &[Binding], name: &str, token_role: Option<Role>) -> Access {
        match self.kind.as_deref() {
            None => token_role.map(Access::everywhere).unwrap_or_default(),
            Some("service") => Access::of(bindings, name, &[], self.role.or(token_role), token_role),
            Some(_) => Access::of(bindings, name, &self.groups, None, token_role),
        }
    }

    fn identity(self, bindings: &[Binding], fallback_name: String, token_role: Option<Role>) -> Identity {
        let name = self.username.clone().unwrap_or(fallback_name);
        let access = self.access(bindings, &name, token_role);
        let kind = self.kind.clone().unwrap_or_else(|| "key".into());
        Identity {
            user_id: None,
            key_id: None,
            token_name: None,
            session_id: None,
            name,
            role: access.max_role(),
            access,
            via_cookie: false,
            kind,
            display_name: self.display_name.unwrap_or_default(),
            email: self.email,
            groups: self.groups,
        }
    }
}

/// What is stored of a token: the tokens of `/api/v1/tokens` (`pdt_`) are hashed with a label
/// the previous release does not know, so a replica of it (in a rolling update, or after a
/// rollback) never accepts one, as it would ignore their expiry and their owner; API keys (`pdk_`)
/// are hashed as they always were.
pub fn token_hash(secret: &str) -> String {
    if secret.starts_with("pdt_") {
        hash_secret(&format!("playdeck token\u{0}{secret}"))
    } else {
        hash_secret(secret)
    }
}

/// A bearer token: an API key, a personal token or a service account's token.
pub(crate) async fn key_identity(app: &App, key: &str) -> Result<Identity, AppError> {
    // Before the connection is taken: reading them may need one of its own.
    let bindings = app.bindings.all(&app.pool).await?;
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            &format!(
                "with k as (
                   update api_keys set last_used = now()
                    where key_hash = $1 and revoked is null and (expires is null or expires > now())
                   returning id, name, role, user_id)
                 select k.id, k.name, k.role, k.user_id, {OWNER_COLUMNS}
                   from k left join users u on u.id = k.user_id"
            ),
            &[&token_hash(key)],
        )
        .await?;
    let row = row.ok_or_else(|| {
        AppError::Unauthorized("this token is not valid (unknown, revoked or expired)".into())
    })?;
    let owner = Owner::read(&row, 4);
    if owner.disabled {
        return Err(AppError::Unauthorized("the account this token belongs to is disabled".into()));
    }
    let name: String = row.get(1);
    let mut identity = owner.identity(&bindings, name.clone(), Role::parse(row.get(2)));
    identity.key_id = Some(row.get(0));
    identity.user_id = row.get(3);
    identity.token_name = Some(name);
    Ok(identity)
}

/// The caller a stored owner acts as now (a schedule's runs): the token it was made with, or the
/// person. `Err` says in words why they may no longer act (token revoked or expired, account
/// disabled or gone).
pub async fn caller_of(app: &App, user_id: Option<i64>, key_id: Option<i64>) -> Result<Caller, String> {
    let bindings = app.bindings.all(&app.pool).await.map_err(|e| e.to_string())?;
    let db = app.pool.get().await.map_err(|e| AppError::from(e).to_string())?;
    let (row, name_at, owner_at) = if let Some(key) = key_id {
        let row = db
            .query_opt(
                &format!(
                    "select k.name, k.role, k.user_id, {OWNER_COLUMNS} from api_keys k left join users u on u.id = k.user_id
                      where k.id = $1 and k.revoked is null and (k.expires is null or k.expires > now())"
                ),
                &[&key],
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the token it was made with is revoked or expired")?;
        (row, Some(0), 3)
    } else if let Some(user) = user_id {
        let row = db
            .query_opt(
                &format!("select null::text, null::text, u.id, {OWNER_COLUMNS} from users u where u.id = $1"),
                &[&user],
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the account that made it no longer exists")?;
        (row, None, 3)
    } else {
        return Err("it has no owner".into());
    };
    let owner = Owner::read(&row, owner_at);
    if owner.disabled {
        return Err("the account that made it is disabled".into());
    }
    let name: Option<String> = name_at.map(|i| row.get(i));
    let token_role = row.get::<_, Option<&str>>(1).and_then(Role::parse);
    let mut identity = owner.identity(&bindings, name.clone().unwrap_or_default(), token_role);
    identity.key_id = key_id;
    identity.user_id = row.get(2);
    identity.token_name = name;
    identity.into_caller().map_err(|e| e.to_string())
}

/// A browser session: a person's, or one made with the key form.
async fn session_identity(app: &App, token: &str) -> Result<Identity, AppError> {
    session_identity_by_hash(app, &hash_secret(token)).await
}

/// A browser session by its token's hash (a handoff names the popup's session so).
pub(crate) async fn session_identity_by_hash(app: &App, token_hash: &str) -> Result<Identity, AppError> {
    let bindings = app.bindings.all(&app.pool).await?;
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            &format!(
                "with s as (
                   update sessions set last_seen = now()
                    where token_hash = $1 and expires > now()
                      and last_seen > now() - make_interval(mins => $2)
                   returning id, user_id, key_id)
                 select s.id, k.id, k.name, k.role, coalesce(s.user_id, k.user_id),
                        s.key_id is not null and (k.id is null or k.revoked is not null
                                                  or (k.expires is not null and k.expires <= now())),
                        {OWNER_COLUMNS}
                   from s left join api_keys k on k.id = s.key_id
                          left join users u on u.id = coalesce(s.user_id, k.user_id)"
            ),
            &[&token_hash, &(app.config.auth.session_idle_minutes as i32)],
        )
        .await?;
    let ended = || AppError::Unauthorized("the session has ended; sign in again".into());
    let row = row.ok_or_else(ended)?;
    let owner = Owner::read(&row, 6);
    if row.get::<_, bool>(5) || owner.disabled {
        return Err(ended());
    }
    let key_name: Option<String> = row.get(2);
    let mut identity = owner.identity(
        &bindings,
        key_name.clone().unwrap_or_default(),
        row.get::<_, Option<&str>>(3).and_then(Role::parse),
    );
    identity.session_id = Some(row.get(0));
    identity.key_id = row.get(1);
    identity.token_name = key_name;
    identity.user_id = row.get(4);
    identity.via_cookie = true;
    Ok(identity)
}

/// Sign-in by a trusted reverse proxy (oauth-proxy, oauth2-proxy): the user and groups in its
/// headers, believed only from a peer in `PLAYDECK_TRUSTED_PROXIES` with `PLAYDECK_PROXY_AUTH`.
/// `None`: not a proxy's request (no header, or not from a trusted peer).
async fn proxy_identity(app: &App, parts: &Parts) -> Result<Option<Identity>, AppError> {
    let Some(proxy) = &app.config.auth.proxy else { return Ok(None) };
    let Some(user) = parts.headers.get(proxy.user_header.as_str()) else { return Ok(None) };
    let peer = crate::infra::security::peer_of(parts);
    let Some(peer) = peer.filter(|p| app.config.auth.trusts(p.ip())) else { return Ok(None) };
    let from = peer.ip().to_string();
    let refuse = |why: String| async move {
        crate::infra::audit::record(
            app,
            from.as_str(),
            "sign-in refused",
            None,
            serde_json::json!({"reason": why, "method": "proxy", "from": from}),
        )
        .await;
        Err(AppError::Unauthorized(why))
    };
    // Header values are bytes; people's names may well be UTF-8.
    let text = |v: &axum::http::HeaderValue| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| s.chars().count() <= 256 && !s.chars().any(char::is_control))
    };
    let Some(user) = text(user).filter(|u| !u.is_empty()) else {
        return refuse("the proxy sent an empty or unreadable user name".into()).await;
    };
    let groups: Vec<String> = match parts.headers.get(proxy.groups_header.as_str()) {
        Some(v) => match text(v) {
            Some(g) => g.split(',').map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect(),
            None => return refuse("the proxy sent an unreadable groups header".into()).await,
        },
        None => Vec::new(),
    };
    let email = parts.headers.get(proxy.email_header.as_str()).and_then(text).filter(|e| !e.is_empty());
    let db = app.pool.get().await?;
    let row = db
        .query_one(
            "insert into users (kind, subject, username, display_name, email, groups, last_seen)
             values ('proxy', $1, $1, $1, $2, $3, now())
             on conflict (kind, issuer, subject) do update
                set email = coalesce(excluded.email, users.email), groups = excluded.groups, last_seen = now()
             returning id, disabled is not null, display_name, xmax = 0",
            &[&user, &email, &groups],
        )
        .await?;
    drop(db);
    if row.get::<_, bool>(1) {
        return refuse(format!("the account {user:?} is disabled")).await;
    }
    let user_id: i64 = row.get(0);
    if row.get::<_, bool>(3) {
        // The first request of someone new is their first sign-in.
        let actor = crate::infra::audit::Actor { text: user.clone(), user_id: Some(user_id), key_id: None };
        crate::infra::audit::record(
            app,
            actor,
            "sign-in",
            None,
            serde_json::json!({"method": "proxy", "from": peer.ip().to_string()}),
        )
        .await;
    }
    let access = person_access(app, &user, &groups).await?;
    Ok(Some(Identity {
        user_id: Some(user_id),
        key_id: None,
        token_name: None,
        session_id: None,
        role: access.max_role(),
        access,
        name: user,
        via_cookie: true,
        kind: "proxy".into(),
        display_name: row.get(2),
        email,
        groups,
    }))
}

/// The proxy's user header from a peer that is not a trusted proxy, with nothing else to sign in
/// with: refused, and recorded (at most at the sign-in rate of that peer, so forged headers
/// cannot flood the log).
async fn refuse_forged_proxy_headers(app: &App, parts: &Parts) -> Result<(), AppError> {
    let Some(proxy) = &app.config.auth.proxy else { return Ok(()) };
    if !parts.headers.contains_key(proxy.user_header.as_str()) {
        return Ok(());
    }
    let from = crate::infra::security::peer_of(parts)
        .map(|p| p.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if let Err(wait) = app.signin_limit.check(&from) {
        return Err(AppError::TooManyRequests(wait));
    }
    crate::infra::audit::record(
        app,
        from.as_str(),
        "sign-in refused",
        None,
        serde_json::json!({"reason": "proxy user header from a peer that is not a trusted proxy", "method": "proxy", "from": from}),
    )
    .await;
    Err(AppError::Unauthorized("the proxy's user header is only believed from a trusted proxy".into()))
}

/// Whether an open stream's caller may still read: the session or token is still valid and its
/// owner not disabled. WebSockets and SSE streams ask this every `auth.recheck`.
pub async fn still_allowed(app: &App, caller: &Caller) -> bool {
    let Ok(db) = app.pool.get().await else { return true };
    let row = if let Some(session) = caller.session_id {
        db.query_opt(
            &format!(
                "select k.role, {OWNER_COLUMNS} from sessions s left join api_keys k on k.id = s.key_id
                        left join users u on u.id = coalesce(s.user_id, k.user_id)
                  where s.id = $1 and s.expires > now() and u.disabled is null
                    and (s.key_id is null or (k.revoked is null and (k.expires is null or k.expires > now())))"
            ),
            &[&session],
        )
        .await
    } else if let Some(key) = caller.key_id {
        db.query_opt(
            &format!(
                "select k.role, {OWNER_COLUMNS} from api_keys k left join users u on u.id = k.user_id
                  where k.id = $1 and k.revoked is null and (k.expires is null or k.expires > now())
                    and u.disabled is null"
            ),
            &[&key],
        )
        .await
    } else if let Some(user) = caller.user_id {
        db.query_opt(
            &format!(
                "select null::text, {OWNER_COLUMNS} from users u where u.id = $1 and u.disabled is null"
            ),
            &[&user],
        )
        .await
    } else {
        return true;
    };
    // A database hiccup does not close streams; the next check decides.
    let row = match row {
        Err(_) => return true,
        Ok(None) => return false,
        Ok(Some(row)) => row,
    };
    drop(db);
    // Bindings changed (a team left, a role lowered): the stream ends, and the client's next one
    // gets what the caller may see now.
    let Ok(bindings) = app.bindings.all(&app.pool).await else { return true };
    let token_role = row.get::<_, Option<&str>>(0).and_then(Role::parse);
    let owner = Owner::read(&row, 1);
    owner.access(&bindings, &caller.name, token_role) == caller.access
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
             on conflict (key_hash) do update set role = 'admin', revoked = null, expires = null",
            &[&hash_secret(&key), &key_prefix(&key)],
        )
        .await
        .map_err(|e| format!("bootstrap admin key: {e}"))?;
        adopt_keys(&db).await.map_err(|e| format!("bootstrap admin key: {e}"))?;
        // The break-glass key works even when someone disabled its account.
        db.execute(
            "update users set disabled = null, role = 'admin'
              where id = (select user_id from api_keys where key_hash = $1)",
            &[&hash_secret(&key)],
        )
        .await
        .map(|_| ())
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

/// Refuses (409) to revoke `key` when it is the last active admin key (of an enabled service
/// account): nobody could sign in as an admin afterwards. Admin keys are locked, so two revokes at
/// once cannot both pass.
pub async fn keep_an_admin_key(tx: &deadpool_postgres::Transaction<'_>, key: i64) -> Result<(), AppError> {
    let rows = tx
        .query(
            "select k.id from api_keys k left join users u on u.id = k.user_id
              where k.revoked is null and (k.expires is null or k.expires > now()) and k.role = 'admin'
                and coalesce(u.kind, 'service') = 'service' and u.disabled is null
                and coalesce(u.role, 'admin') = 'admin'
              for update of k",
            &[],
        )
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    if ids == [key] {
        return Err(AppError::Conflict(
            "this is the last active admin key: make another admin key first, or nobody can administer Playdeck with a key".into(),
        ));
    }
    Ok(())
}

/// Keys without an owner (made before service accounts existed, or by a previous release) each
/// become a service account of their own name.
pub async fn adopt_keys(db: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "with made as (
           insert into users (kind, subject, username, display_name, role, created, created_by)
           select 'service', 'key:' || id, name, name, role, created, 'playdeck'
             from api_keys where user_id is null
           on conflict (kind, issuer, subject) do nothing
           returning id, subject)
         update api_keys k set user_id = m.id from made m where m.subject = 'key:' || k.id",
        &[],
    )
    .await
    .map(|_| ())
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
