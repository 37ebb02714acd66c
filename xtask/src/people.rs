//! The identity parts the demo and the browser tests sign people in with: the test OpenID
//! provider (`tests/fixtures/oidc`, `oidc-provider` from npm) and a seeded `slapd`
//! (`tests/fixtures/ldap`), both on loopback, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The people the demo prints: (how, user, password, role).
/// The demo's people: how they sign in, who, their password, and what they may do there
/// (examples/demo-access.toml).
pub(crate) const PEOPLE: &[(&str, &str, &str, &str)] = &[
    (
        "single sign-on (test OpenID provider)",
        "alice",
        "alice-password",
        "patch team: patch-linux, patch.yml",
    ),
    ("LDAP (user name and password)", "bob", "bob-pass", "lifecycle team: retire-server, retire-vm.yml"),
];

pub(crate) struct Identity {
    provider: Child,
    directory: Child,
    pub(crate) issuer: String,
    pub(crate) ldap_port: u16,
    /// The test CA that signed the directory's certificate.
    pub(crate) ca: std::path::PathBuf,
}

impl Drop for Identity {
    fn drop(&mut self) {
        for child in [&mut self.provider, &mut self.directory] {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_for(port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on port {port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts both, the directory prepared afresh in `dir`.
pub(crate) fn start(dir: &Path) -> Result<Identity, String> {
    let oidc = Path::new("tests/fixtures/oidc");
    let mut provider = Command::new("node")
        .arg(oidc.join("provider.mjs"))
        .env("OIDC_PORT", "0")
        .env("OIDC_CLIENT_ID", "playdeck")
        .env("OIDC_CLIENT_SECRET", "playdeck-test-secret")
        .env("OIDC_REDIRECT_URIS", "http://127.0.0.1:0/api/v1/session/oidc/callback")
        .env("OIDC_POST_LOGOUT_REDIRECT_URIS", "http://127.0.0.1:0/")
        .env("OIDC_ACCOUNTS", oidc.join("accounts.example.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the test OpenID provider (node): {e}"))?;
    let first =
        provider.stdout.take().and_then(|out| BufReader::new(out).lines().next()).and_then(Result::ok);
    let issuer = first
        .as_deref()
        .and_then(|l| l.split("\"issuer\":\"").nth(1))
        .and_then(|r| r.split('"').next())
        .map(str::to_string)
        .ok_or("the test OpenID provider did not say where it listens")?;

    let _ = std::fs::remove_dir_all(dir);
    let prepared = Command::new("tests/fixtures/ldap/prepare.sh")
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("tests/fixtures/ldap/prepare.sh: {e}"))?;
    if !prepared.status.success() {
        return Err("tests/fixtures/ldap/prepare.sh failed".into());
    }
    let line = String::from_utf8_lossy(&prepared.stdout).lines().last().unwrap_or_default().to_string();
    let mut words = line.split_whitespace();
    let program = words.next().ok_or("prepare.sh printed no slapd command")?;
    let ldap_port = free_port()?;
    let directory = Command::new(program)
        .args(words)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{ldap_port}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start slapd: {e}"))?;
    let identity = Identity { provider, directory, issuer, ldap_port, ca: dir.join("tls/ca.pem") };
    wait_for(identity.ldap_port, "slapd")?;
    Ok(identity)
}

impl Identity {
    /// The server's settings for signing in with both, and the groups that grant roles.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PLAYDECK_OIDC_ISSUER", self.issuer.clone()),
            ("PLAYDECK_OIDC_CLIENT_ID", "playdeck".into()),
            ("PLAYDECK_OIDC_CLIENT_SECRET", "playdeck-test-secret".into()),
            ("PLAYDECK_OIDC_NAME", "the test provider".into()),
            // StartTLS against the directory's test CA: passwords never cross in clear.
            ("PLAYDECK_LDAP_URL", format!("ldap://localhost:{}", self.ldap_port)),
            ("PLAYDECK_LDAP_STARTTLS", "true".into()),
            ("PLAYDECK_LDAP_CA_FILE", self.ca.display().to_string()),
            ("PLAYDECK_LDAP_BIND_DN", "cn=playdeck,ou=services,dc=playdeck,dc=test".into()),
            ("PLAYDECK_LDAP_BIND_PASSWORD", "bind-pass".into()),
            ("PLAYDECK_LDAP_USER_BASE", "ou=people,dc=playdeck,dc=test".into()),
            ("PLAYDECK_LDAP_GROUP_BASE", "ou=groups,dc=playdeck,dc=test".into()),
            ("PLAYDECK_ADMIN_GROUPS", "playdeck-admins".into()),
            ("PLAYDECK_OPERATOR_GROUPS", "playdeck-operators".into()),
            ("PLAYDECK_VIEWER_GROUPS", "playdeck-viewers".into()),
        ]
    }
}
