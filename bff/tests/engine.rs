//! The local engine with real ansible-core (from `.venv`, made by `cargo xtask test`): runs end to
//! end through the API, failures, cancel and timeout, a restart during a run, the callback plugin
//! with Playdeck unreachable, webhooks, and refusals of bad launches.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

/// A playbook directory with the examples and a few playbooks made for these tests.
fn playbook_dir() -> PathBuf {
    let dir = temp_dir("playbooks");
    for f in ["hello.yml", "patch.yml"] {
        std::fs::copy(examples().join("playbooks").join(f), dir.join(f)).expect("copy example");
    }
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write playbook");
    write(
        "sleep.yml",
        "- name: Sleep\n  hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Sleep a long time\n      ansible.builtin.shell: \"{{ cmd }}\"\n",
    );
    write(
        "secret.yml",
        "- name: Secrets\n  hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Use the password quietly\n      ansible.builtin.command: \"echo {{ db_password }}\"\n      no_log: true\n\
         \x20   - name: Say done\n      ansible.builtin.debug:\n        msg: done\n",
    );
    // A link that leads out of the directory.
    let outside = temp_dir("outside").join("outside.yml");
    std::fs::write(&outside, "- hosts: localhost\n  tasks: []\n").expect("write");
    std::os::unix::fs::symlink(&outside, dir.join("escape.yml")).expect("symlink");
    dir
}

fn local_hosts(hosts: &[&str]) -> Value {
    let vars: serde_json::Map<String, Value> = hosts
        .iter()
        .map(|h| {
            (
                h.to_string(),
                json!({"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                       "host_patch_group": "Group-1"}),
            )
        })
        .collect();
    json!({"type": "inline", "hosts": hosts, "groups": {"webservers": hosts.iter().filter(|h| h.starts_with("web")).collect::<Vec<_>>()}, "host_vars": vars})
}

async fn launch(app: &TestApp, body: Value) -> reqwest::Response {
    app.http.post(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).json(&body).send().await.expect("launch")
}

async fn launch_ok(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = launch(app, body).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert!(status == 200 || status == 202, "launch answered {status}: {text}");
    (status, serde_json::from_str(&text).expect("json"))
}

async fn all_events(app: &TestApp, id: i64) -> Vec<Value> {
    let page = app.get_json(&format!("/api/v1/jobs/{id}/events?limit=1000")).await;
    page["results"].as_array().expect("results").clone()
}

fn processes_running(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = state.rfind(')').is_some_and(|i| state[i + 1..].trim_start().starts_with('Z'));
        if cmd.contains(needle) && !zombie {
            found.push(pid);
        }
    }
    found
}

async fn wait_no_process(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_running(needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes running {needle:?} are still there: {:?}",
            processes_running(needle)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_runs_end_to_end_with_wait_and_its_stdout_matches_ansible_playbook() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    let inventory = local_hosts(&["web-01", "db-01"]);
    let extra = json!({"patch_group": "Group-1", "db_password": "s3cret-in-extra-vars"});
    let (status, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "patch.yml"}, "inventory": inventory,
               "extra_vars": extra, "options": {"forks": 1}, "wait": true}),
    )
    .await;
    assert_eq!(status, 200, "wait: true answers when the job ended");
    let job = &run["job"];
    assert_eq!(job["status"], "successful", "{run}");
    assert_eq!(job["source"], "local");
    assert_eq!(job["launched_by"], "bootstrap admin");
    assert!(job["started"].is_string() && job["finished"].is_string());
    let hosts: Vec<&str> =
        run["hosts"].as_array().expect("hosts").iter().filter_map(|h| h["host"].as_str()).collect();
    assert_eq!(hosts, ["db-01", "web-01"]);
    assert!(run["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .all(|h| h["final_summary"] == true && h["failures"] == 0));
    assert_eq!(run["failed_tasks"], json!([]));
    let id = job["id"].as_i64().expect("id");

    // Every event, in order, with nothing missing.
    let events = all_events(&app, id).await;
    let counters: Vec<i64> = events.iter().map(|e| e["counter"].as_i64().expect("counter")).collect();
    assert_eq!(counters, (1..=counters.len() as i64).collect::<Vec<_>>(), "counters 1..n, none missing");
    assert_eq!(events.first().map(|e| e["event"].clone()), Some(json!("playbook_on_start")));
    assert_eq!(events.last().map(|e| e["event"].clone()), Some(json!("playbook_on_stats")));
    assert_eq!(job["event_count"].as_i64(), Some(events.len() as i64));
    for kind in ["playbook_on_play_start", "playbook_on_task_start", "runner_on_start", "runner_on_ok"] {
        assert!(events.iter().any(|e| e["event"] == kind), "a {kind} event");
    }

    // The output rebuilt from the events is ansible-playbook's own output.
    let stored = app.get(&format!("/api/v1/jobs/{id}/stdout?format=txt")).await.text().await.expect("stdout");
    let inv_dir = temp_dir("direct");
    let inv_file = inv_dir.join("inventory.yml");
    std::fs::write(
        &inv_file,
        json!({"all": {"hosts": {"web-01": inventory["host_vars"]["web-01"], "db-01": inventory["host_vars"]["db-01"]},
                       "children": {"webservers": {"hosts": {"web-01": null}}}}})
        .to_string(),
    )
    .expect("inventory");
    let vars_file = inv_dir.join("vars.json");
    std::fs::write(&vars_file, extra.to_string()).expect("vars");
    let direct = std::process::Command::new(ansible_playbook())
        .arg(examples().join("playbooks/patch.yml"))
        .arg("-i")
        .arg(&inv_file)
        .arg("-e")
        .arg(format!("@{}", vars_file.display()))
        .arg("--forks=1")
        .current_dir(examples().join("playbooks"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_PYTHON_INTERPRETER", "auto_silent")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .stderr(Stdio::null())
        .output()
        .expect("run ansible-playbook directly");
    assert!(direct.status.success());
    let direct = String::from_utf8_lossy(&direct.stdout);
    assert!(direct.contains("PLAY RECAP"));
    assert_eq!(stored, direct, "the job's stdout is what ansible-playbook printed");

    // The ANSI variant keeps the colours the engine asked ansible for.
    let ansi = app.get(&format!("/api/v1/jobs/{id}/stdout?format=ansi")).await.text().await.expect("ansi");
    assert!(ansi.contains("\u{1b}["), "colours are kept for the console");

    // The secret is nowhere in the database; the recorded extra_vars show it masked.
    assert_eq!(job["id"], id);
    let db = app.db().await;
    let recorded: Value =
        db.query_one("select extra_vars from jobs where id = $1", &[&id]).await.expect("q").get(0);
    assert_eq!(recorded["db_password"], "********");
    assert_eq!(recorded["patch_group"], "Group-1");
    for (table, col) in [
        ("jobs", "jobs.*"),
        ("job_events", "job_events.*"),
        ("job_actions", "job_actions.*"),
        ("engine_jobs", "engine_jobs.*"),
    ] {
        let n: i64 = db
            .query_one(&format!("select count(*) from {table} where row_to_json({col})::text like '%s3cret-in-extra-vars%'"), &[])
            .await
            .expect("grep")
            .get(0);
        assert_eq!(n, 0, "the secret is stored in {table}");
    }
    let action: Value = db
        .query_one("select detail from job_actions where job_id = $1 and action = 'launch'", &[&id])
        .await
        .expect("q")
        .get(0);
    assert_eq!(action["request"]["source"]["path"], "patch.yml");
    // The job's private directory (inventory, extra vars) is gone.
    assert!(!app.state.config.data_dir.join(format!("engine/jobs/{id}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_launch_answers_202_with_location_and_sse_follows_it_to_the_end() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    let (status, run) = launch_ok(&app, json!({"source": {"type": "playbook", "path": "hello.yml"}})).await;
    assert_eq!(status, 202);
    let id = run["job"]["id"].as_i64().expect("id");
    assert!(matches!(run["job"]["status"].as_str(), Some("pending" | "running")), "{run}");
    // The Location header names the job.
    let resp = launch(
        &app,
        json!({"source": {"type": "playbook", "path": "secret.yml"}, "name": "second",
               "extra_vars": {"db_password": "nolog-secret-value"}}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().expect("location").to_string();
    let second: Value = resp.json().await.expect("json");
    assert_eq!(location, format!("/api/v1/jobs/{}", second["job"]["id"]));
    assert_eq!(second["job"]["name"], "second");

    // SSE: every event, then `end` once the job is finished.
    let mut resp = app
        .http
        .get(app.url(&format!("/api/v1/jobs/{id}/stream")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("sse");
    assert_eq!(resp.status(), 200);
    let mut buf = String::new();
    let mut seen = 0;
    let mut end: Option<Value> = None;
    while end.is_none() {
        let chunk = tokio::time::timeout(Duration::from_secs(60), resp.chunk())
            .await
            .expect("SSE data")
            .expect("stream");
        let Some(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find("\n\n") {
            let block: String = buf.drain(..pos + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim).unwrap_or("");
            let data = block.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim).unwrap_or("");
            match event {
                "job_event" => seen += 1,
                "end" => end = Some(serde_json::from_str(data).expect("end data")),
                _ => {}
            }
        }
    }
    let end = end.expect("an `end` event");
    assert_eq!(end["status"], "successful");
    assert_eq!(end["event_count"].as_i64(), Some(seen), "every event came over SSE before `end`");
    let history = app.get_json(&format!("/api/v1/jobs/{id}/history")).await;
    let statuses: Vec<&str> =
        history["results"].as_array().expect("history").iter().filter_map(|h| h["status"].as_str()).collect();
    assert_eq!(statuses, ["pending", "running", "successful"]);

    // no_log: the task's result and arguments never reach Playdeck.
    let second_id = second["job"]["id"].as_i64().expect("id");
    let done = wait_job(&app, second_id, Duration::from_secs(60), |j| j["status"] == "successful").await;
    assert!(done["event_count"].as_i64().unwrap_or(0) >= 8);
    let events = all_events(&app, second_id).await;
    let quiet = events
        .iter()
        .find(|e| e["event"] == "runner_on_ok" && e["task"] == "Use the password quietly")
        .expect("the no_log task's result");
    assert!(quiet["event_data"]["res"]["censored"].is_string(), "{quiet}");
    assert!(quiet["event_data"].get("task_args").is_none());
    let leaks = app
        .count("select count(*) from job_events where row_to_json(job_events.*)::text like '%nolog-secret-value%'")
        .await;
    assert_eq!(leaks, 0, "the no_log value is in no event");
}

/// What `cargo xtask demo` launches: patch.yml on web-01 of the example inventory, patch group Group-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_launch_patches_web_01_with_group_1_from_the_example_inventory() {
    // The demo's data directory is relative (`.playdeck`), while ansible-playbook runs in the
    // playbook directory: the job's files must still be found.
    let data =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("relative-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("mkdir");
    let cwd = std::env::current_dir().expect("cwd");
    let (a, b): (Vec<_>, Vec<_>) = (cwd.components().collect(), data.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut relative = PathBuf::from("../".repeat(a.len() - common));
    relative.extend(&b[common..]);
    assert!(
        relative.is_relative()
            && relative.canonicalize().expect("exists") == data.canonicalize().expect("exists")
    );
    let app = spawn_engine(playbook_dir(), |c| c.data_dir = relative).await;
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "patch.yml"}, "inventory": {"type": "file", "path": "demo.yml"},
               "extra_vars": {"patch_group": "Group-1"}, "options": {"limit": "web-01"}, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "successful", "{run}");
    assert_eq!(run["job"]["inventory"], "demo.yml");
    assert_eq!(run["job"]["limit"], "web-01");
    let hosts: Vec<&str> =
        run["hosts"].as_array().expect("hosts").iter().filter_map(|h| h["host"].as_str()).collect();
    assert_eq!(hosts, ["web-01"]);
    let id = run["job"]["id"].as_i64().expect("id");
    let stdout = app.get(&format!("/api/v1/jobs/{id}/stdout")).await.text().await.expect("stdout");
    for play in [
        "PLAY [Pre-checks for patch group Group-1]",
        "PLAY [Patching Group-1]",
        "PLAY [Post-checks for Group-1]",
        "PLAY [Reboot if needed]",
    ] {
        assert!(stdout.contains(play), "{play} in {stdout}");
    }
    assert!(stdout.contains("web-01 is patched (3 updates)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_from_a_git_repository_runs() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    let repo = temp_dir("repo");
    std::fs::create_dir_all(repo.join("site")).expect("mkdir");
    std::fs::write(
        repo.join("site/deploy.yml"),
        "- name: From git\n  hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Say where\n      ansible.builtin.debug:\n        msg: from the release branch\n",
    )
    .expect("write");
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=Playdeck Tests", "-c", "user.email=tests@playdeck.invalid"])
            .args(args)
            .current_dir(&repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git");
        assert!(ok.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "release"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "playbook"]);
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "git", "repo": format!("file://{}", repo.display()), "branch": "release",
                          "path": "site/deploy.yml"}, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "successful", "{run}");
    assert_eq!(run["job"]["template"], "site/deploy.yml");
    let id = run["job"]["id"].as_i64().expect("id");
    let stdout = app.get(&format!("/api/v1/jobs/{id}/stdout")).await.text().await.expect("stdout");
    assert!(stdout.contains("from the release branch"), "{stdout}");
    // A branch that does not exist: the job errs and says why.
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "git", "repo": format!("file://{}", repo.display()), "branch": "nope",
                          "path": "site/deploy.yml"}, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "error");
    assert!(run["job"]["explanation"].as_str().unwrap_or("").contains("git fetch"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_fails_the_job_with_the_host_and_the_message() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "patch.yml"}, "inventory": local_hosts(&["web-01", "db-01"]),
               "extra_vars": {"patch_group": "Group-1", "simulate_failure_on": "web-01"}, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "failed", "{run}");
    assert_eq!(run["job"]["hosts"]["failed"], 1);
    let failed = run["failed_tasks"].as_array().expect("failed_tasks");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["host"], "web-01");
    assert_eq!(failed[0]["task"], "Verify the updates are installed");
    assert!(failed[0]["message"].as_str().unwrap_or("").contains("pkg-1 failed to install on web-01"));
    let web = run["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["host"] == "web-01")
        .expect("web-01")
        .clone();
    assert_eq!(web["status"], "failed");
    // Relaunch on the failed hosts only.
    let id = run["job"]["id"].as_i64().expect("id");
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/jobs/{id}/relaunch")))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"hosts": "failed"}))
        .send()
        .await
        .expect("relaunch");
    assert_eq!(resp.status(), 202);
    let again: Value = resp.json().await.expect("json");
    assert_eq!(again["job"]["limit"], "web-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_timeout_stop_the_whole_run_and_say_why() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    // A task that ignores SIGTERM: only the SIGKILL after the grace period ends it.
    let stubborn = "trap '' TERM; sleep 311; echo late";
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "sleep.yml"}, "extra_vars": {"cmd": stubborn}}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    wait_job(&app, id, Duration::from_secs(60), |j| {
        j["status"] == "running" && j["current_task"] == "Sleep a long time"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_running("sleep 311").is_empty() {
        assert!(Instant::now() < deadline, "the task's process started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/jobs/{id}/cancel")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), 202);
    let job = wait_job(&app, id, Duration::from_secs(30), |j| j["status"] != "running").await;
    assert_eq!(job["status"], "canceled");
    let why = job["explanation"].as_str().unwrap_or("");
    assert!(why.contains("canceled by bootstrap admin"), "{why}");
    assert!(why.contains("SIGTERM") && why.contains("SIGKILL"), "the stubborn task needed SIGKILL: {why}");
    wait_no_process("sleep 311").await;
    // Canceling again is a conflict, not a crash.
    let again = app
        .http
        .post(app.url(&format!("/api/v1/jobs/{id}/cancel")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("cancel");
    assert!(assert_error(again, 409).await.contains("already ended"));

    // The timeout does the same and says so.
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "sleep.yml"}, "extra_vars": {"cmd": "sleep 312"},
               "options": {"timeout": 3}, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "failed", "{run}");
    let why = run["job"]["explanation"].as_str().unwrap_or("");
    assert!(why.contains("timed out after 3 s"), "{why}");
    wait_no_process("sleep 312").await;
}

/// The server process, killed if the test ends early.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn database_url(pg: &tokio_postgres::Config) -> String {
    let host = match &pg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let password = String::from_utf8_lossy(pg.get_password().expect("password")).to_string();
    format!(
        "postgresql://{}:{}@{}:{}/{}",
        pg.get_user().expect("user"),
        password,
        host,
        pg.get_ports()[0],
        pg.get_dbname().expect("dbname")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playdeck_killed_during_a_run_marks_it_error_and_runs_the_queued_job_after_restart() {
    let program = ansible_playbook();
    let dir = playbook_dir();
    let pg = fresh_database().await;
    let data = temp_dir("crash");
    // The real binary, running one job at a time.
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_playdeck"))
        .arg("serve")
        .env("DATABASE_URL", database_url(&pg))
        .env("PLAYDECK_DATA_DIR", &data)
        .env("PLAYDECK_LISTEN", "127.0.0.1:0")
        .env("PLAYDECK_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
        .env("PLAYDECK_INGEST_TOKEN", INGEST_TOKEN)
        .env("PLAYDECK_CREDENTIAL_KEY", CREDENTIAL_KEY)
        .env("PLAYDECK_PLAYBOOK_DIR", &dir)
        .env("PLAYDECK_ANSIBLE_PLAYBOOK", &program)
        .env("PLAYDECK_ENGINE_CONCURRENCY", "1")
        .env("PLAYDECK_ENGINE_LEASE_SECS", "2")
        .env("PLAYDECK_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run playdeck");
    let stdout = server.stdout.take().expect("stdout");
    let mut server = KillOnDrop(server);
    let base = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("Playdeck is serving on ").map(|u| u.trim().to_string()));
        std::thread::spawn(move || for _ in lines {});
        url
    })
    .await
    .expect("read")
    .expect("the server printed its URL");
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let http = http.clone();
        let url = format!("{base}/api/v1/jobs");
        async move {
            let r = http.post(url).bearer_auth(ADMIN_KEY).json(&body).send().await.expect("launch");
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.expect("json")["job"]["id"].as_i64().expect("id")
        }
    };
    let running = post(
        json!({"source": {"type": "playbook", "path": "sleep.yml"}, "extra_vars": {"cmd": "sleep 313"}}),
    )
    .await;
    let queued = post(json!({"source": {"type": "playbook", "path": "hello.yml"}})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_running("sleep 313").is_empty() {
        if Instant::now() > deadline {
            let job: Value = http
                .get(format!("{base}/api/v1/jobs/{running}"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            panic!("the first job's task did not start: {job}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A crash: no chance to record anything.
    server.0.kill().expect("kill -9");
    let _ = server.0.wait();

    let app = spawn_app_on(pg, |c| {
        c.engine.playbook_dir = dir;
        c.engine.ansible_playbook = Some(program);
        c.engine.lease = Duration::from_secs(2);
    })
    .await;
    bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);
    let crashed = wait_job(&app, running, Duration::from_secs(30), |j| j["status"] != "running").await;
    assert_eq!(crashed["status"], "error");
    let why = crashed["explanation"].as_str().unwrap_or("");
    assert!(why.contains("stopped unexpectedly"), "{why}");
    assert!(why.contains("still running, was stopped"), "the orphaned playbook was found and stopped: {why}");
    wait_no_process("sleep 313").await;
    let next = wait_job(&app, queued, Duration::from_secs(60), |j| {
        j["status"] == "successful" || j["status"] == "failed" || j["status"] == "error"
    })
    .await;
    assert_eq!(next["status"], "successful", "the queued job survived the crash and ran: {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_playdeck_unreachable_the_playbook_still_succeeds_and_the_plugin_says_what_was_lost() {
    let program = ansible_playbook();
    let plugins = temp_dir("plugin");
    std::fs::write(plugins.join("playdeck.py"), bff::engine::CALLBACK_PLUGIN).expect("plugin");
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let started = Instant::now();
    let out = tokio::process::Command::new(program)
        .arg(examples().join("playbooks/hello.yml"))
        .current_dir(examples().join("playbooks"))
        .env("ANSIBLE_CALLBACK_PLUGINS", &plugins)
        .env("ANSIBLE_CALLBACKS_ENABLED", "playdeck")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("PLAYDECK_URL", format!("http://127.0.0.1:{port}"))
        .env("PLAYDECK_INGEST_TOKEN", INGEST_TOKEN)
        .env("PLAYDECK_FINAL_WAIT", "2")
        .output()
        .await
        .expect("run ansible-playbook");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the playbook succeeded: {stderr}");
    assert!(stdout.contains("Hello from Playdeck") && stdout.contains("PLAY RECAP"), "{stdout}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("Playdeck:")).collect();
    assert_eq!(warnings.len(), 1, "said once: {stderr}");
    assert!(
        warnings[0].contains("6 of 6 events") && warnings[0].contains("not delivered"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("refused"), "says why: {}", warnings[0]);
    assert!(took < Duration::from_secs(30), "the end wait is bounded: {took:?}");
}

/// A webhook receiver on loopback: answers `fail_first` times with 500, then 200, and keeps what it got.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String, u16)>>>,
}

async fn receiver(fail_first: usize) -> (String, Receiver) {
    let r = Receiver::default();
    let state = r.clone();
    let handler = move |headers: axum::http::HeaderMap, body: String| {
        let state = state.clone();
        async move {
            let mut got = state.got.lock().expect("lock");
            let code = if got.len() < fail_first { 500 } else { 200 };
            got.push((headers, body, code));
            axum::http::StatusCode::from_u16(code).expect("status")
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/hook"), r)
}

/// Checks a delivery's Standard Webhooks headers against the secret (raw bytes, or `whsec_`).
fn standard_signed(h: &reqwest::header::HeaderMap, secret: &str, body: &str) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let id = h["webhook-id"].to_str().expect("webhook-id").to_string();
    let ts: i64 = h["webhook-timestamp"].to_str().expect("ts").parse().expect("a unix time");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 120, "a fresh timestamp");
    let key = secret
        .strip_prefix("whsec_")
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).expect("base64"))
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let want =
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(h["webhook-signature"].to_str().expect("sig"), want, "the Standard Webhooks signature");
    id
}

fn hmac_hex(secret: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_signed_payloads_and_a_failing_receiver_is_retried() {
    let callback_secret = "callback-secret-for-tests-0123";
    let app = spawn_engine(playbook_dir(), |c| {
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.0/8").expect("rule")];
        c.deliveries.secret = Some(bff::infra::secrets::Secret(callback_secret.into()));
    })
    .await;
    let (flaky_url, flaky) = receiver(2).await;
    let (callback_url, callback) = receiver(0).await;
    let secret = "registered-webhook-secret-0123456789";
    let resp = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"url": flaky_url, "secret": secret, "events": ["job.finished"]}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    let hook: Value = resp.json().await.expect("json");
    let hook_id = hook["id"].as_i64().expect("id");
    let listed = app.get_json("/api/v1/webhooks").await;
    assert!(listed.to_string().find(secret).is_none(), "the secret is never listed");

    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"callback_url": callback_url}, "wait": true}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    assert_eq!(run["job"]["status"], "successful");

    // The job's callback_url: one delivery, signed with the server's callback secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    while callback.got.lock().expect("lock").is_empty() || flaky.got.lock().expect("lock").len() < 3 {
        assert!(Instant::now() < deadline, "deliveries arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (headers, body, _) = callback.got.lock().expect("lock")[0].clone();
    assert_eq!(headers["x-playdeck-signature"].to_str().expect("sig"), hmac_hex(callback_secret, &body));
    standard_signed(&headers, callback_secret, &body);
    assert_eq!(headers["x-playdeck-event"], "job.successful");
    let payload: Value = serde_json::from_str(&body).expect("payload");
    assert_eq!(payload["event"], "job.successful");
    assert_eq!(payload["job"]["id"], id);
    assert_eq!(payload["job"]["status"], "successful");
    assert!(payload["hosts"].is_array() && payload["failed_tasks"].is_array());

    // The registered webhook: 500, 500, then 200, each attempt with the same signed body.
    let got = flaky.got.lock().expect("lock").clone();
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), [500, 500, 200]);
    let mut ids = std::collections::BTreeSet::new();
    for (h, b, _) in &got {
        assert_eq!(b, &got[0].1, "retries send the same body");
        assert_eq!(h["x-playdeck-signature"].to_str().expect("sig"), hmac_hex(secret, b));
        ids.insert(standard_signed(h, secret, b));
    }
    assert_eq!(ids.len(), 1, "retries keep their webhook-id");
    assert_ne!(hmac_hex("wrong secret", &got[0].1), hmac_hex(secret, &got[0].1));
    let deliveries = app.get_json(&format!("/api/v1/webhooks/deliveries?webhook_id={hook_id}")).await;
    let d = &deliveries["results"][0];
    // The attempt is recorded just after the receiver answered.
    let d = eventually("the delivery recorded as delivered", || async {
        Some(app.get_json(&format!("/api/v1/webhooks/deliveries/{}", d["id"])).await)
            .filter(|d| d["state"] == "delivered")
    })
    .await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert_eq!(d["attempts"], 3);
    let codes: Vec<i64> =
        d["attempt_log"].as_array().expect("log").iter().filter_map(|a| a["status_code"].as_i64()).collect();
    assert_eq!(codes, [500, 500, 200]);
    assert!(d["attempt_log"][0]["error"].as_str().unwrap_or("").contains("500"));

    // A job that ended elsewhere (a controller's, through ingest) gets its delivery too.
    app.ingest_ok(&json!({"source": "aap", "job": {"external_id": "77", "status": "failed"}, "events": []}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while flaky.got.lock().expect("lock").len() < 4 {
        assert!(Instant::now() < deadline, "the controller's job was delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last: Value = serde_json::from_str(&flaky.got.lock().expect("lock")[3].1).expect("payload");
    assert_eq!(last["event"], "job.failed");
    assert_eq!(last["job"]["source"], "aap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_launches_are_refused_with_clear_4xx() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    let pb = |path: &str| json!({"source": {"type": "playbook", "path": path}});
    for (body, needle) in [
        (pb("../../etc/passwd"), "`..` is not allowed"),
        (pb("/etc/passwd"), "not an absolute path"),
        (pb("escape.yml"), "leads outside"),
        (pb("missing.yml"), "there is no \"missing.yml\""),
        (pb("hello.txt"), "not a playbook"),
        (json!({"source": {"type": "svn", "path": "x.yml"}}), "unknown variant `svn`"),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "inventroy": {}}),
            "unknown field `inventroy`",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "inventory": {"type": "inline", "hosts": []}}),
            "at least one host",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"},
                   "inventory": {"type": "inline", "hosts": ["web-01"], "groups": {"webservers": ["web-03"]}}}),
            "names \"web-03\", which is not in `inventory.hosts`",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"},
                   "inventory": {"type": "inline", "hosts": ["web-01"], "groups": {"web-servers": ["web-01"]}}}),
            "not a usable group name",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"},
                   "inventory": {"type": "inline", "hosts": ["web 01"]}}),
            "not a host name",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "inventory": {"type": "file", "path": "../../../etc/hosts"}}),
            "`..` is not allowed",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "inventory": {"type": "file", "path": "nope.yml"}}),
            "inventory directory",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"timeout": 0}}),
            "`options.timeout`",
        ),
        // Beyond the engine's maximum (PLAYDECK_ENGINE_MAX_TIMEOUT), which the answer names.
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"timeout": 3601}}),
            "must be between 1 and 3600 seconds, got 3601",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"verbosity": 9}}),
            "verbosity",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"callback_url": "http://127.0.0.1:9/x"}}),
            "loopback",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"callback_url": "http://169.254.169.254/x"}}),
            "link-local",
        ),
        (
            json!({"source": {"type": "playbook", "path": "hello.yml"}, "options": {"callback_url": "ftp://example.com/x"}}),
            "only http and https",
        ),
        (
            json!({"source": {"type": "git", "repo": "--upload-pack=evil", "path": "x.yml"}}),
            "not a repository URL",
        ),
        (
            json!({"source": {"type": "git", "repo": "https://example.com/r.git", "path": "../x.yml"}}),
            "`..` is not allowed",
        ),
    ] {
        let detail = assert_error(launch(&app, body.clone()).await, 422).await;
        assert!(detail.contains(needle), "{body} → {detail:?} should say {needle:?}");
    }
    // Not JSON at all.
    let resp = app
        .http
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_error(resp, 400).await;
    // Registering a webhook on a private address without the allow-list.
    let resp = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"url": "http://10.1.2.3/hook"}))
        .send()
        .await
        .expect("post");
    assert!(assert_error(resp, 422).await.contains("private"));
    // Nothing was queued by any of that.
    assert_eq!(app.count("select count(*) from engine_jobs").await, 0);
    // Cancel of a job the engine did not launch, and of no job.
    let ingested = app.ingest_ok(&batch("elsewhere-1", vec![])).await;
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/jobs/{}/cancel", ingested["job_id"])))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("cancel");
    assert!(assert_error(resp, 409).await.contains("not launched by Playdeck's local engine"));
    let resp = app
        .http
        .post(app.url("/api/v1/jobs/999999/cancel"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("cancel");
    assert_error(resp, 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_of_a_run_are_explained_by_the_knowledge_base() {
    let app = spawn_engine(playbook_dir(), |_| {}).await;
    let dir = app.state.config.engine.playbook_dir.clone();
    std::fs::write(
        dir.join("fail.yml"),
        "- name: Maintenance\n  hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Clean the cache\n      ansible.builtin.shell: \"echo 'write error: No space left on device' >&2; exit 1\"\n",
    )
    .expect("write playbook");
    // web-01 runs locally and fails its command; db-09 is a host nobody listens for.
    let inventory = json!({"type": "inline", "hosts": ["web-01", "db-09"], "host_vars": {
        "web-01": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "db-09": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody",
                  "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5"}}});
    let (_, run) = launch_ok(
        &app,
        json!({"source": {"type": "playbook", "path": "fail.yml"}, "inventory": inventory, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "failed", "{run}");
    let id = run["job"]["id"].as_i64().expect("id");
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    let explanations = job["explanations"].as_array().expect("explanations");
    let by_host =
        |h: &str| explanations.iter().find(|e| e["host"] == h).unwrap_or_else(|| panic!("{h}: {job}"));
    let titles = |e: &Value| -> Vec<String> {
        e["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| m["title"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let web = by_host("web-01");
    assert_eq!(web["task"], "Clean the cache");
    assert_eq!(web["event"], "runner_on_failed");
    assert_eq!(titles(web), vec!["No space left on device"], "{web}");
    let db = by_host("db-09");
    assert_eq!(db["event"], "runner_on_unreachable");
    assert!(db["error"].as_str().unwrap_or("").to_lowercase().contains("connection refused"), "{db}");
    assert_eq!(titles(db), vec!["Host unreachable (network, DNS or SSH down)"], "{db}");
}

/// A receiver that always fails is tried `max_attempts` times, then the delivery is given up:
/// `failed`, nothing scheduled, each attempt on record, and no further request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_always_fails_is_given_up_after_the_maximum_attempts() {
    let app = spawn_app_with(quick_deliveries).await;
    let (url, sink) = receiver(usize::MAX).await;
    let resp = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"url": url, "events": ["job.finished"]}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    let hook_id = resp.json::<Value>().await.expect("json")["id"].as_i64().expect("id");
    app.ingest_ok(&json!({"source": "aap", "job": {"external_id": "9", "status": "failed"}, "events": []}))
        .await;
    let d = eventually("the delivery is given up", || async {
        let page = app.get_json(&format!("/api/v1/webhooks/deliveries?webhook_id={hook_id}")).await;
        let d = page["results"][0].clone();
        (d["state"] == "failed").then_some(d)
    })
    .await;
    let d = app.get_json(&format!("/api/v1/webhooks/deliveries/{}", d["id"])).await;
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(d["next_attempt"].is_null(), "nothing more is scheduled: {d}");
    let codes: Vec<i64> =
        d["attempt_log"].as_array().expect("log").iter().filter_map(|a| a["status_code"].as_i64()).collect();
    assert_eq!(codes, [500, 500, 500]);
    assert_eq!(sink.got.lock().expect("lock").len(), 3, "the receiver was asked three times");
    let pending = app
        .count(&format!(
            "select count(*) from webhook_deliveries where webhook_id = {hook_id} and state = 'pending'"
        ))
        .await;
    assert_eq!(pending, 0);
}
