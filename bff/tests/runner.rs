//! Playdeck's callback plugin inside ansible-runner, as AWX and AAP run playbooks (a real
//! `ansible-runner` from PyPI, in `.venv`): runner's display callback wraps each event's output in
//! base64 event markers, which runner's own stdout file drops. What Playdeck stores is the same
//! output as runner's stdout file, line for line, without a marker.

mod common;

use std::path::PathBuf;

use common::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_ansible_runner_the_stored_output_is_runners_own_without_its_event_markers() {
    let app = spawn_app().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv/bin");
    let runner = venv.join("ansible-runner");
    assert!(runner.is_file(), "ansible-runner is in .venv (cargo xtask setup installs it)");
    let dir = temp_dir("runner");
    for sub in ["project", "inventory", "env"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    std::fs::write(dir.join("project/site.yml"), PLAYBOOK).expect("playbook");
    std::fs::write(
        dir.join("inventory/hosts"),
        "web-01 ansible_connection=local ansible_python_interpreter=auto_silent\n",
    )
    .expect("inventory");
    let plugins = root.join("deploy/collection/plugins/callback");
    let envvars = format!(
        "ANSIBLE_CALLBACK_PLUGINS: {}\nANSIBLE_CALLBACKS_ENABLED: playdeck\nPLAYDECK_URL: {}\nPLAYDECK_INGEST_TOKEN: {}\nPLAYDECK_JOB_EXTERNAL_ID: runner-1\nPLAYDECK_FINAL_WAIT: 10\n",
        plugins.display(),
        app.url(""),
        INGEST_TOKEN
    );
    std::fs::write(dir.join("env/envvars"), envvars).expect("envvars");
    let path = format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default());
    let out = tokio::process::Command::new(&runner)
        .args(["run", &dir.display().to_string(), "-p", "site.yml", "--ident", "one", "-q"])
        .env("PATH", path)
        .output()
        .await
        .expect("run ansible-runner");
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
