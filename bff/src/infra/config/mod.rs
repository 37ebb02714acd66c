//! Settings from the environment (the table in README.md), read once at start. Each section of
//! the settings has its own file here; features receive their section from the `Config`.

pub mod aap;
pub mod auth;
pub mod database;
pub mod deliveries;
pub mod engine;
pub mod env;
pub mod requests;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use aap::{AapConfig, ControllerConfig};
pub use auth::AuthConfig;
pub use deliveries::{AllowRule, DeliveryConfig};
pub use engine::EngineConfig;
pub use requests::RequestsConfig;

use crate::infra::secrets::Secret;

/// The listener's certificate and key (PEM files), looked at every `reload` and taken again
/// when they change, without a restart and without dropping open connections.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub reload: std::time::Duration,
}

/// Everything `playdeck serve` can be told. Secrets are wrapped so `Debug` never prints them.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// External PostgreSQL; `None` starts the embedded cluster in `data_dir/pg`.
    pub database_url: Option<Secret>,
    /// TLS to PostgreSQL, as `DATABASE_URL` and `PGSSL*` say (`serve` reads them with the URL);
    /// the embedded cluster is on loopback without TLS.
    pub database_tls: database::DatabaseTls,
    /// HTTPS on the listener (`PLAYDECK_TLS_CERT`, `PLAYDECK_TLS_KEY`); `None`: plain HTTP.
    pub tls: Option<ListenerTls>,
    /// Local state: the embedded cluster, generated keys.
    pub data_dir: PathBuf,
    /// Ensure this API key exists with role admin.
    pub bootstrap_admin_key: Option<Secret>,
    /// Bearer token the ingest endpoints accept.
    pub ingest_token: Option<Secret>,
    /// Seals credentials at rest (`PLAYDECK_CREDENTIAL_KEY`: 64 hex digits or 32 bytes in base64);
    /// unset: generated into `data_dir/credential.key`.
    pub credential_key: Option<Secret>,
    /// Largest ingest body accepted, before and after gzip decompression.
    pub ingest_max_bytes: usize,
    /// Messages the live hub keeps for slow clients before they get `resync`.
    pub hub_capacity: usize,
    /// How often a WebSocket is pinged (30 s).
    pub ws_ping: std::time::Duration,
    /// Where the built SPA is (trunk's `dist/`).
    pub web_dir: Option<PathBuf>,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a request waits for a free connection before it answers 503
    /// (`PLAYDECK_DB_POOL_WAIT_MS`, default 5000).
    pub pool_wait: std::time::Duration,
    /// How long an ordinary API request may take before it answers 503
    /// (`PLAYDECK_REQUEST_TIMEOUT_SECS`, default 60); streams and `"wait": true` are exempt.
    pub request_timeout: std::time::Duration,
    /// How long a browser session lasts.
    pub session_hours: i64,
    /// Who may show Playdeck in a frame: the CSP `frame-ancestors` sources (`'self'` by default;
    /// a portal adds its origin).
    pub frame_ancestors: String,
    /// Sign-in attempts a client may make per minute.
    pub signin_per_minute: usize,
    /// Ingest requests a client may make per second (twice that in a burst).
    pub ingest_per_second: usize,
    /// API requests one token, session or proxied person may make per second (twice that in a
    /// burst), `PLAYDECK_API_PER_SECOND`.
    pub api_per_second: usize,
    /// Raw events of jobs finished longer ago than this many days are deleted; `None` keeps them.
    pub event_retention_days: Option<usize>,
    /// How often the retention sweep runs (`PLAYDECK_RETENTION_INTERVAL_SECS`).
    pub retention_interval: std::time::Duration,
    /// The AAP/AWX controllers to sync and launch on.
    pub aap: AapConfig,
    /// The local engine's settings.
    pub engine: EngineConfig,
    /// Where webhooks and notifications may go, and how they are signed and retried.
    pub deliveries: DeliveryConfig,
    /// Where people reach Playdeck (`PLAYDECK_PUBLIC_URL`, e.g. `https://playdeck.example.com`),
    /// for links in notifications; `None`: messages carry no link.
    pub public_url: Option<String>,
    /// The request box's catalog of actions (`PLAYDECK_CATALOG`) and where its inventories are.
    pub requests: RequestsConfig,
    /// How people sign in, which groups grant which role, sessions, trusted proxies.
    pub auth: AuthConfig,
    /// `/metrics` answers only with `Authorization: Bearer <token>` (`PLAYDECK_METRICS_TOKEN`).
    pub metrics_token: Option<Secret>,
}

impl Config {
    /// Whether `PLAYDECK_FRAME_ANCESTORS` lets other sites frame Playdeck (a portal): then the
    /// session cookie must be `SameSite=None; Secure`, or a framed page could not sign in.
    pub fn framed_by_others(&self) -> bool {
        self.frame_ancestors.split_whitespace().any(|s| !matches!(s, "'self'" | "'none'"))
    }
}

impl Config {
    /// Reads the environment; a malformed value is an error that names the variable.
    pub fn from_env() -> Result<Config, String> {
        use env::var;
        let parse_num = |name: &str, default: usize| env::positive(name, default as u64).map(|n| n as usize);
        let listen = var("PLAYDECK_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen =
            listen.parse().map_err(|e| format!("PLAYDECK_LISTEN must be host:port, got {listen:?}: {e}"))?;
        let config = Config {
            listen,
            database_url: var("DATABASE_URL").map(Secret),
            database_tls: database::DatabaseTls::disabled(),
            tls: match (var("PLAYDECK_TLS_CERT"), var("PLAYDECK_TLS_KEY")) {
                (None, None) => None,
                (Some(cert), Some(key)) => Some(ListenerTls {
                    cert: cert.into(),
                    key: key.into(),
                    reload: std::time::Duration::from_secs(10),
                }),
                _ => return Err("PLAYDECK_TLS_CERT and PLAYDECK_TLS_KEY go together (PEM files)".into()),
            },
            data_dir: PathBuf::from(var("PLAYDECK_DATA_DIR").unwrap_or_else(|| ".playdeck".into())),
            bootstrap_admin_key: var("PLAYDECK_BOOTSTRAP_ADMIN_KEY").map(Secret),
            ingest_token: var("PLAYDECK_INGEST_TOKEN").map(Secret),
            credential_key: var("PLAYDECK_CREDENTIAL_KEY").map(Secret),
            ingest_max_bytes: parse_num("PLAYDECK_INGEST_MAX_BYTES", 8 * 1024 * 1024)?,
            hub_capacity: parse_num("PLAYDECK_HUB_CAPACITY", 256)?,
            ws_ping: std::time::Duration::from_secs(30),
            web_dir: var("PLAYDECK_WEB_DIR").map(PathBuf::from),
            pool_size: parse_num("PLAYDECK_DB_POOL_SIZE", 16)?,
            pool_wait: std::time::Duration::from_millis(parse_num("PLAYDECK_DB_POOL_WAIT_MS", 5000)? as u64),
            request_timeout: std::time::Duration::from_secs(
                parse_num("PLAYDECK_REQUEST_TIMEOUT_SECS", 60)? as u64
            ),
            session_hours: parse_num("PLAYDECK_SESSION_HOURS", 12)? as i64,
            frame_ancestors: match var("PLAYDECK_FRAME_ANCESTORS") {
                None => "'self'".into(),
                Some(v) if v.contains([';', ',', '\n', '\r']) => {
                    return Err(format!(
                        "PLAYDECK_FRAME_ANCESTORS is a space-separated list of sources, got {v:?}"
                    ))
                }
                Some(v) => v,
            },
            signin_per_minute: parse_num("PLAYDECK_SIGNIN_PER_MINUTE", 10)?,
            ingest_per_second: parse_num("PLAYDECK_INGEST_PER_SECOND", 500)?,
            api_per_second: parse_num("PLAYDECK_API_PER_SECOND", 100)?,
            event_retention_days: match var("PLAYDECK_EVENT_RETENTION_DAYS") {
                None => None,
                Some(_) => Some(parse_num("PLAYDECK_EVENT_RETENTION_DAYS", 30)?),
            },
            retention_interval: std::time::Duration::from_secs(parse_num(
                "PLAYDECK_RETENTION_INTERVAL_SECS",
                3600,
            )? as u64),
            aap: AapConfig::from_env()?,
            engine: EngineConfig::from_env()?,
            deliveries: DeliveryConfig::from_env()?,
            requests: RequestsConfig::from_env(),
            auth: AuthConfig::from_env()?,
            metrics_token: auth::secret_or_file("PLAYDECK_METRICS_TOKEN")?,
            public_url: match var("PLAYDECK_PUBLIC_URL") {
                None => None,
                Some(v) => {
                    let v = v.trim().trim_end_matches('/').to_string();
                    if !(v.starts_with("https://") || v.starts_with("http://"))
                        || v.contains(char::is_whitespace)
                    {
                        return Err(format!(
                            "PLAYDECK_PUBLIC_URL is the address people open Playdeck at (http:// or https://), got {v:?}"
                        ));
                    }
                    Some(v)
                }
            },
        };
        // Someone picks these by hand: short ones could be guessed (the generated ones are 256-bit).
        for (name, secret) in [
            ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", &config.bootstrap_admin_key),
            ("PLAYDECK_INGEST_TOKEN", &config.ingest_token),
        ] {
            if secret.as_ref().is_some_and(|s| s.expose().chars().count() < 32) {
                return Err(format!(
                    "{name} must be at least 32 characters (e.g. `openssl rand -hex 24`); unset, one is generated"
                ));
            }
        }
        if config.auth.oidc.is_some() && config.public_url.is_none() {
            return Err("PLAYDECK_OIDC_ISSUER needs PLAYDECK_PUBLIC_URL: the redirect URI is {PLAYDECK_PUBLIC_URL}/api/v1/session/oidc/callback".into());
        }
        Ok(config)
    }

    /// Settings for tests and tools: defaults, listening on port 0.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            database_tls: database::DatabaseTls::disabled(),
            tls: None,
            data_dir,
            bootstrap_admin_key: None,
            ingest_token: None,
            credential_key: None,
            ingest_max_bytes: 8 * 1024 * 1024,
            hub_capacity: 1024,
            ws_ping: std::time::Duration::from_secs(30),
            web_dir: None,
            pool_size: 8,
            pool_wait: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(60),
            session_hours: 12,
            frame_ancestors: "'self'".into(),
            signin_per_minute: 1000,
            ingest_per_second: 100_000,
            api_per_second: 100_000,
            event_retention_days: None,
            retention_interval: std::time::Duration::from_secs(3600),
            aap: AapConfig::for_tests(),
            engine: EngineConfig::for_tests(),
            deliveries: DeliveryConfig::for_tests(),
            requests: RequestsConfig::for_tests(),
            auth: AuthConfig::for_tests(),
            metrics_token: None,
            public_url: None,
        }
    }
}
