//! Credentials: named secrets that launches use by name. Their inputs are sealed (AES-256-GCM)
//! under the credential key before they reach the database, opened only in the process that runs a
//! job, and never returned by the API, logged or recorded with a job.
//!
//! The key comes from `PLAYDECK_CREDENTIAL_KEY` (64 hex digits or 32 bytes in base64; a Kubernetes
//! Secret in production, the same for every replica) or, when unset, is generated into
//! `$PLAYDECK_DATA_DIR/credential.key` (0600). Every sealed value carries the id of the key that
//! sealed it, so a server started with another key says so instead of failing obscurely.
//!
//! HashiCorp Vault lookups (`{"type": "hashicorp_vault", "vault_path", "vault_key"}`) read a KV
//! version 2 secret at launch through a stored `hashicorp_vault` credential (token or AppRole).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};
use shared::credentials::{Credential, CredentialKind, CredentialRef, NewCredential, SecretLookup};
use shared::{Page, Role};
use tokio_postgres::Row;

use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::state::AppState;

/// A credential's inputs, opened.
#[derive(Clone)]
pub struct Opened {
    pub name: String,
    pub kind: CredentialKind,
    pub inputs: Map<String, Value>,
    /// Where it may be sent (empty: anywhere).
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Opened {
    /// Refuses to send it to a target outside its hosts (checked at launch, and again at run time:
    /// the credential may have been replaced meanwhile).
    pub fn check_target(&self, field: &str, target: &str) -> Result<(), AppError> {
        if allowed_target(&self.hosts, target) {
            Ok(())
        } else {
            Err(bound_error(field, &self.name, &self.hosts, target))
        }
    }

    /// How a URL is asked with it: an API token as a bearer token, else its user and password.
    pub fn url_auth(&self) -> crate::infra::outbound::UrlAuth<'_> {
        match self.kind {
            CredentialKind::ApiToken => {
                crate::infra::outbound::UrlAuth::Bearer(self.get("token").unwrap_or_default())
            }
            _ => crate::infra::outbound::UrlAuth::Basic(
                self.get("username").unwrap_or_default(),
                self.get("password"),
            ),
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.inputs.get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// Every secret string in it (for redaction).
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.inputs {
            match v {
                Value::String(s) if CredentialKind::secret_field(k) => out.push(s.clone()),
                Value::Object(o) => out.extend(o.values().filter_map(Value::as_str).map(str::to_string)),
                _ => {}
            }
        }
        out
    }
}

/// Checks a credential's inputs against its kind.
pub fn check_inputs(kind: CredentialKind, inputs: &Map<String, Value>) -> Result<(), AppError> {
    let bad = |m: String| Err(AppError::Unprocessable(m));
    let (required, optional) = kind.fields();
    for (k, v) in inputs {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return bad(format!(
                "`inputs.{k}` is not a field of a {} credential; it takes {}",
                kind.as_str(),
                required.iter().chain(optional).copied().collect::<Vec<_>>().join(", ")
            ));
        }
        let ok = match (k.as_str(), v) {
            ("variables", Value::Object(o)) => {
                o.iter().all(|(name, val)| env_name_ok(name) && val.is_string())
            }
            ("variables", _) => false,
            (_, Value::String(s)) => !s.contains('\0') && s.len() <= 64 * 1024,
            _ => false,
        };
        if !ok {
            return bad(if k == "variables" {
                "`inputs.variables` maps environment variable names (A-Z, 0-9, _; not PATH, LD_*, \
                 ANSIBLE_* or PLAYDECK_*) to strings"
                    .into()
            } else {
                format!("`inputs.{k}` must be a string of at most 64 KiB")
            });
        }
    }
    for r in required {
        if inputs.get(*r).is_none_or(|v| v.as_str() == Some("")) {
            return bad(format!("a {} credential needs `inputs.{r}`", kind.as_str()));
        }
    }
    match kind {
        CredentialKind::SshKey => {
            let key = inputs["private_key"].as_str().unwrap_or_default();
            if !key.contains("-----BEGIN") || !key.contains("PRIVATE KEY-----") {
                return bad("`inputs.private_key` is not a private key (PEM or OpenSSH format)".into());
            }
        }
        CredentialKind::HashicorpVault => {
            let addr = inputs["address"].as_str().unwrap_or_default();
            let ok = reqwest::Url::parse(addr).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.username().is_empty() && u.password().is_none()
            });
            if !ok {
                return bad(
                    "`inputs.address` must be the Vault server's http(s) URL, without a user or password"
                        .into(),
                );
            }
            let token = inputs.get("token").is_some();
            let approle = inputs.get("role_id").is_some() && inputs.get("secret_id").is_some();
            if token == approle {
                return bad(
                    "a hashicorp_vault credential needs `token`, or `role_id` and `secret_id` (AppRole)"
                        .into(),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// Names an inventory plugin's environment may set.
pub fn env_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !matches!(name, "PATH" | "HOME" | "PYTHONPATH" | "PYTHONHOME")
        && !name.starts_with("LD_")
        && !name.starts_with("ANSIBLE_")
        && !name.starts_with("PLAYDECK_")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn credential_from_row(r: &Row) -> Credential {
    Credential {
        id: r.get("id"),
        name: r.get("name"),
        kind: CredentialKind::parse(r.get("kind")).unwrap_or(CredentialKind::Password),
        description: r.get("description"),
        created: r.get("created"),
        created_by: r.get("created_by"),
        last_used: r.get("last_used"),
        hosts: r.get("hosts"),
    }
}

const COLUMNS: &str = "id, name, kind, description, created, created_by, last_used, hosts";

/// Checks and normalises a credential's `hosts`: host names (lower case, a trailing dot dropped),
/// `*.` before a domain for its subdomains, or IP addresses.
pub fn check_hosts(given: &[String]) -> Result<Vec<String>, AppError> {
    if given.len() > 50 {
        return Err(AppError::Unprocessable("`hosts` lists at most 50 hosts".into()));
    }
    let mut out: Vec<String> = Vec::new();
    for h in given {
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        let name = h.strip_prefix("*.").unwrap_or(&h);
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        let is_name = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !(is_name || is_ip && !h.starts_with("*.")) {
            return Err(AppError::Unprocessable(format!(
                "`hosts`: {h:?} is not a host name, `*.domain` or IP address"
            )));
        }
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

/// The host a URL or `user@host:path` repository sends to, as git, reqwest and ansible-galaxy
/// read it; `None` for file:// and anything ambiguous (a backslash, a space, no host).
pub fn target_host(target: &str) -> Option<String> {
    let t = target.trim();
    if t.is_empty() || t.contains(['\\', ' ']) || t.chars().any(char::is_control) {
        return None;
    }
    let host = if t.contains("://") {
        let u = reqwest::Url::parse(t).ok()?;
        if u.scheme() == "file" {
            return None;
        }
        u.host_str()?.trim_start_matches('[').trim_end_matches(']').to_string()
    } else {
        // scp-like: [user@]host:path, with nothing odd before the colon.
        let (before, _) = t.split_once(':')?;
        let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
        if host.is_empty() || host.contains(['/', '@', '[', ']']) {
            return None;
        }
        host.to_string()
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Whether a credential bound to `hosts` may be sent to `target` (a URL or repository).
pub fn allowed_target(hosts: &[String], target: &str) -> bool {
    if hosts.is_empty() {
        return true;
    }
    let Some(host) = target_host(target) else { return false };
    hosts.iter().any(|h| match h.strip_prefix("*.") {
        Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
        None => *h == host,
    })
}

fn bound_error(field: &str, name: &str, hosts: &[String], target: &str) -> AppError {
    let shown = crate::infra::outbound::strip_userinfo(target);
    AppError::Unprocessable(format!(
        "`{field}`: credential {name:?} is only for {}; not for {shown}",
        hosts.join(", ")
    ))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list).post(create)).route("/{name}", get(show).delete(remove))
}

/// `GET /api/v1/credentials` (operator: they name them in launches).
async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Page<Credential>>, AppError> {
    caller.require(Role::Operator)?;
    let db = app.pool.get().await?;
    let rows = db.query(&format!("select {COLUMNS} from credentials order by name"), &[]).await?;
    // Only those the caller's bindings let them use (admins: all).
    let results: Vec<Credential> = rows
        .iter()
        .map(credential_from_row)
        .filter(|c| {
            caller.access.everywhere_as(Role::Admin) || caller.access.may_use_credential_somewhere(&c.name)
        })
        .collect();
    Ok(Json(crate::infra::extract::whole(results)))
}

async fn show(
    State(app): State<AppState>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<Credential>, AppError> {
    caller.require(Role::Operator)?;
    let db = app.pool.get().await?;
    let row = db
        .query_opt(&format!("select {COLUMNS} from credentials where name = $1 or id::text = $1"), &[&name])
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no credential {name:?}")))?;
    let c = credential_from_row(&row);
    if !caller.access.everywhere_as(Role::Admin) && !caller.access.may_use_credential_somewhere(&c.name) {
        return Err(AppError::NotFound(format!("there is no credential {name:?}")));
    }
    Ok(Json(c))
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewCredential>,
) -> Result<(StatusCode, Json<Credential>), AppError> {
    caller.require(Role::Admin)?;
    if !valid_name(&req.name) || req.name.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::Unprocessable(
            "`name` must be 1 to 100 letters, digits, `.`, `_` or `-` (not only digits)".into(),
        ));
    }
    if req.description.chars().count() > 1000 || req.description.contains('\0') {
        return Err(AppError::Unprocessable("`description` must be at most 1000 characters".into()));
    }
    check_inputs(req.kind, &req.inputs)?;
    let hosts = check_hosts(&req.hosts)?;
    let sealed =
        app.sealer.seal(&purpose(&req.name), Value::Object(req.inputs.clone()).to_string().as_bytes())?;
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            &format!(
                "insert into credentials (name, kind, description, sealed, key_id, created_by, hosts)
                 values ($1, $2, $3, $4, $5, $6, $7) on conflict (name) do nothing returning {COLUMNS}"
            ),
            &[
                &req.name,
                &req.kind.as_str(),
                &req.description,
                &sealed,
                &app.sealer.key_id(),
                &caller.name,
                &hosts,
            ],
        )
        .await?
        .ok_or_else(|| AppError::Conflict(format!("a credential named {:?} exists already", req.name)))?;
    let c = credential_from_row(&row);
    crate::infra::audit::record(
        &app,
        &caller,
        "credential created",
        Some(&format!("credential {}", c.name)),
        serde_json::json!({"kind": c.kind.as_str(), "hosts": c.hosts}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(c)))
}

async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require(Role::Admin)?;
    let db = app.pool.get().await?;
    let n = db.execute("delete from credentials where name = $1 or id::text = $1", &[&name]).await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("there is no credential {name:?}")));
    }
    crate::infra::audit::record(
        &app,
        &caller,
        "credential deleted",
        Some(&format!("credential {name}")),
        Value::Null,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

fn purpose(name: &str) -> String {
    format!("credential {name}")
}

/// Whether a stored credential exists and is of one of `kinds` (checked at launch, before queueing).
/// `target`: the URL or repository it would be sent to, checked against the credential's hosts.
pub async fn check_exists(
    app: &AppState,
    name: &str,
    kinds: &[CredentialKind],
    field: &str,
    target: Option<&str>,
) -> Result<(), AppError> {
    let db = app.pool.get().await?;
    let row = db.query_opt("select kind, hosts from credentials where name = $1", &[&name]).await?;
    let (kind, hosts): (Option<String>, Vec<String>) = match row {
        Some(r) => (Some(r.get(0)), r.get(1)),
        None => (None, Vec::new()),
    };
    if let (Some(_), Some(target)) = (&kind, target) {
        if !allowed_target(&hosts, target) {
            return Err(bound_error(field, name, &hosts, target));
        }
    }
    let want = || kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" or ");
    match kind.as_deref().and_then(CredentialKind::parse) {
        None => Err(AppError::Unprocessable(format!("`{field}`: there is no credential {name:?}"))),
        Some(k) if !kinds.contains(&k) => Err(AppError::Unprocessable(format!(
            "`{field}`: credential {name:?} is a {} credential; this needs {}",
            k.as_str(),
            want()
        ))),
        Some(_) => Ok(()),
    }
}

/// Opens a stored credential for a run, checking its kind, and notes that it was used.
pub async fn open(
    app: &AppState,
    name: &str,
    kinds: &[CredentialKind],
    field: &str,
) -> Result<Opened, AppError> {
    let db = app.pool.get().await?;
    let row = db
        .query_opt(
            "update credentials set last_used = now() where name = $1 returning kind, sealed, hosts",
            &[&name],
        )
        .await?
        .ok_or_else(|| {
            AppError::Unprocessable(format!("`{field}`: there is no credential {name:?} (deleted?)"))
        })?;
    let kind = CredentialKind::parse(row.get(0))
        .ok_or_else(|| AppError::Internal(format!("credential {name:?} has an unknown kind")))?;
    if !kinds.contains(&kind) {
        return Err(AppError::Unprocessable(format!(
            "`{field}`: credential {name:?} is a {} credential, which cannot be used here",
            kind.as_str()
        )));
    }
    let plain = app.sealer.open(&purpose(name), row.get::<_, &[u8]>(1))?;
    let inputs: Map<String, Value> = serde_json::from_slice(&plain)
        .map_err(|e| AppError::Internal(format!("credential {name:?} does not read back: {e}")))?;
    Ok(Opened { name: name.to_string(), kind, inputs, hosts: row.get(2) })
}

/// A launch slot's secret, resolved: its value, and the user and passphrase that go with it.
#[derive(Clone, Default)]
pub struct Resolved {
    pub secret: String,
    pub username: Option<String>,
    pub passphrase: Option<String>,
    pub vault_id: Option<String>,
    pub method: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolved(…)")
    }
}

/// Resolves one slot of a launch's `credentials` for a run.
pub async fn resolve(
    app: &AppState,
    r: &CredentialRef,
    kind: CredentialKind,
    field: &str,
) -> Result<Resolved, AppError> {
    let secret_field = match kind {
        CredentialKind::SshKey => "private_key",
        CredentialKind::ApiToken => "token",
        _ => "password",
    };
    match r {
        CredentialRef::Name(name) => {
            let c = open(app, name, &[kind], field).await?;
            Ok(Resolved {
                secret: c.get(secret_field).unwrap_or_default().to_string(),
                username: c.get("username").map(str::to_string),
                passphrase: c.get("passphrase").map(str::to_string),
                vault_id: c.get("vault_id").map(str::to_string),
                method: c.get("method").map(str::to_string),
            })
        }
        CredentialRef::Lookup(SecretLookup::Value { value, username, passphrase }) => Ok(Resolved {
            secret: value.clone(),
            username: username.clone(),
            passphrase: passphrase.clone(),
            ..Resolved::default()
        }),
        CredentialRef::Lookup(SecretLookup::HashicorpVault {
            vault_path,
            vault_key,
            credential,
            username,
        }) => {
            let secret = vault_lookup(app, credential.as_deref(), vault_path, vault_key, field).await?;
            Ok(Resolved { secret, username: username.clone(), ..Resolved::default() })
        }
    }
}

/// Which `hashicorp_vault` credential a lookup goes through: the named one, or the only one.
async fn vault_connection(app: &AppState, name: Option<&str>, field: &str) -> Result<Opened, AppError> {
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let db = app.pool.get().await?;
            let rows = db
                .query(
                    "select name from credentials where kind = 'hashicorp_vault' order by name limit 2",
                    &[],
                )
                .await?;
            match rows.len() {
                1 => rows[0].get(0),
                0 => {
                    return Err(AppError::Unprocessable(format!(
                        "`{field}`: a hashicorp_vault lookup needs a hashicorp_vault credential, and there is none"
                    )))
                }
                _ => {
                    return Err(AppError::Unprocessable(format!(
                        "`{field}`: there are several hashicorp_vault credentials; name one in `credential`"
                    )))
                }
            }
        }
    };
    open(app, &name, &[CredentialKind::HashicorpVault], field).await
}

/// Checks a lookup's shape before queueing (the Vault is asked at run time).
pub async fn check_ref(
    app: &AppState,
    r: &CredentialRef,
    kind: CredentialKind,
    field: &str,
) -> Result<(), AppError> {
    match r {
        CredentialRef::Name(name) => check_exists(app, name, &[kind], field, None).await,
        CredentialRef::Lookup(SecretLookup::Value { value, .. }) => {
            if value.is_empty() || value.contains('\0') {
                return Err(AppError::Unprocessable(format!("`{field}.value` is empty")));
            }
            Ok(())
        }
        CredentialRef::Lookup(SecretLookup::HashicorpVault { vault_path, vault_key, credential, .. }) => {
            kv2_path(vault_path)
                .map_err(|e| AppError::Unprocessable(format!("`{field}.vault_path`: {e}")))?;
            if vault_key.is_empty() {
                return Err(AppError::Unprocessable(format!("`{field}.vault_key` is empty")));
            }
            match credential {
                Some(c) => {
                    check_exists(
                        app,
                        c,
                        &[CredentialKind::HashicorpVault],
                        &format!("{field}.credential"),
                        None,
                    )
                    .await
                }
                None => vault_connection(app, None, field).await.map(|_| ()),
            }
        }
    }
}

/// `secret/ci/deploy` → `secret/data/ci/deploy`; a path that already has `data/` after its mount
/// stays as it is.
pub fn kv2_path(path: &str) -> Result<String, String> {
    let p = path.trim_matches('/');
    let segments: Vec<&str> = p.split('/').collect();
    if segments.len() < 2
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['?', '#', '%', '\\']))
    {
        return Err(format!(
            "{path:?} is not a KV path such as `secret/data/app/prod` (mount, then the secret)"
        ));
    }
    if segments[1] == "data" && segments.len() > 2 {
        return Ok(p.to_string());
    }
    Ok(format!("{}/data/{}", segments[0], segments[1..].join("/")))
}

async fn vault_lookup(
    app: &AppState,
    credential: Option<&str>,
    path: &str,
    key: &str,
    field: &str,
) -> Result<String, AppError> {
    let conn = vault_connection(app, credential, field).await?;
    let fail = |m: String| AppError::Unprocessable(format!("`{field}`: HashiCorp Vault {m}"));
    let address = conn.get("address").unwrap_or_default().trim_end_matches('/').to_string();
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = conn.get("ca_cert") {
        let cert = reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| fail(format!("CA: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| AppError::Internal(e.to_string()))?;
    let with_ns = |rb: reqwest::RequestBuilder| match conn.get("namespace") {
        Some(ns) => rb.header("x-vault-namespace", ns),
        None => rb,
    };
    let token = match conn.get("token") {
        Some(t) => t.to_string(),
        None => {
            let mount = conn.get("approle_mount").unwrap_or("approle");
            let resp = with_ns(client.post(format!("{address}/v1/auth/{mount}/login")))
                .json(&serde_json::json!({
                    "role_id": conn.get("role_id").unwrap_or_default(),
                    "secret_id": conn.get("secret_id").unwrap_or_default(),
                }))
                .send()
                .await
                .map_err(|e| {
                    fail(format!(
                        "at {address} cannot be reached: {}",
                        crate::infra::outbound::root_cause(&e)
                    ))
                })?;
            if !resp.status().is_success() {
                return Err(fail(format!("refused the AppRole login ({})", resp.status())));
            }
            let body: Value = resp.json().await.map_err(|e| fail(format!("login answer: {e}")))?;
            body["auth"]["client_token"]
                .as_str()
                .ok_or_else(|| fail("login answer has no auth.client_token".into()))?
                .to_string()
        }
    };
    let api_path = kv2_path(path).map_err(fail)?;
    let resp = with_ns(client.get(format!("{address}/v1/{api_path}")))
        .header("x-vault-token", &token)
        .send()
        .await
        .map_err(|e| {
            fail(format!("at {address} cannot be reached: {}", crate::infra::outbound::root_cause(&e)))
        })?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(fail(format!("has no secret at {api_path}"))),
        403 => {
            return Err(fail(format!(
                "refused to read {api_path} (403: the token's policy does not allow it)"
            )))
        }
        s => return Err(fail(format!("answered {s} for {api_path}"))),
    }
    let body: Value = resp.json().await.map_err(|e| fail(format!("answer for {api_path}: {e}")))?;
    match &body["data"]["data"][key] {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(fail(format!("secret {api_path} has no key {key:?}"))),
        other => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_as_git_and_reqwest_read_them() {
        for (target, host) in [
            ("https://git.example.com/ops/site.git", Some("git.example.com")),
            ("https://user:tok@Git.Example.com./x", Some("git.example.com")),
            ("https://good.example.com@evil.example.org/x", Some("evil.example.org")),
            ("git@GitHub.com:org/repo.git", Some("github.com")),
            ("ssh://git@git.example.com:2222/x.git", Some("git.example.com")),
            ("http://[::1]:8080/inventory", Some("::1")),
            ("http://127.0.0.1:9000/inv?x=1", Some("127.0.0.1")),
            ("https://evil.example.org\\@good.example.com/", None),
            ("file:///srv/repo", None),
            ("/srv/repo", None),
            ("host/path:x", None),
            ("", None),
        ] {
            assert_eq!(target_host(target).as_deref(), host, "{target}");
        }
    }

    #[test]
    fn bound_credentials_go_only_to_their_hosts() {
        let hosts = check_hosts(&["Git.Example.com".into(), "*.cmdb.example.com".into(), "10.0.0.5".into()])
            .expect("valid");
        assert_eq!(hosts, ["git.example.com", "*.cmdb.example.com", "10.0.0.5"]);
        for (target, ok) in [
            ("https://git.example.com/x.git", true),
            ("git@git.example.com:ops/x.git", true),
            ("https://eu.cmdb.example.com/inventory", true),
            ("https://cmdb.example.com/inventory", false),
            ("https://evilcmdb.example.com/inventory", false),
            ("https://git.example.com.evil.org/x", false),
            ("http://10.0.0.5/x", true),
            ("http://10.0.0.6/x", false),
            ("file:///srv/repo", false),
        ] {
            assert_eq!(allowed_target(&hosts, target), ok, "{target}");
        }
        assert!(allowed_target(&[], "file:///anything"), "unbound: anywhere");
        for bad in ["a b", "*.", "https://x.example.com", "x_y.example.com", "*.::1", "-x.example.com"] {
            assert!(check_hosts(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(check_hosts(&vec!["a.example.com".to_string(); 51]).is_err());
    }

    #[test]
    fn kv2_paths() {
        assert_eq!(kv2_path("secret/ci/deploy").expect("path"), "secret/data/ci/deploy");
        assert_eq!(kv2_path("/secret/data/ci/deploy").expect("path"), "secret/data/ci/deploy");
        assert!(kv2_path("secret").is_err());
        assert!(kv2_path("secret/../sys/x").is_err());
    }

    #[test]
    fn inputs_are_checked_by_kind() {
        let m = |v: Value| v.as_object().cloned().expect("object");
        assert!(check_inputs(
            CredentialKind::Password,
            &m(serde_json::json!({"username": "u", "password": "p"}))
        )
        .is_ok());
        assert!(check_inputs(CredentialKind::Password, &m(serde_json::json!({"username": "u"}))).is_err());
        assert!(check_inputs(CredentialKind::SshKey, &m(serde_json::json!({"private_key": "nope"}))).is_err());
        assert!(check_inputs(
            CredentialKind::HashicorpVault,
            &m(serde_json::json!({"address": "http://127.0.0.1:8200", "token": "t"}))
        )
        .is_ok());
        assert!(check_inputs(CredentialKind::HashicorpVault, &m(serde_json::json!({"address": "http://v"})))
            .is_err());
        assert!(check_inputs(
            CredentialKind::Environment,
            &m(serde_json::json!({"variables": {"LD_PRELOAD": "x"}}))
        )
        .is_err());
    }
}
