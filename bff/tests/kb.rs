//! The knowledge base, failure explanations and the dashboard's figures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn failed(counter: i64, host: &str, task: &str, module: &str, msg: &str) -> Value {
    json!({"counter": counter, "event": "runner_on_failed", "stdout": format!("fatal: [{host}]: FAILED! => {msg}"),
           "event_data": {"host": host, "task": task, "task_action": module, "res": {"msg": msg, "failed": true}}})
}

fn unreachable(counter: i64, host: &str, msg: &str) -> Value {
    json!({"counter": counter, "event": "runner_on_unreachable", "stdout": format!("fatal: [{host}]: UNREACHABLE!"),
           "event_data": {"host": host, "task": "Gather facts", "task_action": "gather_facts", "res": {"msg": msg, "unreachable": true}}})
}

fn titles(explanation: &Value) -> Vec<String> {
    explanation["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|m| m["title"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn failures_are_explained_at_ingest_and_relabelled_when_an_entry_is_added() {
    let app = spawn_app().await;
    let kb = app.get_json("/api/v1/kb").await;
    assert!(kb["count"].as_i64() >= Some(8), "the seed set ships: {kb}");

    let r = app
        .ingest_ok(&batch("f1", vec![
            json!({"counter": 1, "event": "playbook_on_start"}),
            unreachable(2, "web-03", "Failed to connect to the host via ssh: ssh: connect to host web-03 port 22: No route to host"),
            failed(3, "web-01", "Update all packages", "ansible.builtin.dnf", "Failed to download metadata for repo 'appstream': Cannot download repomd.xml"),
            failed(4, "web-02", "Restart widget", "ansible.builtin.command", "custom-widget exploded with code 7"),
            json!({"counter": 5, "event": "runner_on_failed", "event_data": {"host": "web-02", "task": "ignored", "ignore_errors": true, "res": {"msg": "No space left on device"}}}),
        ]))
        .await;
    let id = r["job_id"].as_i64().expect("id");
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    let ex = job["explanations"].as_array().expect("explanations").clone();
    assert_eq!(ex.len(), 3, "an ignored failure is not a failure: {ex:?}");
    assert_eq!(ex[0]["host"], "web-03");
    assert_eq!(titles(&ex[0]), vec!["Host unreachable (network, DNS or SSH down)"]);
    assert_eq!(ex[1]["task"], "Update all packages");
    assert_eq!(ex[1]["module"], "ansible.builtin.dnf");
    assert_eq!(titles(&ex[1]), vec!["Package repository unreachable or broken"]);
    assert!(ex[1]["matches"][0]["solution"].as_str().unwrap_or("").contains("subscription-manager"));
    assert_eq!(ex[2]["error"], "custom-widget exploded with code 7");
    assert!(titles(&ex[2]).is_empty(), "no entry knows it yet");
    let list = app.get_json("/api/v1/jobs").await;
    assert!(list["results"][0].get("explanations").is_none(), "lists stay light");

    // An entry added now explains the older failure.
    let entry = json!({"title": "Widget crash", "kind": "substring", "pattern": "WIDGET EXPLODED", "field": "message",
                       "module": "command", "solution": "Restart the **widget** daemon.", "tags": ["Widget", "app"]});
    let r =
        app.http.post(app.url("/api/v1/kb")).bearer_auth(ADMIN_KEY).json(&entry).send().await.expect("send");
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["tags"], json!(["widget", "app"]));
    assert_eq!(created["modified_by"], "bootstrap admin");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
        if titles(&job["explanations"][2]) == vec!["Widget crash"] {
            break;
        }
        assert!(Instant::now() < deadline, "the older job was not re-labelled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // "Try it" shows which recent failures a rule would match, before saving.
    let tried = app
        .http
        .post(app.url("/api/v1/kb/try"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"title": "", "kind": "regex", "pattern": "(?i)repomd|no route"}))
        .send()
        .await
        .expect("send")
        .json::<Value>()
        .await
        .expect("json");
    let hosts: Vec<&str> = tried["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|m| m["host"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(tried["count"], 2);
    assert!(hosts.contains(&"web-03") && hosts.contains(&"web-01"));
    assert_eq!(tried["results"][0]["job_name"], "job f1");

    // Deleting the entry takes its explanation away again.
    let kid = created["id"].as_i64().expect("id");
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/kb/{kid}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !titles(&app.get_json(&format!("/api/v1/jobs/{id}")).await["explanations"][2]).is_empty() {
        assert!(Instant::now() < deadline, "the explanation stayed after the entry was deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn seeding_never_overwrites_an_edited_or_deleted_entry() {
    let app = spawn_app().await;
    let kb = app.get_json("/api/v1/kb?q=sudo").await;
    let entry = kb["results"][0].clone();
    assert_eq!(entry["seeded"], true);
    let id = entry["id"].as_i64().expect("id");
    let mut edited = entry.clone();
    edited["title"] = json!("sudo password (our wording)");
    let r = app
        .http
        .put(app.url(&format!("/api/v1/kb/{id}")))
        .bearer_auth(ADMIN_KEY)
        .json(&edited)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let disk = app.get_json("/api/v1/kb?q=space").await["results"][0]["id"].as_i64().expect("id");
    app.http
        .delete(app.url(&format!("/api/v1/kb/{disk}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");

    bff::kb::seed(&app.state).await.expect("seed again");
    let after = app.get_json(&format!("/api/v1/kb/{id}")).await;
    assert_eq!(after["title"], "sudo password (our wording)");
    assert_eq!(after["seeded"], false);
    assert_error(app.get(&format!("/api/v1/kb/{disk}")).await, 404).await;
    assert_eq!(app.get_json("/api/v1/kb?q=space").await["count"], 0, "a deleted seed is not brought back");
}

#[tokio::test]
async fn knowledge_base_input_is_checked() {
    let app = spawn_app().await;
    let post = |body: Value| app.http.post(app.url("/api/v1/kb")).bearer_auth(ADMIN_KEY).json(&body).send();
    let d = assert_error(
        post(json!({"title": "x", "kind": "regex", "pattern": "(unclosed"})).await.expect("send"),
        422,
    )
    .await;
    assert!(d.contains("regular expression"), "{d}");
    assert_error(post(json!({"title": "", "pattern": "x"})).await.expect("send"), 422).await;
    assert_error(post(json!({"title": "x", "pattern": ""})).await.expect("send"), 422).await;
    assert_error(post(json!({"title": "x", "pattern": "x", "field": "elsewhere"})).await.expect("send"), 422)
        .await;
    assert_error(post(json!({"title": "x", "pattern": "a".repeat(3000)})).await.expect("send"), 422).await;
    assert_error(app.get("/api/v1/kb/999999").await, 404).await;
    assert_error(app.get("/api/v1/kb/abc").await, 400).await;
    let r = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "v", "role": "viewer"}))
        .send()
        .await
        .expect("send");
    let viewer = r.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string();
    let r = app
        .http
        .post(app.url("/api/v1/kb"))
        .bearer_auth(&viewer)
        .json(&json!({"title": "x", "pattern": "x"}))
        .send()
        .await
        .expect("send");
    assert_error(r, 403).await;
    assert_eq!(
        app.count("select count(*) from kb_entries where seed_key is null").await,
        0,
        "nothing half-stored"
    );
}

#[tokio::test]
async fn dashboard_figures_match_a_hand_computed_set() {
    let app = spawn_app().await;
    // (external id, template, seconds, outcome)
    let runs = [
        ("a", "patch", 10, "ok"),
        ("b", "patch", 30, "disk"),
        ("c", "patch", 20, "ok"),
        ("d", "hello", 5, "ok"),
    ];
    for (ext, template, secs, outcome) in runs {
        let mut events =
            vec![json!({"counter": 1, "event": "playbook_on_start", "created": "2026-11-23T10:00:00Z"})];
        let failures = if outcome == "disk" {
            events.push(failed(2, "h", "Update", "dnf", "write error: No space left on device"));
            json!({"h": 1})
        } else {
            json!({})
        };
        events.push(json!({"counter": 3, "event": "playbook_on_stats", "created": format!("2026-11-23T10:00:{secs:02}Z"),
                           "event_data": {"ok": {"h": 1}, "failures": failures}}));
        app.ingest_ok(&json!({"source": "local", "job": {"external_id": ext, "name": ext, "template": template}, "events": events})).await;
    }
    app.ingest_ok(&json!({"source": "local", "job": {"external_id": "e", "name": "e", "template": "hello"},
                          "events": [{"counter": 1, "event": "playbook_on_start"}]}))
        .await;

    let s = app.get_json("/api/v1/stats?window=24h").await;
    assert_eq!(s["jobs"], 5);
    assert_eq!(s["by_status"]["successful"], 3);
    assert_eq!(s["by_status"]["failed"], 1);
    assert_eq!(s["by_status"]["running"], 1);
    assert_eq!(s["by_status"]["canceled"], 0);
    assert_eq!(s["success_rate"], 0.75);
    // Durations 5, 10, 20, 30: median 15; p95 at rank 0.95 * 3 = 2.85 → 20 + 0.85 * 10 = 28.5.
    assert_eq!(s["durations"]["median"], 15.0);
    assert!((s["durations"]["p95"].as_f64().expect("p95") - 28.5).abs() < 1e-9);
    let patch = &s["templates"][0];
    assert_eq!(patch["template"], "patch");
    assert_eq!(
        (patch["jobs"].as_i64(), patch["successful"].as_i64(), patch["failed"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    assert!((patch["success_rate"].as_f64().expect("rate") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(patch["durations"]["median"], 20.0);
    assert!((patch["durations"]["p95"].as_f64().expect("p95") - 29.0).abs() < 1e-9);
    assert_eq!(patch["top_failure"]["title"], "No space left on device");
    assert_eq!(patch["top_failure"]["count"], 1);
    assert_eq!(s["templates"][1]["template"], "hello");
    assert_eq!(s["templates"][1]["success_rate"], 1.0, "running jobs do not count as failures");
    assert_eq!(s["failing_templates"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["running"][0]["external_id"], "e");
    let trend = s["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 24);
    let total: i64 = trend
        .iter()
        .map(|p| {
            p["successful"].as_i64().unwrap_or(0)
                + p["failed"].as_i64().unwrap_or(0)
                + p["other"].as_i64().unwrap_or(0)
        })
        .sum();
    assert_eq!(total, 5);
    assert_eq!(app.get_json("/api/v1/stats?window=30d").await["trend"].as_array().map(Vec::len), Some(30));
    assert_error(app.get("/api/v1/stats?window=1y").await, 400).await;
}
