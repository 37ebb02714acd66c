//! Playdeck's callback plugin inside ansible-runner, as AWX and AAP run playbooks (a real
//! `ansible-runner` from PyPI, in `.venv`): runner's display callback wraps each event's output in
//! base64 event markers, which runner's own stdout file drops. What Playdeck stores is the same
//! output as runner's stdout file, byte for byte, without a marker. And inside a controller, the
//! plugin's copy of a job's events and the controller's own (runner's events, served by the fake
//! AWX) are stored once, whichever comes first.

mod common;
#[path = "../examples/support/fake_awx.rs"]
mod fake_awx;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bff::infra::config::ControllerConfig;
use common::*;
use fake_awx::FakeAwx;
use serde_json::{json, Value};

const PLAYBOOK: &str = "- hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: \"hello {{ item }}\"
      loop: [one, two, three]
    - name: Report
      ansible.builtin.debug:
        msg: done
";

/// Runs `playbook` on `inventory` with `ansible-runner` (from `.venv`) in a private data dir of
/// its own, Playdeck's plugin enabled with `plugin_env` (YAML lines of runner's `env/envvars`):
/// answers the data dir (artifacts in `artifacts/one`) and runner's own output.
async fn run_ansible_runner(
    name: &str,
    playbook: &str,
    inventory: &str,
    plugin_env: &str,
) -> (PathBuf, std::process::Output) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv/bin");
    let runner = venv.join("ansible-runner");
    assert!(runner.is_file(), "ansible-runner is in .venv (cargo xtask setup installs it)");
    let dir = temp_dir(name);
    for sub in ["project", "inventory", "env"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    std::fs::write(dir.join("project/site.yml"), playbook).expect("playbook");
    std::fs::write(dir.join("inventory/hosts"), inventory).expect("inventory");
    let envvars = format!(
        "ANSIBLE_CALLBACK_PLUGINS: {}\nANSIBLE_CALLBACKS_ENABLED: playdeck\nPLAYDECK_INGEST_TOKEN: {INGEST_TOKEN}\nPLAYDECK_FINAL_WAIT: 10\n{plugin_env}",
        root.join("deploy/collection/plugins/callback").display(),
    );
    std::fs::write(dir.join("env/envvars"), envvars).expect("envvars");
    let path = format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default());
    let out = tokio::process::Command::new(&runner)
        .args(["run", &dir.display().to_string(), "-p", "site.yml", "--ident", "one", "-q"])
        .env("PATH", path)
        .output()
        .await
        .expect("run ansible-runner");
    (dir, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_ansible_runner_the_stored_output_is_runners_own_without_its_event_markers() {
    let app = spawn_app().await;
    let (dir, out) = run_ansible_runner(
        "runner",
        PLAYBOOK,
        "web-01 ansible_connection=local ansible_python_interpreter=auto_silent\n",
        &format!("PLAYDECK_URL: {}\nPLAYDECK_JOB_EXTERNAL_ID: runner-1\n", app.url("")),
    )
    .await;
    let runner_stdout =
        std::fs::read_to_string(dir.join("artifacts/one/stdout")).expect("runner's stdout file");
    assert!(
        out.status.success(),
        "ansible-runner: {}\n{runner_stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(runner_stdout.contains("hello three") && !runner_stdout.contains("\u{1b}[K"), "{runner_stdout}");

    let id = eventually("the job is stored and finished", || async {
        let page = app.get_json("/api/v1/jobs?external_id=runner-1").await;
        page["results"][0]["status"]
            .as_str()
            .filter(|s| *s == "successful")
            .and(page["results"][0]["id"].as_i64())
    })
    .await;
    let stored =
        app.get(&format!("/api/v1/jobs/{id}/stdout?format=ansi")).await.text().await.expect("stdout");
    assert!(!stored.contains("\u{1b}[K"), "no event marker is stored:\n{stored:?}");
    assert!(!stored.contains("eyJ1dWlkIjog"), "no base64 event data is stored:\n{stored:?}");
    // Byte for byte: ansible-runner runs the playbook on a pseudo-terminal, which ends the lines
    // inside an event's output with CR LF; the plugin sees the same terminal and sends the same.
    assert_eq!(stored, runner_stdout, "the stored output is runner's own, byte for byte");
}

/// A run with loops over three hosts, an unreachable host, a skip, a failure, and a warning that
/// only ansible-runner records as an event of its own (the plugin has no callback for it).
const CONTROLLER_PLAYBOOK: &str = "- hosts: all:nosuchgroup
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: \"hello {{ item }}\"
      loop: [one, two, three]
    - name: Reach the host
      ansible.builtin.command: /bin/true
    - name: Fail on web-02
      ansible.builtin.command: /bin/false
      when: inventory_hostname == 'web-02'
    - name: Report
      ansible.builtin.debug:
        msg: done
";

/// Receives the plugin's batches instead of Playdeck, so the test decides when Playdeck gets them.
async fn batch_catcher() -> (String, Arc<Mutex<Vec<Value>>>) {
    let caught = Arc::new(Mutex::new(Vec::new()));
    let kept = caught.clone();
    let app = axum::Router::new().route(
        "/api/v1/ingest/events",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let mut text = String::new();
                flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).expect("a gzip body");
                let batch: Value = serde_json::from_str(&text).expect("a JSON batch");
                let n = batch["events"].as_array().map(Vec::len).unwrap_or(0);
                kept.lock().expect("lock").push(batch);
                axum::Json(json!({"job_id": 1, "accepted": n, "duplicates": 0}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, caught)
}

/// One `ansible-runner` run inside a "controller" (`JOB_ID` set, as AWX sets it), the plugin
/// enabled: answers runner's events (what AWX stores), runner's stdout file, and the plugin's
/// batches.
async fn controller_run() -> (Vec<Value>, String, Vec<Value>) {
    let (url, caught) = batch_catcher().await;
    let (dir, out) = run_ansible_runner(
        "runner-controller",
        CONTROLLER_PLAYBOOK,
        "web-01 ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"
web-02 ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"
web-03 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1
",
        &format!("PLAYDECK_URL: {url}\nJOB_ID: \"9001\"\n"),
    )
    .await;
    let artifacts = dir.join("artifacts/one");
    let stdout = std::fs::read_to_string(artifacts.join("stdout")).expect("runner's stdout file");
    // A host failed, so runner's status is `failed` (rc 2 from ansible-playbook).
    let status = std::fs::read_to_string(artifacts.join("status")).unwrap_or_default();
    assert_eq!(status.trim(), "failed", "ansible-runner: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let mut events: Vec<Value> = std::fs::read_dir(artifacts.join("job_events"))
        .expect("runner's events")
        .map(|f| {
            serde_json::from_str(&std::fs::read_to_string(f.expect("entry").path()).expect("event"))
                .expect("event json")
        })
        .collect();
    events.sort_by_key(|e| e["counter"].as_i64().unwrap_or(0));
    let batches = caught.lock().expect("lock").clone();
    (events, stdout, batches)
}

/// Posts the plugin's batches to Playdeck as the plugin sent them, for the controller's job `id`;
/// answers (accepted, duplicates) summed.
async fn post_plugin_batches(app: &TestApp, batches: &[Value], id: &str) -> (i64, i64) {
    let (mut accepted, mut duplicates) = (0, 0);
    for b in batches {
        let mut b = b.clone();
        b["job"]["external_id"] = json!(id);
        let r = app.ingest_ok(&b).await;
        accepted += r["accepted"].as_i64().expect("accepted");
        duplicates += r["duplicates"].as_i64().expect("duplicates");
    }
    (accepted, duplicates)
}

/// A last event from another source of the same job: once a follower has it, everything sent
/// before it has come too.
async fn sentinel(app: &TestApp, follower: &mut Follower, id: &str, stored: i64) {
    app.ingest_ok(&json!({"source": "aap", "job": {"external_id": id},
                          "events": [{"counter": 500_000, "event": "verbose", "stdout": "sentinel"}]}))
        .await;
    follower.until_counter(500_000).await;
    let seen: BTreeSet<i64> = follower.cursors.iter().copied().collect();
    assert_eq!(seen.len(), follower.cursors.len(), "an event was sent twice: {:?}", follower.cursors);
    assert_eq!(seen, (1..=stored + 1).collect::<BTreeSet<_>>(), "every event once, cursors without a gap");
}

/// The job as AWX shows it: runner's events, each once, with runner's counters and uuids, no
/// provisional one left, every plugin event matched, and runner's output byte for byte.
async fn assert_stored_as_the_controller_shows(
    app: &TestApp,
    job_id: i64,
    runner: &[Value],
    runner_stdout: &str,
    plugin_events: i64,
) {
    let row = app
        .db()
        .await
        .query_one(
            "select count(*), count(*) filter (where provisional), count(plugin_counter),
                    coalesce(array_agg(counter order by counter), '{}'), coalesce(array_agg(uuid order by counter), '{}')
               from job_events where job_id = $1",
            &[&job_id],
        )
        .await
        .expect("rows");
    let (rows, provisional, matched): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let counters: Vec<i64> = row.get(3);
    let uuids: Vec<Option<String>> = row.get(4);
    assert_eq!(rows, runner.len() as i64, "each of runner's events stored once");
    assert_eq!(provisional, 0, "no plugin event is left standing in");
    assert_eq!(matched, plugin_events, "each plugin event matched its controller copy");
    let want: Vec<i64> = runner.iter().map(|e| e["counter"].as_i64().expect("counter")).collect();
    assert_eq!(counters, want, "runner's counters");
    let want: Vec<Option<String>> = runner.iter().map(|e| e["uuid"].as_str().map(str::to_string)).collect();
    assert_eq!(uuids, want, "runner's uuids");
    let stored =
        app.get(&format!("/api/v1/jobs/{job_id}/stdout?format=ansi")).await.text().await.expect("stdout");
    assert_eq!(stored, runner_stdout, "runner's output, byte for byte");
    let job = app.get_json(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(
        (job["hosts"]["failed"].as_i64(), job["hosts"]["unreachable"].as_i64()),
        (Some(1), Some(1)),
        "{job}"
    );
}

async fn job_id_of(app: &TestApp, external_id: &str) -> i64 {
    eventually("the job is stored", || async {
        app.get_json(&format!("/api/v1/jobs?source=aap&external_id={external_id}")).await["results"][0]["id"]
            .as_i64()
    })
    .await
}

async fn stored_rows(app: &TestApp, job_id: i64) -> i64 {
    app.count(&format!("select count(*) from job_events where job_id = {job_id} and not provisional")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_and_the_controller_copy_of_an_aap_job_are_stored_once_in_either_order() {
    let (runner, runner_stdout, batches) = controller_run().await;
    assert!(
        runner.iter().any(|e| e["event"] == "warning"),
        "runner recorded the warning as an event of its own"
    );
    assert!(!batches.is_empty(), "the plugin sent its events");
    for b in &batches {
        assert_eq!((b["source"].as_str(), b["provisional"].as_bool()), (Some("aap"), Some(true)), "{b}");
        assert_eq!(b["job"]["external_id"], "9001", "the controller's JOB_ID names the job");
    }
    let plugin_events: i64 = batches.iter().map(|b| b["events"].as_array().map_or(0, Vec::len) as i64).sum();
    assert_eq!(plugin_events, runner.len() as i64 - 1, "the plugin has every event but the warning");

    let fake = FakeAwx::start("/api/v2").await;
    let app = spawn_app_with({
        let url = fake.url.clone();
        move |c| c.aap.controllers = vec![ControllerConfig::for_tests("aap", &url, fake_awx::TOKEN)]
    })
    .await;

    // 1. The plugin's copy first (live, during the run), then the controller's (the sync).
    let first = fake.add_runner_job("site", &runner).to_string();
    let (accepted, duplicates) = post_plugin_batches(&app, &batches, &first).await;
    assert_eq!((accepted, duplicates), (plugin_events, 0), "the plugin's events, stored");
    let job = job_id_of(&app, &first).await;
    let mut follower = Follower::start(&app, job).await;
    fake.finish(first.parse().expect("id"), "failed", true);
    eventually("the controller's copy replaced the plugin's", || async {
        (stored_rows(&app, job).await == runner.len() as i64).then_some(())
    })
    .await;
    assert_stored_as_the_controller_shows(&app, job, &runner, &runner_stdout, plugin_events).await;
    // Sent again (a retry), the plugin's events are duplicates.
    assert_eq!(post_plugin_batches(&app, &batches, &first).await, (0, plugin_events));
    sentinel(&app, &mut follower, &first, runner.len() as i64).await;

    // 2. The controller's copy first, then the plugin's (its batches held up).
    let second = fake.add_runner_job("site", &runner).to_string();
    fake.finish(second.parse().expect("id"), "failed", true);
    let job = job_id_of(&app, &second).await;
    eventually("the controller's copy is stored", || async {
        (stored_rows(&app, job).await == runner.len() as i64).then_some(())
    })
    .await;
    let mut follower = Follower::start(&app, job).await;
    assert_eq!(post_plugin_batches(&app, &batches, &second).await, (0, plugin_events), "each a duplicate");
    assert_stored_as_the_controller_shows(&app, job, &runner, &runner_stdout, plugin_events).await;
    sentinel(&app, &mut follower, &second, runner.len() as i64).await;

    // 3. The controller's copy never comes: the plugin's events stay, each once, in order.
    let (accepted, _) = post_plugin_batches(&app, &batches, "9001").await;
    assert_eq!(accepted, plugin_events);
    let job = job_id_of(&app, "9001").await;
    let events = app.get_json(&format!("/api/v1/jobs/{job}/events?limit=1000")).await;
    let kinds: Vec<&str> =
        events["results"].as_array().expect("events").iter().filter_map(|e| e["event"].as_str()).collect();
    let want: Vec<&str> =
        runner.iter().filter_map(|e| e["event"].as_str()).filter(|k| *k != "warning").collect();
    assert_eq!(kinds, want, "every event of the plugin's, in order");
    let stored =
        app.get(&format!("/api/v1/jobs/{job}/stdout?format=ansi")).await.text().await.expect("stdout");
    let lines =
        |s: &str| s.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect::<Vec<_>>();
    // All but the warning, which Ansible writes to stderr: runner's terminal has it, the plugin's
    // stdout does not.
    let warning: Vec<String> = runner
        .iter()
        .filter(|e| e["event"] == "warning")
        .flat_map(|e| lines(e["stdout"].as_str().unwrap_or("")))
        .collect();
    let want: Vec<String> = lines(&runner_stdout).into_iter().filter(|l| !warning.contains(l)).collect();
    assert_eq!(lines(&stored), want, "the plugin's output has every line of runner's but the warning");

    // 4. The plugin's copy first, then AAP's external logging (`awx.analytics.job_events`
    // records: AWX's events with the job's id, as the controller logs them).
    let (accepted, _) = post_plugin_batches(&app, &batches, "9002").await;
    assert_eq!(accepted, plugin_events);
    let served = fake.lock().jobs[&first.parse::<i64>().expect("id")].script.clone();
    let records: String = served
        .iter()
        .map(|e| {
            let mut r = e.clone();
            let o = r.as_object_mut().expect("object");
            for k in ["type", "url", "related", "summary_fields"] {
                o.remove(k);
            }
            o.insert("job".into(), json!(9002));
            o.insert("logger_name".into(), json!("awx.analytics.job_events"));
            format!("{r}\n")
        })
        .collect();
    let resp = app
        .http
        .post(app.url("/api/v1/ingest/aap-logging"))
        .basic_auth("awx", Some(INGEST_TOKEN))
        .body(records)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.expect("json");
    assert_eq!(
        (r["accepted"].as_i64(), r["duplicates"].as_i64()),
        (Some(runner.len() as i64), Some(0)),
        "{r}"
    );
    let job = job_id_of(&app, "9002").await;
    assert_stored_as_the_controller_shows(&app, job, &runner, &runner_stdout, plugin_events).await;
}
