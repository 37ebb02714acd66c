//! Notifiers: a mail to a local SMTP sink and a chat message to a loopback receiver when a job
//! ends, with the job's status, failing host and the knowledge base's explanation; retries, scoping
//! by template, and the admin API (secrets never shown, bad input refused, admins only).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One message the sink accepted.
#[derive(Debug, Clone)]
struct Captured {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A local SMTP server that speaks just enough: the first `fail_first` sessions get 451 at MAIL.
#[derive(Clone, Default)]
struct Sink {
    mails: Arc<Mutex<Vec<Captured>>>,
    sessions: Arc<Mutex<usize>>,
}

impl Sink {
    fn mails(&self) -> Vec<Captured> {
        self.mails.lock().expect("lock").clone()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Captured> {
        let start = Instant::now();
        loop {
            let got = self.mails();
            if got.len() >= n || start.elapsed() > within {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn smtp_sink(fail_first: usize, starttls: bool) -> (u16, Sink) {
    let sink = Sink::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let state = sink.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let session = {
                    let mut s = state.sessions.lock().expect("lock");
                    *s += 1;
                    *s
                };
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink.test ESMTP ready\r\n").await;
                let (mut from, mut to) = (String::new(), Vec::new());
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let answer: String = if upper.starts_with("EHLO") {
                        let tls = if starttls { "250-STARTTLS\r\n" } else { "" };
                        format!("250-sink.test\r\n250-8BITMIME\r\n{tls}250 SIZE 10000000\r\n")
                    } else if upper.starts_with("MAIL FROM:") {
                        if session <= fail_first {
                            "451 4.3.0 try again later\r\n".into()
                        } else {
                            // A new transaction (another message on a kept connection).
                            to.clear();
                            from = line[10..].split_whitespace().next().unwrap_or("").to_string();
                            "250 ok\r\n".into()
                        }
                    } else if upper.starts_with("RCPT TO:") {
                        to.push(line[8..].trim().to_string());
                        "250 ok\r\n".into()
                    } else if upper == "DATA" {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            // Undo dot-stuffing.
                            data.push_str(l.strip_prefix('.').unwrap_or(&l));
                            data.push('\n');
                        }
                        state.mails.lock().expect("lock").push(Captured {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                        });
                        "250 queued\r\n".into()
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else if upper == "RSET" || upper == "NOOP" {
                        "250 ok\r\n".into()
                    } else {
                        "502 not implemented\r\n".into()
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, sink)
}

/// A chat's incoming webhook on loopback: keeps the JSON it gets.
async fn chat_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let state = got.clone();
    let handler = move |axum::Json(body): axum::Json<Value>| {
        let state = state.clone();
        async move {
            state.lock().expect("lock").push(body);
            "ok"
        }
    };
    let router = axum::Router::new().route("/hooks/T000/B000/secret-token-xyz", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/hooks/T000/B000/secret-token-xyz"), got)
}

/// The sinks are on loopback, where mail servers are refused unless allowed.
fn loopback_allowed(c: &mut bff::infra::config::Config) {
    c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.0/8").expect("rule")];
}

async fn create(app: &TestApp, body: Value) -> Value {
    let resp = post(app, "/api/v1/notifiers", &body).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 201, "create answered {status}: {text}");
    serde_json::from_str(&text).expect("json")
}

fn mail_notifier(name: &str, port: u16, templates: &[&str]) -> Value {
    json!({"name": name, "kind": "mail", "templates": templates,
           "config": {"host": "127.0.0.1", "port": port, "tls": "none", "from": "playdeck@example.com",
                      "to": ["ops@example.com", "oncall@example.com"], "subject_prefix": "[test]"}})
}

/// A job of `template` whose dnf task fails on web-01 (a failure the seeded knowledge base knows).
async fn failing_job(app: &TestApp, external_id: &str, template: &str) -> i64 {
    let events = vec![
        json!({"counter": 1, "event": "playbook_on_start", "created": "2026-11-23T10:00:00Z"}),
        json!({"counter": 2, "event": "runner_on_ok", "event_data": {"host": "web-02", "task": "Update all packages", "res": {}}}),
        json!({"counter": 3, "event": "runner_on_failed", "stdout": "fatal: [web-01]: FAILED!",
               "event_data": {"host": "web-01", "task": "Update all packages", "task_action": "ansible.builtin.dnf",
                              "res": {"failed": true, "msg": "Failed to download metadata for repo 'appstream': Cannot download repomd.xml"}}}),
        json!({"counter": 4, "event": "playbook_on_stats", "created": "2026-11-23T10:01:05Z",
               "event_data": {"ok": {"web-01": 1, "web-02": 2}, "failures": {"web-01": 1}}}),
    ];
    let r = app
        .ingest_ok(&json!({"source": "local",
                           "job": {"external_id": external_id, "name": "Patch web servers", "template": template, "launched_by": "alice"},
                           "events": events}))
        .await;
    let id = r["job_id"].as_i64().expect("job id");
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "the job ended: {job}");
    id
}

async fn a_successful_job(app: &TestApp, external_id: &str, template: &str) {
    app.ingest_ok(&json!({"source": "local", "job": {"external_id": external_id, "name": "fine", "template": template},
                          "events": [{"counter": 1, "event": "playbook_on_start"},
                                     {"counter": 2, "event": "playbook_on_stats", "event_data": {"ok": {"web-01": 1}}}]}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_mailed_with_its_failing_host_and_explanation_after_a_retry() {
    let app = spawn_app_with(|c| {
        loopback_allowed(c);
        c.public_url = Some("https://playdeck.example.com".into());
    })
    .await;
    // The first session is told 451: the delivery is retried.
    let (port, sink) = smtp_sink(1, false).await;
    let (other_port, other_sink) = smtp_sink(0, false).await;
    let mine = create(&app, mail_notifier("patch team", port, &["patch.yml"])).await;
    assert_eq!(mine["events"], json!(["job.failed", "job.error"]), "failures by default");
    let other = create(&app, mail_notifier("other team", other_port, &["deploy.yml"])).await;

    a_successful_job(&app, "ok-1", "patch.yml").await;
    let id = failing_job(&app, "fail-1", "patch.yml").await;

    let mails = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 1, "one mail (the successful job is not reported)");
    let m = &mails[0];
    assert_eq!(m.from, "<playdeck@example.com>");
    assert_eq!(m.to, vec!["<ops@example.com>", "<oncall@example.com>"]);
    let (headers, body) = m.data.split_once("\n\n").expect("headers, then the body");
    for h in [
        format!("Subject: [test] Job {id} \"Patch web servers\" failed"),
        "From: playdeck@example.com".to_string(),
        "To: ops@example.com, oncall@example.com".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
        "MIME-Version: 1.0".to_string(),
    ] {
        assert!(headers.lines().any(|l| l.trim_end() == h), "header {h:?} in:\n{headers}");
    }
    assert!(headers.contains("\nDate: ") && headers.contains("\nMessage-ID: <"), "{headers}");
    for needle in [
        "Status:",
        "failed",
        "patch.yml",
        "alice",
        "1 min 5 s",
        "Failing hosts",
        "- web-01: 1 failed",
        "Update all packages",
        "Cannot download repomd.xml",
        "Package repository unreachable or broken",
        "subscription-manager",
        &format!("https://playdeck.example.com/jobs/{id}"),
    ] {
        assert!(body.contains(needle), "{needle:?} in the body:\n{body}");
    }
    assert!(!body.contains("web-02:"), "web-02 did not fail:\n{body}");

    // The delivery's record: a 451, then delivered.
    let db = app.db().await;
    let row = db
        .query_one(
            "select state, attempts from notifier_deliveries where notifier_id = $1 and job_id = $2",
            &[&mine["id"].as_i64(), &id],
        )
        .await
        .expect("delivery");
    assert_eq!(row.get::<_, String>(0), "delivered");
    assert_eq!(row.get::<_, i32>(1), 2);
    let first: Option<String> = db
        .query_one(
            "select a.error from notifier_attempts a join notifier_deliveries d on d.id = a.delivery_id
              where d.job_id = $1 and a.attempt = 1",
            &[&id],
        )
        .await
        .expect("attempt")
        .get(0);
    assert!(first.as_deref().unwrap_or("").contains("451"), "the first attempt says why: {first:?}");

    // The other template's notifier got nothing.
    assert!(other_sink.mails().is_empty());
    let theirs = app
        .count(&format!("select count(*) from notifier_deliveries where notifier_id = {}", other["id"]))
        .await;
    assert_eq!(theirs, 0);
    let metrics =
        app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains("playdeck_notifier_deliveries{kind=\"mail\",outcome=\"delivered\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_gets_a_slack_message_and_the_test_button_works() {
    let app = spawn_app_with(|c| {
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.0/8").expect("rule")];
    })
    .await;
    let (url, got) = chat_receiver().await;
    let slack = create(
        &app,
        json!({"name": "ops channel", "kind": "chat", "events": ["job.finished"], "config": {"url": url, "style": "slack"}}),
    )
    .await;
    assert_eq!(slack["config"], json!({"style": "slack", "host": "127.0.0.1"}));
    let id = failing_job(&app, "fail-chat", "patch.yml").await;

    let start = Instant::now();
    while got.lock().expect("lock").is_empty() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payloads = got.lock().expect("lock").clone();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let text = payloads[0]["text"].as_str().expect("text");
    for needle in [
        &format!("*Job {id} \"Patch web servers\" failed*"),
        "web-01",
        "Cannot download repomd.xml",
        "Package repository unreachable or broken",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }

    // The test button sends now and says how it went; Teams gets a MessageCard.
    let r: Value = post(&app, &format!("/api/v1/notifiers/{}/test", slack["id"]), &json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["delivered"], true, "{r}");
    let teams =
        create(&app, json!({"name": "teams", "kind": "chat", "config": {"url": url, "style": "teams"}}))
            .await;
    let r: Value = post(&app, &format!("/api/v1/notifiers/{}/test", teams["id"]), &json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["delivered"], true, "{r}");
    let payloads = got.lock().expect("lock").clone();
    assert_eq!(payloads.len(), 3);
    assert!(payloads[1]["text"].as_str().unwrap_or("").contains("Test message"), "{}", payloads[1]);
    assert_eq!(payloads[2]["@type"], "MessageCard");
    assert!(payloads[2]["title"].as_str().unwrap_or("").contains("teams"), "{}", payloads[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_hides_secrets_refuses_bad_input_and_is_for_admins() {
    let app = spawn_app_with(loopback_allowed).await;
    let password = "smtp-password-do-not-show";
    let (port, _sink) = smtp_sink(0, false).await;
    let created = create(
        &app,
        json!({"name": "relay", "kind": "mail", "events": ["job.failed"], "templates": ["patch.yml"],
               "config": {"host": "127.0.0.1", "port": port, "username": "playdeck", "password": password,
                          "from": "playdeck@example.com", "to": ["ops@example.com"]}}),
    )
    .await;
    assert_eq!(created["config"]["has_password"], true);
    assert_eq!(created["config"]["tls"], "starttls");
    let id = created["id"].as_i64().expect("id");
    for text in [
        created.to_string(),
        app.get_json("/api/v1/notifiers").await.to_string(),
        app.get_json(&format!("/api/v1/notifiers/{id}")).await.to_string(),
    ] {
        assert!(!text.contains(password), "the password is never returned: {text}");
    }
    let sealed: Vec<u8> = app
        .db()
        .await
        .query_one("select sealed from notifiers where id = $1", &[&id])
        .await
        .expect("row")
        .get(0);
    assert!(!String::from_utf8_lossy(&sealed).contains(password), "sealed at rest");

    // The sink offers no STARTTLS: the password is not sent in clear.
    let r: Value =
        post(&app, &format!("/api/v1/notifiers/{id}/test"), &json!({})).await.json().await.expect("json");
    assert_eq!(r["delivered"], false, "{r}");
    assert!(r["error"].as_str().unwrap_or("").contains("STARTTLS"), "{r}");

    // Bad input: the standard error shape, saying what is wrong.
    let mail = |config: Value| json!({"name": "x", "kind": "mail", "config": config});
    let good = json!({"host": "mail.example.com", "from": "a@example.com", "to": ["b@example.com"]});
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        mail(c)
    };
    for (body, says) in [
        (with("to", json!([])), "`config.to`"),
        (with("to", json!(["b@example.com\r\nBcc: evil@example.com"])), "not a mail address"),
        (with("from", json!("nobody")), "`config.from`"),
        (with("subject_prefix", json!("[x]\r\nBcc: evil@example.com")), "subject_prefix"),
        (with("pasword", json!("x")), "unknown field `pasword`"),
        (with("username", json!("u")), "go together"),
        (with("tls", json!("ssl")), "unknown variant"),
        (with("auth", json!("xoauth2")), "needs `config.oauth`"),
        (with("oauth", json!({"token_url": "https://login.example.com/t", "client_id": "c"})), "goes with"),
        (json!({"name": "x", "kind": "mail", "events": ["job.exploded"], "config": good}), "`events`"),
        (json!({"name": "x", "kind": "pager", "config": good}), "unknown variant"),
        (json!({"name": "", "kind": "mail", "config": good}), "`name`"),
        (
            json!({"name": "x", "kind": "chat", "config": {"url": "http://169.254.169.254/hook"}}),
            "link-local",
        ),
        (json!({"name": "x", "kind": "chat", "config": {"url": "ftp://example.com/x"}}), "`config.url`"),
    ] {
        let detail = assert_error(post(&app, "/api/v1/notifiers", &body).await, 422).await;
        assert!(detail.contains(says), "{body} → {detail}");
    }
    let malformed = app
        .http
        .post(app.url("/api/v1/notifiers"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_error(malformed, 400).await;
    assert_error(post(&app, "/api/v1/notifiers", &mail_notifier("relay", port, &[])).await, 409).await;
    assert_error(app.get("/api/v1/notifiers/999").await, 404).await;
    assert_error(app.get("/api/v1/notifiers/abc").await, 400).await;

    // Only admins.
    let operator = &new_key(&app, "op", "operator").await;
    let r = app.http.get(app.url("/api/v1/notifiers")).bearer_auth(operator).send().await.expect("get");
    assert_error(r, 403).await;
    let r = app
        .http
        .post(app.url("/api/v1/notifiers"))
        .bearer_auth(operator)
        .json(&mail_notifier("sneaky", port, &[]))
        .send()
        .await
        .expect("post");
    assert_error(r, 403).await;
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/notifiers/{id}")))
        .bearer_auth(operator)
        .send()
        .await
        .expect("del");
    assert_error(r, 403).await;

    // Deleting: gone, and the audit log says who did what.
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/notifiers/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("del");
    assert_eq!(r.status(), 204);
    assert_error(app.get(&format!("/api/v1/notifiers/{id}")).await, 404).await;
    let audit = app.get_json("/api/v1/audit").await.to_string();
    assert!(audit.contains("notifier created") && audit.contains("notifier deleted"), "{audit}");
    assert!(!audit.contains(password));
}

async fn patch(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.http.patch(app.url(path)).bearer_auth(key).json(body).send().await.expect("patch")
}

async fn patched(app: &TestApp, id: i64, body: Value) -> Value {
    let resp = patch(app, ADMIN_KEY, &format!("/api/v1/notifiers/{id}"), &body).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{body} answered {status}: {text}");
    serde_json::from_str(&text).expect("json")
}

async fn sealed(app: &TestApp, id: i64) -> Option<Vec<u8>> {
    app.db().await.query_one("select sealed from notifiers where id = $1", &[&id]).await.expect("row").get(0)
}

async fn deliveries(app: &TestApp, query: &str) -> Value {
    app.get_json(&format!("/api/v1/notifiers/deliveries?{query}")).await
}

/// Waits until the notifier's deliveries are all settled (none pending).
async fn settled(app: &TestApp, notifier: i64) {
    let start = Instant::now();
    while app
        .count(&format!(
            "select count(*) from notifier_deliveries where notifier_id = {notifier} and state = 'pending'"
        ))
        .await
        > 0
    {
        assert!(start.elapsed() < Duration::from_secs(30), "deliveries still pending after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifiers_are_changed_paused_and_their_deliveries_listed_and_sent_again() {
    let app = spawn_app_with(loopback_allowed).await;
    let (port, sink) = smtp_sink(0, false).await;
    let n = create(&app, mail_notifier("patch team", port, &["patch.yml"])).await;
    let nid = n["id"].as_i64().expect("id");

    let (job, did) = a_failure_is_mailed_and_listed_with_its_attempt(&app, &sink, nid).await;
    it_is_sent_again_on_request(&app, &sink, nid, did).await;
    paused_it_queues_nothing(&app, nid).await;
    on_again_it_follows_its_new_template_events_and_config(&app, &sink, nid, port, job).await;
    a_mail_password_stays_with_the_username_alone_and_goes_without(&app).await;
    bad_changes_are_refused_whole_in_the_error_shape(&app, nid).await;
    changes_and_deliveries_are_for_admins_only(&app, nid).await;
    a_deleted_notifiers_deliveries_stay_listed_and_cannot_be_sent_again(&app, nid, job, did).await;
}

/// A failure is mailed; the delivery is listed with its attempt.
async fn a_failure_is_mailed_and_listed_with_its_attempt(app: &TestApp, sink: &Sink, nid: i64) -> (i64, i64) {
    let job = failing_job(app, "pause-1", "patch.yml").await;
    assert_eq!(sink.wait_for(1, Duration::from_secs(30)).await.len(), 1);
    settled(app, nid).await;
    let page = deliveries(app, &format!("notifier_id={nid}")).await;
    assert_eq!(page["count"], 1, "{page}");
    let d = &page["results"][0];
    assert_eq!(d["job_id"], job);
    assert_eq!(d["notifier_name"], "patch team");
    assert_eq!(d["event"], "job.failed");
    assert_eq!(d["state"], "delivered", "{d}");
    assert_eq!(d["attempt_log"][0]["code"], 250, "{d}");
    assert!(d["next_attempt"].is_null() && d["delivered"].is_string(), "{d}");
    assert_eq!(deliveries(app, &format!("job_id={job}&state=failed")).await["count"], 0);
    (job, d["id"].as_i64().expect("delivery id"))
}

/// Sent again on request.
async fn it_is_sent_again_on_request(app: &TestApp, sink: &Sink, nid: i64, did: i64) {
    let r = post(app, &format!("/api/v1/notifiers/deliveries/{did}/redeliver"), &json!({})).await;
    assert_eq!(r.status(), 202);
    assert_eq!(sink.wait_for(2, Duration::from_secs(30)).await.len(), 2, "mailed again");
    settled(app, nid).await;
    let d = &deliveries(app, &format!("notifier_id={nid}")).await["results"][0];
    assert_eq!(d["attempts"], 2, "{d}");
}

/// Paused: nothing is queued for it.
async fn paused_it_queues_nothing(app: &TestApp, nid: i64) {
    let off = patched(app, nid, json!({"active": false})).await;
    assert_eq!(off["active"], false);
    assert_eq!(off["templates"], json!(["patch.yml"]), "what is left out stays");
    failing_job(app, "pause-2", "patch.yml").await;
    assert_eq!(deliveries(app, &format!("notifier_id={nid}")).await["count"], 1, "nothing queued while off");
}

/// On again, for another template and for successes, with new settings.
async fn on_again_it_follows_its_new_template_events_and_config(
    app: &TestApp,
    sink: &Sink,
    nid: i64,
    port: u16,
    job: i64,
) {
    let changed = patched(
        app,
        nid,
        json!({"active": true, "templates": ["deploy.yml"], "events": ["job.successful", "job.failed", "job.successful"],
               "config": {"host": "127.0.0.1", "port": port, "tls": "none", "from": "playdeck@example.com",
                          "to": ["deploy@example.com"], "subject_prefix": "[prod]"}}),
    )
    .await;
    assert_eq!(changed["active"], true);
    assert_eq!(changed["events"], json!(["job.successful", "job.failed"]), "{changed}");
    assert_eq!(changed["config"]["to"], json!(["deploy@example.com"]));
    assert_eq!(changed["config"]["subject_prefix"], "[prod]");
    failing_job(app, "pause-3", "patch.yml").await;
    a_successful_job(app, "deploy-ok", "deploy.yml").await;
    let mails = sink.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 3, "only the deploy.yml job");
    assert_eq!(mails[2].to, vec!["<deploy@example.com>"]);
    assert!(mails[2].data.contains("Subject: [prod] Job "), "{}", mails[2].data);
    assert!(mails[2].data.contains("successful"), "{}", mails[2].data);
    settled(app, nid).await;
    let first = deliveries(app, &format!("notifier_id={nid}&page_size=1")).await;
    assert_eq!(first["count"], 2, "{first}");
    assert_eq!(first["next"], format!("/api/v1/notifiers/deliveries?page=2&page_size=1&notifier_id={nid}"));
    assert!(first["previous"].is_null());
    let second = deliveries(app, &format!("page=2&page_size=1&notifier_id={nid}")).await;
    assert_eq!(second["results"][0]["job_id"], job, "oldest last");
    assert_eq!(
        second["previous"],
        format!("/api/v1/notifiers/deliveries?page=1&page_size=1&notifier_id={nid}")
    );
    assert!(second["next"].is_null());
}

/// A mail notifier's password stays when only the username is given, and goes without one.
async fn a_mail_password_stays_with_the_username_alone_and_goes_without(app: &TestApp) {
    let relay = create(
        app,
        json!({"name": "relay", "kind": "mail",
               "config": {"host": "mail.example.com", "username": "playdeck", "password": "relay-secret-123",
                          "from": "playdeck@example.com", "to": ["ops@example.com"]}}),
    )
    .await;
    let rid = relay["id"].as_i64().expect("id");
    let before = sealed(app, rid).await;
    let kept = patched(
        app,
        rid,
        json!({"config": {"host": "relay.example.com", "port": 465, "tls": "tls", "username": "playdeck",
                          "from": "playdeck@example.com", "to": ["ops@example.com"]}}),
    )
    .await;
    assert_eq!(kept["config"]["has_password"], true, "{kept}");
    assert_eq!(kept["config"]["host"], "relay.example.com");
    assert_eq!(sealed(app, rid).await, before, "the sealed password is kept");
    let dropped = patched(
        app,
        rid,
        json!({"config": {"host": "relay.example.com", "from": "playdeck@example.com", "to": ["ops@example.com"]}}),
    )
    .await;
    assert_eq!(dropped["config"]["has_password"], false);
    assert_eq!(sealed(app, rid).await, None);
}

/// Bad changes: refused whole, with the standard error shape.
async fn bad_changes_are_refused_whole_in_the_error_shape(app: &TestApp, nid: i64) {
    for (body, status, says) in [
        (json!({"name": "renamed"}), 422, "unknown field `name`"),
        (json!({"kind": "chat"}), 422, "unknown field `kind`"),
        (json!({"events": ["job.exploded"], "active": false}), 422, "`events`"),
        (json!({"templates": [""], "active": false}), 422, "`templates`"),
        (
            json!({"config": {"url": "https://hooks.example.com/x"}, "active": false}),
            422,
            "unknown field `url`",
        ),
        (
            json!({"config": {"host": "h", "from": "a@example.com", "to": []}, "active": false}),
            422,
            "`config.to`",
        ),
        (json!({"active": "no"}), 422, "active"),
    ] {
        let detail =
            assert_error(patch(app, ADMIN_KEY, &format!("/api/v1/notifiers/{nid}"), &body).await, status)
                .await;
        assert!(detail.contains(says), "{body} → {detail}");
    }
    assert_eq!(
        app.get_json(&format!("/api/v1/notifiers/{nid}")).await["active"],
        true,
        "nothing half-written"
    );
    assert_error(patch(app, ADMIN_KEY, "/api/v1/notifiers/999", &json!({"active": false})).await, 404).await;
    assert_error(patch(app, ADMIN_KEY, "/api/v1/notifiers/abc", &json!({"active": false})).await, 400).await;
    assert_error(app.get("/api/v1/notifiers/deliveries?state=lost").await, 400).await;
    assert_error(app.get("/api/v1/notifiers/deliveries?page_size=0").await, 400).await;
    assert_error(post(app, "/api/v1/notifiers/deliveries/999/redeliver", &json!({})).await, 404).await;
}

/// Admins only.
async fn changes_and_deliveries_are_for_admins_only(app: &TestApp, nid: i64) {
    let operator = &new_key(&app, "op", "operator").await;
    assert_error(
        patch(app, operator, &format!("/api/v1/notifiers/{nid}"), &json!({"active": false})).await,
        403,
    )
    .await;
    let r = app
        .http
        .get(app.url("/api/v1/notifiers/deliveries"))
        .bearer_auth(operator)
        .send()
        .await
        .expect("get");
    assert_error(r, 403).await;
}

/// A deleted notifier's deliveries stay listed, and cannot be sent again.
async fn a_deleted_notifiers_deliveries_stay_listed_and_cannot_be_sent_again(
    app: &TestApp,
    nid: i64,
    job: i64,
    did: i64,
) {
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/notifiers/{nid}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("del");
    assert_eq!(r.status(), 204);
    let page = deliveries(app, &format!("job_id={job}")).await;
    assert_eq!(page["count"], 1, "{page}");
    assert!(page["results"][0]["notifier_id"].is_null() && page["results"][0]["notifier_name"].is_null());
    let detail = assert_error(
        post(app, &format!("/api/v1/notifiers/deliveries/{did}/redeliver"), &json!({})).await,
        409,
    )
    .await;
    assert!(detail.contains("deleted"), "{detail}");
    let audit = app.get_json("/api/v1/audit").await.to_string();
    assert!(audit.contains("notifier changed") && audit.contains("notification redelivered"), "{audit}");
    assert!(!audit.contains("relay-secret-123"));
}

/// A chat that always answers 500 is tried `max_attempts` times, then the delivery is given up:
/// `failed`, nothing scheduled, each attempt on record, and no further request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_that_always_fails_is_given_up_after_the_maximum_attempts() {
    let app = spawn_app_with(quick_deliveries).await;
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = asked.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let chat = create(
        &app,
        json!({"name": "down channel", "kind": "chat", "events": ["job.finished"], "config": {"url": url, "style": "slack"}}),
    )
    .await;
    let nid = chat["id"].as_i64().expect("id");
    failing_job(&app, "fail-give-up", "patch.yml").await;
    let d = eventually("the delivery is given up", || async {
        let d = deliveries(&app, &format!("notifier_id={nid}")).await["results"][0].clone();
        (d["state"] == "failed").then_some(d)
    })
    .await;
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(d["next_attempt"].is_null(), "nothing more is scheduled: {d}");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 3, "the chat was asked three times");
    let logged = app
        .count(&format!(
            "select count(*) from notifier_attempts a join notifier_deliveries d on d.id = a.delivery_id
              where d.notifier_id = {nid}"
        ))
        .await;
    assert_eq!(logged, 3, "each attempt on record");
    settled(&app, nid).await;
}
