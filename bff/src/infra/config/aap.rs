//! Which controllers to sync and how: a TOML file (`PLAYDECK_AAP_CONFIG`) listing several, and the
//! contract's single-controller variables (`PLAYDECK_AAP_URL`, `PLAYDECK_AAP_TOKEN`,
//! `PLAYDECK_AAP_API_PREFIX`) for one named `aap`.
//!
//! ```toml
//! [[controllers]]
//! name = "prod"                                  # jobs from it carry source "prod"
//! url = "https://aap.example.com"
//! token_file = "/run/secrets/aap-prod-token"      # or token_env = "AAP_PROD_TOKEN", or token = "…"
//! api_prefix = "/api/controller/v2"               # optional: detected when left out
//! ca_file = "/etc/pki/tls/certs/corp-ca.pem"      # optional: extra CAs to trust (PEM)
//! verify_tls = true                               # optional: false accepts any certificate
//! poll_interval = 1.0                             # optional, seconds
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::infra::secrets::Secret;

/// The controllers to sync, from the environment and the config file.
#[derive(Debug, Clone, Default)]
pub struct AapConfig {
    pub controllers: Vec<ControllerConfig>,
}

/// One controller: where it is, its token, and the sync's pace. Tests shorten the durations.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// What its jobs carry as `source`.
    pub name: String,
    /// Scheme, host and port (and a path if the controller is served under one), no trailing `/`.
    pub url: String,
    pub token: Secret,
    /// `/api/v2` or `/api/controller/v2`; `None`: detected on first contact.
    pub api_prefix: Option<String>,
    /// Extra certificates to trust, PEM, read (and checked) at start.
    pub ca_pem: Option<Pem>,
    /// False accepts any certificate (a lab controller with a self-signed one).
    pub verify_tls: bool,
    /// Pause between two sync rounds while the controller answers.
    pub poll_interval: Duration,
    /// Longest a request may take, body included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Further tries of a request that failed in a way worth retrying.
    pub retries: u32,
    /// First pause before a retry; doubled at each further one.
    pub retry_base: Duration,
    /// Longest pause between retries, and between sync rounds of a controller that is failing.
    pub max_backoff: Duration,
    /// How far back the first sync reads the job list.
    pub backfill: Duration,
    /// Jobs followed at once within a round.
    pub concurrency: usize,
}

/// PEM bytes; `Debug` shows only their size.
#[derive(Clone)]
pub struct Pem(pub Vec<u8>);

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

impl ControllerConfig {
    /// A controller with the default pace.
    pub fn new(name: &str, url: &str, token: &str) -> ControllerConfig {
        ControllerConfig {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            token: Secret(token.to_string()),
            api_prefix: None,
            ca_pem: None,
            verify_tls: true,
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 3,
            retry_base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            backfill: Duration::from_secs(24 * 3600),
            concurrency: 4,
        }
    }

    /// A controller paced for tests: quick polls, short timeouts and backoffs.
    pub fn for_tests(name: &str, url: &str, token: &str) -> ControllerConfig {
        ControllerConfig {
            poll_interval: Duration::from_millis(50),
            request_timeout: Duration::from_millis(1500),
            connect_timeout: Duration::from_millis(500),
            retries: 2,
            retry_base: Duration::from_millis(20),
            max_backoff: Duration::from_millis(300),
            backfill: Duration::from_secs(10 * 365 * 24 * 3600),
            ..ControllerConfig::new(name, url, token)
        }
    }
}

impl AapConfig {
    pub fn from_env() -> Result<AapConfig, String> {
        AapConfig::from_lookup(super::env::var)
    }

    pub fn for_tests() -> AapConfig {
        AapConfig::default()
    }

    /// Reads the settings through `var` (the environment, or a map in tests).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<AapConfig, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut controllers = Vec::new();
        if let Some(path) = var("PLAYDECK_AAP_CONFIG") {
            let path = PathBuf::from(path.trim());
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("PLAYDECK_AAP_CONFIG: cannot read {}: {e}", path.display()))?;
            controllers = parse_file(&text, &path, &var)?;
        }
        match (var("PLAYDECK_AAP_URL"), var("PLAYDECK_AAP_TOKEN")) {
            (None, None) => {
                if let Some(p) = var("PLAYDECK_AAP_API_PREFIX") {
                    return Err(format!(
                        "PLAYDECK_AAP_API_PREFIX is set ({p:?}) but PLAYDECK_AAP_URL is not"
                    ));
                }
            }
            (Some(_), None) => return Err("PLAYDECK_AAP_URL is set but PLAYDECK_AAP_TOKEN is not".into()),
            (None, Some(_)) => return Err("PLAYDECK_AAP_TOKEN is set but PLAYDECK_AAP_URL is not".into()),
            (Some(url), Some(token)) => {
                let entry = FileController {
                    name: "aap".into(),
                    url,
                    token: Some(token),
                    token_env: None,
                    token_file: None,
                    api_prefix: var("PLAYDECK_AAP_API_PREFIX"),
                    ca_file: var("PLAYDECK_AAP_CA_FILE").map(PathBuf::from),
                    verify_tls: match var("PLAYDECK_AAP_VERIFY_TLS") {
                        None => None,
                        Some(v) => Some(parse_bool(&v).ok_or_else(|| {
                            format!("PLAYDECK_AAP_VERIFY_TLS must be true or false, got {v:?}")
                        })?),
                    },
                    poll_interval: match var("PLAYDECK_AAP_POLL_INTERVAL") {
                        None => None,
                        Some(v) => Some(v.trim().parse::<f64>().map_err(|_| {
                            format!("PLAYDECK_AAP_POLL_INTERVAL must be a number of seconds, got {v:?}")
                        })?),
                    },
                    request_timeout: None,
                    backfill_hours: None,
                };
                controllers.push(entry.resolve("the PLAYDECK_AAP_* variables", Path::new("."), &var)?);
            }
        }
        for (i, c) in controllers.iter().enumerate() {
            if controllers[..i].iter().any(|o| o.name == c.name) {
                return Err(format!(
                    "controller {:?} is configured twice (PLAYDECK_AAP_URL configures one named \"aap\")",
                    c.name
                ));
            }
        }
        Ok(AapConfig { controllers })
    }
}

/// The file's shape; unknown keys are refused, so a typo does not go unnoticed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    controllers: Vec<FileController>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileController {
    name: String,
    url: String,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    api_prefix: Option<String>,
    ca_file: Option<PathBuf>,
    verify_tls: Option<bool>,
    poll_interval: Option<f64>,
    request_timeout: Option<f64>,
    backfill_hours: Option<f64>,
}

fn parse_file(
    text: &str,
    path: &Path,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<ControllerConfig>, String> {
    let file: File = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    file.controllers
        .into_iter()
        .map(|c| {
            let what = format!("{}: controller {:?}", path.display(), c.name);
            c.resolve(&what, dir, var)
        })
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn seconds(what: &str, field: &str, v: Option<f64>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 1e7 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!("{what}: `{field}` must be a positive number of seconds, got {s}")),
    }
}

impl FileController {
    /// Checks everything a start can check, so a mistake stops the start with a clear message
    /// instead of showing up later as an unhealthy controller.
    fn resolve(
        self,
        what: &str,
        dir: &Path,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<ControllerConfig, String> {
        let name = self.name.trim().to_string();
        if name.is_empty()
            || name.len() > 100
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!("{what}: a controller's name is 1 to 100 letters, digits, '-', '_' or '.'"));
        }
        if name == "local" {
            return Err(format!(
                "{what}: \"local\" is the local engine's name; call the controller otherwise"
            ));
        }
        let url = self.url.trim().trim_end_matches('/').to_string();
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("{what}: `url` {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!("{what}: `url` must be http(s)://host[:port], got {url:?}"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!("{what}: `url` must not have a query or fragment"));
        }
        let token = match (self.token, self.token_env, self.token_file) {
            (Some(t), None, None) => t,
            (None, Some(env), None) => {
                var(&env).ok_or_else(|| format!("{what}: `token_env` names {env:?}, which is not set"))?
            }
            (None, None, Some(file)) => {
                let file = dir.join(file);
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("{what}: cannot read `token_file` {}: {e}", file.display()))?
            }
            (None, None, None) => return Err(format!("{what}: give `token`, `token_env` or `token_file`")),
            _ => return Err(format!("{what}: give only one of `token`, `token_env` and `token_file`")),
        };
        let token = token.trim().to_string();
        if token.is_empty() || token.contains(['\r', '\n']) {
            return Err(format!("{what}: the token is empty or spans several lines"));
        }
        let api_prefix = match self.api_prefix {
            None => None,
            Some(p) => {
                let p = format!("/{}", p.trim().trim_matches('/'));
                if p == "/" || p.contains(['?', '#', ' ']) {
                    return Err(format!(
                        "{what}: the API prefix must be a path like /api/v2 or /api/controller/v2, got {p:?}"
                    ));
                }
                Some(p)
            }
        };
        let ca_pem = match self.ca_file {
            None => None,
            Some(file) => {
                let file = dir.join(file);
                let pem = std::fs::read(&file)
                    .map_err(|e| format!("{what}: cannot read `ca_file` {}: {e}", file.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("{what}: `ca_file` {} is not PEM: {e}", file.display()))?;
                if certs.is_empty() {
                    return Err(format!("{what}: `ca_file` {} holds no certificate", file.display()));
                }
                Some(Pem(pem))
            }
        };
        let mut c = ControllerConfig::new(&name, &url, &token);
        c.api_prefix = api_prefix;
        c.ca_pem = ca_pem;
        c.verify_tls = self.verify_tls.unwrap_or(true);
        c.poll_interval = seconds(what, "poll_interval", self.poll_interval, c.poll_interval)?;
        c.request_timeout = seconds(what, "request_timeout", self.request_timeout, c.request_timeout)?;
        c.backfill = seconds(what, "backfill_hours", self.backfill_hours.map(|h| h * 3600.0), c.backfill)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_contract_variables_configure_a_controller_named_aap() {
        let c = AapConfig::from_lookup(lookup(&[
            ("PLAYDECK_AAP_URL", "https://aap.example.com/"),
            ("PLAYDECK_AAP_TOKEN", "s3cret-token"),
            ("PLAYDECK_AAP_API_PREFIX", "api/controller/v2/"),
        ]))
        .expect("valid");
        assert_eq!(c.controllers.len(), 1);
        let aap = &c.controllers[0];
        assert_eq!(aap.name, "aap");
        assert_eq!(aap.url, "https://aap.example.com");
        assert_eq!(aap.api_prefix.as_deref(), Some("/api/controller/v2"));
        assert!(!format!("{c:?}").contains("s3cret-token"), "Debug must not show the token");
    }

    #[test]
    fn half_a_configuration_is_refused_with_the_missing_variable_named() {
        let e = AapConfig::from_lookup(lookup(&[("PLAYDECK_AAP_URL", "https://aap")])).expect_err("refused");
        assert!(e.contains("PLAYDECK_AAP_TOKEN"), "{e}");
        let e =
            AapConfig::from_lookup(lookup(&[("PLAYDECK_AAP_URL", "ftp://x"), ("PLAYDECK_AAP_TOKEN", "t")]))
                .expect_err("refused");
        assert!(e.contains("http(s)"), "{e}");
        assert!(AapConfig::from_lookup(lookup(&[])).expect("empty").controllers.is_empty());
    }

    #[test]
    fn a_file_lists_several_controllers_beside_the_variables() {
        let dir = std::env::temp_dir().join(format!("playdeck-aap-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("dev.token"), "dev-token\n").expect("token");
        let path = dir.join("controllers.toml");
        std::fs::write(
            &path,
            r#"
[[controllers]]
name = "prod"
url = "https://aap.prod.example.com"
token_env = "PROD_TOKEN"
poll_interval = 2.5

[[controllers]]
name = "dev"
url = "http://awx.dev:8052"
token_file = "dev.token"
api_prefix = "/api/v2"
verify_tls = false
"#,
        )
        .expect("write");
        let p = path.to_string_lossy().to_string();
        let c = AapConfig::from_lookup(lookup(&[
            ("PLAYDECK_AAP_CONFIG", &p),
            ("PROD_TOKEN", "prod-token"),
            ("PLAYDECK_AAP_URL", "https://aap.example.com"),
            ("PLAYDECK_AAP_TOKEN", "t"),
        ]))
        .expect("valid");
        let names: Vec<&str> = c.controllers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prod", "dev", "aap"]);
        assert_eq!(c.controllers[0].token.expose(), "prod-token");
        assert_eq!(c.controllers[0].poll_interval, Duration::from_millis(2500));
        assert_eq!(c.controllers[1].token.expose(), "dev-token");
        assert!(!c.controllers[1].verify_tls);

        std::fs::write(
            &path,
            "[[controllers]]\nname = \"x\"\nurl = \"https://x\"\ntoken = \"t\"\ntokn = 1\n",
        )
        .expect("write");
        let e = AapConfig::from_lookup(lookup(&[("PLAYDECK_AAP_CONFIG", &p)])).expect_err("typo refused");
        assert!(e.contains("tokn"), "{e}");
        std::fs::write(&path, "[[controllers]]\nname = \"aap\"\nurl = \"https://x\"\ntoken = \"t\"\n")
            .expect("write");
        let e = AapConfig::from_lookup(lookup(&[
            ("PLAYDECK_AAP_CONFIG", &p),
            ("PLAYDECK_AAP_URL", "https://y"),
            ("PLAYDECK_AAP_TOKEN", "t"),
        ]))
        .expect_err("twice");
        assert!(e.contains("twice"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
