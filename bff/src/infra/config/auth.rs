//! How people sign in: OpenID Connect, LDAP, a trusted reverse proxy, API keys; which groups
//! grant which role; how long sessions last; whose `X-Forwarded-*` headers are believed.

use ipnet::IpNet;

use super::env::{flag, positive, var};
use crate::infra::secrets::Secret;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub oidc: Option<OidcConfig>,
    pub ldap: Option<LdapConfig>,
    pub proxy: Option<ProxyConfig>,
    /// Peers whose `X-Forwarded-For` (and, with `proxy`, user headers) are believed
    /// (`PLAYDECK_TRUSTED_PROXIES`, CIDRs separated by commas or spaces).
    pub trusted_proxies: Vec<IpNet>,
    /// Group names that grant each role (`PLAYDECK_ADMIN_GROUPS`, `_OPERATOR_GROUPS`, `_VIEWER_GROUPS`).
    pub admin_groups: Vec<String>,
    pub operator_groups: Vec<String>,
    pub viewer_groups: Vec<String>,
    /// The role bindings of `PLAYDECK_ACCESS_CONFIG` (TOML; `examples/access.toml`).
    pub access: Vec<crate::infra::access::Binding>,
    /// Whether the sign-in page offers the API key form (`PLAYDECK_API_KEY_SIGNIN`, default true).
    pub api_key_signin: bool,
    /// A session unused this long ends (`PLAYDECK_SESSION_IDLE_MINUTES`, default 60).
    pub session_idle_minutes: i64,
    /// How often open WebSocket and SSE streams check that their caller may still read.
    pub recheck: std::time::Duration,
    /// The OpenID provider's keys are fetched again at most this often (a token naming an unknown key).
    pub jwks_refetch: std::time::Duration,
    /// Sign-in attempts per username per minute (`PLAYDECK_SIGNIN_PER_USER_PER_MINUTE`, default 5).
    pub signin_per_user_per_minute: usize,
}

/// `PLAYDECK_OIDC_*`.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    /// What the sign-in button says after "Sign in with" (`PLAYDECK_OIDC_NAME`; default: the issuer's host).
    pub name: String,
}

/// `PLAYDECK_LDAP_*`.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    pub url: String,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub user_base: String,
    pub user_filter: String,
    pub group_base: Option<String>,
    pub group_filter: String,
    pub ca_file: Option<std::path::PathBuf>,
    pub starttls: bool,
}

/// `PLAYDECK_PROXY_AUTH=true` and the header names.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub user_header: String,
    pub groups_header: String,
    pub email_header: String,
}

/// A secret from `NAME` or from the file `NAME_FILE` names (a mounted Secret).
pub fn secret_or_file(name: &str) -> Result<Option<Secret>, String> {
    if let Some(v) = var(name) {
        return Ok(Some(Secret(v)));
    }
    let file_var = format!("{name}_FILE");
    match var(&file_var) {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(Secret(s.trim().to_string())))
            .map_err(|e| format!("{file_var}: cannot read {path}: {e}")),
    }
}

fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

pub fn parse_cidrs(name: &str, value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{name} is a list of CIDRs such as 10.0.0.0/8, got {s:?}"))
        })
        .collect()
}

impl AuthConfig {
    pub fn from_env() -> Result<AuthConfig, String> {
        let oidc = match var("PLAYDECK_OIDC_ISSUER") {
            None => None,
            Some(issuer) => {
                // Kept as written: the provider's discovery document must name exactly this issuer.
                let issuer = issuer.trim().to_string();
                if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                    return Err(format!("PLAYDECK_OIDC_ISSUER is the provider's URL, got {issuer:?}"));
                }
                let client_id = var("PLAYDECK_OIDC_CLIENT_ID")
                    .ok_or("PLAYDECK_OIDC_ISSUER is set: PLAYDECK_OIDC_CLIENT_ID is needed too")?;
                let scopes = var("PLAYDECK_OIDC_SCOPES").unwrap_or_else(|| "openid profile email".into());
                let mut scopes: Vec<String> =
                    scopes.split([' ', ',']).filter(|s| !s.is_empty()).map(String::from).collect();
                if !scopes.iter().any(|s| s == "openid") {
                    scopes.insert(0, "openid".into());
                }
                let name = var("PLAYDECK_OIDC_NAME").unwrap_or_else(|| {
                    issuer
                        .split("://")
                        .nth(1)
                        .and_then(|r| r.split('/').next())
                        .unwrap_or(&issuer)
                        .to_string()
                });
                Some(OidcConfig {
                    issuer,
                    client_id,
                    client_secret: secret_or_file("PLAYDECK_OIDC_CLIENT_SECRET")?,
                    scopes,
                    groups_claim: var("PLAYDECK_OIDC_GROUPS_CLAIM").unwrap_or_else(|| "groups".into()),
                    name,
                })
            }
        };
        let ldap = match var("PLAYDECK_LDAP_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                    return Err(format!(
                        "PLAYDECK_LDAP_URL is ldap://host:port or ldaps://host:port, got {url:?}"
                    ));
                }
                let user_base = var("PLAYDECK_LDAP_USER_BASE")
                    .ok_or("PLAYDECK_LDAP_URL is set: PLAYDECK_LDAP_USER_BASE is needed too")?;
                let user_filter =
                    var("PLAYDECK_LDAP_USER_FILTER").unwrap_or_else(|| "(uid={username})".into());
                if !user_filter.contains("{username}") {
                    return Err(format!(
                        "PLAYDECK_LDAP_USER_FILTER must contain {{username}}, got {user_filter:?}"
                    ));
                }
                let starttls = flag("PLAYDECK_LDAP_STARTTLS");
                if url.starts_with("ldap://") && !starttls && !flag("PLAYDECK_LDAP_ALLOW_PLAINTEXT") {
                    return Err(format!(
                        "PLAYDECK_LDAP_URL {url} has no TLS: passwords would cross the network in clear; use ldaps://, \
                         PLAYDECK_LDAP_STARTTLS=true, or PLAYDECK_LDAP_ALLOW_PLAINTEXT=true on a network you trust"
                    ));
                }
                Some(LdapConfig {
                    url,
                    bind_dn: var("PLAYDECK_LDAP_BIND_DN"),
                    bind_password: secret_or_file("PLAYDECK_LDAP_BIND_PASSWORD")?,
                    user_base,
                    user_filter,
                    group_base: var("PLAYDECK_LDAP_GROUP_BASE"),
                    group_filter: var("PLAYDECK_LDAP_GROUP_FILTER").unwrap_or_else(|| "(member={dn})".into()),
                    ca_file: var("PLAYDECK_LDAP_CA_FILE").map(Into::into),
                    starttls,
                })
            }
        };
        let proxy = flag("PLAYDECK_PROXY_AUTH").then(|| ProxyConfig {
            user_header: var("PLAYDECK_PROXY_USER_HEADER")
                .unwrap_or_else(|| "X-Forwarded-User".into())
                .to_ascii_lowercase(),
            groups_header: var("PLAYDECK_PROXY_GROUPS_HEADER")
                .unwrap_or_else(|| "X-Forwarded-Groups".into())
                .to_ascii_lowercase(),
            email_header: var("PLAYDECK_PROXY_EMAIL_HEADER")
                .unwrap_or_else(|| "X-Forwarded-Email".into())
                .to_ascii_lowercase(),
        });
        let trusted_proxies = match var("PLAYDECK_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => parse_cidrs("PLAYDECK_TRUSTED_PROXIES", &v)?,
        };
        if proxy.is_some() && trusted_proxies.is_empty() {
            return Err("PLAYDECK_PROXY_AUTH needs PLAYDECK_TRUSTED_PROXIES: the proxies whose user headers are believed".into());
        }
        Ok(AuthConfig {
            oidc,
            ldap,
            proxy,
            trusted_proxies,
            admin_groups: list("PLAYDECK_ADMIN_GROUPS"),
            operator_groups: list("PLAYDECK_OPERATOR_GROUPS"),
            viewer_groups: list("PLAYDECK_VIEWER_GROUPS"),
            access: match var("PLAYDECK_ACCESS_CONFIG") {
                None => Vec::new(),
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("PLAYDECK_ACCESS_CONFIG {path}: {e}"))?;
                    crate::infra::access::parse_file(&path, &text)?
                }
            },
            api_key_signin: var("PLAYDECK_API_KEY_SIGNIN")
                .is_none_or(|v| !matches!(v.trim(), "0" | "false" | "no")),
            session_idle_minutes: positive("PLAYDECK_SESSION_IDLE_MINUTES", 60)? as i64,
            recheck: std::time::Duration::from_secs(30),
            jwks_refetch: std::time::Duration::from_secs(10),
            signin_per_user_per_minute: positive("PLAYDECK_SIGNIN_PER_USER_PER_MINUTE", 5)? as usize,
        })
    }

    pub fn for_tests() -> AuthConfig {
        AuthConfig {
            oidc: None,
            ldap: None,
            proxy: None,
            trusted_proxies: Vec::new(),
            admin_groups: Vec::new(),
            access: Vec::new(),
            operator_groups: Vec::new(),
            viewer_groups: Vec::new(),
            api_key_signin: true,
            session_idle_minutes: 60,
            recheck: std::time::Duration::from_secs(1),
            jwks_refetch: std::time::Duration::ZERO,
            signin_per_user_per_minute: 1000,
        }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}
