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
    /// The zone schedules are in when they name none (`PLAYDECK_TIME_ZONE`, an IANA name; UTC).
    pub time_zone: String,
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
            time_zone: match var("PLAYDECK_TIME_ZONE") {
                None => "UTC".into(),
                Some(z) => {
                    let z = z.trim().to_string();
                    if z.parse::<chrono_tz::Tz>().is_err() {
                        return Err(format!(
                            "PLAYDECK_TIME_ZONE is an IANA zone name such as Europe/Berlin or UTC, got {z:?}"
                        ));
                    }
                    z
                }
            },
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
            time_zone: "UTC".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Read by the binary itself, not by `Config::from_env`: libpq's TLS variables (with
    /// `DATABASE_URL`, `database::parse_database_url`, tested there) and the log settings.
    const READ_ELSEWHERE: &[&str] =
        &["PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PLAYDECK_LOG", "PLAYDECK_LOG_FORMAT"];

    /// The settings the README's table names (its first column), `_FILE` variants folded in.
    fn readme_settings() -> BTreeSet<String> {
        let readme = include_str!("../../../../README.md");
        let table = readme
            .split("| setting | meaning | default |")
            .nth(1)
            .expect("the settings table")
            .split("\n\n")
            .next()
            .expect("table");
        let mut names = BTreeSet::new();
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let first = line.split('|').nth(1).unwrap_or("");
            for name in first.split('`').skip(1).step_by(2) {
                if name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && !name.starts_with('_')
                {
                    names.insert(name.to_string());
                }
            }
        }
        names
    }

    /// Every setting of the README's table, given from a table instead of the environment,
    /// lands where it should; and the names `Config::from_env` reads are exactly the table's
    /// (beside those read elsewhere), so neither can gain a setting the other lacks.
    #[test]
    fn every_setting_is_read_and_the_readme_lists_exactly_those() {
        let dir = std::env::temp_dir().join(format!("playdeck-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let access = dir.join("access.toml");
        std::fs::write(
            &access,
            "[[binding]]\ngroup = \"ops\"\nrole = \"operator\"\ntemplates = [\"patch-*\"]\n",
        )
        .expect("access");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").expect("ca");
        let (access, ca) = (access.display().to_string(), ca.display().to_string());
        let values: Vec<(&str, &str)> = vec![
            ("PLAYDECK_LISTEN", "0.0.0.0:9090"),
            ("DATABASE_URL", "postgres://db/playdeck"),
            ("PLAYDECK_TLS_CERT", "/tls/cert.pem"),
            ("PLAYDECK_TLS_KEY", "/tls/key.pem"),
            ("PLAYDECK_DATA_DIR", "/data"),
            ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", "pdk_0123456789abcdef0123456789abcdef"),
            ("PLAYDECK_INGEST_TOKEN", "pdi_0123456789abcdef0123456789abcdef"),
            ("PLAYDECK_CREDENTIAL_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
            ("PLAYDECK_INGEST_MAX_BYTES", "1000"),
            ("PLAYDECK_HUB_CAPACITY", "7"),
            ("PLAYDECK_FRAME_ANCESTORS", "'self' https://portal.example"),
            ("PLAYDECK_WEB_DIR", "/web"),
            ("PLAYDECK_AAP_URL", "https://aap.example"),
            ("PLAYDECK_AAP_TOKEN", "aap-token"),
            ("PLAYDECK_AAP_API_PREFIX", "/api/controller/v2"),
            ("PLAYDECK_AAP_CA_FILE", &ca),
            ("PLAYDECK_AAP_VERIFY_TLS", "false"),
            ("PLAYDECK_AAP_POLL_INTERVAL", "3"),
            ("PLAYDECK_PLAYBOOK_DIR", "/playbooks"),
            ("PLAYDECK_INVENTORY_DIR", "/inventories"),
            ("PLAYDECK_ANSIBLE_PLAYBOOK", "/venv/bin/ansible-playbook"),
            ("PLAYDECK_ENGINE_CONCURRENCY", "3"),
            ("PLAYDECK_ENGINE_TIMEOUT", "11"),
            ("PLAYDECK_ENGINE_MAX_TIMEOUT", "22"),
            ("PLAYDECK_ENGINE_KILL_GRACE_SECS", "4"),
            ("PLAYDECK_ENGINE_LEASE_SECS", "33"),
            ("PLAYDECK_ENGINE_INGEST_URL", "http://engine.example"),
            ("PLAYDECK_GIT_ALLOW_FILE", "true"),
            ("PLAYDECK_WEBHOOK_ALLOW", "10.0.0.0/8"),
            ("PLAYDECK_WEBHOOK_SECRET", "webhook-secret"),
            ("PLAYDECK_WEBHOOK_BACKOFF_SECS", "5"),
            ("PLAYDECK_WEBHOOK_MAX_ATTEMPTS", "6"),
            ("PLAYDECK_WEBHOOK_TIMEOUT_SECS", "7"),
            ("PLAYDECK_MAIL_CA_FILE", &ca),
            ("PLAYDECK_PUBLIC_URL", "https://playdeck.example/"),
            ("PLAYDECK_TIME_ZONE", "Europe/Berlin"),
            ("PLAYDECK_EVENT_RETENTION_DAYS", "9"),
            ("PLAYDECK_RETENTION_INTERVAL_SECS", "99"),
            ("PLAYDECK_SIGNIN_PER_MINUTE", "12"),
            ("PLAYDECK_INGEST_PER_SECOND", "13"),
            ("PLAYDECK_API_PER_SECOND", "14"),
            ("PLAYDECK_SESSION_HOURS", "15"),
            ("PLAYDECK_SESSION_IDLE_MINUTES", "16"),
            ("PLAYDECK_SIGNIN_PER_USER_PER_MINUTE", "17"),
            ("PLAYDECK_OIDC_ISSUER", "https://id.example/realm"),
            ("PLAYDECK_OIDC_CLIENT_ID", "playdeck"),
            ("PLAYDECK_OIDC_CLIENT_SECRET", "oidc-secret"),
            ("PLAYDECK_OIDC_SCOPES", "openid groups"),
            ("PLAYDECK_OIDC_GROUPS_CLAIM", "roles"),
            ("PLAYDECK_OIDC_NAME", "Company SSO"),
            ("PLAYDECK_LDAP_URL", "ldaps://ldap.example"),
            ("PLAYDECK_LDAP_BIND_DN", "cn=svc,dc=example"),
            ("PLAYDECK_LDAP_BIND_PASSWORD", "ldap-secret"),
            ("PLAYDECK_LDAP_USER_BASE", "ou=people,dc=example"),
            ("PLAYDECK_LDAP_USER_FILTER", "(cn={username})"),
            ("PLAYDECK_LDAP_GROUP_BASE", "ou=groups,dc=example"),
            ("PLAYDECK_LDAP_GROUP_FILTER", "(uniqueMember={dn})"),
            ("PLAYDECK_LDAP_CA_FILE", "/ldap/ca.pem"),
            ("PLAYDECK_LDAP_STARTTLS", "yes"),
            ("PLAYDECK_LDAP_ALLOW_PLAINTEXT", "1"),
            ("PLAYDECK_ADMIN_GROUPS", "admins, root"),
            ("PLAYDECK_OPERATOR_GROUPS", "ops"),
            ("PLAYDECK_VIEWER_GROUPS", "staff"),
            ("PLAYDECK_ACCESS_CONFIG", &access),
            ("PLAYDECK_TRUSTED_PROXIES", "10.1.0.0/16"),
            ("PLAYDECK_PROXY_AUTH", "true"),
            ("PLAYDECK_PROXY_USER_HEADER", "X-User"),
            ("PLAYDECK_PROXY_GROUPS_HEADER", "X-Groups"),
            ("PLAYDECK_PROXY_EMAIL_HEADER", "X-Mail"),
            ("PLAYDECK_API_KEY_SIGNIN", "false"),
            ("PLAYDECK_DB_POOL_SIZE", "18"),
            ("PLAYDECK_REQUEST_TIMEOUT_SECS", "19"),
            ("PLAYDECK_DB_POOL_WAIT_MS", "20"),
            ("PLAYDECK_METRICS_TOKEN", "metrics-token"),
            ("PLAYDECK_CATALOG", "/catalog.json"),
        ];
        let (config, read) = env::with_lookup(&values, Config::from_env);
        let c = config.expect("every setting given is valid");
        let s = |v: &Option<Secret>| v.as_ref().map(|s| s.expose().to_string());
        assert_eq!(c.listen.to_string(), "0.0.0.0:9090");
        assert_eq!(s(&c.database_url).as_deref(), Some("postgres://db/playdeck"));
        let tls = c.tls.as_ref().expect("tls");
        assert_eq!((tls.cert.to_str(), tls.key.to_str()), (Some("/tls/cert.pem"), Some("/tls/key.pem")));
        assert_eq!(c.data_dir, PathBuf::from("/data"));
        assert!(s(&c.bootstrap_admin_key).is_some_and(|k| k.starts_with("pdk_0123")));
        assert!(s(&c.ingest_token).is_some_and(|k| k.starts_with("pdi_0123")));
        assert!(s(&c.credential_key).is_some_and(|k| k.starts_with("0011")));
        assert_eq!((c.ingest_max_bytes, c.hub_capacity), (1000, 7));
        assert_eq!(c.frame_ancestors, "'self' https://portal.example");
        assert_eq!(c.web_dir, Some(PathBuf::from("/web")));
        let aap = &c.aap.controllers[0];
        assert_eq!(
            (aap.name.as_str(), aap.url.as_str(), aap.token.expose()),
            ("aap", "https://aap.example", "aap-token")
        );
        assert_eq!(aap.api_prefix.as_deref(), Some("/api/controller/v2"));
        assert!(aap.ca_pem.is_some() && !aap.verify_tls);
        assert_eq!(aap.poll_interval.as_secs(), 3);
        let e = &c.engine;
        assert_eq!(
            (e.playbook_dir.to_str(), e.inventory_dir.to_str()),
            (Some("/playbooks"), Some("/inventories"))
        );
        assert_eq!(e.ansible_playbook, Some(PathBuf::from("/venv/bin/ansible-playbook")));
        assert_eq!((e.concurrency, e.default_timeout, e.max_timeout), (3, 11, 22));
        assert_eq!((e.kill_grace.as_secs(), e.lease.as_secs()), (4, 33));
        assert_eq!(e.ingest_url.as_deref(), Some("http://engine.example"));
        assert!(e.git_allow_file);
        let d = &c.deliveries;
        assert_eq!(d.allow.len(), 1);
        assert_eq!(s(&d.secret).as_deref(), Some("webhook-secret"));
        assert_eq!((d.backoff.as_secs(), d.max_attempts, d.timeout.as_secs()), (5, 6, 7));
        assert!(d.mail_ca.as_ref().is_some_and(|pem| pem.starts_with(b"-----BEGIN")));
        assert_eq!(c.public_url.as_deref(), Some("https://playdeck.example"));
        assert_eq!(c.time_zone, "Europe/Berlin");
        assert_eq!((c.event_retention_days, c.retention_interval.as_secs()), (Some(9), 99));
        assert_eq!((c.signin_per_minute, c.ingest_per_second, c.api_per_second), (12, 13, 14));
        assert_eq!(
            (c.session_hours, c.auth.session_idle_minutes, c.auth.signin_per_user_per_minute),
            (15, 16, 17)
        );
        let o = c.auth.oidc.as_ref().expect("oidc");
        assert_eq!((o.issuer.as_str(), o.client_id.as_str()), ("https://id.example/realm", "playdeck"));
        assert_eq!(s(&o.client_secret).as_deref(), Some("oidc-secret"));
        assert_eq!(
            (o.scopes.join(" "), o.groups_claim.as_str(), o.name.as_str()),
            ("openid groups".into(), "roles", "Company SSO")
        );
        let l = c.auth.ldap.as_ref().expect("ldap");
        assert_eq!(
            (l.url.as_str(), l.bind_dn.as_deref()),
            ("ldaps://ldap.example", Some("cn=svc,dc=example"))
        );
        assert_eq!(s(&l.bind_password).as_deref(), Some("ldap-secret"));
        assert_eq!(
            (l.user_base.as_str(), l.user_filter.as_str()),
            ("ou=people,dc=example", "(cn={username})")
        );
        assert_eq!(
            (l.group_base.as_deref(), l.group_filter.as_str()),
            (Some("ou=groups,dc=example"), "(uniqueMember={dn})")
        );
        assert_eq!((l.ca_file.clone(), l.starttls), (Some(PathBuf::from("/ldap/ca.pem")), true));
        assert_eq!(c.auth.admin_groups, ["admins", "root"]);
        assert_eq!(
            (c.auth.operator_groups.clone(), c.auth.viewer_groups.clone()),
            (vec!["ops".to_string()], vec!["staff".to_string()])
        );
        assert_eq!(c.auth.access.len(), 1);
        assert_eq!(c.auth.trusted_proxies.len(), 1);
        let p = c.auth.proxy.as_ref().expect("proxy");
        assert_eq!(
            (p.user_header.as_str(), p.groups_header.as_str(), p.email_header.as_str()),
            ("x-user", "x-groups", "x-mail"),
            "header names, lowercased"
        );
        assert!(!c.auth.api_key_signin);
        assert_eq!((c.pool_size, c.request_timeout.as_secs(), c.pool_wait.as_millis()), (18, 19, 20));
        assert_eq!(s(&c.metrics_token).as_deref(), Some("metrics-token"));
        assert_eq!(c.requests.catalog, PathBuf::from("/catalog.json"));

        // Read only for a plain ldap:// without StartTLS: allowed by it, refused without it.
        let plain = [("PLAYDECK_LDAP_URL", "ldap://ldap.example"), ("PLAYDECK_LDAP_USER_BASE", "dc=example")];
        let (refused, _) = env::with_lookup(&plain, Config::from_env);
        assert!(refused.is_err_and(|e| e.contains("PLAYDECK_LDAP_ALLOW_PLAINTEXT")));
        let (allowed, more) =
            env::with_lookup(&[plain[0], plain[1], ("PLAYDECK_LDAP_ALLOW_PLAINTEXT", "1")], Config::from_env);
        assert!(allowed.expect("allowed").auth.ldap.is_some_and(|l| !l.starttls));
        let read: BTreeSet<String> = read.into_iter().chain(more).collect();

        // The names read, with a secret's `X_FILE` folded into its `X`, are the README's.
        let read: BTreeSet<String> = read
            .iter()
            .map(|n| match n.strip_suffix("_FILE") {
                Some(base) if read.contains(base) => base.to_string(),
                _ => n.clone(),
            })
            .collect();
        let mut listed = readme_settings();
        for name in READ_ELSEWHERE {
            assert!(listed.remove(*name), "{name} is in the README's table");
        }
        let unlisted: Vec<_> = read.difference(&listed).collect();
        let unread: Vec<_> = listed.difference(&read).collect();
        assert!(unlisted.is_empty(), "read but not in the README's table: {unlisted:?}");
        assert!(unread.is_empty(), "in the README's table but never read: {unread:?}");
        // Every value given was read (none of the table is ignored).
        for (name, _) in &values {
            assert!(read.contains(*name), "{name} given but not read");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
