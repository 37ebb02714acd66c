//! The real identity parts the sign-in tests talk to: Debian's `slapd` with a seeded directory
//! and `oidc-provider` from npm, each started on loopback by the test and stopped with it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not listen on {port}");
}

/// A running slapd: `ldap://127.0.0.1:{port}` (StartTLS too) and `ldaps://127.0.0.1:{tls_port}`.
pub struct Directory {
    pub port: u16,
    pub tls_port: u16,
    /// The test CA that signed the server's certificate (`tls/ca.pem`), and an unrelated one.
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    _child: tokio::process::Child,
}

pub const BIND_DN: &str = "cn=playdeck,ou=services,dc=playdeck,dc=test";
pub const BIND_PASSWORD: &str = "bind-pass";

impl Directory {
    pub async fn start() -> Directory {
        let dir = super::temp_dir("ldap");
        let out = std::process::Command::new(fixtures().join("ldap/prepare.sh"))
            .arg(&dir)
            .output()
            .expect("run tests/fixtures/ldap/prepare.sh (cargo xtask setup installs slapd)");
        assert!(out.status.success(), "prepare.sh: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
        let mut words = line.split_whitespace();
        let program = words.next().expect("slapd command");
        let (port, tls_port) = (free_port(), free_port());
        let child = tokio::process::Command::new(program)
            .args(words)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start slapd");
        wait_for_port(port, "slapd").await;
        wait_for_port(tls_port, "slapd (ldaps)").await;
        Directory {
            port,
            tls_port,
            ca: dir.join("tls/ca.pem"),
            other_ca: dir.join("tls/other-ca.pem"),
            _child: child,
        }
    }

    /// The LDAP settings for this directory (plain ldap://, groups by search).
    pub fn config(&self) -> bff::infra::config::auth::LdapConfig {
        bff::infra::config::auth::LdapConfig {
            url: format!("ldap://127.0.0.1:{}", self.port),
            bind_dn: Some(BIND_DN.into()),
            bind_password: Some(bff::infra::secrets::Secret(BIND_PASSWORD.into())),
            user_base: "ou=people,dc=playdeck,dc=test".into(),
            user_filter: "(uid={username})".into(),
            group_base: Some("ou=groups,dc=playdeck,dc=test".into()),
            group_filter: "(member={dn})".into(),
            ca_file: None,
            starttls: false,
        }
    }
}

/// A running OpenID provider (`tests/fixtures/oidc/provider.mjs`).
pub struct Provider {
    pub issuer: String,
    pub http: reqwest::Client,
    _child: tokio::process::Child,
}

pub const CLIENT_ID: &str = "playdeck";
pub const CLIENT_SECRET: &str = "playdeck-test-secret";

impl Provider {
    /// Starts the provider with the example accounts (alice: admins, bob: viewers) and any
    /// loopback port allowed in the redirect URIs.
    pub async fn start() -> Provider {
        let dir = fixtures().join("oidc");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/fixtures/oidc/node_modules is missing: run `cargo xtask setup`"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_REDIRECT_URIS", "http://127.0.0.1:0/api/v1/session/oidc/callback")
            .env("OIDC_POST_LOGOUT_REDIRECT_URIS", "http://127.0.0.1:0/")
            .env("OIDC_ACCOUNTS", dir.join("accounts.example.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start node tests/fixtures/oidc/provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider starts within 30 s")
            .expect("read")
            .expect("a line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("the provider's first line is JSON");
        let issuer = v["issuer"].as_str().expect("issuer").to_string();
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Provider { issuer, http, _child: child }
    }

    pub fn config(&self) -> bff::infra::config::auth::OidcConfig {
        bff::infra::config::auth::OidcConfig {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(bff::infra::secrets::Secret(CLIENT_SECRET.into())),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            groups_claim: "groups".into(),
            name: "Test provider".into(),
        }
    }

    /// Makes the provider's next ID tokens broken in one way (`none` to stop).
    pub async fn mode(&self, mode: &str) {
        let r = self
            .http
            .post(format!("{}/__test/mode", self.issuer))
            .json(&serde_json::json!({"mode": mode}))
            .send()
            .await
            .expect("mode");
        assert!(r.status().is_success(), "mode {mode}: {}", r.status());
    }

    pub async fn rotate(&self) -> String {
        let v: serde_json::Value = self
            .http
            .post(format!("{}/__test/rotate", self.issuer))
            .send()
            .await
            .expect("rotate")
            .json()
            .await
            .expect("json");
        v["kid"].as_str().expect("kid").to_string()
    }

    pub async fn jwks_requests(&self) -> i64 {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/__test/stats", self.issuer))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        v["jwks_requests"].as_i64().expect("jwks_requests")
    }
}

/// A browser's walk through single sign-on without a browser: cookies kept per host, redirects
/// followed by hand so each step can be looked at.
pub struct Browser {
    pub http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Browser { http, jar }
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = url.parse().ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    fn location(resp: &reqwest::Response, base: &str) -> String {
        let loc =
            resp.headers().get("location").and_then(|v| v.to_str().ok()).expect("a Location").to_string();
        if loc.starts_with("http") {
            loc
        } else {
            let origin: reqwest::Url = base.parse().expect("url");
            origin.join(&loc).expect("join").to_string()
        }
    }

    /// From Playdeck's start URL to the provider's login form: (the form's URL, its page).
    pub async fn to_login_form(&self, app_base: &str) -> String {
        let start = format!("{app_base}/api/v1/session/oidc/start?return_to=/jobs");
        let r = self.http.get(&start).send().await.expect("start");
        assert_eq!(r.status(), 303, "start redirects to the provider");
        let mut url = Self::location(&r, &start);
        for _ in 0..5 {
            assert!(
                !url.contains("/oidc/callback"),
                "the provider signed in without its form (a session there already)"
            );
            let r = self.http.get(&url).send().await.expect("provider");
            if r.status() == 200 {
                return url;
            }
            assert!(r.status().is_redirection(), "provider answered {}", r.status());
            url = Self::location(&r, &url);
        }
        panic!("no login form after 5 redirects");
    }

    /// Posts the login form; on success follows the provider's redirects up to Playdeck's
    /// callback and returns that callback URL (not yet opened).
    pub async fn log_in(&self, form_url: &str, username: &str, password: &str) -> Result<String, u16> {
        let r = self
            .http
            .post(form_url)
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("login");
        if !r.status().is_redirection() {
            return Err(r.status().as_u16());
        }
        let mut url = Self::location(&r, form_url);
        for _ in 0..5 {
            if url.contains("/api/v1/session/oidc/callback") {
                return Ok(url);
            }
            let r = self.http.get(&url).send().await.expect("provider");
            assert!(r.status().is_redirection(), "provider answered {}", r.status());
            url = Self::location(&r, &url);
        }
        panic!("no callback after 5 redirects");
    }

    /// Opens the callback (with this browser's cookies); the answer as it came.
    pub async fn callback(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("callback")
    }
}

/// Sign-in by a trusted reverse proxy on loopback: `X-Forwarded-User`, `-Groups`, `-Email`
/// believed from 127.0.0.1 (the tests' own requests).
pub fn trust_loopback_proxy(c: &mut bff::infra::config::Config) {
    c.auth.proxy = Some(bff::infra::config::auth::ProxyConfig {
        user_header: "x-forwarded-user".into(),
        groups_header: "x-forwarded-groups".into(),
        email_header: "x-forwarded-email".into(),
    });
    c.auth.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
}
