//! Security and operations: headers, CSRF, rate limits, secret masking, audit log, retention.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/api/v1/jobs", "/healthz"] {
        let r = app.http.get(app.url(path)).header("x-forwarded-proto", "https").send().await.expect("get");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(h["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors 'self'"));
        assert!(h["strict-transport-security"].to_str().unwrap_or("").contains("max-age="), "{path}");
        assert!(h.get("x-frame-options").is_none(), "embedding is governed by frame-ancestors");
    }
    let r = app.http.get(app.url("/healthz")).send().await.expect("get");
    assert!(r.headers().get("strict-transport-security").is_none(), "no HSTS over plain HTTP");
}

#[tokio::test]
async fn oversize_headers_and_uris_are_refused_with_the_error_shape() {
    let app = spawn_app().await;
    let big = "x".repeat(40 * 1024);
    let r =
        app.http.get(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).header("x-padding", &big).send().await;
    let r = r.expect("get");
    let msg = assert_error(r, 431).await;
    assert!(msg.contains("headers"), "{msg}");
    let r =
        app.http.get(app.url(&format!("/api/v1/jobs?q={}", &big[..10 * 1024]))).bearer_auth(ADMIN_KEY).send();
    assert_error(r.await.expect("get"), 414).await;
    // Ordinary requests pass.
    let r =
        app.http.get(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).header("x-padding", &big[..1024]).send();
    assert_eq!(r.await.expect("get").status(), 200);
}

async fn session_cookie(app: &TestApp) -> String {
    let r = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_string()
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_header() {
    let app = spawn_app().await;
    let cookie = session_cookie(&app).await;
    let key = json!({"name": "from the browser", "role": "viewer"});
    let r = app
        .http
        .post(app.url("/api/v1/keys"))
        .header("cookie", &cookie)
        .json(&key)
        .send()
        .await
        .expect("send");
    let detail = assert_error(r, 403).await;
    assert!(detail.contains("x-playdeck-csrf"), "{detail}");
    assert_eq!(app.count("select count(*) from api_keys where name = 'from the browser'").await, 0);
    let r = app
        .http
        .post(app.url("/api/v1/keys"))
        .header("cookie", &cookie)
        .header("x-playdeck-csrf", "1")
        .json(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    // Reads with the cookie need nothing more, and bearer keys are not affected.
    let r = app.http.get(app.url("/api/v1/jobs")).header("cookie", &cookie).send().await.expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn sign_in_and_ingest_are_rate_limited() {
    let app = spawn_app_with(|c| {
        c.signin_per_minute = 3;
        c.ingest_per_second = 2;
        c.auth.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    })
    .await;
    for _ in 0..3 {
        let r = app
            .http
            .post(app.url("/api/v1/session"))
            .json(&json!({"key": "guess"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
    }
    let r = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .expect("send");
    assert!(r.headers().get("retry-after").is_some());
    let detail = assert_error(r, 429).await;
    assert!(detail.contains("try again"), "{detail}");
    // Another client behind a trusted proxy (by X-Forwarded-For) is not held back.
    let r = app
        .http
        .post(app.url("/api/v1/session"))
        .header("x-forwarded-for", "10.1.2.3")
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(app.ingest(&batch("rl", events(i * 2 + 1, 2))).await.status().as_u16());
    }
    assert_eq!(&statuses[..4], &[200, 200, 200, 200], "a burst of twice the rate passes");
    assert!(statuses[4..].contains(&429), "then the limit holds: {statuses:?}");
}

#[tokio::test]
async fn secrets_in_events_are_masked_before_they_are_stored() {
    let app = spawn_app().await;
    let ev = json!({"counter": 1, "event": "runner_on_ok", "event_data": {"host": "db-01", "task": "set password",
        "res": {"changed": true, "user": "app", "password": "hunter2-in-res", "nested": {"api_token": "tok-abc-123"}},
        "no_log_task": {"_ansible_no_log": true, "msg": "classified-output", "changed": false}}});
    app.ingest_ok(&batch("sec", vec![ev])).await;
    let dump: String = app
        .db()
        .await
        .query_one("select string_agg(event_data::text, ' ') from job_events", &[])
        .await
        .expect("dump")
        .get(0);
    for secret in ["hunter2-in-res", "tok-abc-123", "classified-output"] {
        assert!(!dump.contains(secret), "{secret} reached the database: {dump}");
    }
    assert!(dump.contains("\"user\": \"app\""), "the rest is kept: {dump}");
    let page = app.get_json("/api/v1/jobs/1/events").await;
    assert_eq!(page["results"][0]["event_data"]["res"]["password"], "********");
}

#[tokio::test]
async fn admins_read_the_audit_log() {
    let app = spawn_app().await;
    let _ = app.http.post(app.url("/api/v1/session")).json(&json!({"key": "wrong"})).send().await;
    let _ = session_cookie(&app).await;
    let r = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "ci", "role": "viewer"}))
        .send()
        .await
        .expect("send");
    let viewer = r.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string();
    let log = app.get_json("/api/v1/audit").await;
    let actions: Vec<&str> = log["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, vec!["key created", "sign-in", "sign-in refused"], "newest first");
    assert_eq!(log["results"][1]["actor"], "bootstrap admin");
    let r = app.http.get(app.url("/api/v1/audit")).bearer_auth(&viewer).send().await.expect("send");
    assert_error(r, 403).await;
    assert!(!log.to_string().contains("pdk_"), "no key in the audit log");
}

#[tokio::test]
async fn retention_deletes_old_events_and_keeps_summaries() {
    let app = spawn_app().await;
    let old = |ext: &str, created: &str| {
        json!({"source": "local", "job": {"external_id": ext, "name": ext}, "events": [
            {"counter": 1, "event": "playbook_on_start", "created": created},
            {"counter": 2, "event": "runner_on_ok", "created": created, "stdout": "ok: [h]", "event_data": {"host": "h", "task": "t"}},
            {"counter": 3, "event": "playbook_on_stats", "created": created, "event_data": {"ok": {"h": 1}}}]})
    };
    let a = app.ingest_ok(&old("old", "2020-01-01T00:00:00Z")).await["job_id"].as_i64().expect("id");
    let b =
        app.ingest_ok(&old("recent", &chrono::Utc::now().to_rfc3339())).await["job_id"].as_i64().expect("id");
    let running = app.ingest_ok(&batch("running", events(1, 3))).await["job_id"].as_i64().expect("id");
    let swept = bff::retention::sweep(&app.state, 30).await.expect("sweep");
    assert_eq!(swept, 1);
    let count = |id: i64| format!("select count(*) from job_events where job_id = {id}");
    assert_eq!(app.count(&count(a)).await, 0);
    assert_eq!(app.count(&count(b)).await, 3);
    assert_eq!(app.count(&count(running)).await, 3);
    let job = app.get_json(&format!("/api/v1/jobs/{a}")).await;
    assert!(job["events_expired"].is_string(), "the job says its events expired");
    assert_eq!(job["status"], "successful");
    assert_eq!(job["hosts"]["ok"], 1, "the summary stays");
    let hosts = app.get_json(&format!("/api/v1/jobs/{a}/hosts")).await;
    assert_eq!(hosts["count"], 1);
    let history = app.get_json(&format!("/api/v1/jobs/{a}/history")).await;
    assert_eq!(history["count"], 3);
    assert_eq!(bff::retention::sweep(&app.state, 30).await.expect("sweep"), 0, "a second pass finds nothing");
}
