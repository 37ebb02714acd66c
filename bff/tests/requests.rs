//! The request box: plain words in; what Playdeck understood and would run out; a conversation that
//! fills in what is missing; and a confirmed request launched as a job whose progress shows as
//! phases taken from its plays and tasks.

mod common;
#[path = "../examples/support/fake_awx.rs"]
mod fake_awx;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

const INVENTORY: &str = "\
# the shipped catalog's hosts, as an INI inventory
[webservers]
web-01
web-02

[databases]
db-01

[prod:children]
webservers
databases

[prod:vars]
ntp_server=pool.ntp.org
";

fn shipped_catalog() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json"))
        .expect("examples/catalog.json");
    serde_json::from_str(&text).expect("the shipped catalog is JSON")
}

/// The shipped catalog reading `hosts.ini` (INI) instead of the demo inventory, plus `extra`
/// actions, in a directory of its own.
fn write_catalog(dir: &Path, extra: Vec<Value>) {
    let mut catalog = shipped_catalog();
    let actions = catalog["actions"].as_array_mut().expect("actions");
    for a in actions.iter_mut() {
        a["run"]["inventory"] = json!("hosts.ini");
    }
    actions.extend(extra);
    std::fs::write(dir.join("catalog.json"), catalog.to_string()).expect("write catalog");
    std::fs::write(dir.join("hosts.ini"), INVENTORY).expect("write inventory");
}

async fn app_with(extra: Vec<Value>) -> (TestApp, PathBuf) {
    let dir = temp_dir("catalog");
    write_catalog(&dir, extra);
    let d = dir.clone();
    let app = spawn_app_with(move |c| {
        c.requests.catalog = d.join("catalog.json");
        c.engine.inventory_dir = d.clone();
    })
    .await;
    (app, dir)
}

/// Posts as the admin (an operator and more) and expects `status`.
async fn post_expect(app: &TestApp, path: &str, body: Option<Value>, status: u16) -> Value {
    let resp = post_as(app, path, ADMIN_KEY, body).await;
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "POST {path} answered {got}: {text}");
    serde_json::from_str(&text).expect("json")
}

async fn ask(app: &TestApp, text: &str) -> Value {
    post_expect(app, "/api/v1/requests", Some(json!({ "text": text })), 201).await
}

async fn reply(app: &TestApp, id: i64, text: &str) -> Value {
    post_expect(app, &format!("/api/v1/requests/{id}/reply"), Some(json!({ "text": text })), 200).await
}

async fn key(app: &TestApp, role: &str) -> String {
    let k = post_expect(app, "/api/v1/keys", Some(json!({"name": format!("{role} key"), "role": role})), 201)
        .await;
    k["secret"].as_str().expect("secret").to_string()
}

fn id_of(r: &Value) -> i64 {
    r["id"].as_i64().expect("request id")
}

#[tokio::test]
async fn plain_words_answer_what_was_understood_and_exactly_what_would_run() {
    let (app, _dir) = app_with(vec![]).await;
    let r = ask(&app, "Patch server web-01 with Group-1").await;
    assert_eq!(r["status"], "ready");
    assert_eq!(r["text"], "Patch server web-01 with Group-1");
    assert_eq!(
        r["understood"],
        json!({"action": "patch", "hosts": ["web-01"], "variables": {"patch_group": "Group-1"}, "options": {}})
    );
    assert_eq!(r["missing"], json!([]));
    assert_eq!(r["refused"], Value::Null);
    assert_eq!(
        r["would_run"],
        json!({"source": {"type": "playbook", "path": "patch.yml"}, "inventory": {"type": "file", "path": "hosts.ini"},
               "extra_vars": {"patch_group": "Group-1"}, "options": {"limit": "web-01"}, "wait": false})
    );
    let conv = r["conversation"].as_array().expect("conversation");
    assert_eq!(conv.len(), 2);
    assert_eq!(
        (conv[0]["author"].as_str(), conv[0]["by"].as_str()),
        (Some("operator"), Some("bootstrap admin"))
    );
    assert_eq!(conv[1]["author"], "playdeck");
    let answer = conv[1]["text"].as_str().expect("answer");
    assert!(
        answer.contains("patch.yml") && answer.contains("web-01") && answer.contains("Group-1"),
        "{answer}"
    );
    assert!(answer.contains("Confirm"), "{answer}");
    assert_eq!(r["job"], Value::Null);
    assert_eq!(app.count("select count(*) from jobs").await, 0, "nothing runs before the operator confirms");

    let id = id_of(&r);
    let shown = app.get_json(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(shown, r, "GET shows the request as it was answered");

    let r2 = ask(&app, "run hello on webservers in check mode").await;
    assert_eq!(r2["status"], "ready");
    assert_eq!(r2["would_run"]["source"]["path"], "hello.yml");
    assert_eq!(r2["would_run"]["options"], json!({"limit": "webservers", "check_mode": true}));
    assert_eq!(r2["understood"]["options"], json!({"check_mode": true}));

    let list = app.get_json("/api/v1/requests").await;
    assert_eq!(list["count"], 2);
    assert_eq!(list["results"][0]["id"], id_of(&r2), "newest first");
    assert_eq!(list["results"][1]["action"], "patch");
    assert_eq!(list["results"][1]["status"], "ready");
    let ready = app.get_json("/api/v1/requests?status=ready&page_size=1").await;
    assert_eq!(ready["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(ready["next"], "/api/v1/requests?page=2&page_size=1&status=ready");
}

#[tokio::test]
async fn a_conversation_asks_for_what_is_missing_and_the_replies_complete_it() {
    let (app, _dir) = app_with(vec![]).await;
    let r = ask(&app, "please patch web-01").await;
    assert_eq!(r["status"], "needs_input");
    assert_eq!(r["missing"][0]["slot"], "patch_group");
    assert!(r["missing"][0]["question"].as_str().unwrap_or("").contains("patch group"));
    assert_eq!(r["would_run"], Value::Null);
    let id = id_of(&r);
    let r = reply(&app, id, "group 2 please, in dry-run").await;
    assert_eq!(r["status"], "ready", "{r}");
    assert_eq!(r["would_run"]["extra_vars"], json!({"patch_group": "Group-2"}));
    assert_eq!(r["would_run"]["options"], json!({"limit": "web-01", "check_mode": true}));
    let authors: Vec<&str> = r["conversation"]
        .as_array()
        .expect("conv")
        .iter()
        .map(|m| m["author"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(authors, ["operator", "playdeck", "operator", "playdeck"]);
    assert_eq!(r["text"], "please patch web-01", "the request keeps its first words");

    // Which action, when the words name two.
    let r = ask(&app, "patch and retire db-01").await;
    assert_eq!(r["status"], "needs_input");
    assert_eq!(r["missing"][0]["slot"], "action");
    assert_eq!(r["missing"][0]["choices"], json!(["patch", "retire"]));
    let r = reply(&app, id_of(&r), "retire").await;
    assert_eq!(r["status"], "ready");
    assert_eq!(r["would_run"]["extra_vars"], json!({"vm_name": "db-01"}));

    // No action at all: what Playdeck can do.
    let r = ask(&app, "reboot web-01").await;
    assert_eq!(r["status"], "needs_input");
    let q = r["missing"][0]["question"].as_str().expect("question");
    assert!(q.contains("patch") && q.contains("retire") && q.contains("hello"), "{q}");
}

#[tokio::test]
async fn unknown_hosts_are_refused_with_the_closest_matches_and_can_be_corrected() {
    let (app, _dir) = app_with(vec![]).await;
    let r = ask(&app, "retire vm db-07").await;
    assert_eq!(r["status"], "refused");
    assert_eq!(r["refused"]["suggestions"], json!(["db-01"]));
    let reason = r["refused"]["reason"].as_str().expect("reason");
    assert!(reason.contains("db-07") && reason.contains("hosts.ini"), "{reason}");
    assert_eq!(r["would_run"], Value::Null);
    let id = id_of(&r);
    let detail =
        assert_error(post_as(&app, &format!("/api/v1/requests/{id}/confirm"), ADMIN_KEY, None).await, 409)
            .await;
    assert!(detail.contains("not ready") && detail.contains("db-07"), "{detail}");
    assert_eq!(
        app.count(&format!("select count(*) from audit_log where action = 'request confirm refused' and target = 'request {id}'"))
            .await,
        1,
        "a refused confirm is recorded too"
    );

    let r = reply(&app, id, "sorry, db-01").await;
    assert_eq!(r["status"], "ready");
    assert_eq!(r["would_run"]["options"]["limit"], "db-01");

    let r = ask(&app, "patch webserver with group 1").await;
    assert_eq!(r["refused"]["suggestions"], json!(["webservers"]));
    let r = ask(&app, "retire webservers").await;
    assert_eq!(r["status"], "refused", "a group is not one VM");
    assert_eq!(r["refused"]["suggestions"], json!(["web-01", "web-02"]));
}

#[tokio::test]
async fn a_launch_the_engine_refuses_comes_back_in_words_and_the_request_stays_unlaunched() {
    // A playbook the local engine does not have, and a template with no controller configured.
    let (app, _dir) = app_with(vec![
        json!({"name": "vanish", "phrases": ["vanish"], "run": {"playbook": "no-such-playbook.yml"}}),
        json!({"name": "restart", "phrases": ["restart"], "run": {"template": "Restart service"}}),
    ])
    .await;
    for (text, engine_says) in [
        ("vanish", "there is no \"no-such-playbook.yml\" in the playbook directory"),
        ("restart", "no AAP/AWX controller is configured"),
    ] {
        let r = ask(&app, text).await;
        assert_eq!(r["status"], "ready", "{r}");
        let id = id_of(&r);
        let path = format!("/api/v1/requests/{id}/confirm");
        let detail = assert_error(post_as(&app, &path, ADMIN_KEY, None).await, 422).await;
        assert!(detail.starts_with(&format!("request {id} was not launched: ")), "{detail}");
        assert!(detail.contains(engine_says), "the engine's own words come back: {detail}");
        let shown = app.get_json(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(shown["status"], "ready", "a refused launch leaves the request ready: {shown}");
        assert_eq!(shown["job_id"], Value::Null);
        assert_eq!(shown["confirmed"], Value::Null);
        let last = shown["conversation"].as_array().and_then(|c| c.last()).cloned().expect("message");
        assert_eq!(last["author"], "playdeck");
        assert!(last["text"].as_str().unwrap_or("").starts_with("The launch failed: "), "{last}");
        // Refused again, not "already launched".
        assert_error(post_as(&app, &path, ADMIN_KEY, None).await, 422).await;
    }
    assert_eq!(
        app.count("select count(*) from audit_log where action = 'request launch failed' and actor = 'bootstrap admin'")
            .await,
        4,
        "every confirm is recorded"
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let (app, _dir) = app_with(vec![]).await;
    let url = "/api/v1/requests";
    for (body, status, words) in [
        (json!({"text": ""}), 422, "say what you need"),
        (json!({"text": "  \n\t "}), 422, "say what you need"),
        (json!({"text": "patch ".repeat(2000)}), 422, "at most 1000 characters"),
        (json!({"words": "patch web-01"}), 422, "text"),
        (json!({"text": 5}), 422, "text"),
        (json!({"text": "patch web-01", "now": true}), 422, "now"),
    ] {
        let detail = assert_error(post_as(&app, url, ADMIN_KEY, Some(body.clone())).await, status).await;
        assert!(detail.contains(words), "{body}: {detail}");
    }
    let r = app
        .http
        .post(app.url(url))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"text\": ")
        .send()
        .await
        .expect("send");
    assert_error(r, 400).await;
    let r =
        app.http.post(app.url(url)).bearer_auth(ADMIN_KEY).body("patch web-01").send().await.expect("send");
    assert_error(r, 415).await;
    let r = app.http.post(app.url(url)).json(&json!({"text": "patch web-01"})).send().await.expect("send");
    assert_error(r, 401).await;

    // Unknown and malformed ids.
    for path in
        ["/api/v1/requests/999999", "/api/v1/requests/999999/confirm", "/api/v1/requests/999999/reply"]
    {
        let r = if path.ends_with("999999") {
            app.get(path).await
        } else {
            post_as(&app, path, ADMIN_KEY, Some(json!({"text": "group 1"}))).await
        };
        let detail = assert_error(r, 404).await;
        assert_eq!(detail, "request 999999 does not exist");
    }
    for path in ["/api/v1/requests/abc", "/api/v1/requests/-1", "/api/v1/requests/0"] {
        assert!(assert_error(app.get(path).await, 400).await.contains("is not a request id"));
    }
    assert_error(app.get("/api/v1/requests?status=done").await, 400).await;
    assert_error(app.get("/api/v1/requests?page_size=0").await, 400).await;

    // Roles: a viewer reads, only an operator asks, replies and confirms.
    let viewer = key(&app, "viewer").await;
    let operator = key(&app, "operator").await;
    let r = post_as(&app, url, &operator, Some(json!({"text": "patch web-01 with group 1"}))).await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.expect("json");
    let id = id_of(&made);
    assert_eq!(made["created_by"], "operator key");
    assert_error(post_as(&app, url, &viewer, Some(json!({"text": "patch web-01"}))).await, 403).await;
    for action in ["reply", "confirm"] {
        let r =
            post_as(&app, &format!("/api/v1/requests/{id}/{action}"), &viewer, Some(json!({"text": "x"})))
                .await;
        assert!(assert_error(r, 403).await.contains("operator"));
    }
    let r = app
        .http
        .get(app.url(&format!("/api/v1/requests/{id}")))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);

    // Hostile words are kept as typed and never reach the launch.
    let sql = "patch web-01 with group 1'; drop table requests; --";
    let r = ask(&app, sql).await;
    assert_eq!(r["text"], sql);
    assert_eq!(r["status"], "ready");
    for text in [
        "{{ lookup('pipe', 'id') }} patch web-01 group 1",
        "patch web-01;rm -rf / group 1 <script>alert(1)</script>",
        "patch web-01 group 1 $(reboot) `id` \u{202e}",
    ] {
        let r = ask(&app, text).await;
        assert_eq!(r["status"], "ready", "{text}: {r}");
        let body = r["would_run"].to_string();
        for bad in ["{{", "lookup", ";", "rm", "script", "$(", "`", "\u{202e}"] {
            assert!(!body.contains(bad), "{text}: the launch carries {bad:?}: {body}");
        }
        assert_eq!(r["would_run"]["options"]["limit"], "web-01");
    }
    let r = ask(&app, "patch web-01\u{7} with\u{1b}[31m group 1").await;
    assert_eq!(r["text"], "patch web-01  with [31m group 1", "control characters become spaces");
    assert_eq!(app.count("select count(*) from requests").await, 6);
    // A NUL is refused at the edge, as everywhere but ingest.
    let r = post_as(&app, "/api/v1/requests", ADMIN_KEY, Some(json!({"text": "patch web-01\u{0}"}))).await;
    assert!(assert_error(r, 400).await.contains("`text` holds a NUL byte"));
    assert_eq!(app.count("select count(*) from requests").await, 6);

    // A conversation has an end.
    let id = id_of(&ask(&app, "patch web-01").await);
    for _ in 0..19 {
        reply(&app, id, "hmm").await;
    }
    let r =
        post_as(&app, &format!("/api/v1/requests/{id}/reply"), ADMIN_KEY, Some(json!({"text": "group 1"})))
            .await;
    assert!(assert_error(r, 422).await.contains("start a new request"));
}

#[tokio::test]
async fn an_edit_of_the_inventory_before_confirm_is_shown_before_anything_runs() {
    let (app, dir) = app_with(vec![]).await;
    let id = id_of(&ask(&app, "retire vm web-02").await);
    std::fs::write(dir.join("hosts.ini"), INVENTORY.replace("web-02\n", "")).expect("rewrite inventory");
    let detail =
        assert_error(post_as(&app, &format!("/api/v1/requests/{id}/confirm"), ADMIN_KEY, None).await, 409)
            .await;
    assert!(detail.contains("no longer ready") && detail.contains("web-02"), "{detail}");
    let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["status"], "refused");
    assert_eq!(r["would_run"], Value::Null);
    let last = r["conversation"].as_array().and_then(|c| c.last()).cloned().expect("message");
    assert!(last["text"].as_str().unwrap_or("").contains("web-02 is not in the inventory"), "{last}");
    assert_eq!(app.count("select count(*) from jobs").await, 0);

    // A broken catalog is the server's problem: a 500 with the detail in the log, not the answer.
    std::fs::write(dir.join("catalog.json"), "{\"actions\": [").expect("break catalog");
    let r = post_as(&app, "/api/v1/requests", ADMIN_KEY, Some(json!({"text": "patch web-01"}))).await;
    let detail = assert_error(r, 500).await;
    assert!(!detail.contains("catalog.json"), "{detail}");
}

/// Marks a request as launched as `job_id` with the shipped patch phases, as a confirm does.
async fn link(app: &TestApp, id: i64, job_id: i64) {
    let phases = shipped_catalog()["actions"][0]["phases"].clone();
    app.db()
        .await
        .execute(
            "update requests set status = 'launched', job_id = $2, phases = $3, confirmed = now(),
                    confirmed_by = 'bootstrap admin' where id = $1",
            &[&id, &job_id, &phases],
        )
        .await
        .expect("link");
}

fn phase_states(r: &Value) -> Vec<String> {
    r["progress"]["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| format!("{}: {}", p["name"].as_str().unwrap_or(""), p["state"].as_str().unwrap_or("")))
        .collect()
}

#[tokio::test]
async fn the_progress_shows_as_phases_from_the_plays_and_ends_with_the_explained_result() {
    let (app, _dir) = app_with(vec![]).await;
    let id = id_of(&ask(&app, "Patch server web-01 with Group-1").await);
    let play = |counter: i64, name: &str| {
        json!({"counter": counter, "event": "playbook_on_play_start", "created": "2026-11-23T10:00:00",
               "event_data": {"play": name, "name": name}})
    };
    let task = |counter: i64, play: &str, name: &str| {
        json!({"counter": counter, "event": "playbook_on_task_start", "created": "2026-11-23T10:00:01",
               "event_data": {"play": play, "task": name}})
    };
    let started = app
        .ingest_ok(&batch(
            "p1",
            vec![
                json!({"counter": 1, "event": "playbook_on_start"}),
                play(2, "Pre-checks for patch group Group-1"),
            ],
        ))
        .await;
    let job_id = started["job_id"].as_i64().expect("job id");
    link(&app, id, job_id).await;
    let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["status"], "launched");
    assert_eq!(r["job"]["id"], job_id);
    assert_eq!(
        phase_states(&r),
        [
            "Pre-checks started: active",
            "Patching in progress: pending",
            "Patching completed: pending",
            "Reboot if needed: pending"
        ]
    );
    assert!(r["progress"]["phases"][0]["at"].is_string());
    assert_eq!(r["progress"]["result"], Value::Null);

    app.ingest_ok(&batch(
        "p1",
        vec![
            task(3, "Pre-checks for patch group Group-1", "Check free disk space"),
            play(4, "Patching Group-1"),
            task(5, "Patching Group-1", "Apply updates"),
        ],
    ))
    .await;
    let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(
        phase_states(&r),
        [
            "Pre-checks started: done",
            "Patching in progress: active",
            "Patching completed: pending",
            "Reboot if needed: pending"
        ]
    );
    assert_eq!(r["progress"]["current"], "Patching Group-1 › Apply updates");

    // Out of order: the post-checks play arrives before the failure that preceded it.
    app.ingest_ok(&batch("p1", vec![play(8, "Post-checks for Group-1")])).await;
    let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(phase_states(&r)[2], "Patching completed: active");
    app.ingest_ok(&batch("p1", vec![
        task(6, "Patching Group-1", "Verify the updates are installed"),
        json!({"counter": 7, "event": "runner_on_failed",
               "event_data": {"host": "web-01", "play": "Patching Group-1", "task": "Verify the updates are installed",
                              "task_action": "ansible.builtin.command",
                              "res": {"msg": "write error: No space left on device", "failed": true}}}),
        json!({"counter": 9, "event": "playbook_on_stats",
               "event_data": {"ok": {"web-01": 4}, "failures": {"web-01": 1}, "changed": {"web-01": 1}}}),
    ]))
    .await;
    let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["job"]["status"], "failed");
    assert_eq!(
        phase_states(&r),
        [
            "Pre-checks started: done",
            "Patching in progress: done",
            "Patching completed: done",
            "Reboot if needed: skipped"
        ]
    );
    assert_eq!(r["progress"]["current"], Value::Null);
    assert_eq!(r["progress"]["result"]["status"], "failed");
    let summary = r["progress"]["result"]["summary"].as_str().expect("summary");
    assert!(
        summary.contains(
            "web-01 failed at \"Verify the updates are installed\": write error: No space left on device"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("Known error: No space left on device"),
        "the knowledge base explains it: {summary}"
    );
    assert_eq!(r["job"]["explanations"][0]["matches"][0]["title"], "No space left on device");

    // A launched request takes no more words and cannot be confirmed again.
    let detail =
        assert_error(post_as(&app, &format!("/api/v1/requests/{id}/confirm"), ADMIN_KEY, None).await, 409)
            .await;
    assert_eq!(
        detail,
        format!("request {id} was already launched as job {job_id}; start a new request for more")
    );
    let r =
        post_as(&app, &format!("/api/v1/requests/{id}/reply"), ADMIN_KEY, Some(json!({"text": "group 2"})))
            .await;
    assert_error(r, 409).await;
    let list = app.get_json("/api/v1/requests").await;
    assert_eq!(list["results"][0]["job_id"], job_id);
    assert_eq!(list["results"][0]["job_status"], "failed");
}

/// Follows a request until `done` says so (up to 20 s).
async fn until(app: &TestApp, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
        if done(&r) {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "request {id}: timed out waiting for {what}: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_request_for_an_aap_template_launches_on_the_controller_and_follows_its_events() {
    let fake = fake_awx::FakeAwx::start("/api/v2").await;
    let dir = temp_dir("catalog");
    write_catalog(
        &dir,
        vec![json!({
            "name": "upgrade", "description": "upgrade servers to a release through AAP",
            "phrases": ["upgrade"],
            "run": {"template": "Patch servers", "controller": "aap", "known_hosts": "hosts.ini"},
            "slots": [
                {"name": "hosts", "from": "inventory", "to": ["limit"], "required": true},
                {"name": "release", "pattern": "\\b(20\\d\\d\\.\\d\\d)\\b", "to": ["extra_vars.release"], "required": true,
                 "question": "Which release (2026.10, 2026.11)?"}
            ],
            "phases": [{"name": "Gathering facts", "task": "gathering facts"}, {"name": "Deploying", "task": "deploy"}]
        })],
    );
    let controller = bff::infra::config::ControllerConfig::for_tests("aap", &fake.url, fake_awx::TOKEN);
    let app = spawn_app_with(move |c| {
        c.aap.controllers = vec![controller];
        c.requests.catalog = dir.join("catalog.json");
        c.engine.inventory_dir = dir.clone();
    })
    .await;

    let r = ask(&app, "upgrade web-01").await;
    assert_eq!(r["missing"][0]["question"], "Which release (2026.10, 2026.11)?");
    let r = reply(&app, id_of(&r), "to 2026.11").await;
    assert_eq!(
        r["would_run"],
        json!({"template": "Patch servers", "controller": "aap", "extra_vars": {"release": "2026.11"},
               "limit": "web-01", "wait": false})
    );
    let id = id_of(&r);
    let confirmed = post_expect(&app, &format!("/api/v1/requests/{id}/confirm"), None, 200).await;
    let job = &confirmed["job"];
    assert_eq!((job["source"].as_str(), job["template"].as_str()), (Some("aap"), Some("Patch servers")));
    assert_eq!(job["limit"], "web-01");
    let awx_id: i64 = job["external_id"].as_str().and_then(|e| e.parse().ok()).expect("controller's job id");

    fake.release(awx_id, 3);
    let r = until(&app, id, "the first phase", |r| r["progress"]["phases"][0]["state"] == "active").await;
    assert_eq!(phase_states(&r), ["Gathering facts: active", "Deploying: pending"]);
    fake.finish(awx_id, "successful", true);
    let r = until(&app, id, "the result", |r| r["progress"]["result"].is_object()).await;
    assert_eq!(phase_states(&r), ["Gathering facts: done", "Deploying: done"]);
    assert_eq!(r["progress"]["result"]["status"], "successful");
}

/// Follows a request until its job has finished, keeping each distinct set of phase states seen.
async fn follow(app: &TestApp, id: i64) -> (Value, Vec<Vec<String>>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut seen: Vec<Vec<String>> = Vec::new();
    loop {
        let r = app.get_json(&format!("/api/v1/requests/{id}")).await;
        let states = phase_states(&r);
        if seen.last() != Some(&states) {
            seen.push(states);
        }
        if r["progress"]["result"].is_object() {
            return (r, seen);
        }
        assert!(std::time::Instant::now() < deadline, "request {id} did not finish: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every phase moves forward only: pending → active → done (or skipped at the end).
fn assert_forward_only(seen: &[Vec<String>]) {
    let rank = |s: &str| match s.rsplit(": ").next().unwrap_or("") {
        "pending" => 0,
        "active" => 1,
        _ => 2,
    };
    for pair in seen.windows(2) {
        for (a, b) in pair[0].iter().zip(&pair[1]) {
            assert!(rank(a) <= rank(b), "a phase went back: {a} then {b} in {seen:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_request_runs_the_playbook_with_its_limit_and_variables_and_shows_its_phases() {
    let program = ansible_playbook();
    // The shipped catalog, demo inventory and playbooks, as `playdeck serve` finds them.
    let app = spawn_app_with(|c| c.engine.ansible_playbook = Some(program)).await;
    bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);

    let r = ask(&app, "Patch server web-01 with Group-1").await;
    assert_eq!(r["status"], "ready", "{r}");
    assert_eq!(
        r["would_run"],
        json!({"source": {"type": "playbook", "path": "patch.yml"}, "inventory": {"type": "file", "path": "demo.yml"},
               "extra_vars": {"patch_group": "Group-1"}, "options": {"limit": "web-01"}, "wait": false})
    );
    let id = id_of(&r);
    let confirmed = post_expect(&app, &format!("/api/v1/requests/{id}/confirm"), None, 200).await;
    assert_eq!(confirmed["status"], "launched");
    assert_eq!(confirmed["confirmed_by"], "bootstrap admin");
    let job_id = confirmed["job_id"].as_i64().expect("the request holds its job");
    assert_eq!(confirmed["job"]["id"], job_id);
    let last = confirmed["conversation"].as_array().and_then(|c| c.last()).cloned().expect("message");
    assert_eq!(last["text"], format!("Launched as job {job_id}. I will show its progress here."));

    // Confirming again, or adding words, does not launch a second job.
    let detail =
        assert_error(post_as(&app, &format!("/api/v1/requests/{id}/confirm"), ADMIN_KEY, None).await, 409)
            .await;
    assert!(detail.contains(&format!("already launched as job {job_id}")), "{detail}");

    let (done, seen) = follow(&app, id).await;
    assert_eq!(done["job"]["status"], "successful", "{done}");
    assert_eq!(
        phase_states(&done),
        [
            "Pre-checks started: done",
            "Patching in progress: done",
            "Patching completed: done",
            "Reboot if needed: done"
        ]
    );
    assert_forward_only(&seen);
    eprintln!("phase states seen while the job ran: {seen:#?}");
    assert!(seen.len() >= 2, "the phases were seen moving, not only at the end: {seen:?}");
    let summary = done["progress"]["result"]["summary"].as_str().expect("summary");
    assert!(summary.starts_with(&format!("Job {job_id} finished successfully")), "{summary}");

    // What ran is what was shown: the playbook, on web-01 only, with the patch group.
    assert_eq!(done["job"]["limit"], "web-01");
    let hosts = app.get_json(&format!("/api/v1/jobs/{job_id}/hosts")).await;
    let names: Vec<&str> =
        hosts["results"].as_array().expect("hosts").iter().filter_map(|h| h["host"].as_str()).collect();
    assert_eq!(names, ["web-01"], "db-01 is in Group-1 too, but the limit keeps it out");
    let vars: Value = app
        .db()
        .await
        .query_one("select extra_vars from jobs where id = $1", &[&job_id])
        .await
        .expect("job row")
        .get(0);
    assert_eq!(vars["patch_group"], "Group-1");
    assert_eq!(
        app.count(&format!("select count(*) from job_actions where job_id = {job_id} and action = 'launch'"))
            .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from audit_log where action = 'request confirmed' and target = 'request {id}'"
        ))
        .await,
        1,
        "the confirm is recorded"
    );

    // A retirement in check mode, through a conversation.
    let r = ask(&app, "retire vm web-03").await;
    assert_eq!(r["refused"]["suggestions"], json!(["web-01", "web-02"]));
    let r = reply(&app, id_of(&r), "web-02, as a dry run").await;
    assert_eq!(r["status"], "ready", "{r}");
    assert_eq!(r["would_run"]["options"], json!({"limit": "web-02", "check_mode": true}));
    let id = id_of(&r);
    post_expect(&app, &format!("/api/v1/requests/{id}/confirm"), None, 200).await;
    let (done, seen) = follow(&app, id).await;
    assert_eq!(done["job"]["status"], "successful", "{done}");
    assert_forward_only(&seen);
    let states = phase_states(&done);
    assert!(states.iter().all(|s| s.ends_with(": done")), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_ends_the_conversation_with_the_failure_and_its_explanation() {
    let program = ansible_playbook();
    // The shipped patch action, plus a test-only slot for the playbook's simulated failure.
    let dir = temp_dir("catalog");
    let mut catalog = shipped_catalog();
    catalog["actions"][0]["slots"].as_array_mut().expect("slots").push(json!(
        {"name": "fail_on", "pattern": "\\bfail(?:ing)? on ([a-z0-9-]+)", "value": "$1", "to": ["extra_vars.simulate_failure_on"]}
    ));
    std::fs::write(dir.join("catalog.json"), catalog.to_string()).expect("write catalog");
    let app = spawn_app_with(|c| {
        c.engine.ansible_playbook = Some(program);
        c.requests.catalog = dir.join("catalog.json");
    })
    .await;
    bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);

    let r = ask(&app, "patch webservers with group 1, failing on web-01").await;
    assert_eq!(
        r["would_run"]["extra_vars"],
        json!({"patch_group": "Group-1", "simulate_failure_on": "web-01"})
    );
    let id = id_of(&r);
    post_expect(&app, &format!("/api/v1/requests/{id}/confirm"), None, 200).await;
    let (done, seen) = follow(&app, id).await;
    assert_forward_only(&seen);
    assert_eq!(done["job"]["status"], "failed", "{done}");
    assert_eq!(done["progress"]["result"]["status"], "failed");
    let summary = done["progress"]["result"]["summary"].as_str().expect("summary");
    assert!(
        summary.contains(
            "web-01 failed at \"Verify the updates are installed\": pkg-1 failed to install on web-01"
        ),
        "{summary}"
    );
    // The shipped knowledge base knows dependency conflicts.
    assert!(summary.contains("Known error: Package dependency conflict"), "{summary}");
    let ex = &done["job"]["explanations"][0];
    assert_eq!(
        (ex["host"].as_str(), ex["task"].as_str()),
        (Some("web-01"), Some("Verify the updates are installed"))
    );
    assert_eq!(ex["matches"][0]["title"], "Package dependency conflict");
    // web-01 was the only host of webservers in Group-1: once it failed, no play was left to start.
    assert_eq!(
        phase_states(&done),
        [
            "Pre-checks started: done",
            "Patching in progress: done",
            "Patching completed: skipped",
            "Reboot if needed: skipped"
        ]
    );
}

/// "… tomorrow at 6" in the person's zone: the time is taken out of the words (never a host),
/// shown, and confirming makes a one-time schedule of exactly the launch that was shown, in that
/// zone; a time that has passed is asked again; "now" drops the time.
#[tokio::test]
async fn a_request_with_a_time_becomes_a_one_time_schedule_in_the_persons_zone() {
    let (app, _dir) = app_with(vec![]).await;
    let r = post_expect(
        &app,
        "/api/v1/requests",
        Some(json!({"text": "Patch server web-01 with Group-1 tomorrow at 6", "time_zone": "Europe/Berlin"})),
        201,
    )
    .await;
    assert_eq!(r["status"], "ready", "{r}");
    assert_eq!(r["understood"]["hosts"], json!(["web-01"]), "the time is no host");
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().expect("zone");
    let tomorrow = chrono::Utc::now().with_timezone(&berlin).date_naive() + chrono::Duration::days(1);
    let at = format!("{}T06:00:00", tomorrow.format("%Y-%m-%d"));
    assert_eq!(r["understood"]["when"], at);
    assert_eq!(r["understood"]["time_zone"], "Europe/Berlin");
    let answer = r["conversation"][1]["text"].as_str().expect("answer");
    assert!(answer.contains("one-time schedule") && answer.contains("06:00"), "{answer}");
    assert!(answer.contains("Confirm to schedule it.") && !answer.contains("launch it"), "{answer}");
    let would_run = r["would_run"].clone();
    let id = id_of(&r);

    let done = post_expect(&app, &format!("/api/v1/requests/{id}/confirm"), None, 200).await;
    assert_eq!(done["status"], "scheduled", "{done}");
    assert_eq!(done["job_id"], Value::Null, "nothing runs now");
    let sid = done["schedule_id"].as_i64().expect("the schedule");
    let s = app.get_json(&format!("/api/v1/schedules/{sid}")).await;
    assert_eq!(s["name"], format!("Patch server web-01 with Group-1 tomorrow at 6 (request {id})"));
    assert_eq!(
        (s["at"].as_str(), s["time_zone"].as_str(), s["cron"].is_null()),
        (Some(at.as_str()), Some("Europe/Berlin"), true)
    );
    // What it shows is the job record's view of the launch (defaults filled in, secrets masked).
    for field in ["source", "inventory"] {
        assert_eq!(
            s["launch"][field], would_run[field],
            "the schedule runs what the operator was shown: {field}"
        );
    }
    // patch.yml's survey (patch.survey.yml) fills in its default for what the request left out.
    let mut vars = would_run["extra_vars"].clone();
    vars["reboot"] = json!("yes");
    assert_eq!(
        s["launch"]["extra_vars"], vars,
        "the schedule runs what the operator was shown, with the survey's defaults"
    );
    assert_eq!(s["launch"]["options"]["limit"], would_run["options"]["limit"]);
    let next = chrono::DateTime::parse_from_rfc3339(s["next_run"].as_str().expect("next")).expect("time");
    assert_eq!(next.format("%H:%M").to_string(), "06:00", "06:00 in Berlin: {next}");
    assert_eq!(app.count("select count(*) from jobs").await, 0);
    // Confirmed once: a second confirm or reply is refused.
    let again = post_as(&app, &format!("/api/v1/requests/{id}/confirm"), ADMIN_KEY, None).await;
    assert!(assert_error(again, 409).await.contains(&format!("schedule {sid}")));

    // A time that has passed is asked again; "now" drops it and the request runs at once.
    let r = post_expect(
        &app,
        "/api/v1/requests",
        Some(json!({"text": "Patch server web-01 with Group-1 today at 00:00", "time_zone": "Pacific/Kiritimati"})),
        201,
    )
    .await;
    let midnight_passed = chrono::Utc::now()
        .with_timezone(&"Pacific/Kiritimati".parse::<chrono_tz::Tz>().expect("zone"))
        .format("%H:%M")
        .to_string()
        != "00:00";
    if midnight_passed {
        assert_eq!(r["status"], "needs_input", "{r}");
        assert_eq!(r["missing"][0]["slot"], "when");
        assert!(r["missing"][0]["question"].as_str().expect("question").contains("has passed"));
        let r = reply(&app, id_of(&r), "now").await;
        assert_eq!(r["status"], "ready", "{r}");
        assert!(r["understood"]["when"].is_null());
    }
    // An unknown zone is refused, naming it.
    let bad = post_as(
        &app,
        "/api/v1/requests",
        ADMIN_KEY,
        Some(json!({"text": "patch web-01", "time_zone": "Mars/Olympus"})),
    )
    .await;
    assert!(assert_error(bad, 422).await.contains("unknown zone"));
}
