//! Everything a run needs before ansible-playbook starts, in the job's own directory (0700, removed
//! afterwards): the playbook (a path, a git checkout, a generated playbook for a role, a collection
//! installed with ansible-galaxy), the inventory (inline, file, git, URL, plugin config), and the
//! credentials — as files with mode 0600 and environment variables, never on the command line.
//! Also the list of secret strings the callback plugin redacts from every event before it leaves
//! the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use shared::credentials::{CredentialKind, LaunchCredentials};
use shared::engine::{Inventory, InventoryFormat, PlaybookSource};
use tokio::process::{Child, Command};

use super::plan::inline_inventory;
use super::Engine;
use crate::credentials::{self, Opened};
use crate::infra::outbound::strip_userinfo;
use crate::infra::paths::resolve_in;
use crate::infra::secrets::is_secret_key;
use crate::infra::secrets::write_private;
use crate::infra::state::AppState;

/// What the run is: where to run from, what to run, and what to hand over.
#[derive(Default)]
pub struct Prepared {
    pub project: PathBuf,
    pub playbook: PathBuf,
    /// ansible-playbook's arguments after the playbook (no secret among them).
    pub args: Vec<String>,
    /// Extra environment for ansible-playbook.
    pub env: Vec<(String, String)>,
    /// Strings the callback plugin (and the server, for stderr) replace with `********`.
    pub redact: Vec<String>,
    /// The commit (or collection version) that runs.
    pub revision: Option<String>,
    /// A label for the inventory with its commit, when it came from git.
    pub inventory_label: Option<String>,
    /// The job's ssh-agent, when its SSH key has a passphrase; killed when dropped.
    pub agent: Option<Child>,
}

type Fail = String;

/// Builds the run in `dir` from the job's (unmasked) request.
pub async fn prepare(
    app: &AppState,
    pending: &Value,
    dir: &Path,
    within: Duration,
) -> Result<Prepared, Fail> {
    let config = &Engine::of(app).config;
    if let Some(e) = pending.get("unreadable").and_then(Value::as_str) {
        return Err(format!("the job's queued settings cannot be read: {e}"));
    }
    let source: PlaybookSource = serde_json::from_value(pending["source"].clone())
        .map_err(|e| format!("the job's recorded source cannot be read: {e}"))?;
    let inventory: Option<Inventory> = serde_json::from_value(pending["inventory"].clone())
        .map_err(|e| format!("the job's inventory cannot be read: {e}"))?;
    let creds: Option<LaunchCredentials> = serde_json::from_value(pending["credentials"].clone())
        .map_err(|e| format!("the job's credentials cannot be read: {e}"))?;
    let mut p = Prepared::default();
    let clone_within = within.min(Duration::from_secs(600));

    // Secret-named values the caller sent are redacted from the output too (not the inventory's
    // own fields that name stored credentials).
    secret_values(&pending["extra_vars"], &mut p.redact);
    // A survey's password answers, whatever their variables are called.
    for name in pending["masked_vars"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        leaves(&pending["extra_vars"][name], &mut p.redact);
    }
    secret_values(&pending["source"]["role_vars"], &mut p.redact);
    let mut inv = pending["inventory"].clone();
    if let Some(o) = inv.as_object_mut() {
        for k in ["credential", "git_credential", "cloud_credential"] {
            o.remove(k);
        }
    }
    secret_values(&inv, &mut p.redact);

    match &source {
        PlaybookSource::Playbook { path } => {
            p.project = config.playbook_dir.canonicalize().unwrap_or(config.playbook_dir.clone());
            p.playbook = resolve_in(&config.playbook_dir, path, "source.path", "playbook directory")
                .map_err(|e| format!("the playbook can no longer be run: {e}"))?;
        }
        PlaybookSource::Git { repo, branch, path, git_credential } => {
            let checkout = dir.join("src");
            let (branch, credential) = (branch.as_deref(), git_credential.as_deref());
            let rev =
                git_checkout(app, repo, branch, credential, &checkout, dir, clone_within, &mut p.redact)
                    .await?;
            p.playbook = resolve_in(&checkout, path, "source.path", "repository")
                .map_err(|e| format!("{e} ({})", strip_userinfo(repo)))?;
            p.project = checkout;
            p.revision = Some(rev);
        }
        PlaybookSource::Role { repo, branch, path, role_vars, git_credential } => {
            let checkout = dir.join("src");
            let (branch, credential) = (branch.as_deref(), git_credential.as_deref());
            let rev =
                git_checkout(app, repo, branch, credential, &checkout, dir, clone_within, &mut p.redact)
                    .await?;
            let role_dir = if path == "." {
                checkout.canonicalize().map_err(|e| e.to_string())?
            } else {
                resolve_in(&checkout, path, "source.path", "repository")
                    .map_err(|e| format!("{e} ({})", strip_userinfo(repo)))?
            };
            if !role_dir.join("tasks").is_dir() && !role_dir.join("meta").is_dir() {
                return Err(format!(
                    "{path:?} in {} is not a role (it has no tasks/ or meta/ directory)",
                    strip_userinfo(repo)
                ));
            }
            // The role by a name of its own in a roles path of the job's own, so the output reads
            // `TASK [webserver : …]` rather than a directory.
            let name = if path == "." { role_name(&strip_userinfo(repo)) } else { role_name(path) };
            let roles = dir.join("roles");
            std::fs::create_dir_all(&roles).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(&role_dir, roles.join(&name)).map_err(|e| e.to_string())?;
            p.env.push(("ANSIBLE_ROLES_PATH".into(), roles.display().to_string()));
            p.playbook = role_playbook(dir, &name, role_vars)?;
            p.project = checkout;
            p.revision = Some(rev);
        }
        PlaybookSource::CollectionRole {
            collection,
            role,
            version,
            galaxy_server,
            galaxy_credential,
            role_vars,
        } => {
            let version = install_collection(
                app,
                dir,
                collection,
                version.as_deref(),
                galaxy_server.as_deref(),
                galaxy_credential.as_deref(),
                clone_within,
                &mut p,
            )
            .await?;
            p.playbook = role_playbook(dir, &format!("{collection}.{role}"), role_vars)?;
            p.project = dir.to_path_buf();
            p.revision = Some(format!("{collection} {version}"));
        }
    }

    if let Some(inv) = &inventory {
        let file = inventory_file(app, inv, dir, clone_within, &mut p).await?;
        p.args.extend(["-i".into(), file.display().to_string()]);
        if !matches!(inv, Inventory::Inline { .. } | Inventory::File { .. }) {
            // An inventory that does not parse is an error, not an empty run.
            p.env.push(("ANSIBLE_INVENTORY_UNPARSED_FAILED".into(), "True".into()));
        }
    }
    if let Some(c) = &creds {
        credential_files(app, c, dir, &mut p).await?;
    }
    if let Some(vars) = pending.get("extra_vars").filter(|v| v.is_object()) {
        let file = dir.join("extra_vars.json");
        write_private(&file, &vars.to_string())?;
        p.args.extend(["-e".into(), format!("@{}", file.display())]);
    }
    p.redact.retain(|s| s.len() >= 4);
    p.redact.sort();
    p.redact.dedup();
    // Longest first: a secret that starts another is not replaced half-way.
    p.redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let file = dir.join("redact.json");
    write_private(&file, &Value::from(p.redact.clone()).to_string())?;
    p.env.push(("PLAYDECK_REDACT_FILE".into(), file.display().to_string()));
    Ok(p)
}

/// Values of secret-named keys at any depth (all of a secret-named key's value, as `mask` hides it).
fn secret_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                if is_secret_key(k) {
                    leaves(val, out);
                } else {
                    secret_values(val, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| secret_values(x, out)),
        _ => {}
    }
}

fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Object(o) => o.values().for_each(|x| leaves(x, out)),
        Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        _ => {}
    }
}

/// A role's name from its path or repository: the last component, `.git` and odd characters gone.
fn role_name(from: &str) -> String {
    let last =
        from.trim_end_matches('/').rsplit(['/', ':']).next().unwrap_or("role").trim_end_matches(".git");
    let name: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        "role".into()
    } else {
        name
    }
}

/// A playbook that runs one role (by name or FQCN) on every host of the inventory.
fn role_playbook(dir: &Path, role: &str, vars: &Map<String, Value>) -> Result<PathBuf, Fail> {
    let mut entry = json!({ "role": role });
    if !vars.is_empty() {
        entry["vars"] = Value::Object(vars.clone());
    }
    let name = role.rsplit('/').next().unwrap_or(role);
    let play = json!([{ "name": format!("Run role {name}"), "hosts": "all", "roles": [entry] }]);
    let file = dir.join("playbook.yml");
    write_private(&file, &serde_json::to_string_pretty(&play).unwrap_or_default())?;
    Ok(file)
}

/// A checkout of `branch` (or the default branch) of `repo`, for reading what it holds (the
/// launch form's list of its playbooks): checked as a launch's `source.repo` is, fetched through
/// the server's cache of the repository, in a directory of its own (`src/` in it), removed when
/// the answer is dropped (also when the request is cancelled half-way).
pub async fn checkout_for_reading(
    app: &AppState,
    repo: &str,
    branch: Option<&str>,
    credential: Option<&str>,
) -> Result<(crate::infra::paths::Removed, String), crate::infra::error::AppError> {
    let config = &Engine::of(app).config;
    super::plan::check_repo(config, repo, "repo")?;
    super::plan::check_branch(branch, "branch")?;
    let dir = app
        .config
        .data_dir
        .join("engine/reading")
        .join(hex::encode(crate::infra::secrets::random_bytes::<8>()));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| crate::infra::error::AppError::Internal(format!("{}: {e}", dir.display())))?;
    let dir = crate::infra::paths::Removed(dir);
    let into = dir.0.join("src");
    let mut redact = Vec::new();
    match git_checkout(app, repo, branch, credential, &into, &dir.0, Duration::from_secs(60), &mut redact)
        .await
    {
        Ok(commit) => Ok((dir, commit)),
        Err(e) => {
            let mut said = e;
            for secret in redact.iter().filter(|s| s.len() >= 4) {
                said = said.replace(secret.as_str(), crate::infra::secrets::MASK);
            }
            Err(crate::infra::error::AppError::Unprocessable(format!("`repo`: {said}")))
        }
    }
}

/// One lock per cached repository: fetches into one cache never overlap in this process.
type RepoLocks = Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;

fn repo_lock(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<RepoLocks> = OnceLock::new();
    let mut map = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    map.entry(path.to_path_buf()).or_default().clone()
}

/// Fetches `branch` (or the default branch) of `repo` into the server's cache of that repository
/// and checks the commit out into `into`; returns the commit.
#[allow(clippy::too_many_arguments)]
async fn git_checkout(
    app: &AppState,
    repo: &str,
    branch: Option<&str>,
    credential: Option<&str>,
    into: &Path,
    dir: &Path,
    within: Duration,
    redact: &mut Vec<String>,
) -> Result<String, Fail> {
    let shown = strip_userinfo(repo);
    let env = match credential {
        None => Vec::new(),
        Some(name) => {
            let c = open(
                app,
                name,
                &[CredentialKind::SshKey, CredentialKind::Password, CredentialKind::ApiToken],
                "git_credential",
            )
            .await?;
            c.check_target("git_credential", repo).map_err(|e| e.to_string())?;
            redact.extend(c.secrets());
            git_env(&c, dir)?
        }
    };
    let cache = app
        .config
        .data_dir
        .join("engine/git")
        .join(format!("{}.git", &hex::encode(Sha256::digest(shown.as_bytes()))[..20]));
    let cache = std::path::absolute(&cache).unwrap_or(cache);
    let lock = repo_lock(&cache);
    let _held = lock.lock().await;
    if !cache.join("HEAD").is_file() {
        std::fs::create_dir_all(&cache)
            .map_err(|e| format!("the git cache {} cannot be made: {e}", cache.display()))?;
        git(&["init", "--quiet", "--bare"], Some(&cache), &[], within, &shown).await?;
        git(&["config", "gc.auto", "0"], Some(&cache), &[], within, &shown).await?;
    }
    let want = branch.unwrap_or("HEAD");
    git(
        &["fetch", "--quiet", "--depth=1", "--no-tags", "--force", "--", repo, want],
        Some(&cache),
        &env,
        within,
        &shown,
    )
    .await?;
    let commit =
        git(&["rev-parse", "--verify", "FETCH_HEAD^{commit}"], Some(&cache), &[], within, &shown).await?;
    let commit = commit.trim().to_string();
    // Keeps the commit reachable in the cache, and so safe from any cleanup.
    let _ = git(
        &["update-ref", &format!("refs/playdeck/{}", &commit), &commit],
        Some(&cache),
        &[],
        within,
        &shown,
    )
    .await;
    drop(_held);
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    let index = dir.join(".git-index");
    let git_dir = format!("--git-dir={}", cache.display());
    let work_tree = format!("--work-tree={}", into.display());
    let index_env = [("GIT_INDEX_FILE".to_string(), index.display().to_string())];
    git(
        &[&git_dir, &work_tree, "checkout", "--quiet", "--force", &commit, "--", "."],
        None,
        &index_env,
        within,
        &shown,
    )
    .await?;
    let _ = std::fs::remove_file(index);
    Ok(commit)
}

/// How git authenticates with a credential: a key file and ssh command, or an askpass script
/// reading 0600 files.
fn git_env(c: &Opened, dir: &Path) -> Result<Vec<(String, String)>, Fail> {
    let mut env = Vec::new();
    match c.kind {
        CredentialKind::SshKey => {
            if c.get("passphrase").is_some() {
                return Err(format!(
                    "git_credential {:?}: an SSH key with a passphrase cannot be used for git; use a deploy key without one",
                    c.name
                ));
            }
            let key = dir.join("git_key");
            write_private(&key, &key_text(c.get("private_key").unwrap_or_default()))?;
            env.push((
                "GIT_SSH_COMMAND".into(),
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                    key.display()
                ),
            ));
        }
        _ => {
            let secret = c.get("password").or(c.get("token")).unwrap_or_default();
            let user = c.get("username").unwrap_or(if c.kind == CredentialKind::ApiToken {
                "x-access-token"
            } else {
                "git"
            });
            write_private(&dir.join("git_user"), user)?;
            write_private(&dir.join("git_pass"), secret)?;
            let script = dir.join("git_askpass");
            write_private(
                &script,
                &format!(
                    "#!/bin/sh\ncase \"$1\" in\n  Username*) cat '{}' ;;\n  *) cat '{}' ;;\nesac\n",
                    dir.join("git_user").display(),
                    dir.join("git_pass").display()
                ),
            )?;
            set_mode(&script, 0o700)?;
            env.push(("GIT_ASKPASS".into(), script.display().to_string()));
        }
    }
    Ok(env)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Fail> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// A private key as ssh reads it: ending with a newline.
fn key_text(k: &str) -> String {
    let t = k.replace("\r\n", "\n");
    if t.ends_with('\n') {
        t
    } else {
        format!("{t}\n")
    }
}

/// Runs git with a clean, prompt-free environment; returns its stdout.
async fn git(
    args: &[&str],
    cwd: Option<&Path>,
    env: &[(String, String)],
    within: Duration,
    shown: &str,
) -> Result<String, Fail> {
    let mut cmd = Command::new("git");
    // No credential helper may keep what askpass hands over; no user or system config applies.
    cmd.args(["-c", "credential.helper=", "-c", "core.hooksPath=/dev/null"]).args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    // Only what git needs from the server's environment (never its keys or database URL).
    cmd.env_clear()
        .envs(std::env::vars().filter(|(k, _)| {
            matches!(
                k.as_str(),
                "PATH"
                    | "HOME"
                    | "LANG"
                    | "LC_ALL"
                    | "TMPDIR"
                    | "HTTPS_PROXY"
                    | "HTTP_PROXY"
                    | "NO_PROXY"
                    | "https_proxy"
                    | "http_proxy"
                    | "no_proxy"
            )
        }))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let what = args.iter().find(|a| !a.starts_with('-')).copied().unwrap_or("git");
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .map_err(|_| format!("git {what} of {shown} took longer than {} s", within.as_secs()))?
        .map_err(|e| format!("git could not be run: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    for a in args {
        if a.contains("://") && strip_userinfo(a) != *a {
            err = err.replace(a, &strip_userinfo(a));
        }
    }
    Err(format!("git {what} of {shown} failed: {}", err.trim()))
}

async fn open(app: &AppState, name: &str, kinds: &[CredentialKind], field: &str) -> Result<Opened, Fail> {
    credentials::open(app, name, kinds, field).await.map_err(|e| e.to_string())
}

/// Installs a collection into `dir/collections` and points ansible at it; returns its version.
#[allow(clippy::too_many_arguments)]
async fn install_collection(
    app: &AppState,
    dir: &Path,
    collection: &str,
    version: Option<&str>,
    server: Option<&str>,
    credential: Option<&str>,
    within: Duration,
    p: &mut Prepared,
) -> Result<String, Fail> {
    let Some(galaxy) = Engine::of(app)
        .config
        .ansible_tool("ansible-playbook")
        .map(|pb| pb.with_file_name("ansible-galaxy"))
        .filter(|g| g.is_file())
    else {
        return Err("ansible-galaxy was not found beside ansible-playbook".into());
    };
    let target = dir.join("collections");
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let mut env: Vec<(String, String)> = Vec::new();
    let spec = match server.map(|s| reqwest::Url::parse(s).map_err(|e| e.to_string())).transpose()? {
        Some(u) if u.scheme() == "file" => {
            let path = u.to_file_path().map_err(|_| format!("{u} is not a local path"))?;
            local_tarball(&path, collection, version)?.display().to_string()
        }
        other => {
            if let Some(u) = &other {
                crate::infra::outbound::check_url(&app.config.deliveries, u.as_str())
                    .await
                    .map_err(|e| format!("`source.galaxy_server`: {e}"))?;
                env.push(("ANSIBLE_GALAXY_SERVER_LIST".into(), "playdeck".into()));
                env.push(("ANSIBLE_GALAXY_SERVER_PLAYDECK_URL".into(), u.to_string()));
            }
            if let Some(name) = credential {
                let c = open(app, name, &[CredentialKind::ApiToken], "source.galaxy_credential").await?;
                p.redact.extend(c.secrets());
                let Some(u) = &other else {
                    return Err("`source.galaxy_credential` needs `source.galaxy_server`".into());
                };
                c.check_target("source.galaxy_credential", u.as_str()).map_err(|e| e.to_string())?;
                env.push((
                    "ANSIBLE_GALAXY_SERVER_PLAYDECK_TOKEN".into(),
                    c.get("token").unwrap_or_default().into(),
                ));
            }
            match version {
                Some(v) => format!("{collection}:{v}"),
                None => collection.to_string(),
            }
        }
    };
    let mut cmd = Command::new(&galaxy);
    cmd.args(["collection", "install", "--force", "-p"])
        .arg(&target)
        .arg(&spec)
        .current_dir(dir)
        .env_clear()
        .envs(
            std::env::vars()
                .filter(|(k, _)| matches!(k.as_str(), "PATH" | "HOME" | "LANG" | "LC_ALL" | "TMPDIR")),
        )
        .envs(env)
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .map_err(|_| {
            format!("ansible-galaxy took longer than {} s to install {collection}", within.as_secs())
        })?
        .map_err(|e| format!("ansible-galaxy could not be run: {e}"))?;
    if !out.status.success() {
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(format!("ansible-galaxy could not install {collection}: {}", text.trim()));
    }
    let (ns, name) = collection.split_once('.').unwrap_or((collection, ""));
    let manifest = target.join("ansible_collections").join(ns).join(name).join("MANIFEST.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|m| m["collection_info"]["version"].as_str().map(str::to_string))
        .ok_or_else(|| {
            format!("ansible-galaxy said it installed {collection}, but {} is missing", manifest.display())
        })?;
    p.env.push(("ANSIBLE_COLLECTIONS_PATH".into(), target.display().to_string()));
    Ok(installed)
}

/// A collection tarball: the file itself, or in a directory `namespace-name-version.tar.gz` (the
/// version asked for, else the newest release by semantic versioning, as ansible-galaxy picks it:
/// a pre-release only when there is nothing else).
fn local_tarball(path: &Path, collection: &str, version: Option<&str>) -> Result<PathBuf, Fail> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let prefix = format!("{}-", collection.replace('.', "-"));
    let found: Vec<(String, PathBuf)> = std::fs::read_dir(path)
        .map_err(|e| format!("`source.galaxy_server` {}: {e}", path.display()))?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let v = n.strip_prefix(&prefix)?.strip_suffix(".tar.gz")?.to_string();
            Some((v, e.path()))
        })
        .collect();
    let pick = match version {
        Some(v) => found.into_iter().find(|(fv, _)| fv == v).map(|(_, p)| p),
        None => newest(found),
    };
    pick.ok_or_else(|| {
        format!(
            "there is no {collection}{} tarball in {}",
            version.map(|v| format!(" {v}")).unwrap_or_default(),
            path.display()
        )
    })
}

/// The newest of these versions (releases before pre-releases; names that are not semantic
/// versions are never "newest").
fn newest<T>(found: Vec<(String, T)>) -> Option<T> {
    found
        .into_iter()
        .filter_map(|(v, t)| semver::Version::parse(&v).ok().map(|v| (v.pre.is_empty(), v, t)))
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .map(|(_, _, t)| t)
}

#[cfg(test)]
mod newest_tests {
    #[test]
    fn the_newest_release_wins_over_pre_releases_and_odd_names() {
        let pick = |vs: &[&str]| super::newest(vs.iter().map(|v| (v.to_string(), v.to_string())).collect());
        assert_eq!(pick(&["1.2.0", "1.10.0", "1.9.9"]).as_deref(), Some("1.10.0"));
        assert_eq!(pick(&["1.2.0", "2.0.0-rc.1"]).as_deref(), Some("1.2.0"), "a pre-release is not newest");
        assert_eq!(pick(&["2.0.0-rc.1", "2.0.0-rc.2"]).as_deref(), Some("2.0.0-rc.2"));
        assert_eq!(pick(&["1.0.0", "1.0.0+build.5"]).as_deref(), Some("1.0.0+build.5"));
        assert_eq!(pick(&["latest", "1.0.0"]).as_deref(), Some("1.0.0"));
        assert_eq!(pick(&["latest"]), None);
    }
}

/// Writes (or fetches) the inventory and returns what `-i` gets.
async fn inventory_file(
    app: &AppState,
    inv: &Inventory,
    dir: &Path,
    within: Duration,
    p: &mut Prepared,
) -> Result<PathBuf, Fail> {
    let config = &Engine::of(app).config;
    match inv {
        Inventory::File { path } => {
            resolve_in(&config.inventory_dir, path, "inventory.path", "inventory directory")
                .map_err(|e| format!("the inventory can no longer be used: {e}"))
        }
        Inventory::Inline { .. } => {
            let content = inline_inventory(inv).map_err(|e| e.to_string())?;
            let file = dir.join("inventory.yml");
            write_private(&file, &content.to_string())?;
            Ok(file)
        }
        Inventory::Git { repo, branch, path, git_credential } => {
            let checkout = dir.join("inventory-src");
            let rev = git_checkout(
                app,
                repo,
                branch.as_deref(),
                git_credential.as_deref(),
                &checkout,
                dir,
                within,
                &mut p.redact,
            )
            .await?;
            p.inventory_label =
                Some(format!("{path} ({} @ {})", strip_userinfo(repo), &rev[..rev.len().min(12)]));
            resolve_in(&checkout, path, "inventory.path", "inventory repository")
                .map_err(|e| format!("{e} ({})", strip_userinfo(repo)))
        }
        Inventory::Url { url, format, credential } => {
            let cred = match credential {
                Some(name) => {
                    let c = open(
                        app,
                        name,
                        &[CredentialKind::ApiToken, CredentialKind::Password],
                        "inventory.credential",
                    )
                    .await?;
                    c.check_target("inventory.credential", url).map_err(|e| e.to_string())?;
                    p.redact.extend(c.secrets());
                    Some(c)
                }
                None => None,
            };
            let text = fetch_inventory(app, url, cred.as_ref()).await?;
            let (name, content) = match format {
                InventoryFormat::Yaml => ("inventory.yml", text),
                InventoryFormat::Ini => ("inventory.ini", text),
                InventoryFormat::Json => {
                    let v: Value = serde_json::from_str(&text).map_err(|e| {
                        format!(
                            "the inventory at {} is not JSON: {e}",
                            url.split(['?', '#']).next().unwrap_or("")
                        )
                    })?;
                    ("inventory.json", script_to_yaml_shape(v).to_string())
                }
            };
            let file = dir.join(name);
            write_private(&file, &content)?;
            Ok(file)
        }
        Inventory::Dynamic { plugin, config: plugin_config, cloud_credential } => {
            if let Some(name) = cloud_credential {
                let c = open(app, name, &[CredentialKind::Environment], "inventory.cloud_credential").await?;
                p.redact.extend(c.secrets());
                if let Some(vars) = c.inputs.get("variables").and_then(Value::as_object) {
                    for (k, v) in vars {
                        if credentials::env_name_ok(k) {
                            p.env.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
                        }
                    }
                }
            }
            let inv_dir = dir.join("inventory");
            std::fs::create_dir_all(&inv_dir).map_err(|e| e.to_string())?;
            let short = plugin.rsplit('.').next().unwrap_or(plugin);
            let mut content = plugin_config.clone();
            content.insert("plugin".into(), Value::String(plugin.clone()));
            // Plugins accept files named after them (aws_ec2.yml); the others take any .yml.
            let file = inv_dir.join(format!("{short}.yml"));
            write_private(&file, &Value::Object(content).to_string())?;
            // Only `auto`: it loads the plugin the file names, and nothing else reads the file as
            // hosts when that plugin is missing.
            p.env.push(("ANSIBLE_INVENTORY_ENABLED".into(), "auto".into()));
            Ok(file)
        }
    }
}

/// The largest inventory a URL may serve.
const MAX_INVENTORY_BYTES: usize = 16 * 1024 * 1024;

async fn fetch_inventory(app: &AppState, full_url: &str, cred: Option<&Opened>) -> Result<String, Fail> {
    let (checked, addrs) = crate::infra::outbound::check_url(&app.config.deliveries, full_url)
        .await
        .map_err(|e| format!("`inventory.url`: {e}"))?;
    let limits = (Duration::from_secs(60), MAX_INVENTORY_BYTES);
    let auth = cred.map(Opened::url_auth);
    let body =
        crate::infra::outbound::get_checked(&checked, &addrs, auth, "*/*", limits, "the inventory at ")
            .await?;
    // Messages name the URL without its query, which may carry a token.
    let url = full_url.split(['?', '#']).next().unwrap_or(full_url);
    String::from_utf8(body).map_err(|_| format!("the inventory at {url} is not UTF-8 text"))
}

/// An inventory script's JSON (`{"group": {"hosts": [..], "vars": {..}, "children": [..]},
/// "_meta": {"hostvars": {..}}}`) in the shape the YAML inventory plugin reads; a document already
/// in that shape is returned as it is.
pub fn script_to_yaml_shape(v: Value) -> Value {
    let Some(obj) = v.as_object() else { return v };
    let script = obj.contains_key("_meta")
        || obj.values().any(|g| g.is_array() || g.get("hosts").is_some_and(Value::is_array));
    if !script {
        return v;
    }
    let hostvars = obj
        .get("_meta")
        .and_then(|m| m.get("hostvars"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let host_entry = |h: &str| hostvars.get(h).cloned().unwrap_or(Value::Null);
    let mut all_hosts = Map::new();
    let mut all_vars = Map::new();
    let mut children = Map::new();
    for (name, g) in obj {
        if name == "_meta" {
            continue;
        }
        let (hosts, vars, kids) = match g {
            Value::Array(a) => (a.clone(), Map::new(), Vec::new()),
            Value::Object(o) => (
                o.get("hosts").and_then(Value::as_array).cloned().unwrap_or_default(),
                o.get("vars").and_then(Value::as_object).cloned().unwrap_or_default(),
                o.get("children").and_then(Value::as_array).cloned().unwrap_or_default(),
            ),
            _ => continue,
        };
        let hosts: Map<String, Value> =
            hosts.iter().filter_map(Value::as_str).map(|h| (h.to_string(), host_entry(h))).collect();
        if name == "all" {
            all_hosts.extend(hosts);
            all_vars.extend(vars);
            continue;
        }
        let mut group = Map::new();
        if !hosts.is_empty() {
            group.insert("hosts".into(), Value::Object(hosts));
        }
        if !vars.is_empty() {
            group.insert("vars".into(), Value::Object(vars));
        }
        if !kids.is_empty() {
            let k: Map<String, Value> =
                kids.iter().filter_map(Value::as_str).map(|c| (c.to_string(), json!({}))).collect();
            group.insert("children".into(), Value::Object(k));
        }
        children.insert(name.clone(), Value::Object(group));
    }
    // Hosts known only through hostvars still exist.
    for h in hostvars.keys() {
        let listed = all_hosts.contains_key(h)
            || children.values().any(|g| g.get("hosts").and_then(|x| x.get(h)).is_some());
        if !listed {
            all_hosts.insert(h.clone(), host_entry(h));
        }
    }
    let mut all = Map::new();
    if !all_hosts.is_empty() {
        all.insert("hosts".into(), Value::Object(all_hosts));
    }
    if !all_vars.is_empty() {
        all.insert("vars".into(), Value::Object(all_vars));
    }
    if !children.is_empty() {
        all.insert("children".into(), Value::Object(children));
    }
    json!({ "all": all })
}

/// The launch's credentials as files (0600) and environment: the SSH key (through the job's own
/// ssh-agent when it has a passphrase), passwords in a vars file, the vault password in a file.
async fn credential_files(
    app: &AppState,
    c: &LaunchCredentials,
    dir: &Path,
    p: &mut Prepared,
) -> Result<(), Fail> {
    let mut user: Option<String> = None;
    if let Some(r) = &c.ssh {
        let got = resolve(app, r, CredentialKind::SshKey, "credentials.ssh").await?;
        let key = key_text(&got.secret);
        p.redact.push(got.secret.clone());
        p.redact.extend(key.lines().filter(|l| l.len() >= 16 && !l.starts_with("-----")).map(str::to_string));
        let file = dir.join("ssh_key");
        write_private(&file, &key)?;
        match &got.passphrase {
            None => p.args.push(format!("--private-key={}", file.display())),
            Some(pass) => {
                p.redact.push(pass.clone());
                let sock = start_agent(dir, &file, pass, p).await?;
                p.env.push(("SSH_AUTH_SOCK".into(), sock));
            }
        }
        user = got.username.clone();
    }
    if let Some(r) = &c.password {
        let got = resolve(app, r, CredentialKind::Password, "credentials.password").await?;
        p.redact.push(got.secret.clone());
        // As a prompt answer would be: the inventory's own ansible_password still wins for its hosts.
        let file = dir.join("connection_password");
        write_private(&file, &got.secret)?;
        p.args.push(format!("--connection-password-file={}", file.display()));
        user = got.username.clone().or(user);
    }
    if let Some(u) = user {
        check_name(&u, "the credential's username")?;
        p.args.push(format!("--user={u}"));
    }
    if let Some(r) = &c.become_password {
        let got = resolve(app, r, CredentialKind::BecomePassword, "credentials.become_password").await?;
        p.redact.push(got.secret.clone());
        let file = dir.join("become_password");
        write_private(&file, &got.secret)?;
        p.args.push(format!("--become-password-file={}", file.display()));
        if let Some(u) = got.username {
            check_name(&u, "the become credential's username")?;
            p.args.push(format!("--become-user={u}"));
        }
        if let Some(m) = got.method {
            check_name(&m, "the become credential's method")?;
            p.args.push(format!("--become-method={m}"));
        }
    }
    if let Some(r) = &c.vault_password {
        let got = resolve(app, r, CredentialKind::VaultPassword, "credentials.vault_password").await?;
        p.redact.push(got.secret.clone());
        let file = dir.join("vault_password");
        write_private(&file, &got.secret)?;
        match got.vault_id.filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))) {
            Some(id) => p.args.push(format!("--vault-id={id}@{}", file.display())),
            None => p.args.push(format!("--vault-password-file={}", file.display())),
        }
    }
    Ok(())
}

/// A user or method name that cannot be taken for an option or carry anything else.
fn check_name(name: &str, what: &str) -> Result<(), Fail> {
    if name.is_empty()
        || name.len() > 256
        || name.starts_with('-')
        || name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '=')
    {
        return Err(format!("{what} {name:?} is not a usable name"));
    }
    Ok(())
}

async fn resolve(
    app: &AppState,
    r: &shared::credentials::CredentialRef,
    kind: CredentialKind,
    field: &str,
) -> Result<credentials::Resolved, Fail> {
    let got = credentials::resolve(app, r, kind, field).await.map_err(|e| e.to_string())?;
    if got.secret.is_empty() {
        return Err(format!("`{field}` resolved to an empty secret"));
    }
    Ok(got)
}

/// Starts an ssh-agent for this job alone and adds the key to it, the passphrase coming from a
/// 0600 file through SSH_ASKPASS (never an argument). Returns the agent's socket.
async fn start_agent(dir: &Path, key: &Path, passphrase: &str, p: &mut Prepared) -> Result<String, Fail> {
    let sock = dir.join("agent.sock");
    let mut agent = Command::new("ssh-agent");
    agent
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = agent.spawn().map_err(|e| format!("ssh-agent could not be started: {e}"))?;
    p.agent = Some(child);
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pass_file = dir.join("ssh_passphrase");
    write_private(&pass_file, passphrase)?;
    let askpass = dir.join("ssh_askpass");
    // Answers once: ssh-add asks again after a wrong passphrase, and then gets nothing and stops.
    write_private(
        &askpass,
        &format!("#!/bin/sh\ncat '{0}' 2>/dev/null\nrm -f '{0}'\n", pass_file.display()),
    )?;
    set_mode(&askpass, 0o700)?;
    let add = Command::new("ssh-add")
        .arg(key)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SSH_AUTH_SOCK", &sock)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), add).await;
    let _ = std::fs::remove_file(&pass_file);
    let out = out
        .map_err(|_| "ssh-add did not finish within 30 s (wrong passphrase?)".to_string())?
        .map_err(|e| format!("ssh-add could not be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the SSH key could not be unlocked (wrong passphrase?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(sock.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_inventories_become_yaml_inventories() {
        let v = script_to_yaml_shape(json!({
            "web": {"hosts": ["w1", "w2"], "vars": {"port": 80}},
            "db": ["d1"],
            "prod": {"children": ["web", "db"]},
            "_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}, "lonely": {}}}
        }));
        assert_eq!(v["all"]["children"]["web"]["hosts"]["w1"]["ansible_host"], "10.0.0.1");
        assert!(v["all"]["children"]["web"]["hosts"]["w2"].is_null());
        assert_eq!(v["all"]["children"]["web"]["vars"]["port"], 80);
        assert!(v["all"]["children"]["db"]["hosts"].get("d1").is_some());
        assert!(v["all"]["children"]["prod"]["children"].get("web").is_some());
        assert!(v["all"]["hosts"].get("lonely").is_some());
        let yaml_shape = json!({"all": {"hosts": {"a": null}}});
        assert_eq!(script_to_yaml_shape(yaml_shape.clone()), yaml_shape);
    }

    #[test]
    fn secret_values_are_collected() {
        let mut out = Vec::new();
        secret_values(
            &json!({"db": {"password": "hunter22"}, "name": "x", "api_token": "tok-123"}),
            &mut out,
        );
        out.sort();
        assert_eq!(out, vec!["hunter22".to_string(), "tok-123".to_string()]);
    }
}
