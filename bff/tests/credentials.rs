//! Credentials and the sources and inventories that use them, with real parts: a real sshd on a
//! loopback port that only lets the stored key in, a fake HashiCorp Vault answering KV version 2,
//! Ansible Vault data decrypted with the looked-up password, a role from a git repository, a
//! collection role from a tarball built by ansible-galaxy, inventories from git, a URL and an
//! inventory plugin. Secrets are then searched for everywhere: database, logs, events, stdout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post as post_route};
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};

// ---- captured logs ----------------------------------------------------------------------------

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

// ---- helpers ----------------------------------------------------------------------------------

fn venv_tool(name: &str) -> PathBuf {
    ansible_playbook().with_file_name(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_repo(dir: &Path) -> String {
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(["-c", "user.name=Playdeck Tests", "-c", "user.email=tests@playdeck.invalid"])
            .args(args)
            .current_dir(dir))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "content"]);
    git(&["rev-parse", "HEAD"]).trim().to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A playbook directory with one playbook that runs on every host locally. Installs the log
/// capture first, so every test of this file can grep the server's logs for secrets.
fn local_playbooks() -> PathBuf {
    log_buffer();
    let playbooks = temp_dir("playbooks");
    write(
        &playbooks.join("local.yml"),
        "- name: Every host, locally\n  hosts: all\n  gather_facts: false\n  connection: local\n\
         \x20 vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  tasks:\n\
         \x20   - name: Name the host\n      ansible.builtin.debug:\n        msg: \"I am {{ inventory_hostname }}\"\n\
         \x20   - name: Name the region\n      ansible.builtin.debug:\n        msg: \"region={{ lookup('env', 'CLOUD_REGION') }}\"\n      run_once: true\n",
    );
    playbooks
}

async fn create_credential(app: &TestApp, body: Value) -> Value {
    let resp = post_as(app, "/api/v1/credentials", ADMIN_KEY, Some(body)).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).expect("json")
}

async fn launch_wait(app: &TestApp, body: Value) -> Value {
    let resp = post_as(app, "/api/v1/jobs", ADMIN_KEY, Some(body)).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "launch answered {status}: {text}");
    serde_json::from_str(&text).expect("json")
}

async fn stdout_of(app: &TestApp, id: i64) -> String {
    app.get(&format!("/api/v1/jobs/{id}/stdout")).await.text().await.expect("stdout")
}

/// Every row of every table of the app's database, as text.
async fn database_text(app: &TestApp) -> String {
    let db = app.db().await;
    let tables: Vec<String> = db
        .query("select tablename from pg_tables where schemaname = 'public'", &[])
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut all = String::new();
    for t in tables {
        for r in db.query(&format!("select t::text from {t} t"), &[]).await.expect("rows") {
            all.push_str(r.get::<_, &str>(0));
            all.push('\n');
        }
    }
    all
}

/// A user name sshd lets in: whoever runs the tests (root in CI).
fn me() -> String {
    run(Command::new("id").arg("-un")).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A real sshd on a loopback port that accepts only `authorized` keys (no passwords).
struct Sshd {
    port: u16,
    child: std::process::Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(dir: &Path, authorized: &[String]) -> Sshd {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().map(PathBuf::from).find(|p| p.is_file()).expect(
        "sshd is not installed: `cargo xtask test` installs Debian's openssh-server (apt-get install openssh-server)",
    );
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join("host_key")));
    write(&dir.join("authorized_keys"), &authorized.join("\n"));
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n\
         Subsystem sftp internal-sftp\n",
        d = dir.display()
    );
    write(&dir.join("sshd_config"), &config);
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).expect("log"))
        .spawn()
        .expect("start sshd");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Sshd { port, child }
}

fn keypair(dir: &Path, name: &str, passphrase: &str) -> (String, String) {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", name, "-N", passphrase, "-f"])
        .arg(&path));
    (
        std::fs::read_to_string(&path).expect("private key"),
        std::fs::read_to_string(path.with_extension("pub")).expect("public key").trim().to_string(),
    )
}

/// The long lines of a private key's body: what must never be seen anywhere.
fn key_lines(key: &str) -> Vec<String> {
    key.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16).map(str::to_string).collect()
}

/// A fake HashiCorp Vault: AppRole login and one KV version 2 secret, in Vault's own shapes.
async fn fake_vault(secret_path: &'static str, data: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    const TOKEN: &str = "hvs.CAESIJfaketokenfortests0123456789";
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_login = seen.clone();
    let seen_read = seen.clone();
    let app = Router::new()
        .route(
            "/v1/auth/approle/login",
            post_route(move |Json(body): Json<Value>| {
                let seen = seen_login.clone();
                async move {
                    seen.lock().expect("lock").push("login".into());
                    if body["role_id"] != "ci-role" || body["secret_id"] != "ci-secret-id-0042" {
                        return (StatusCode::BAD_REQUEST, Json(json!({"errors": ["invalid role or secret ID"]})));
                    }
                    (
                        StatusCode::OK,
                        Json(json!({"request_id": "9a1f", "lease_id": "", "renewable": false, "lease_duration": 0,
                                    "data": null, "wrap_info": null, "warnings": null,
                                    "auth": {"client_token": TOKEN, "accessor": "acc", "policies": ["ci"],
                                             "token_policies": ["ci"], "metadata": {"role_name": "ci"},
                                             "lease_duration": 1200, "renewable": true, "entity_id": "e",
                                             "token_type": "service", "orphan": true}})),
                    )
                }
            }),
        )
        .route(
            "/v1/{*path}",
            get(move |axum::extract::Path(path): axum::extract::Path<String>, headers: HeaderMap| {
                let seen = seen_read.clone();
                let data = data.clone();
                async move {
                    seen.lock().expect("lock").push(format!("read {path}"));
                    if headers.get("x-vault-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
                        return (StatusCode::FORBIDDEN, Json(json!({"errors": ["permission denied"]})));
                    }
                    if path != secret_path {
                        return (StatusCode::NOT_FOUND, Json(json!({"errors": []})));
                    }
                    (
                        StatusCode::OK,
                        Json(json!({"request_id": "c2d4", "lease_id": "", "renewable": false, "lease_duration": 0,
                                    "data": {"data": data,
                                             "metadata": {"created_time": "2026-11-20T09:12:01.945319214Z",
                                                          "custom_metadata": null, "deletion_time": "",
                                                          "destroyed": false, "version": 3}},
                                    "wrap_info": null, "warnings": null, "auth": null})),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sealed_shown_by_name_only_and_checked() {
    let app = spawn_engine(local_playbooks(), |_| {}).await;
    let dir = temp_dir("creds-api");
    let (private, _) = keypair(&dir, "api_key", "");
    let created = create_credential(
        &app,
        json!({"name": "prod-ssh-key", "kind": "ssh_key", "description": "deploy user",
               "inputs": {"private_key": private, "username": "deploy"}}),
    )
    .await;
    assert_eq!(created["name"], "prod-ssh-key");
    assert_eq!(created["kind"], "ssh_key");
    assert!(created.get("inputs").is_none(), "{created}");
    let list = app.get_json("/api/v1/credentials").await;
    assert_eq!(list["count"], 1);
    let shown = list.to_string();
    for line in key_lines(&private) {
        assert!(!shown.contains(&line), "the key shows in the list");
    }
    assert!(!shown.contains("deploy\""), "inputs show in the list: {shown}");
    // Sealed at rest: not a byte of the key in the database.
    let db = database_text(&app).await;
    for line in key_lines(&private) {
        assert!(!db.contains(&line), "the key is in the database in the clear");
    }
    assert!(db.contains("prod-ssh-key"));

    // Refusals: duplicate, bad kinds and inputs, malformed JSON, roles, unknown names.
    let dup = post_as(
        &app,
        "/api/v1/credentials",
        ADMIN_KEY,
        Some(
            json!({"name": "prod-ssh-key", "kind": "password", "inputs": {"username": "u", "password": "p"}}),
        ),
    )
    .await;
    assert_error(dup, 409).await;
    for (body, want) in [
        (json!({"name": "x", "kind": "ssh_key", "inputs": {"private_key": "not a key"}}), "private key"),
        (json!({"name": "x", "kind": "password", "inputs": {"username": "u"}}), "inputs.password"),
        (
            json!({"name": "x", "kind": "password", "inputs": {"username": "u", "password": "p", "extra": "1"}}),
            "extra",
        ),
        (json!({"name": "bad name!", "kind": "vault_password", "inputs": {"password": "p"}}), "name"),
        (
            json!({"name": "v", "kind": "hashicorp_vault", "inputs": {"address": "http://127.0.0.1:1"}}),
            "token",
        ),
        (
            json!({"name": "e", "kind": "environment", "inputs": {"variables": {"LD_PRELOAD": "/x.so"}}}),
            "variables",
        ),
    ] {
        let resp = post_as(&app, "/api/v1/credentials", ADMIN_KEY, Some(body.clone())).await;
        let msg = assert_error(resp, 422).await;
        assert!(msg.contains(want), "{body} → {msg}");
    }
    let resp = post_as(
        &app,
        "/api/v1/credentials",
        ADMIN_KEY,
        Some(json!({"name": "x", "kind": "telepathy", "inputs": {}})),
    )
    .await;
    assert!(matches!(resp.status().as_u16(), 400 | 422), "{}", resp.status());
    let resp = app
        .http
        .post(app.url("/api/v1/credentials"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("post");
    assert_error(resp, 400).await;
    // An operator may list (to name them in launches) but not create or delete.
    let key = post_as(&app, "/api/v1/keys", ADMIN_KEY, Some(json!({"name": "ci", "role": "operator"}))).await;
    let operator = key.json::<Value>().await.expect("key")["secret"].as_str().expect("secret").to_string();
    let resp = post_as(
        &app,
        "/api/v1/credentials",
        &operator,
        Some(json!({"name": "y", "kind": "vault_password", "inputs": {"password": "p"}})),
    )
    .await;
    assert_error(resp, 403).await;
    let resp = app.http.get(app.url("/api/v1/credentials")).bearer_auth(&operator).send().await.expect("get");
    assert_eq!(resp.status(), 200);
    let resp = app
        .http
        .delete(app.url("/api/v1/credentials/prod-ssh-key"))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("delete");
    assert_error(resp, 403).await;

    // Launches that name what does not exist, or the wrong kind, are refused before anything runs.
    for (body, want) in [
        (
            json!({"source": {"type": "playbook", "path": "local.yml"}, "credentials": {"ssh": "nope"}}),
            "no credential",
        ),
        (
            json!({"source": {"type": "playbook", "path": "local.yml"}, "credentials": {"vault_password": "prod-ssh-key"}}),
            "ssh_key credential",
        ),
        (
            json!({"source": {"type": "playbook", "path": "local.yml"},
                "credentials": {"vault_password": {"type": "hashicorp_vault", "vault_path": "secret/ci", "vault_key": "k"}}}),
            "hashicorp_vault credential",
        ),
        (
            json!({"source": {"type": "playbook", "path": "local.yml"}, "credentials": {"sshh": "prod-ssh-key"}}),
            "sshh",
        ),
    ] {
        let resp = post_as(&app, "/api/v1/jobs", ADMIN_KEY, Some(body.clone())).await;
        let msg = assert_error(resp, 422).await;
        assert!(msg.contains(want), "{body} → {msg}");
    }
    let resp = app
        .http
        .delete(app.url("/api/v1/credentials/prod-ssh-key"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let resp = app
        .http
        .delete(app.url("/api/v1/credentials/prod-ssh-key"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("delete");
    assert_error(resp, 404).await;
    let audit = app.get_json("/api/v1/audit").await.to_string();
    assert!(audit.contains("credential created") && audit.contains("credential deleted"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_from_git_reaches_sshd_with_a_stored_key_and_a_vault_password_from_hashicorp_vault() {
    let c = role_repo_sshd_and_vault().await;
    let id = the_stored_key_and_the_vault_password_from_vault_run_the_role(&c).await;
    without_the_key_ssh_refuses(&c).await;
    let given_id = a_key_given_with_the_launch_is_used_once(&c).await;
    a_stored_vault_password_decrypts_the_same_variable(&c).await;
    a_wrong_vault_path_errs_in_vaults_words(&c).await;
    no_secret_is_in_the_database_the_api_or_the_logs(&c, &[id, given_id]).await;
    the_job_directories_are_gone(&c);
}

/// What the steps of the ssh test share: the app with its credentials, the keys, the role's
/// repository, one host behind the test sshd, and what the fake Vault was asked.
struct SshCase {
    app: TestApp,
    dir: PathBuf,
    stored_key: String,
    given_key: String,
    repo: PathBuf,
    commit: String,
    inventory: Value,
    vault_seen: Arc<Mutex<Vec<String>>>,
    _sshd: Sshd,
}

const VAULT_PASS: &str = "vault-pass-from-hashicorp-31337";
const PLAINTEXT: &str = "the decrypted deployment message";

/// The role's repository (a vault-encrypted variable, written by the role on the host), an sshd
/// that knows two keys, a fake HashiCorp Vault with the vault password, and the credentials.
async fn role_repo_sshd_and_vault() -> SshCase {
    let app = spawn_engine(local_playbooks(), |_| {}).await;
    let dir = temp_dir("ssh");
    let (stored_key, stored_pub) = keypair(&dir, "stored_key", "correct horse battery");
    let (given_key, given_pub) = keypair(&dir, "given_key", "");
    let sshd = start_sshd(&dir, &[stored_pub, given_pub]);

    let pass_file = dir.join("vault_pass.txt");
    write(&pass_file, VAULT_PASS);
    let encrypted = run(Command::new(venv_tool("ansible-vault"))
        .args(["encrypt_string", "--vault-password-file"])
        .arg(&pass_file)
        .args([PLAINTEXT, "--name", "deploy_message"])
        .env("ANSIBLE_NOCOLOR", "1"));
    std::fs::remove_file(&pass_file).expect("rm");
    let repo = temp_dir("role-repo");
    write(&repo.join("roles/deploy/vars/main.yml"), &format!("---\n{encrypted}\n"));
    write(
        &repo.join("roles/deploy/tasks/main.yml"),
        "- name: Write the message\n  ansible.builtin.copy:\n    content: \"{{ deploy_message }}\"\n    dest: \"{{ out_file }}\"\n\
         - name: Ask who runs\n  ansible.builtin.command: id -un\n  register: who\n  changed_when: false\n\
         - name: Say who ran\n  ansible.builtin.debug:\n    msg: \"ran as {{ who.stdout }}\"\n",
    );
    let commit = git_repo(&repo);

    let (vault_url, vault_seen) =
        fake_vault("secret/data/ci/ansible", json!({"vault_pass": VAULT_PASS, "other": "x"})).await;
    create_credential(
        &app,
        json!({"name": "ci-vault", "kind": "hashicorp_vault",
               "inputs": {"address": vault_url, "role_id": "ci-role", "secret_id": "ci-secret-id-0042"}}),
    )
    .await;
    create_credential(
        &app,
        json!({"name": "prod-ssh-key", "kind": "ssh_key",
               "inputs": {"private_key": stored_key, "passphrase": "correct horse battery", "username": me()}}),
    )
    .await;

    let python = venv_tool("python3");
    let inventory = json!({"type": "inline", "hosts": ["web-01"],
        "host_vars": {"web-01": {"ansible_host": "127.0.0.1", "ansible_port": sshd.port,
                                  "ansible_python_interpreter": python.display().to_string()}}});
    SshCase { app, dir, stored_key, given_key, repo, commit, inventory, vault_seen, _sshd: sshd }
}

/// The stored (passphrase-protected) key reaches sshd through the agent, and the vault password
/// read from Vault decrypts the role's variable. Answers the job's id.
async fn the_stored_key_and_the_vault_password_from_vault_run_the_role(c: &SshCase) -> i64 {
    let out_file = c.dir.join("message.txt");
    let run = launch_wait(
        &c.app,
        json!({"source": {"type": "role", "repo": format!("file://{}", c.repo.display()), "branch": "main",
                          "path": "roles/deploy", "role_vars": {"out_file": out_file.display().to_string()}},
               "inventory": c.inventory,
               "credentials": {"ssh": "prod-ssh-key",
                               "vault_password": {"type": "hashicorp_vault", "vault_path": "secret/ci/ansible",
                                                  "vault_key": "vault_pass"}},
               "wait": true}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    let stdout = stdout_of(&c.app, id).await;
    assert_eq!(run["job"]["status"], "successful", "{run}\n{stdout}");
    assert_eq!(run["job"]["scm_revision"], c.commit.as_str(), "the job records the commit it ran");
    assert_eq!(run["job"]["template"], "role deploy");
    assert_eq!(std::fs::read_to_string(&out_file).expect("the role wrote its file"), PLAINTEXT);
    assert!(
        stdout.contains(&format!("ran as {}", me())),
        "the command ran over ssh as the key's user: {stdout}"
    );
    assert!(c.vault_seen.lock().expect("lock").iter().any(|s| s == "read secret/data/ci/ansible"));
    let last_used = c.app.get_json("/api/v1/credentials/prod-ssh-key").await;
    assert!(last_used["last_used"].is_string(), "{last_used}");
    id
}

/// The same hosts without the key: ssh refuses, so the key is what let the run in.
async fn without_the_key_ssh_refuses(c: &SshCase) {
    let run = launch_wait(
        &c.app,
        json!({"source": {"type": "role", "repo": format!("file://{}", c.repo.display()), "path": "roles/deploy",
                          "role_vars": {"out_file": c.dir.join("nope.txt").display().to_string()}},
               "inventory": c.inventory,
               "credentials": {"vault_password": {"type": "hashicorp_vault", "vault_path": "secret/data/ci/ansible",
                                                  "vault_key": "vault_pass", "credential": "ci-vault"}},
               "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "failed", "{run}");
    assert_eq!(run["failed_tasks"][0]["event"], "unreachable", "{run}");
}

/// A key given with the launch (used once, not stored), without a passphrase: --private-key.
async fn a_key_given_with_the_launch_is_used_once(c: &SshCase) -> i64 {
    let run = launch_wait(
        &c.app,
        json!({"source": {"type": "playbook", "path": "local.yml"},
               "inventory": c.inventory,
               "credentials": {"ssh": {"type": "value", "value": c.given_key, "username": me()}},
               "wait": true}),
    )
    .await;
    let given_id = run["job"]["id"].as_i64().expect("id");
    assert_eq!(run["job"]["status"], "successful", "{run}");
    // Such a job cannot be relaunched from its record: its secret is gone.
    let resp =
        post_as(&c.app, &format!("/api/v1/jobs/{given_id}/relaunch"), ADMIN_KEY, Some(json!({}))).await;
    assert_error(resp, 422).await;
    given_id
}

/// A vault password stored as a credential decrypts the same variable.
async fn a_stored_vault_password_decrypts_the_same_variable(c: &SshCase) {
    create_credential(
        &c.app,
        json!({"name": "stored-vault", "kind": "vault_password", "inputs": {"password": VAULT_PASS}}),
    )
    .await;
    let out_again = c.dir.join("message-again.txt");
    let run = launch_wait(
        &c.app,
        json!({"source": {"type": "role", "repo": format!("file://{}", c.repo.display()), "path": "roles/deploy",
                          "role_vars": {"out_file": out_again.display().to_string()}},
               "inventory": c.inventory,
               "credentials": {"ssh": {"type": "value", "value": c.given_key, "username": me()},
                               "vault_password": "stored-vault"},
               "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "successful", "{run}");
    assert_eq!(std::fs::read_to_string(&out_again).expect("written"), PLAINTEXT);
}

/// A wrong vault path: the job errs and says what Vault answered.
async fn a_wrong_vault_path_errs_in_vaults_words(c: &SshCase) {
    let run = launch_wait(
        &c.app,
        json!({"source": {"type": "playbook", "path": "local.yml"},
               "credentials": {"vault_password": {"type": "hashicorp_vault", "vault_path": "secret/ci/missing",
                                                  "vault_key": "vault_pass"}},
               "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "error", "{run}");
    assert!(
        run["job"]["explanation"].as_str().unwrap_or("").contains("no secret at secret/data/ci/missing"),
        "{run}"
    );
}

/// No secret anywhere: database (events, stdout, recorded requests, audit), the API, logs.
async fn no_secret_is_in_the_database_the_api_or_the_logs(c: &SshCase, jobs: &[i64]) {
    let mut secrets: Vec<String> = key_lines(&c.stored_key);
    secrets.extend(key_lines(&c.given_key));
    secrets.extend(
        ["correct horse battery", VAULT_PASS, "ci-secret-id-0042", "hvs.CAESIJfaketokenfortests0123456789"]
            .map(String::from),
    );
    let db = database_text(&c.app).await;
    let mut api = String::new();
    for &id in jobs {
        api.push_str(&stdout_of(&c.app, id).await);
        api.push_str(&c.app.get_json(&format!("/api/v1/jobs/{id}/events?limit=1000")).await.to_string());
        api.push_str(&c.app.get_json(&format!("/api/v1/jobs/{id}")).await.to_string());
    }
    api.push_str(&c.app.get_json("/api/v1/audit").await.to_string());
    let log = logs();
    assert!(log.len() > 1000, "the logs were captured");
    for s in &secrets {
        assert!(!db.contains(s.as_str()), "a secret is in the database: {s:.12}…");
        assert!(!api.contains(s.as_str()), "a secret is shown by the API: {s:.12}…");
        assert!(!log.contains(s.as_str()), "a secret is in the logs: {s:.12}…");
    }
}

/// The job directory with the key files is gone.
fn the_job_directories_are_gone(c: &SshCase) {
    let jobs_dir = c.app.state.config.data_dir.join("engine/jobs");
    let left: Vec<_> =
        std::fs::read_dir(&jobs_dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "job directories left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_secret_is_redacted_from_events_and_stdout() {
    let app = spawn_engine(local_playbooks(), |_| {}).await;
    create_credential(
        &app,
        json!({"name": "become", "kind": "become_password", "inputs": {"password": "s3cr3t-become-pw-4242"}}),
    )
    .await;
    let repo = temp_dir("leaky-repo");
    write(
        &repo.join("tasks/main.yml"),
        "- name: Print what should never be printed\n  ansible.builtin.debug:\n    msg: \"pw={{ db_password }} tok={{ api_token }} arr={{ secrets[1] }}\"\n",
    );
    git_repo(&repo);
    let run = launch_wait(
        &app,
        json!({"source": {"type": "role", "repo": format!("file://{}", repo.display()), "path": ".",
                          "role_vars": {"api_token": "tok-role-var-99887766"}},
               "inventory": {"type": "inline", "hosts": ["h1"], "host_vars": {"h1": {"ansible_connection": "local",
                             "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}},
               // A secret with a quote and a backslash, which JSON escapes; one in a list.
               "extra_vars": {"db_password": "s3cr3t\"quote\\pw-4242", "secrets": ["first-secret-1", "arr-secret-7777"]},
               "credentials": {"become_password": "become"}, "wait": true}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    let stdout = stdout_of(&app, id).await;
    assert_eq!(run["job"]["status"], "successful", "{run}\n{stdout}");
    assert!(stdout.contains("pw=******** tok=******** arr=********"), "{stdout}");
    let db = database_text(&app).await;
    for s in [
        "s3cr3t-become-pw-4242",
        "tok-role-var-99887766",
        "quote\\pw-4242",
        "quote\\\\pw-4242",
        "arr-secret-7777",
    ] {
        assert!(!db.contains(s), "{s} is in the database");
    }
}

/// A tiny HTTP server for one inventory that wants a bearer token.
async fn inventory_server(body: &'static str, token: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = Router::new().route(
        "/cmdb/inventory",
        get(move |headers: HeaderMap| {
            let s = s.clone();
            async move {
                let auth =
                    headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                s.lock().expect("lock").push(auth.clone());
                if auth != format!("Bearer {token}") {
                    return (StatusCode::UNAUTHORIZED, "no".to_string());
                }
                (StatusCode::OK, body.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/cmdb/inventory"), seen)
}

async fn host_names(app: &TestApp, id: i64) -> Vec<String> {
    let hosts = app.get_json(&format!("/api/v1/jobs/{id}/hosts")).await;
    let mut names: Vec<String> = hosts["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["host"].as_str().expect("host").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_roles_and_inventories_from_git_a_url_and_a_plugin() {
    let app = spawn_engine(local_playbooks(), |c| {
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.1/32").expect("rule")];
    })
    .await;

    let tarballs = a_collection_built_by_ansible_galaxy();
    let (inv_url, inv_seen) = a_cmdb_serving_an_ini_inventory_behind_a_token(&app).await;
    a_bound_credential_goes_only_to_its_hosts(&app, &inv_url).await;
    a_collection_role_runs_on_the_cmdb_inventory(&app, &tarballs, &inv_url, &inv_seen).await;
    an_inventory_kept_in_git(&app).await;
    an_inventory_plugin_with_a_cloud_credential(&app).await;
    a_plugin_that_is_not_installed_is_an_error(&app).await;
    private_addresses_and_bad_names_are_refused(&app).await;
}

/// A collection built by ansible-galaxy, served from a directory of tarballs.
fn a_collection_built_by_ansible_galaxy() -> PathBuf {
    let src = temp_dir("collection-src");
    write(
        &src.join("galaxy.yml"),
        "namespace: acme\nname: ops\nversion: 1.4.2\nreadme: README.md\nauthors: [Playdeck Tests]\n",
    );
    write(&src.join("README.md"), "acme.ops\n");
    write(
        &src.join("roles/hello/tasks/main.yml"),
        "- name: Greet from the collection\n  ansible.builtin.debug:\n    msg: \"collection says {{ greeting }}\"\n",
    );
    let tarballs = temp_dir("galaxy");
    run(Command::new(venv_tool("ansible-galaxy"))
        .args(["collection", "build", "--output-path"])
        .arg(&tarballs)
        .arg(&src));
    assert!(tarballs.join("acme-ops-1.4.2.tar.gz").is_file());
    tarballs
}

/// A CMDB serving an INI inventory behind a token. Also stores the `cmdb` credential bound to it.
async fn a_cmdb_serving_an_ini_inventory_behind_a_token(app: &TestApp) -> (String, Arc<Mutex<Vec<String>>>) {
    let (inv_url, inv_seen) = inventory_server(
        "[web]\ncmdb-web-1 ansible_connection=local\ncmdb-web-2 ansible_connection=local\n\
         [web:vars]\nansible_python_interpreter={{ ansible_playbook_python }}\n",
        "cmdb-token-5551212",
    )
    .await;
    create_credential(
        app,
        json!({"name": "cmdb", "kind": "api_token", "inputs": {"token": "cmdb-token-5551212"},
               "hosts": ["127.0.0.1", "*.cmdb.example.com"]}),
    )
    .await;
    assert_eq!(
        app.get_json("/api/v1/credentials/cmdb").await["hosts"],
        json!(["127.0.0.1", "*.cmdb.example.com"])
    );
    (inv_url, inv_seen)
}

/// A credential bound to other hosts is not sent to this one; nor to a file:// repository.
async fn a_bound_credential_goes_only_to_its_hosts(app: &TestApp, inv_url: &str) {
    create_credential(
        app,
        json!({"name": "cmdb-prod", "kind": "api_token", "inputs": {"token": "prod-token-0000"},
               "hosts": ["cmdb.example.com"]}),
    )
    .await;
    for (body, says) in [
        (
            json!({"source": {"type": "playbook", "path": "local.yml"},
                   "inventory": {"type": "url", "url": inv_url, "format": "ini", "credential": "cmdb-prod"}}),
            "`inventory.credential`: credential \"cmdb-prod\" is only for cmdb.example.com; not for http://127.0.0.1",
        ),
        (
            json!({"source": {"type": "git", "repo": "file:///srv/repo", "path": "site.yml", "git_credential": "cmdb-prod"}}),
            "only for cmdb.example.com; not for file:///srv/repo",
        ),
    ] {
        let msg = assert_error(post_as(app, "/api/v1/jobs", ADMIN_KEY, Some(body.clone())).await, 422).await;
        assert!(msg.contains(says), "{body} → {msg}");
    }
    let msg = assert_error(
        post_as(app, "/api/v1/credentials", ADMIN_KEY, Some(json!({"name": "x", "kind": "api_token", "inputs": {"token": "t"}, "hosts": ["https://cmdb.example.com"]})))
        .await,
        422,
    )
    .await;
    assert!(msg.contains("`hosts`"), "{msg}");
    assert!(!database_text(app).await.contains("prod-token-0000"), "sealed");
}

/// The collection's role runs on the CMDB's hosts, the inventory fetched with the bound token.
async fn a_collection_role_runs_on_the_cmdb_inventory(
    app: &TestApp,
    tarballs: &Path,
    inv_url: &str,
    inv_seen: &Mutex<Vec<String>>,
) {
    let run = launch_wait(
        app,
        json!({"source": {"type": "collection_role", "collection": "acme.ops", "role": "hello",
                          "galaxy_server": format!("file://{}", tarballs.display()),
                          "role_vars": {"greeting": "good morning"}},
               "inventory": {"type": "url", "url": inv_url, "format": "ini", "credential": "cmdb"},
               "wait": true}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    let stdout = stdout_of(app, id).await;
    assert_eq!(run["job"]["status"], "successful", "{run}\n{stdout}");
    assert!(stdout.contains("collection says good morning"), "{stdout}");
    assert_eq!(run["job"]["scm_revision"], "acme.ops 1.4.2");
    assert_eq!(host_names(app, id).await, ["cmdb-web-1", "cmdb-web-2"]);
    assert_eq!(inv_seen.lock().expect("lock").as_slice(), ["Bearer cmdb-token-5551212"]);
}

/// An inventory kept in git.
async fn an_inventory_kept_in_git(app: &TestApp) {
    let repo = temp_dir("inventory-repo");
    write(
        &repo.join("inventories/prod/hosts.yml"),
        "all:\n  children:\n    db:\n      hosts:\n        git-db-1:\n          ansible_connection: local\n",
    );
    let commit = git_repo(&repo);
    let run = launch_wait(
        app,
        json!({"source": {"type": "playbook", "path": "local.yml"},
               "inventory": {"type": "git", "repo": format!("file://{}", repo.display()), "path": "inventories/prod/hosts.yml"},
               "wait": true}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    assert_eq!(run["job"]["status"], "successful", "{run}");
    assert_eq!(host_names(app, id).await, ["git-db-1"]);
    assert!(run["job"]["inventory"].as_str().unwrap_or("").contains(&commit[..12]), "{run}");
}

/// An inventory plugin (ansible-core's generator) with its config written for the job, and a cloud credential whose variables reach the run's environment (and are redacted from it).
async fn an_inventory_plugin_with_a_cloud_credential(app: &TestApp) {
    create_credential(
        app,
        json!({"name": "cloud", "kind": "environment", "inputs": {"variables": {"CLOUD_REGION": "eu-north-9-test"}}}),
    )
    .await;
    let run = launch_wait(
        app,
        json!({"source": {"type": "playbook", "path": "local.yml"},
               "inventory": {"type": "dynamic", "plugin": "ansible.builtin.generator",
                             "config": {"hosts": {"name": "gen-{{ tier }}-{{ n }}"},
                                        "layers": {"tier": ["app"], "n": ["1", "2", "3"]}},
                             "cloud_credential": "cloud"},
               "wait": true}),
    )
    .await;
    let id = run["job"]["id"].as_i64().expect("id");
    assert_eq!(run["job"]["status"], "successful", "{run}");
    assert_eq!(host_names(app, id).await, ["gen-app-1", "gen-app-2", "gen-app-3"]);
    let stdout = stdout_of(app, id).await;
    assert!(stdout.contains("region=********") && !stdout.contains("eu-north-9-test"), "{stdout}");
}

/// A plugin that is not installed: an error that says so, not an empty success.
async fn a_plugin_that_is_not_installed_is_an_error(app: &TestApp) {
    let run = launch_wait(
        app,
        json!({"source": {"type": "playbook", "path": "local.yml"},
               "inventory": {"type": "dynamic", "plugin": "nosuch.cloud.hosts", "config": {}}, "wait": true}),
    )
    .await;
    assert_eq!(run["job"]["status"], "error", "{run}");
    assert!(run["job"]["explanation"].as_str().unwrap_or("").contains("inventory"), "{run}");
}

/// Private addresses are refused unless allowed (only 127.0.0.1 is, here).
async fn private_addresses_and_bad_names_are_refused(app: &TestApp) {
    for (body, want) in [
        (
            json!({"source": {"type": "playbook", "path": "local.yml"},
                "inventory": {"type": "url", "url": "http://10.20.30.40/inventory", "format": "yaml"}}),
            "inventory.url",
        ),
        (
            json!({"source": {"type": "collection_role", "collection": "acme.ops", "role": "hello",
                           "galaxy_server": "http://192.168.7.7/api/"}}),
            "galaxy_server",
        ),
        (
            json!({"source": {"type": "playbook", "path": "local.yml"},
                "inventory": {"type": "url", "url": "http://user:pw@127.0.0.1/x", "format": "yaml"}}),
            "credential",
        ),
        (
            json!({"source": {"type": "collection_role", "collection": "Acme.Ops", "role": "hello"}}),
            "collection",
        ),
        (
            json!({"source": {"type": "playbook", "path": "local.yml"},
                "inventory": {"type": "dynamic", "plugin": "x; rm -rf /", "config": {}}}),
            "plugin",
        ),
        (
            json!({"source": {"type": "playbook", "path": "local.yml"},
                "inventory": {"type": "git", "repo": "file:///tmp", "path": "../etc/hosts"}}),
            "inventory.path",
        ),
    ] {
        let resp = post_as(app, "/api/v1/jobs", ADMIN_KEY, Some(body.clone())).await;
        let msg = assert_error(resp, 422).await;
        assert!(msg.contains(want), "{body} → {msg}");
    }
}

/// Every process's command line and environment, by pid (those that can be read).
fn processes() -> Vec<(u32, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let read = |f: &str| {
            std::fs::read(entry.path().join(f))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default()
        };
        out.push((pid, read("cmdline"), read("environ")));
    }
    out
}

/// While a job with a key behind a passphrase, a vault password and a become password runs, no
/// process on the machine holds any of them in its command line or environment (ansible-playbook,
/// its workers, ssh-agent, or anything else), and every file of the job's directory is the
/// owner's alone (files 0600, directories 0700).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_shows_its_secrets_to_no_process_and_keeps_its_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let playbooks = local_playbooks();
    write(
        &playbooks.join("slow.yml"),
        "- name: Slowly\n  hosts: all\n  gather_facts: false\n  connection: local\n\
         \x20 vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  tasks:\n\
         \x20   - name: Wait\n      ansible.builtin.command: sleep 6\n",
    );
    let app = spawn_engine(playbooks, |_| {}).await;
    let dir = temp_dir("proc-keys");
    let passphrase = "proc-passphrase-5151-xyzzy";
    let (key, _) = keypair(&dir, "proc", passphrase);
    let (vault, become_pw) = ("proc-vault-pw-7171-xyzzy", "proc-become-pw-6161-xyzzy");
    for body in [
        json!({"name": "proc-key", "kind": "ssh_key", "inputs": {"private_key": key, "passphrase": passphrase, "username": me()}}),
        json!({"name": "proc-vault", "kind": "vault_password", "inputs": {"password": vault}}),
        json!({"name": "proc-become", "kind": "become_password", "inputs": {"password": become_pw}}),
    ] {
        create_credential(&app, body).await;
    }
    let resp = app
        .http
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"source": {"type": "playbook", "path": "slow.yml"},
                      "inventory": {"type": "inline", "hosts": ["h1"]},
                      "credentials": {"ssh": "proc-key", "vault_password": "proc-vault", "become_password": "proc-become"}}))
        .send()
        .await
        .expect("launch");
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap_or_default());
    let id = resp.json::<Value>().await.expect("json")["job"]["id"].as_i64().expect("id");
    // The run is going: its ansible-playbook is a process, and the sleep task started.
    eventually("the playbook runs its task", || async {
        processes()
            .iter()
            .any(|(_, cmd, _)| cmd.contains("sleep 6") && !cmd.contains("ansible"))
            .then_some(())
    })
    .await;
    let secrets = [passphrase, vault, become_pw];
    let key_body = key_lines(&key);
    let mut seen_playbook = false;
    for (pid, cmd, env) in processes() {
        seen_playbook |= cmd.contains("ansible-playbook") && cmd.contains("slow.yml");
        for s in secrets.iter().map(|s| s.to_string()).chain(key_body.iter().cloned()) {
            assert!(!cmd.contains(&s), "process {pid}'s command line holds a secret: {cmd}");
            assert!(!env.contains(&s), "process {pid}'s environment holds a secret ({cmd})");
        }
    }
    assert!(seen_playbook, "ansible-playbook was among the processes read");
    let jobs_dir = app.state.config.data_dir.join("engine/jobs");
    let mut files = 0;
    let mut stack = vec![jobs_dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.path().symlink_metadata().expect("metadata");
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{} is {mode:o}", e.path().display());
                stack.push(e.path());
            } else if meta.is_file() {
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}: others may read it", e.path().display());
                files += 1;
            }
        }
    }
    assert!(files > 0, "the running job's directory holds its files");
    let job = wait_job(&app, id, std::time::Duration::from_secs(60), |j| {
        j["status"] != "running" && j["status"] != "pending"
    })
    .await;
    assert_eq!(job["status"], "successful", "{job}");
}
