//! Security and operations: headers, CSRF, rate limits, secret masking, audit log, retention.

mod common;

use common::*;
use std::time::Duration;

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

#[tokio::test]
async fn cookie_writes_need_the_csrf_header() {
    let app = spawn_app().await;
    let cookie = admin_session_cookie(&app).await;
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
    let _ = admin_session_cookie(&app).await;
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

#[tokio::test]
async fn a_nul_byte_anywhere_is_a_400_at_the_edge_and_database_input_errors_are_4xx() {
    let app = spawn_app().await;
    let get = |path: &str| app.http.get(app.url(path)).bearer_auth(ADMIN_KEY).send();
    for (path, names) in [
        ("/api/v1/jobs?template=a%00b", "`template`"),
        ("/api/v1/jobs?q=%00", "`q`"),
        ("/api/v1/kb?q=x%00", "`q`"),
        ("/api/v1/audit?actor=%00", "`actor`"),
        ("/api/v1/users?q=%00", "`q`"),
        ("/api/v1/jobs?a%00b=1", "`a\\0b`"),
    ] {
        let detail = assert_error(get(path).await.expect("get"), 400).await;
        assert!(detail.contains(names) && detail.contains("NUL"), "{path}: {detail}");
    }
    let detail = assert_error(get("/api/v1/jobs/1%00").await.expect("get"), 400).await;
    assert!(detail.contains("NUL") || detail.contains("job id"), "{detail}");
    for (path, body, names) in [
        ("/api/v1/keys", json!({"name": "a\u{0}b", "role": "viewer"}), "`name`"),
        ("/api/v1/kb", json!({"title": "t", "pattern": "p\u{0}", "solution": "s"}), "`pattern`"),
        (
            "/api/v1/credentials",
            json!({"name": "c", "kind": "password", "inputs": {"username": "u", "password": "p\u{0}w"}}),
            "`inputs.password`",
        ),
        ("/api/v1/users", json!({"name": "x", "role": "viewer", "tags": ["ok", "no\u{0}"]}), "`tags[1]`"),
        ("/api/v1/session", json!({"key\u{0}": "x"}), "a key of the body"),
    ] {
        let detail = assert_error(post(&app, path, &body).await, 400).await;
        assert!(detail.contains(names), "{path}: {detail}");
    }
    assert_eq!(
        app.db()
            .await
            .query_one("select count(*) from api_keys where name like 'a%'", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        0
    );
    // Ingest keeps replacing it: Ansible's output can hold one.
    let r = app.ingest(&batch("nul", vec![json!({"counter": 1, "event": "runner_on_ok", "stdout": "a\u{0}b", "event_data": {"host": "h\u{0}"}})])).await;
    assert_eq!(r.status(), 200);
    // A database error the caller's input causes (class 22) is theirs: 422, not 500.
    let db = app.state.pool.get().await.expect("pool");
    let e: bff::infra::error::AppError =
        db.query_one("select $1::text::int", &[&"twelve"]).await.expect_err("cast").into();
    assert_eq!(e.status().as_u16(), 422, "{e}");
    let e: bff::infra::error::AppError =
        db.query_one("select 2147483647::int + 1", &[]).await.expect_err("overflow").into();
    assert_eq!(e.status().as_u16(), 422, "{e}");
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_with_retry_after_and_the_last_admin_key_stays() {
    let app = spawn_app_with(|c| {
        c.pool_size = 2;
        c.pool_wait = Duration::from_millis(300);
    })
    .await;
    let held = (app.state.pool.get().await.expect("one"), app.state.pool.get().await.expect("two"));
    let started = std::time::Instant::now();
    let r = app.http.get(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).send().await.expect("jobs");
    assert!(started.elapsed() < Duration::from_secs(3), "no hanging");
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let detail = assert_error(r, 503).await;
    assert!(detail.contains("busy"), "{detail}");
    drop(held);
    assert_eq!(
        app.http.get(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).send().await.expect("jobs").status(),
        200
    );

    // The last active admin key cannot be revoked; with another one it can.
    let keys: Value = app
        .http
        .get(app.url("/api/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let first = keys["results"][0]["id"].as_i64().expect("id");
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{first}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("revoke");
    let detail = assert_error(r, 409).await;
    assert!(detail.contains("last active admin key"), "{detail}");
    let r = post(&app, "/api/v1/keys", &json!({"name": "second admin", "role": "admin"})).await;
    let second: Value = r.json().await.expect("json");
    let secret = second["secret"].as_str().expect("secret");
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{first}")))
        .bearer_auth(secret)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{}", second["id"])))
        .bearer_auth(secret)
        .send()
        .await
        .expect("revoke");
    assert_error(r, 409).await;
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{}", second["id"])))
        .bearer_auth(secret)
        .send()
        .await
        .expect("revoke");
    assert_error(r, 409).await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_errors_name_it() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs/999999"))
        .bearer_auth(ADMIN_KEY)
        .header("x-request-id", "ci-run-42")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["x-request-id"], "ci-run-42");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["request_id"], "ci-run-42", "{body}");
    assert!(body["errors"][0]["detail"].is_string());
    // Not a sane id (too long, or odd characters): one is made up instead.
    for given in ["x".repeat(65), "a b".into(), "<script>".into()] {
        let r = app
            .http
            .get(app.url("/api/v1/nowhere"))
            .header("x-request-id", given.as_str())
            .send()
            .await
            .expect("get");
        let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
        assert!(id != given && id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["request_id"], id.as_str());
    }
    let a = app.http.get(app.url("/healthz")).send().await.expect("a").headers()["x-request-id"].clone();
    let b = app.http.get(app.url("/healthz")).send().await.expect("b").headers()["x-request-id"].clone();
    assert_ne!(a, b, "each request its own");
}

#[tokio::test]
async fn each_token_has_its_own_budget_on_the_whole_api() {
    let app = spawn_app_with(|c| c.api_per_second = 2).await;
    let other = post(&app, "/api/v1/keys", &json!({"name": "second", "role": "viewer"})).await;
    let other = other.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.http
                .get(app.url("/api/v1/jobs"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .expect("jobs")
                .status()
                .as_u16(),
        );
    }
    assert!(statuses[..3].iter().all(|s| *s == 200), "a burst of twice the rate passes: {statuses:?}");
    assert!(statuses[3..].contains(&429), "then the limit holds: {statuses:?}");
    let r = app.http.get(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).send().await.expect("jobs");
    assert!(r.headers().get("retry-after").is_some());
    assert_error(r, 429).await;
    // Another token is not held back, nor is ingest (its own limit, per client).
    assert_eq!(
        app.http.get(app.url("/api/v1/jobs")).bearer_auth(&other).send().await.expect("jobs").status(),
        200
    );
    assert_eq!(app.ingest(&batch("budget", events(1, 2))).await.status(), 200);
}

#[tokio::test]
async fn an_ordinary_request_that_takes_too_long_is_stopped_but_streams_are_not() {
    let app = spawn_app_with(|c| {
        c.pool_size = 1;
        c.request_timeout = Duration::from_millis(300);
    })
    .await;
    // The one connection held: a read waits for it (5 s) and is stopped at 0.3 s instead.
    let held = app.state.pool.get().await.expect("held");
    let started = std::time::Instant::now();
    let r = app.http.get(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).send().await.expect("jobs");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped in time: {:?}", started.elapsed());
    assert!(r.headers().get("retry-after").is_some());
    let detail = assert_error(r, 503).await;
    assert!(detail.contains("PLAYDECK_REQUEST_TIMEOUT_SECS"), "{detail}");
    drop(held);
    // A WebSocket outlives the timeout.
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("ws");
    tokio::time::sleep(Duration::from_millis(800)).await;
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"type": "subscribe", "jobs": true}).to_string().into(),
    ))
    .await
    .expect("the socket is still open after the timeout");
}

#[tokio::test]
async fn the_session_cookie_is_same_site_none_when_a_portal_may_frame_the_page() {
    let set_cookie = |app: &TestApp| {
        let r = app.http.post(app.url("/api/v1/session")).json(&json!({"key": ADMIN_KEY})).send();
        async move { r.await.expect("send").headers()["set-cookie"].to_str().expect("cookie").to_string() }
    };
    let alone = spawn_app().await;
    let cookie = set_cookie(&alone).await;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let framed = spawn_app_with(|c| c.frame_ancestors = "'self' https://portal.example.com".into()).await;
    let cookie = set_cookie(&framed).await;
    assert!(
        cookie.contains("SameSite=None") && cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let r = framed.http.get(framed.url("/")).send().await.expect("page");
    let csp = r.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(csp.contains("frame-ancestors 'self' https://portal.example.com"), "{csp}");
}

#[tokio::test]
async fn a_framed_page_signs_in_with_a_one_time_code_from_its_popups_session() {
    let app = spawn_app_with(|c| c.frame_ancestors = "'self' https://portal.example.com".into()).await;
    let popup = admin_session_cookie(&app).await;
    let code: Value = app
        .http
        .post(app.url("/api/v1/session/handoff"))
        .header("cookie", &popup)
        .header("x-playdeck-csrf", "1")
        .send()
        .await
        .expect("handoff")
        .json()
        .await
        .expect("json");
    let code = code["code"].as_str().expect("code").to_string();
    // The framed page, without the popup's cookie, signs in with it once.
    let cookie = open_session(&app, json!({"handoff": code})).await;
    assert!(cookie.contains("Partitioned") && cookie.contains("SameSite=None"), "{cookie}");
    let framed = cookie.split(';').next().expect("pair").to_string();
    assert_ne!(framed, popup, "a session of its own");
    let me: Value = app
        .http
        .get(app.url("/api/v1/session"))
        .header("cookie", &framed)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "admin");
    let again = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"handoff": code}))
        .send()
        .await
        .expect("again");
    assert_error(again, 401).await;
    // Not with a token, and not mixed with a key.
    let r = app
        .http
        .post(app.url("/api/v1/session/handoff"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("bearer");
    assert_error(r, 403).await;
    let r = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"handoff": "x", "key": ADMIN_KEY}))
        .send()
        .await
        .expect("mixed");
    assert_error(r, 422).await;
}
