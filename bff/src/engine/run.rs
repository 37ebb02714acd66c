//! One job's run: its directory (inventory and extra vars in files only the server's user can read,
//! never on the command line), ansible-playbook in a process group of its own with the callback
//! plugin, the heartbeat, cancel and timeout (SIGTERM to the group, SIGKILL after the grace
//! period), and the final status from the exit and the events.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use shared::JobStatus;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::queue::{self, Claimed, Pulse};
use super::Engine;
use super::Stop;
use crate::infra::state::AppState;

/// How a run ended, as recorded.
struct End {
    status: JobStatus,
    explanation: Option<String>,
    exit_code: Option<i32>,
    /// False when another process already recorded it (this one lost the job's lease).
    record: bool,
}

impl End {
    fn error(explanation: String) -> End {
        End { status: JobStatus::Error, explanation: Some(explanation), exit_code: None, record: true }
    }
}

/// Why this process stopped the playbook.
enum Stopped {
    Cancel(String),
    Timeout,
    Shutdown,
    Lost,
}

/// Runs a claimed job to its end and records it; the permit frees a concurrency slot when done.
pub async fn run(app: AppState, job: Claimed, _permit: OwnedSemaphorePermit) {
    let job_id = job.job_id;
    let (tx, rx) = mpsc::channel(4);
    if let Ok(mut r) = Engine::of(&app).running.lock() {
        r.insert(job_id, tx);
    }
    // Absolute: ansible-playbook runs in the project's directory, and a relative data directory
    // (the demo's `.playdeck`) would point elsewhere from there.
    let dir = app.config.data_dir.join("engine/jobs").join(job_id.to_string());
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    // The directory holds the run's secrets: it goes whatever way this ends (a panic included).
    let _dir_guard = RemoveOnDrop(dir.clone());
    let end = execute(&app, &job, &dir, rx).await;
    if end.record {
        if let Err(e) =
            queue::finish(&app, job_id, end.status, end.explanation.as_deref(), end.exit_code).await
        {
            tracing::error!(job = job_id, error = %e, "could not record the end of a local job");
        }
    }
    drop(_dir_guard);
    if let Ok(mut r) = Engine::of(&app).running.lock() {
        r.remove(&job_id);
    }
    tracing::info!(job = job_id, status = %end.status, "local job ended");
    Engine::of(&app).ended.send_modify(|n| *n += 1);
    crate::deliveries::wake(&app);
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn execute(app: &AppState, job: &Claimed, dir: &Path, mut rx: mpsc::Receiver<Stop>) -> End {
    let config = &Engine::of(app).config;
    if let Err(e) = make_private_dir(dir) {
        return End::error(format!("the job's directory {} cannot be made: {e}", dir.display()));
    }
    // Fetching sources and credentials counts against the job's timeout too.
    let preparing = super::prepare::prepare(app, &job.pending, dir, job.timeout);
    let mut prepared = match tokio::time::timeout(job.timeout, preparing).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return End::error(e),
        Err(_) => {
            return End::error(format!(
            "preparing the run (sources, inventory, credentials) took longer than the job's timeout of {} s",
            job.timeout.as_secs()
        ))
        }
    };
    if prepared.revision.is_some() || prepared.inventory_label.is_some() {
        if let Err(e) = queue::set_revision(
            app,
            job.job_id,
            prepared.revision.as_deref(),
            prepared.inventory_label.as_deref(),
        )
        .await
        {
            tracing::warn!(job = job.job_id, error = %e, "could not record the job's revision");
        }
    }
    let project = prepared.project.clone();
    let mut args: Vec<String> = vec![prepared.playbook.display().to_string()];
    args.append(&mut prepared.args);
    let options = &job.spec["options"];
    let list = |key: &str| -> Option<String> {
        let items: Vec<&str> = options[key].as_array()?.iter().filter_map(Value::as_str).collect();
        (!items.is_empty()).then(|| items.join(","))
    };
    if let Some(t) = list("tags") {
        args.push(format!("--tags={t}"));
    }
    if let Some(t) = list("skip_tags") {
        args.push(format!("--skip-tags={t}"));
    }
    if let Some(l) = options["limit"].as_str() {
        args.push(format!("--limit={l}"));
    }
    if let Some(v) = options["verbosity"].as_u64().filter(|v| *v > 0) {
        args.push(format!("-{}", "v".repeat(v.min(5) as usize)));
    }
    if options["check_mode"].as_bool() == Some(true) {
        args.push("--check".into());
    }
    if options["diff_mode"].as_bool() == Some(true) {
        args.push("--diff".into());
    }
    if let Some(f) = options["forks"].as_u64() {
        args.push(format!("--forks={f}"));
    }

    let Some(program) = config.ansible_tool("ansible-playbook") else {
        return End::error(
            "ansible-playbook was not found: set PLAYDECK_ANSIBLE_PLAYBOOK, or run `cargo xtask setup` to create .venv"
                .into(),
        );
    };
    let Some(plugin_dir) = Engine::of(app).plugin_dir.get() else {
        return End::error(
            "the callback plugin could not be written to the data directory; see the server's log".into(),
        );
    };
    let url = Engine::of(app).ingest_url.borrow().clone().unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.args(&args).current_dir(&project).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    child_env(&mut cmd, plugin_dir, &url, app.ingest_token.expose(), job.job_id);
    if let Some(ca) = Engine::of(app).callback_ca() {
        cmd.env("PLAYDECK_CA_FILE", ca).env("PLAYDECK_TLS_CHECK_HOSTNAME", "false");
    }
    cmd.envs(prepared.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // A process group of its own: cancel and timeout signal the whole run, not just its leader.
    cmd.process_group(0).kill_on_drop(true);
    // Never log `cmd` itself: its Debug shows the environment, which holds the ingest token.
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return End::error(format!("{} could not be started: {e}", program.display())),
    };
    let Some(pid) = child.id() else {
        return End::error("ansible-playbook ended before it could be watched".into());
    };
    if let Err(e) = queue::started(app, job.job_id, pid).await {
        tracing::warn!(job = job.job_id, error = %e, "could not record that a local job started");
    }
    let stderr = child.stderr.take().map(|s| tokio::spawn(tail(s, 32 * 1024)));

    let pid = pid as i32;
    let grace = config.kill_grace;
    let beat_every = (config.lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut beat = tokio::time::interval(beat_every);
    let timeout = tokio::time::sleep(job.timeout);
    tokio::pin!(timeout);
    let shutdown = crate::infra::state::shutting_down(app.shutdown.clone());
    tokio::pin!(shutdown);
    let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut killed = false;
    let mut stopped: Option<Stopped> = None;
    // The run's processes when it was told to stop: its workers sit in sessions of their own, and
    // once ansible-playbook is gone they are no longer found below it.
    let mut tree: Vec<i32> = Vec::new();
    let status = loop {
        let before = stopped.is_some();
        tokio::select! {
            s = child.wait() => break s,
            Some(stop) = rx.recv(), if stopped.is_none() => {
                stopped = Some(match stop { Stop::Cancel(by) => Stopped::Cancel(by), Stop::Shutdown => Stopped::Shutdown });
            }
            _ = &mut timeout, if stopped.is_none() => stopped = Some(Stopped::Timeout),
            _ = &mut shutdown, if stopped.is_none() => stopped = Some(Stopped::Shutdown),
            _ = beat.tick() => match queue::heartbeat(app, job.job_id).await {
                Ok(Pulse::Fine) => {}
                Ok(Pulse::CancelRequested(by)) => if stopped.is_none() { stopped = Some(Stopped::Cancel(by)) },
                Ok(Pulse::Lost) => if stopped.is_none() { stopped = Some(Stopped::Lost) },
                Err(e) => tracing::warn!(job = job.job_id, error = %e, "heartbeat failed"),
            },
            _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() && !killed => {
                tree.extend(descendants(pid));
                kill_pids(pid, &tree);
                killed = true;
            }
        }
        if !before && stopped.is_some() {
            tree = descendants(pid);
            signal(-pid, libc::SIGTERM);
            kill_at = Some(tokio::time::Instant::now() + grace);
        }
    };
    if stopped.is_some() && !killed {
        // ansible-playbook ended, but a task that ignores SIGTERM can outlive it: what is left gets
        // the rest of the grace period, then SIGKILL.
        let until = kill_at.unwrap_or_else(tokio::time::Instant::now);
        while !alive(&tree).is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left = alive(&tree);
        if !left.is_empty() {
            kill_pids(pid, &left);
            killed = true;
        }
    }
    let stderr = match stderr {
        Some(h) => tokio::time::timeout(Duration::from_secs(3), h)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut stderr = crate::infra::text::strip_ansi(&String::from_utf8_lossy(&stderr));
    for secret in &prepared.redact {
        stderr = stderr.replace(secret.as_str(), crate::infra::secrets::MASK);
    }
    drop(prepared.agent.take());
    let how = |what: &str| {
        if killed {
            format!(
                "{what}: the run was sent SIGTERM, and what still ran {} s later SIGKILL",
                grace.as_secs()
            )
        } else {
            format!("{what}: ansible-playbook was stopped with SIGTERM")
        }
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return End::error(format!("ansible-playbook could not be waited for: {e}")),
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status.code();
    match stopped {
        Some(Stopped::Lost) => {
            return End { status: JobStatus::Error, explanation: None, exit_code, record: false };
        }
        Some(Stopped::Cancel(by)) => {
            return End {
                status: JobStatus::Canceled,
                explanation: Some(how(&format!("canceled by {by}"))),
                exit_code,
                record: true,
            }
        }
        Some(Stopped::Timeout) => {
            return End {
                status: JobStatus::Failed,
                explanation: Some(how(&format!("timed out after {} s", job.timeout.as_secs()))),
                exit_code,
                record: true,
            }
        }
        Some(Stopped::Shutdown) => {
            return End {
                status: JobStatus::Error,
                explanation: Some(how("Playdeck shut down during the run")),
                exit_code,
                record: true,
            }
        }
        None => {}
    }
    let lost = stderr
        .lines()
        .find(|l| l.contains("Playdeck:") && l.contains("not delivered"))
        .map(|l| l.trim_start_matches("[WARNING]:").trim().to_string());
    let stats = match app.pool.get().await {
        Ok(db) => db
            .query_one(
                "select exists (select 1 from job_events where job_id = $1 and event = 'playbook_on_stats')",
                &[&job.job_id],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false),
        Err(_) => false,
    };
    match (exit_code, status.signal()) {
        (Some(0), _) => End { status: JobStatus::Successful, explanation: lost, exit_code, record: true },
        // 2: a host failed, 4: a host unreachable; the events say which.
        (Some(c), _) if stats || (matches!(c, 2 | 4) && lost.is_some()) => {
            End { status: JobStatus::Failed, explanation: lost, exit_code, record: true }
        }
        (Some(c), _) => End {
            status: JobStatus::Error,
            explanation: Some(format!(
                "ansible-playbook exited with code {c} before the run ended{}",
                summary(&stderr).map(|s| format!(":\n{s}")).unwrap_or_default()
            )),
            exit_code,
            record: true,
        },
        (None, sig) => End {
            status: JobStatus::Error,
            explanation: Some(format!("ansible-playbook was killed by signal {}", sig.unwrap_or(0))),
            exit_code,
            record: true,
        },
    }
}

/// The environment of a run: only what ansible needs from the server's (never its database URL,
/// keys or tokens), the operator's ANSIBLE_* settings, and the callback plugin's settings.
fn child_env(cmd: &mut Command, plugin_dir: &Path, url: &str, token: &str, job_id: i64) {
    const PASS: [&str; 11] = [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "TZ",
        "SSH_AUTH_SOCK",
        "TERM",
    ];
    cmd.env_clear();
    let mut plugins = plugin_dir.display().to_string();
    let mut enabled = "playdeck".to_string();
    let mut interpreter = false;
    for (k, v) in std::env::vars() {
        if k == "ANSIBLE_CALLBACK_PLUGINS" {
            plugins = format!("{plugins}:{v}");
        } else if k == "ANSIBLE_CALLBACKS_ENABLED" {
            enabled = format!("{v},{enabled}");
        } else if k.starts_with("ANSIBLE_") || PASS.contains(&k.as_str()) {
            interpreter |= k == "ANSIBLE_PYTHON_INTERPRETER";
            cmd.env(&k, &v);
        }
    }
    if !interpreter {
        cmd.env("ANSIBLE_PYTHON_INTERPRETER", "auto_silent");
    }
    if std::env::var_os("ANSIBLE_HOST_KEY_CHECKING").is_none() {
        // As AWX: hosts reached with a job's credential are not in any known_hosts file.
        cmd.env("ANSIBLE_HOST_KEY_CHECKING", "False");
    }
    cmd.env("ANSIBLE_CALLBACK_PLUGINS", plugins)
        .env("ANSIBLE_CALLBACKS_ENABLED", enabled)
        .env("ANSIBLE_FORCE_COLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("PLAYDECK_URL", url)
        .env("PLAYDECK_INGEST_TOKEN", token)
        .env("PLAYDECK_SOURCE", "local")
        .env("PLAYDECK_JOB_EXTERNAL_ID", job_id.to_string());
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The last `keep` bytes of a stream, read to its end.
async fn tail<R: AsyncRead + Unpin>(mut r: R, keep: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 2 * keep {
            buf.drain(..buf.len() - keep);
        }
    }
    if buf.len() > keep {
        buf.drain(..buf.len() - keep);
    }
    buf
}

/// What ansible-playbook said about an error: from its first ERROR line, a few lines.
fn summary(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let from = lines.iter().position(|l| l.contains("ERROR")).unwrap_or(lines.len().saturating_sub(8));
    let mut text = lines[from..].iter().take(12).copied().collect::<Vec<_>>().join("\n");
    if text.len() > 2000 {
        let mut cut = 2000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(text)
}

/// Whether `pid` is the ansible-playbook of this job (its environment names the job), so recovery
/// never signals an unrelated process that reused the pid.
pub fn is_job_process(pid: i32, job_id: i64) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let want = format!("PLAYDECK_JOB_EXTERNAL_ID={job_id}");
    env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
}

/// Stops a run for good: SIGKILL to its process group and to every process below it (workers sit
/// in sessions of their own, so the group alone does not reach them).
pub fn kill_tree(pid: i32) {
    if pid <= 1 {
        return;
    }
    let below = descendants(pid);
    kill_pids(pid, &below);
}

/// SIGKILL to the group of `leader` and to each of `pids` still running.
fn kill_pids(leader: i32, pids: &[i32]) {
    if leader > 1 {
        signal(-leader, libc::SIGKILL);
    }
    for p in pids {
        if *p > 1 {
            signal(*p, libc::SIGKILL);
        }
    }
}

#[allow(unsafe_code)]
fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and has no memory effects; a pid (or group) that is gone
    // only makes it fail with ESRCH, which is what we want to ignore.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Those of `pids` still running (not yet reaped zombies aside).
fn alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rfind(')').map(|i| !s[i + 1..].trim_start().starts_with('Z')))
                .unwrap_or(false)
        })
        .collect()
}

/// Every process below `root`, from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: std::collections::HashMap<i32, Vec<i32>> = std::collections::HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // The command name is in parentheses and may hold anything; fields follow the last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            for k in kids {
                out.push(*k);
                stack.push(*k);
            }
        }
    }
    out
}
