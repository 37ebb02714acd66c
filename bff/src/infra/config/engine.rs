//! Settings of the local engine: where playbooks and inventories are, how many jobs run at once,
//! timeouts, and where the callback plugin posts.

use std::path::PathBuf;
use std::time::Duration;

/// Where playbooks are, how many run at once, where ansible-playbook is.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Playbooks the engine may run (`PLAYDECK_PLAYBOOK_DIR`); launches name paths inside it.
    pub playbook_dir: PathBuf,
    /// Inventory files a launch may name (`PLAYDECK_INVENTORY_DIR`).
    pub inventory_dir: PathBuf,
    /// `PLAYDECK_ANSIBLE_PLAYBOOK`; unset: `.venv/bin/ansible-playbook` beside the project, else PATH.
    pub ansible_playbook: Option<PathBuf>,
    /// Jobs this process runs at once (`PLAYDECK_ENGINE_CONCURRENCY`).
    pub concurrency: usize,
    /// Seconds a job may run when its launch does not say (`PLAYDECK_ENGINE_TIMEOUT`).
    pub default_timeout: u64,
    /// The longest timeout a launch may ask for (`PLAYDECK_ENGINE_MAX_TIMEOUT`).
    pub max_timeout: u64,
    /// Between SIGTERM and SIGKILL when a job is canceled or times out.
    pub kill_grace: Duration,
    /// A running job whose heartbeat is older than this was left by a crash (`PLAYDECK_ENGINE_LEASE_SECS`).
    pub lease: Duration,
    /// How often a worker looks for queued jobs launched through another replica.
    pub poll: Duration,
    /// Where the callback plugin sends events (`PLAYDECK_ENGINE_INGEST_URL`); unset: this server's
    /// own listen address.
    pub ingest_url: Option<String>,
    /// Whether `file://` git repositories may be run (`PLAYDECK_GIT_ALLOW_FILE`).
    pub git_allow_file: bool,
}

pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

impl EngineConfig {
    /// An Ansible command (`ansible-playbook`, `ansible-inventory`): beside the
    /// `PLAYDECK_ANSIBLE_PLAYBOOK` setting when it is set (the setting itself for
    /// `ansible-playbook`), else in `.venv/bin` of the working directory or beside the project's
    /// sources, else on PATH.
    pub fn ansible_tool(&self, tool: &str) -> Option<PathBuf> {
        if let Some(p) = &self.ansible_playbook {
            if tool == "ansible-playbook" {
                return Some(p.clone());
            }
            let beside = p.with_file_name(tool);
            if beside.is_file() {
                return Some(beside);
            }
        }
        let venv = format!(".venv/bin/{tool}");
        let beside = [PathBuf::from(&venv), project_root().join(&venv)];
        if let Some(p) = beside.into_iter().find(|p| p.is_file()) {
            return Some(p.canonicalize().unwrap_or(p));
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
    }

    pub fn from_env() -> Result<EngineConfig, String> {
        use super::env::{flag, positive as num, var};
        Ok(EngineConfig {
            playbook_dir: PathBuf::from(
                var("PLAYDECK_PLAYBOOK_DIR").unwrap_or_else(|| "examples/playbooks".into()),
            ),
            inventory_dir: PathBuf::from(
                var("PLAYDECK_INVENTORY_DIR").unwrap_or_else(|| "examples/inventories".into()),
            ),
            ansible_playbook: var("PLAYDECK_ANSIBLE_PLAYBOOK").map(PathBuf::from),
            concurrency: num("PLAYDECK_ENGINE_CONCURRENCY", 4)? as usize,
            default_timeout: num("PLAYDECK_ENGINE_TIMEOUT", 3600)?,
            max_timeout: num("PLAYDECK_ENGINE_MAX_TIMEOUT", 86400)?,
            kill_grace: Duration::from_secs(num("PLAYDECK_ENGINE_KILL_GRACE_SECS", 10)?),
            lease: Duration::from_secs(num("PLAYDECK_ENGINE_LEASE_SECS", 30)?),
            poll: Duration::from_secs(1),
            ingest_url: var("PLAYDECK_ENGINE_INGEST_URL"),
            git_allow_file: flag("PLAYDECK_GIT_ALLOW_FILE"),
        })
    }

    /// The project's examples, short grace periods and leases.
    pub fn for_tests() -> EngineConfig {
        let root = project_root();
        EngineConfig {
            playbook_dir: root.join("examples/playbooks"),
            inventory_dir: root.join("examples/inventories"),
            ansible_playbook: None,
            concurrency: 2,
            default_timeout: 600,
            max_timeout: 3600,
            kill_grace: Duration::from_secs(3),
            lease: Duration::from_secs(3),
            poll: Duration::from_millis(300),
            ingest_url: None,
            git_allow_file: true,
        }
    }
}
