//! The mail notifier against a real SMTP server: aiosmtpd (PyPI, in `.venv`) on loopback with
//! STARTTLS from a test CA, AUTH PLAIN/LOGIN and XOAUTH2, SMTPUTF8. A password notifier and an
//! XOAUTH2 one (its access token from a loopback token endpoint, got once and reused) each send
//! two messages over one pooled connection; a UTF-8 recipient goes with SMTPUTF8, and a long
//! non-ASCII subject arrives whole after the server unfolds and decodes it. Mail servers on
//! loopback, link-local and metadata addresses are refused unless allowed; private ones are not.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::pki::Pki;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const USER: &str = "playdeck@mail.test";
const PASSWORD: &str = "smtp-pass-0123";
const TOKEN: &str = "ya29.access-token-for-xoauth2";

struct SmtpServer {
    port: u16,
    out: PathBuf,
    ca: PathBuf,
    _child: tokio::process::Child,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let dir = temp_dir("smtp");
        let pki = Pki::new(dir.clone());
        let (cert, key) = pki.leaf("smtp", "localhost", Some("DNS:localhost,IP:127.0.0.1"), "serverAuth");
        let out = dir.join("mails.jsonl");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut child = tokio::process::Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/fixtures/smtp/server.py"))
            .args(["--cert", &cert.display().to_string(), "--key", &key.display().to_string()])
            .args(["--user", USER, "--password", PASSWORD, "--token", TOKEN])
            .args(["--out", &out.display().to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd (cargo xtask setup puts it in .venv)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("aiosmtpd starts within 20 s")
            .expect("read")
            .expect("a line");
        let port = line.strip_prefix("port ").and_then(|p| p.trim().parse().ok()).expect("port line");
        SmtpServer { port, out, ca: pki.path("ca.pem"), _child: child }
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

/// A token endpoint on loopback that hands out `TOKEN` for the client credentials grant, and
/// counts how often it is asked.
async fn token_endpoint() -> (String, Arc<AtomicUsize>) {
    use axum::routing::post;
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let app = axum::Router::new().route(
        "/oauth2/v2.0/token",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                // oauth2 sends the client's id and secret as HTTP Basic (RFC 6749 §2.3.1).
                use base64::Engine as _;
                let basic =
                    base64::engine::general_purpose::STANDARD.encode("mail-client:client-secret-0123");
                let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(format!("Basic {basic}").as_str());
                if !authorized
                    || !body.contains("grant_type=client_credentials")
                    || !body.contains("scope=https")
                {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "invalid_client", "error_description": body})),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3599})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/oauth2/v2.0/token", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

async fn created(app: &TestApp, body: Value) -> i64 {
    let resp = post(app, "/api/v1/notifiers", &body).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 201, "{text}");
    serde_json::from_str::<Value>(&text).expect("json")["id"].as_i64().expect("id")
}

async fn test_send(app: &TestApp, id: i64) {
    let r: Value =
        post(app, &format!("/api/v1/notifiers/{id}/test"), &json!({})).await.json().await.expect("json");
    assert_eq!(r["delivered"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_through_a_real_smtp_server_with_starttls_xoauth2_smtputf8_and_one_pooled_connection() {
    let smtp = SmtpServer::start().await;
    let (token_url, asked) = token_endpoint().await;
    let ca = std::fs::read(&smtp.ca).expect("ca");
    let app = spawn_app_with(|c| {
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.1").expect("rule")];
        c.deliveries.mail_ca = Some(ca);
    })
    .await;
    let prefix = "[prod] Überwachung — ein sehr langer Betreff, der gefaltet werden muss";
    let base = json!({"host": "127.0.0.1", "port": smtp.port, "tls": "starttls", "from": "playdeck@mail.test",
                      "to": ["ops@mail.test", "jürgen@mail.test"], "subject_prefix": prefix});
    let mut password = base.clone();
    password["username"] = json!(USER);
    password["password"] = json!(PASSWORD);
    let by_password = created(&app, json!({"name": "relay", "kind": "mail", "config": password})).await;
    let mut oauth = base.clone();
    oauth["username"] = json!(USER);
    oauth["password"] = json!("client-secret-0123");
    oauth["auth"] = json!("xoauth2");
    oauth["oauth"] = json!({"token_url": token_url, "client_id": "mail-client",
                            "scope": "https://outlook.office365.com/.default"});
    let by_oauth = created(&app, json!({"name": "m365", "kind": "mail", "config": oauth})).await;
    let shown = app.get_json(&format!("/api/v1/notifiers/{by_oauth}")).await;
    assert_eq!(shown["config"]["oauth"]["grant"], "client_credentials", "{shown}");
    assert!(!shown.to_string().contains("client-secret-0123"), "{shown}");

    for id in [by_password, by_password, by_oauth, by_oauth] {
        test_send(&app, id).await;
    }
    let mails = smtp.mails();
    assert_eq!(mails.len(), 4, "{mails:?}");
    for (i, m) in mails.iter().enumerate() {
        assert_eq!(m["tls"], true, "STARTTLS before anything else: {m}");
        assert_eq!(m["login"], USER, "{m}");
        assert_eq!(m["mechanism"], if i < 2 { "PLAIN" } else { "XOAUTH2" }, "{m}");
        assert_eq!(m["rcpt_tos"], json!(["ops@mail.test", "jürgen@mail.test"]), "{m}");
        assert!(m["mail_options"].as_array().expect("options").iter().any(|o| o == "SMTPUTF8"), "{m}");
        let subject = m["subject"].as_str().expect("subject");
        assert!(subject.starts_with(&format!("{prefix} ")), "the subject arrives whole: {subject:?}");
        let head = m["raw_head"].as_str().expect("head");
        assert!(head.lines().all(|l| l.len() <= 78), "headers are folded:\n{head}");
        assert!(head.contains("Auto-Submitted: auto-generated"), "{head}");
        assert!(m["body"].as_str().expect("body").contains("Test message from Playdeck"), "{m}");
    }
    // Each notifier's two messages shared one connection.
    assert_eq!(mails[0]["peer"], mails[1]["peer"], "pooled: {mails:?}");
    assert_eq!(mails[2]["peer"], mails[3]["peer"], "pooled: {mails:?}");
    assert_ne!(mails[0]["peer"], mails[2]["peer"], "a pool per notifier");
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the access token is got once and reused");

    // A wrong password is the server's 535, said so, and permanent.
    let mut wrong = base.clone();
    wrong["username"] = json!(USER);
    wrong["password"] = json!("not-it");
    let bad = created(&app, json!({"name": "wrong", "kind": "mail", "config": wrong})).await;
    let r: Value =
        post(&app, &format!("/api/v1/notifiers/{bad}/test"), &json!({})).await.json().await.expect("json");
    assert_eq!(r["delivered"], false, "{r}");
    assert!(r["error"].as_str().unwrap_or("").contains("535"), "{r}");
    // A certificate from a CA Playdeck does not trust is refused.
    let other = spawn_app_with(|c| {
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.1").expect("rule")];
    })
    .await;
    let id = created(&other, json!({"name": "relay", "kind": "mail", "config": password})).await;
    let r: Value =
        post(&other, &format!("/api/v1/notifiers/{id}/test"), &json!({})).await.json().await.expect("json");
    assert_eq!(r["delivered"], false, "{r}");
    assert!(r["error"].as_str().unwrap_or("").to_lowercase().contains("certificate"), "{r}");
    assert_eq!(smtp.mails().len(), 4, "nothing more arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_servers_on_loopback_link_local_or_metadata_addresses_are_refused_unless_allowed() {
    let app = spawn_app().await;
    let mail = |host: &str| {
        json!({"name": format!("to {host}"), "kind": "mail",
               "config": {"host": host, "port": 25, "tls": "none", "from": "a@example.com", "to": ["b@example.com"]}})
    };
    for (host, says) in [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("0.0.0.0", "unspecified"),
    ] {
        let detail = assert_error(post(&app, "/api/v1/notifiers", &mail(host)).await, 422).await;
        assert!(detail.contains("`config.host`") && detail.contains(says), "{host} → {detail}");
    }
    // Relays on private networks are what most teams have.
    for host in ["10.20.30.40", "192.168.1.25", "fd12:3456::25"] {
        created(&app, mail(host)).await;
    }
    // Allowed explicitly, a relay on this host is fine.
    let allowed = spawn_app_with(|c| {
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.1").expect("rule")];
    })
    .await;
    created(&allowed, mail("127.0.0.1")).await;
}
