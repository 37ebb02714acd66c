//! Roles scoped to what each team owns. Two teams behind a trusted proxy: the patch team
//! operates `patch-*.yml`, the deploy team `deploy-*.yml`; carol views everything. Each surface
//! follows the scope: the grid and its counts, a job's pages (404 outside), events, stdout, hosts,
//! history, the WebSocket (jobs outside never sent), SSE and polling, stats, local launches,
//! cancel and relaunch; personal tokens carry their owner's scope and lose it when a binding goes,
//! open streams within the recheck; bindings are added and deleted through the API, which refuses
//! bad ones in words.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const CSRF: &str = "x-playdeck-csrf";

const ACCESS: &str = r#"
[[binding]]
group = "patch-team"
role = "operator"
templates = ["patch-*.yml"]

[[binding]]
group = "deploy-team"
role = "operator"
templates = ["deploy-*.yml"]

[[binding]]
user = "carol"
role = "viewer"

[[binding]]
group = "auditors"
role = "viewer"

[[binding]]
group = "patchers"
role = "operator"
templates = ["patch.yml"]
"#;

async fn teams() -> TestApp {
    let playbooks = temp_dir("playbooks");
    for p in ["patch-web.yml", "deploy-app.yml", "etl-nightly.yml"] {
        std::fs::write(playbooks.join(p), "- hosts: all\n  gather_facts: false\n  tasks: []\n")
            .expect("write");
    }
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    spawn_app_with(move |c| {
        c.engine.playbook_dir = playbooks;
        c.requests.catalog = examples.join("catalog.json");
        c.engine.inventory_dir = examples.join("inventories");
        common::people::trust_loopback_proxy(c);
        c.auth.access = bff::infra::access::parse_file("access.toml", ACCESS).expect("access file");
        c.auth.recheck = Duration::from_millis(300);
    })
    .await
}

/// A request as `user` of `group` behind the proxy.
fn who(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &str,
    group: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("x-forwarded-user", user)
        .header("x-forwarded-groups", group)
        .header(CSRF, "1")
}

async fn get_as(app: &TestApp, path: &str, user: &str, group: &str) -> reqwest::Response {
    who(app, reqwest::Method::GET, path, user, group).send().await.expect("get")
}

async fn json_as(app: &TestApp, path: &str, user: &str, group: &str) -> Value {
    let r = get_as(app, path, user, group).await;
    assert_eq!(r.status(), 200, "{path} as {user}");
    r.json().await.expect("json")
}

async fn job(app: &TestApp, external_id: &str, template: &str) -> i64 {
    let body = json!({"source": "local", "job": {"external_id": external_id, "name": external_id,
                      "template": template, "inventory": "prod"},
                      "events": [event(1, "playbook_on_start", "", "")]});
    app.ingest_ok(&body).await["job_id"].as_i64().expect("job id")
}

fn ids(page: &Value) -> Vec<i64> {
    let mut v: Vec<i64> =
        page["results"].as_array().expect("results").iter().map(|j| j["id"].as_i64().expect("id")).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_team_sees_and_acts_on_its_own_jobs_only_on_every_surface() {
    let app = teams().await;
    let patch = job(&app, "p1", "patch-web.yml").await;
    let patch2 = job(&app, "p2", "patch-db.yml").await;
    let deploy = job(&app, "d1", "deploy-app.yml").await;
    let other = job(&app, "o1", "backup.yml").await;

    // The grid and its count.
    let alice = json_as(&app, "/api/v1/jobs", "alice", "patch-team").await;
    assert_eq!(ids(&alice), vec![patch, patch2]);
    assert_eq!(alice["count"], 2);
    let bob = json_as(&app, "/api/v1/jobs", "bob", "deploy-team").await;
    assert_eq!(ids(&bob), vec![deploy]);
    let carol = json_as(&app, "/api/v1/jobs", "carol", "staff").await;
    assert_eq!(ids(&carol), vec![patch, patch2, deploy, other], "a viewer binding over everything");
    // Filters narrow within the scope, never beyond it.
    let filtered = json_as(&app, "/api/v1/jobs?template=deploy-app.yml", "alice", "patch-team").await;
    assert_eq!(filtered["count"], 0);
    // The session says the role holds over some jobs only; carol's over everything.
    let me = json_as(&app, "/api/v1/session", "alice", "patch-team").await;
    assert_eq!((me["role"].as_str(), me["scoped"].as_bool()), (Some("operator"), Some(true)), "{me}");
    let me = json_as(&app, "/api/v1/session", "carol", "staff").await;
    assert_eq!((me["role"].as_str(), me["scoped"].as_bool()), (Some("viewer"), Some(false)), "{me}");
    // Someone no binding names is signed in but has no role.
    assert_error(get_as(&app, "/api/v1/jobs", "dave", "nobody").await, 403).await;

    // A job outside the scope does not exist, on each of its pages.
    for path in ["", "/events", "/hosts", "/stdout", "/history", "/stream"] {
        let r = get_as(&app, &format!("/api/v1/jobs/{deploy}{path}"), "alice", "patch-team").await;
        let detail = assert_error(r, 404).await;
        assert!(detail.contains(&format!("job {deploy}")), "{path}: {detail}");
        let r = get_as(&app, &format!("/api/v1/jobs/{patch}{path}"), "alice", "patch-team").await;
        assert_eq!(r.status(), 200, "{path} of her own job");
    }
    for path in [format!("/api/v1/live?job={deploy}"), format!("/api/v1/live/poll?job={deploy}")] {
        assert_error(get_as(&app, &path, "alice", "patch-team").await, 404).await;
    }

    // Acting: outside the scope 404, seen but not operated 403.
    for action in ["cancel", "relaunch"] {
        let r = who(
            &app,
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{deploy}/{action}"),
            "alice",
            "patch-team",
        )
        .send()
        .await
        .expect("post");
        assert_error(r, 404).await;
        // Frank operates the patch team's jobs and views everyone's.
        let r = who(
            &app,
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{deploy}/{action}"),
            "frank",
            "patch-team, auditors",
        )
        .send()
        .await
        .expect("post");
        let detail = assert_error(r, 403).await;
        assert!(detail.contains("no operator role"), "{detail}");
        let r =
            who(&app, reqwest::Method::POST, &format!("/api/v1/jobs/{deploy}/{action}"), "carol", "staff")
                .send()
                .await
                .expect("post");
        let detail = assert_error(r, 403).await;
        assert!(detail.contains("needs the operator role"), "{detail}");
    }
    // Launching another team's playbook is refused before anything is queued.
    let r = who(&app, reqwest::Method::POST, "/api/v1/jobs", "alice", "patch-team")
        .json(&json!({"source": {"type": "playbook", "path": "deploy-app.yml"}, "inventory": {"type": "inline", "hosts": ["h1"]}}))
        .send()
        .await
        .expect("launch");
    let detail = assert_error(r, 403).await;
    assert!(detail.contains("may not launch") && detail.contains("deploy-app.yml"), "{detail}");
    assert_eq!(app.count("select count(*) from engine_jobs").await, 0);

    // Stats count the caller's jobs only.
    let stats = json_as(&app, "/api/v1/stats", "bob", "deploy-team").await;
    assert_eq!(stats["jobs"], 1, "{stats}");
    let templates: Vec<&str> = stats["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t["template"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(templates, vec!["deploy-app.yml"]);
    let admin: Value = app.get_json("/api/v1/stats").await;
    assert_eq!(admin["jobs"], 4);

    // Callback deliveries and requests: only those of her jobs (and requests she wrote).
    let db = app.db().await;
    let mut deliveries = Vec::new();
    for j in [patch, deploy] {
        let row = db
            .query_one(
                "insert into webhook_deliveries (job_id, url, event, state) values ($1, 'https://ci.example.com/hook', 'job.finished', 'failed') returning id",
                &[&j],
            )
            .await
            .expect("delivery");
        deliveries.push(row.get::<_, i64>(0));
    }
    let listed = json_as(&app, "/api/v1/webhooks/deliveries", "alice", "patch-team").await;
    let jobs: Vec<i64> = listed["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|d| d["job_id"].as_i64().expect("job"))
        .collect();
    assert_eq!(jobs, vec![patch], "{listed}");
    assert_error(
        get_as(&app, &format!("/api/v1/webhooks/deliveries/{}", deliveries[1]), "alice", "patch-team").await,
        404,
    )
    .await;
    assert_eq!(
        get_as(&app, &format!("/api/v1/webhooks/deliveries/{}", deliveries[0]), "alice", "patch-team")
            .await
            .status(),
        200
    );
    let interpretation = json!({"status": "refused", "understood": {}, "missing": [], "refused": null, "would_run": null, "answer": ""});
    let mut requests = Vec::new();
    for (by, job) in [("bob", Some(deploy)), ("alice", None), ("carol", Some(patch2))] {
        let row = db
            .query_one(
                "insert into requests (created_by, text, status, interpretation, job_id) values ($1, 'patch it', 'refused', $2, $3) returning id",
                &[&by, &interpretation, &job],
            )
            .await
            .expect("request");
        requests.push(row.get::<_, i64>(0));
    }
    let listed = json_as(&app, "/api/v1/requests", "alice", "patch-team").await;
    assert_eq!(listed["count"], 2, "hers and the one that became her team's job: {listed}");
    assert_error(
        get_as(&app, &format!("/api/v1/requests/{}", requests[0]), "alice", "patch-team").await,
        404,
    )
    .await;
    assert_eq!(json_as(&app, "/api/v1/requests", "carol", "staff").await["count"], 3);

    // Admin pages need admin over everything.
    assert_error(get_as(&app, "/api/v1/bindings", "alice", "patch-team").await, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launch_forms_lists_show_each_team_only_what_it_may_launch() {
    let app = teams().await;
    let paths = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|p| p["path"].as_str().expect("path").to_owned())
            .collect()
    };
    assert_eq!(paths(&json_as(&app, "/api/v1/playbooks", "pat", "patch-team").await), ["patch-web.yml"]);
    assert_eq!(paths(&json_as(&app, "/api/v1/playbooks", "bob", "deploy-team").await), ["deploy-app.yml"]);
    // Their bindings name no inventories: every inventory is one they may launch on.
    let invs = json_as(&app, "/api/v1/inventories", "pat", "patch-team").await;
    assert!(invs["results"].as_array().expect("results").iter().any(|i| i["name"] == "demo.yml"), "{invs}");
    assert_eq!(
        json_as(&app, "/api/v1/inventories/demo.yml/hosts", "pat", "patch-team").await["host_count"],
        3
    );
    // Another team's playbook is not there for them; a viewer is shown none.
    for path in ["/api/v1/playbooks/survey", "/api/v1/playbooks/hosts"] {
        let r = who(&app, reqwest::Method::POST, path, "pat", "patch-team")
            .header(CSRF, "1")
            .json(&json!({"path": "deploy-app.yml", "inventory": "demo.yml"}))
            .send()
            .await
            .expect("post");
        assert_error(r, 404).await;
    }
    let r = who(&app, reqwest::Method::POST, "/api/v1/playbooks/hosts", "pat", "patch-team")
        .header(CSRF, "1")
        .json(&json!({"path": "patch-web.yml", "inventory": "demo.yml"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["count"], 3);
    for path in ["/api/v1/playbooks", "/api/v1/inventories"] {
        assert_error(get_as(&app, path, "carol", "").await, 403).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_box_understands_only_what_the_person_may_run() {
    let app = teams().await;
    let ask = |user: &'static str, group: &'static str| {
        who(&app, reqwest::Method::POST, "/api/v1/requests", user, group)
            .json(&json!({"text": "Patch server web-01 with Group-1"}))
            .send()
    };
    // The catalog's patch action runs patch.yml: the patchers may, the deploy team may not.
    let r: Value = ask("pat", "patchers").await.expect("ask").json().await.expect("json");
    assert_eq!(r["status"], "ready", "{r}");
    assert_eq!(r["understood"]["action"], "patch");
    let r: Value = ask("bob", "deploy-team").await.expect("ask").json().await.expect("json");
    assert_ne!(r["status"], "ready", "{r}");
    assert!(r["understood"]["action"].is_null(), "no action of theirs matches: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_never_sends_a_job_outside_the_scope() {
    let app = teams().await;
    let deploy = job(&app, "d0", "deploy-app.yml").await;
    let mut req = app.ws_url().into_client_request().expect("request");
    req.headers_mut().insert("x-forwarded-user", "alice".parse().expect("h"));
    req.headers_mut().insert("x-forwarded-groups", "patch-team".parse().expect("h"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws");
    ws.send(Message::Text(
        json!({"type": "subscribe", "jobs": true, "job_events": [{"job_id": deploy}]}).to_string().into(),
    ))
    .await
    .expect("send");
    let theirs = job(&app, "d1", "deploy-app.yml").await;
    let mine = job(&app, "p1", "patch-web.yml").await;
    let mut seen = Vec::new();
    let mut refused = false;
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(&mine) && tokio::time::Instant::now() < until {
        let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await
        else {
            continue;
        };
        let m: Value = serde_json::from_str(&t).expect("json");
        match m["type"].as_str() {
            Some("job") => seen.push(m["job"]["id"].as_i64().expect("id")),
            Some("error") => {
                refused |=
                    m["detail"].as_str().unwrap_or("").contains(&format!("job {deploy} does not exist"))
            }
            Some("events") => panic!("events of a job outside the scope: {m}"),
            _ => {}
        }
    }
    assert!(refused, "following another team's job is refused as if it did not exist");
    assert_eq!(seen, vec![mine], "only her job's change, never {theirs}'s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_carry_their_owners_scope_and_lose_it_with_the_binding() {
    let app = teams().await;
    let mine = job(&app, "e1", "etl-nightly.yml").await;
    job(&app, "p1", "patch-web.yml").await;
    // Erin has no binding yet: signed in, no role.
    assert_error(get_as(&app, "/api/v1/jobs", "erin", "data-team").await, 403).await;

    // Bad bindings are refused in words; a good one counts at once.
    for (body, says) in [
        (json!({"group": "data-team", "role": "boss"}), "unknown variant"),
        (json!({"role": "viewer"}), "needs a `user` or a `group`"),
        (json!({"user": "a", "group": "b", "role": "viewer"}), "not both"),
        (json!({"group": "data-team", "role": "viewer", "templates": ["etl-[0-9]"]}), "`[` is not supported"),
        (json!({"group": "data-team", "role": "viewer", "templates": [""]}), "empty name"),
        (json!({"group": "data-team", "role": "viewer", "colour": "red"}), "unknown field"),
    ] {
        let detail = assert_error(post(&app, "/api/v1/bindings", &body).await, 422).await;
        assert!(detail.contains(says), "{body} → {detail}");
    }
    let made: Value = post(
        &app,
        "/api/v1/bindings",
        &json!({"group": "data-team", "role": "operator", "templates": ["etl-*.yml"], "sources": ["local"],
                "credentials": ["etl-*"]}),
    )
    .await
    .json()
    .await
    .expect("binding");
    let binding = made["id"].as_i64().expect("id");
    assert_eq!(made["origin"], "settings");
    let listed = app.get_json("/api/v1/bindings").await;
    let origins: Vec<&str> = listed["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|b| b["origin"].as_str().unwrap_or(""))
        .collect();
    assert!(origins.contains(&"access.toml line 2") && origins.contains(&"settings"), "{origins:?}");
    let page = json_as(&app, "/api/v1/jobs", "erin", "data-team").await;
    assert_eq!(ids(&page), vec![mine]);

    // The credentials her launches may use: the team's, not the others'.
    for name in ["etl-db", "web-deploy"] {
        let body = json!({"name": name, "kind": "password", "inputs": {"username": "u", "password": "p"}});
        let r = post(&app, "/api/v1/credentials", &body).await;
        assert_eq!(r.status(), 201);
    }
    let creds = json_as(&app, "/api/v1/credentials", "erin", "data-team").await;
    let names: Vec<&str> = creds["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["etl-db"]);
    assert_error(get_as(&app, "/api/v1/credentials/web-deploy", "erin", "data-team").await, 404).await;
    let launch = |credential: &str| {
        who(&app, reqwest::Method::POST, "/api/v1/jobs", "erin", "data-team")
            .json(&json!({"source": {"type": "playbook", "path": "etl-nightly.yml"},
                          "inventory": {"type": "inline", "hosts": ["h1"]},
                          "credentials": {"password": credential}}))
            .send()
    };
    let detail = assert_error(launch("web-deploy").await.expect("launch"), 403).await;
    assert!(detail.contains("may not use the credential \"web-deploy\""), "{detail}");
    let r = launch("etl-db").await.expect("launch");
    assert_eq!(
        r.status(),
        202,
        "her own playbook with her team's credential: {}",
        r.text().await.unwrap_or_default()
    );

    // Her token sees what she sees.
    let token: Value = who(&app, reqwest::Method::POST, "/api/v1/tokens", "erin", "data-team")
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let secret = token["secret"].as_str().expect("secret").to_string();
    let with_token = |path: &str| app.http.get(app.url(path)).bearer_auth(&secret).send();
    let page: Value = with_token("/api/v1/jobs").await.expect("get").json().await.expect("json");
    let hers = json_as(&app, "/api/v1/jobs", "erin", "data-team").await;
    assert_eq!(ids(&page), ids(&hers), "the token is scoped like its owner");
    assert!(ids(&page).contains(&mine) && ids(&page).len() == 2, "her job and her launch: {page}");
    // A stream she opened is closed when the binding goes, and the token sees nothing after.
    let stream = app
        .http
        .get(app.url(&format!("/api/v1/jobs/{mine}/stream")))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/bindings/{binding}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let mut stream = stream;
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(closed.is_ok(), "the stream ends once the binding is gone");
    let r = with_token("/api/v1/jobs").await.expect("get");
    assert_error(r, 403).await;
    assert_error(
        app.http
            .delete(app.url(&format!("/api/v1/bindings/{binding}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("delete"),
        404,
    )
    .await;
    let audit = app.get_json("/api/v1/audit?action=role%20binding%20deleted").await;
    assert_eq!(audit["count"], 1, "{audit}");
}
