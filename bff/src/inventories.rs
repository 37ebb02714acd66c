//! `/api/v1/inventories`: the inventory files of `PLAYDECK_INVENTORY_DIR` with their groups and
//! hosts as Ansible itself reads them (`ansible-inventory --list`), each read cached until its
//! file changes. The launch form's host picker, survey choices from an inventory and the request
//! box read inventories through [`Inventories::read`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use shared::playbooks::{InventoryFile, InventoryGroup};
use shared::{Page, Role};
use tokio::sync::Semaphore;

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::paths::{files_in, resolve_in};
use crate::infra::state::{App, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list)).route("/{name}/hosts", get(hosts))
}

/// Files listed at most (a directory of more is cut, and says so in the log).
const MAX_FILES: usize = 1000;
/// How long `ansible-inventory` may take for one file.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest output read from it.
const MAX_OUTPUT: usize = 64 << 20;

/// What identifies a version of a file: a change of any of these reads it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp { modified: m.modified().ok(), len: m.len() })
    }
}

/// What `ansible-inventory` said of a file: its groups and hosts, or why it could not read it.
pub type Read = Arc<Result<InventoryFile, String>>;

/// The inventories' service: the cache of what `ansible-inventory` said, and the limit on how many
/// run at once (each is a Python process of about a second).
pub struct Inventories {
    cache: Mutex<HashMap<PathBuf, (Stamp, Read)>>,
    running: Semaphore,
}

impl Default for Inventories {
    fn default() -> Self {
        Inventories { cache: Mutex::default(), running: Semaphore::new(2) }
    }
}

impl Inventories {
    pub fn of(app: &App) -> &Inventories {
        app.service::<Inventories>()
    }

    /// An inventory file by its name in the inventory directory, with its groups and hosts; an
    /// unreadable file is `Ok` with its `error` (a name outside the directory is the `Err`).
    pub async fn read(app: &App, name: &str) -> Result<Read, AppError> {
        let full = resolve_in(
            &app.config.engine.inventory_dir,
            name,
            "inventory.path",
            "inventory directory (PLAYDECK_INVENTORY_DIR)",
        )?;
        if !full.is_file() {
            return Err(AppError::Unprocessable(format!(
                "`inventory.path`: {name:?} is a directory, not an inventory file"
            )));
        }
        let me = Inventories::of(app);
        let stamp = Stamp::of(&full);
        if let Some((s, listing)) = me.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&full) {
            if Some(*s) == stamp {
                return Ok(listing.clone());
            }
        }
        let listing = Arc::new(match app.config.engine.ansible_tool("ansible-inventory") {
            Some(program) => run_ansible_inventory(app, &program, &full).await.map(|v| listing(name, &v)),
            None => Err("ansible-inventory is not installed (it comes with ansible-core)".into()),
        });
        // A file that does not read is remembered too, until it changes.
        if let Some(stamp) = stamp {
            me.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(full, (stamp, listing.clone()));
        }
        Ok(listing)
    }
}

/// Runs an Ansible command that only reads (`ansible-inventory`, `ansible-playbook --list-hosts`),
/// at most two at once: no colour or deprecation noise, an inventory that does not parse is an
/// error, no input, killed after `within`. The error is why it could not run.
pub async fn run_reading(
    app: &App,
    mut cmd: tokio::process::Command,
    what: &str,
    within: Duration,
) -> Result<std::process::Output, String> {
    cmd.env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "false")
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let _slot = Inventories::of(app).running.acquire().await.map_err(|_| "shutting down".to_string())?;
    tokio::time::timeout(within, cmd.output())
        .await
        .map_err(|_| format!("{what} did not answer within {} s", within.as_secs()))?
        .map_err(|e| format!("{what} cannot be run: {e}"))
}

async fn run_ansible_inventory(app: &App, program: &Path, file: &Path) -> Result<Value, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("-i").arg(file).args(["--list", "--export"]).current_dir(file.parent().unwrap_or(Path::new("/")));
    let out = run_reading(app, cmd, "ansible-inventory", READ_TIMEOUT).await?;
    if !out.status.success() {
        return Err(format!("ansible-inventory could not read it: {}", last_words(&out.stderr)));
    }
    if out.stdout.len() > MAX_OUTPUT {
        return Err(format!("ansible-inventory said more than {} MiB", MAX_OUTPUT >> 20));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("ansible-inventory's answer is not JSON: {e}"))
}

/// What a failed Ansible command said, as one line: its `ERROR!` (or last) lines, colour removed.
pub fn last_words(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let from = lines.iter().position(|l| l.starts_with("ERROR!") || l.starts_with("[ERROR]"));
    let chosen: Vec<&str> = match from {
        Some(i) => lines[i..].iter().take(2).copied().collect(),
        None => lines.iter().rev().take(3).rev().copied().collect(),
    };
    let words = chosen.join(" ");
    let words = words.trim_start_matches("ERROR!").trim_start_matches("[ERROR]:").trim();
    let mut out: String = words.chars().take(600).collect();
    if out.is_empty() {
        out = "no reason given".into();
    }
    out
}

/// `ansible-inventory --list` JSON as groups and hosts (variables are left out: they may hold
/// secrets and the form does not need them).
fn listing(name: &str, v: &Value) -> InventoryFile {
    let mut direct: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let strings = |x: Option<&Value>| -> Vec<String> {
        x.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    if let Some(obj) = v.as_object() {
        for (group, body) in obj {
            if group == "_meta" {
                continue;
            }
            let entry = direct.entry(group.clone()).or_default();
            entry.0 = strings(body.get("hosts"));
            entry.1 = strings(body.get("children"));
            for child in &entry.1.clone() {
                direct.entry(child.clone()).or_default();
            }
        }
    }
    let mut all_hosts: BTreeSet<String> = BTreeSet::new();
    for (hosts, _) in direct.values() {
        all_hosts.extend(hosts.iter().cloned());
    }
    let groups = direct
        .iter()
        .map(|(group, (hosts, children))| InventoryGroup {
            name: group.clone(),
            hosts: hosts.clone(),
            children: children.clone(),
            host_count: if group == "all" { all_hosts.len() } else { members(&direct, group).len() },
        })
        .collect();
    InventoryFile {
        name: name.to_owned(),
        host_count: all_hosts.len(),
        groups,
        hosts: all_hosts.into_iter().collect(),
        error: None,
    }
}

/// Every host of `group` and its children (a cycle is read once).
fn members(direct: &BTreeMap<String, (Vec<String>, Vec<String>)>, group: &str) -> BTreeSet<String> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut out = BTreeSet::new();
    let mut todo = vec![group];
    while let Some(g) = todo.pop() {
        if !seen.insert(g) {
            continue;
        }
        if let Some((hosts, children)) = direct.get(g) {
            out.extend(hosts.iter().cloned());
            todo.extend(children.iter().map(String::as_str));
        }
    }
    out
}

/// The hosts of a group of a read inventory (and of its children); `all` is every host.
pub fn hosts_of(inv: &InventoryFile, group: &str) -> Option<BTreeSet<String>> {
    if group == "all" {
        return Some(inv.hosts.iter().cloned().collect());
    }
    inv.groups.iter().find(|g| g.name == group)?;
    let direct: BTreeMap<String, (Vec<String>, Vec<String>)> =
        inv.groups.iter().map(|g| (g.name.clone(), (g.hosts.clone(), g.children.clone()))).collect();
    Some(members(&direct, group))
}

/// The groups inside `group` (its children, theirs, …), or every group but `all` and
/// `ungrouped`.
pub fn groups_of(inv: &InventoryFile, group: Option<&str>) -> Option<BTreeSet<String>> {
    let Some(top) = group else {
        return Some(
            inv.groups.iter().map(|g| g.name.clone()).filter(|g| g != "all" && g != "ungrouped").collect(),
        );
    };
    inv.groups.iter().find(|g| g.name == top)?;
    let mut out = BTreeSet::new();
    let mut todo = vec![top.to_owned()];
    while let Some(g) = todo.pop() {
        if let Some(found) = inv.groups.iter().find(|x| x.name == g) {
            for c in &found.children {
                if out.insert(c.clone()) {
                    todo.push(c.clone());
                }
            }
        }
    }
    Some(out)
}

/// The inventory files of the directory by their names in it: files of the usual inventory kinds
/// (`.yml`, `.yaml`, `.json`, `.ini` or none), not `group_vars`/`host_vars` nor hidden ones.
pub fn files(dir: &Path) -> Vec<String> {
    let keep = |name: &str| {
        let ext = Path::new(name).extension().and_then(|x| x.to_str()).unwrap_or("");
        matches!(ext, "yml" | "yaml" | "json" | "ini" | "")
    };
    files_in(dir, 3, &["group_vars", "host_vars"], keep, MAX_FILES).into_iter().map(|f| f.rel).collect()
}

/// Only operators launch, so only they are shown what a launch may name (`what`: the inventories,
/// the playbooks).
pub fn may_list(caller: &Caller, what: &str) -> Result<(), AppError> {
    if caller.access.max_role().is_some_and(|r| r >= Role::Operator) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("{:?} may not launch, so is not shown the {what}", caller.name)))
    }
}

/// Whether a local launch of this playbook, or on this inventory, or both, is one the caller's
/// operator bindings allow somewhere: what the launch form lists for them.
pub fn may_name(caller: &Caller, playbook: Option<&str>, inventory: Option<&str>) -> bool {
    let target = crate::infra::access::Target { source: "local", template: playbook, inventory };
    caller.access.allows_some(Role::Operator, &target)
}

/// `GET /api/v1/inventories`: each file with its groups (their host lists left out) and host count.
async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Page<InventoryFile>>, AppError> {
    may_list(&caller, "inventories")?;
    let dir = app.config.engine.inventory_dir.clone();
    let mut names = tokio::task::spawn_blocking(move || files(&dir))
        .await
        .map_err(|e| AppError::Internal(format!("listing inventories: {e}")))?;
    names.retain(|n| may_name(&caller, None, Some(n)));
    // Read two at a time (as many as may run at once), in the listing's order.
    use futures_util::StreamExt;
    let reads: Vec<(String, Result<Read, AppError>)> = futures_util::stream::iter(names)
        .map(|name| {
            let app = &app;
            async move {
                let read = Inventories::read(app, &name).await;
                (name, read)
            }
        })
        .buffered(2)
        .collect()
        .await;
    let mut results = Vec::with_capacity(reads.len());
    for (name, read) in reads {
        results.push(match read?.as_ref() {
            Ok(inv) => InventoryFile {
                groups: inv
                    .groups
                    .iter()
                    .map(|g| InventoryGroup { hosts: Vec::new(), ..g.clone() })
                    .collect(),
                hosts: Vec::new(),
                ..inv.clone()
            },
            Err(e) => InventoryFile {
                name,
                host_count: 0,
                groups: Vec::new(),
                hosts: Vec::new(),
                error: Some(e.clone()),
            },
        });
    }
    Ok(Json(Page { count: results.len() as i64, count_exact: true, next: None, previous: None, results }))
}

/// `GET /api/v1/inventories/{name}/hosts`: one file's groups with their hosts, and every host
/// (`name` is its path in the directory, `/` written `%2F`).
async fn hosts(
    State(app): State<AppState>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<InventoryFile>, AppError> {
    may_list(&caller, "inventories")?;
    if !may_name(&caller, None, Some(&name)) {
        return Err(AppError::NotFound(format!("there is no inventory {name:?} that you may launch on")));
    }
    let read = Inventories::read(&app, &name).await.map_err(|e| match e {
        AppError::Unprocessable(m) => AppError::NotFound(m),
        other => other,
    })?;
    match read.as_ref() {
        Ok(inv) => Ok(Json(inv.clone())),
        Err(e) => Err(AppError::Unprocessable(format!("inventory {name:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ansible_inventorys_list_becomes_groups_and_hosts() {
        let v = json!({
            "_meta": {"hostvars": {"web-01": {"secret": "x"}}},
            "all": {"children": ["ungrouped", "prod"]},
            "prod": {"children": ["webservers", "databases"]},
            "webservers": {"hosts": ["web-01", "web-02"]},
            "databases": {"hosts": ["db-01"]},
            "ungrouped": {"hosts": ["lonely"]}
        });
        let inv = listing("demo.yml", &v);
        assert_eq!(inv.host_count, 4);
        assert_eq!(inv.hosts, ["db-01", "lonely", "web-01", "web-02"]);
        let prod = inv.groups.iter().find(|g| g.name == "prod").expect("prod");
        assert_eq!(prod.host_count, 3);
        assert_eq!(hosts_of(&inv, "prod").map(|h| h.len()), Some(3));
        assert_eq!(hosts_of(&inv, "nope"), None);
        assert_eq!(
            groups_of(&inv, None).map(|g| g.into_iter().collect::<Vec<_>>()),
            Some(vec!["databases".into(), "prod".into(), "webservers".into()])
        );
        assert_eq!(groups_of(&inv, Some("prod")).map(|g| g.len()), Some(2));
        assert!(!serde_json::to_string(&inv).expect("json").contains("secret"));
    }

    #[test]
    fn the_last_words_of_a_failure_are_its_error() {
        let err = b"[WARNING]: something\nERROR! Unable to parse /x/bad.yml as an inventory source\n";
        assert_eq!(last_words(err), "Unable to parse /x/bad.yml as an inventory source");
        assert_eq!(last_words(b""), "no reason given");
    }
}
