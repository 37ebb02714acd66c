//! Turns a launch request into a plan the runner can carry out, refusing what it must not run:
//! paths outside the playbook or inventory directory, malformed inventories, bad options. Also
//! masks secrets for everything that is recorded.

use serde_json::{json, Map, Value};
use shared::engine::{Inventory, LaunchOptions, LaunchRequest, PlaybookSource};

use crate::infra::config::EngineConfig;
use crate::infra::error::AppError;
use crate::infra::outbound::strip_userinfo;
use crate::infra::paths::{check_relative, resolve_in};
use crate::infra::secrets::{masked_copy, MASK};

/// A checked launch: what to record and what to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The request as recorded: secrets masked, credentials in URLs removed.
    pub spec: Value,
    /// What only the run may see (unmasked extra_vars and inline inventory).
    pub pending: Value,
    pub has_secrets: bool,
    pub name: String,
    pub template: String,
    pub inventory_label: Option<String>,
    pub project: Option<String>,
    pub limit: Option<String>,
    pub masked_extra_vars: Option<Value>,
    pub timeout_secs: u64,
    pub callback_url: Option<String>,
}

fn bad(msg: impl Into<String>) -> AppError {
    AppError::Unprocessable(msg.into())
}

impl Plan {
    /// Masks these extra vars (a survey's password answers) in what is recorded, and has the run
    /// redact their values from its output as it does secret-named ones.
    pub fn mask(&mut self, variables: &[String]) {
        if !variables.is_empty() {
            self.pending["masked_vars"] = Value::from(variables.to_vec());
        }
        for v in variables {
            for vars in
                [self.spec.get_mut("extra_vars"), self.masked_extra_vars.as_mut()].into_iter().flatten()
            {
                if let Some(slot) = vars.get_mut(v.as_str()) {
                    *slot = Value::String(MASK.into());
                    self.has_secrets = true;
                }
            }
        }
    }
}

/// Reads and checks a launch request body.
pub fn parse(body: Value) -> Result<LaunchRequest, AppError> {
    serde_json::from_value::<LaunchRequest>(body).map_err(|e| bad(format!("invalid launch request: {e}")))
}

/// Checks a request against the engine's settings and builds its plan. Does not touch the network
/// (the callback URL is checked by the caller).
pub fn plan(config: &EngineConfig, req: &LaunchRequest) -> Result<Plan, AppError> {
    let (template, project) = match &req.source {
        PlaybookSource::Playbook { path } => {
            check_relative(path, "source.path")?;
            check_playbook_name(path)?;
            resolve_in(
                &config.playbook_dir,
                path,
                "source.path",
                "playbook directory (PLAYDECK_PLAYBOOK_DIR)",
            )?;
            (path.clone(), None)
        }
        PlaybookSource::Git { repo, branch, path, .. } => {
            check_relative(path, "source.path")?;
            check_playbook_name(path)?;
            check_repo(config, repo, "source.repo")?;
            check_branch(branch.as_deref(), "source.branch")?;
            (path.clone(), Some(strip_userinfo(repo)))
        }
        PlaybookSource::Role { repo, branch, path, role_vars, .. } => {
            if path != "." {
                check_relative(path, "source.path")?;
            }
            check_repo(config, repo, "source.repo")?;
            check_branch(branch.as_deref(), "source.branch")?;
            check_vars(role_vars, "source.role_vars")?;
            let shown = strip_userinfo(repo);
            let name = if path == "." {
                shown
                    .trim_end_matches('/')
                    .rsplit(['/', ':'])
                    .next()
                    .unwrap_or("role")
                    .trim_end_matches(".git")
            } else {
                path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
            };
            (format!("role {name}"), Some(shown))
        }
        PlaybookSource::CollectionRole { collection, role, version, galaxy_server, role_vars, .. } => {
            if !fqcn_part(collection, 2) {
                return Err(bad(format!(
                    "`source.collection` {collection:?} is not a collection name such as `community.general`"
                )));
            }
            if !fqcn_part(role, 1) {
                return Err(bad(format!("`source.role` {role:?} is not a role name (a-z, 0-9, _)")));
            }
            if let Some(v) = version {
                if v.is_empty()
                    || v.len() > 100
                    || !v.chars().all(|c| c.is_ascii_alphanumeric() || ".*<>=!,+-".contains(c))
                {
                    return Err(bad(format!("`source.version` {v:?} is not a version or version range")));
                }
            }
            if let Some(server) = galaxy_server {
                check_galaxy_server(config, server)?;
            }
            check_vars(role_vars, "source.role_vars")?;
            (format!("{collection}.{role}"), Some(collection.clone()))
        }
    };
    let inventory_label = match &req.inventory {
        None => None,
        Some(Inventory::File { path }) => {
            resolve_in(
                &config.inventory_dir,
                path,
                "inventory.path",
                "inventory directory (PLAYDECK_INVENTORY_DIR)",
            )?;
            Some(path.clone())
        }
        Some(inline @ Inventory::Inline { hosts, .. }) => {
            inline_inventory(inline)?;
            Some(format!("inline ({} host{})", hosts.len(), if hosts.len() == 1 { "" } else { "s" }))
        }
        Some(Inventory::Git { repo, branch, path, .. }) => {
            check_relative(path, "inventory.path")?;
            check_repo(config, repo, "inventory.repo")?;
            check_branch(branch.as_deref(), "inventory.branch")?;
            Some(format!("{path} ({})", strip_userinfo(repo)))
        }
        Some(Inventory::Url { url, .. }) => {
            let u = reqwest::Url::parse(url).map_err(|e| bad(format!("`inventory.url` {url:?}: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(bad(format!("`inventory.url` {url:?} is not an http(s) URL")));
            }
            if !u.username().is_empty() || u.password().is_some() {
                return Err(bad(
                    "`inventory.url` must not carry a user or password: name a credential in `inventory.credential`",
                ));
            }
            Some(format!("{}{}", u.host_str().unwrap_or_default(), u.path()))
        }
        Some(Inventory::Dynamic { plugin, config: plugin_config, .. }) => {
            if !(fqcn_part(plugin, 1) || fqcn_part(plugin, 3)) {
                return Err(bad(format!(
                    "`inventory.plugin` {plugin:?} is not an inventory plugin name such as `amazon.aws.aws_ec2`"
                )));
            }
            if plugin_config.contains_key("plugin") {
                return Err(bad("`inventory.config` must not set `plugin`: it is `inventory.plugin`"));
            }
            Some(format!("dynamic ({plugin})"))
        }
    };
    let timeout_secs = check_options(config, &req.options)?;
    if let Some(name) = &req.name {
        if name.trim().is_empty() || name.chars().count() > 200 {
            return Err(bad("`name` must be 1 to 200 characters"));
        }
    }

    let mut has_secrets = false;
    let masked_extra_vars =
        req.extra_vars.as_ref().map(|v| masked_copy(&Value::Object(v.clone()), &mut has_secrets));
    let masked_inventory = req.inventory.as_ref().map(|inv| match inv {
        Inventory::Inline { .. } => {
            masked_copy(&serde_json::to_value(inv).unwrap_or(Value::Null), &mut has_secrets)
        }
        Inventory::Dynamic { config, .. } => {
            let mut v = serde_json::to_value(inv).unwrap_or(Value::Null);
            v["config"] = masked_copy(&Value::Object(config.clone()), &mut has_secrets);
            v
        }
        Inventory::Git { repo, .. } => {
            let mut v = serde_json::to_value(inv).unwrap_or(Value::Null);
            v["repo"] = Value::String(strip_userinfo(repo));
            v
        }
        Inventory::File { .. } | Inventory::Url { .. } => serde_json::to_value(inv).unwrap_or(Value::Null),
    });
    let mut masked_source = serde_json::to_value(&req.source).unwrap_or(Value::Null);
    if let PlaybookSource::Git { repo, .. } | PlaybookSource::Role { repo, .. } = &req.source {
        masked_source["repo"] = Value::String(strip_userinfo(repo));
    }
    if let Some(vars) = masked_source.get("role_vars").cloned() {
        masked_source["role_vars"] = masked_copy(&vars, &mut has_secrets);
    }
    let masked_credentials = req.credentials.as_ref().map(|c| {
        let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
        if let Some(slots) = v.as_object_mut() {
            for slot in slots.values_mut() {
                if slot["type"] == "value" {
                    has_secrets = true;
                    slot["value"] = Value::String(MASK.into());
                    if slot.get("passphrase").is_some() {
                        slot["passphrase"] = Value::String(MASK.into());
                    }
                }
            }
        }
        v
    });
    let mut spec = serde_json::to_value(req).map_err(|e| AppError::Internal(format!("spec: {e}")))?;
    if let Some(obj) = spec.as_object_mut() {
        obj.remove("wait");
        if let Some(v) = &masked_extra_vars {
            obj.insert("extra_vars".into(), v.clone());
        }
        if let Some(v) = masked_inventory {
            obj.insert("inventory".into(), v);
        }
        obj.insert("source".into(), masked_source);
        if let Some(v) = masked_credentials {
            obj.insert("credentials".into(), v);
        }
    }
    let pending = json!({
        "extra_vars": req.extra_vars,
        "inventory": req.inventory,
        "source": req.source,
        "credentials": req.credentials,
    });
    Ok(Plan {
        spec,
        pending,
        has_secrets,
        name: req.name.clone().unwrap_or_else(|| template.clone()),
        template,
        inventory_label,
        project,
        limit: req.options.limit.clone(),
        masked_extra_vars,
        timeout_secs,
        callback_url: req.options.callback_url.clone(),
    })
}

fn check_playbook_name(path: &str) -> Result<(), AppError> {
    if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
        return Err(bad(format!("`source.path` {path:?} is not a playbook (a .yml or .yaml file)")));
    }
    Ok(())
}

/// `namespace.name` (parts = 2), a role (1) or a plugin's FQCN (3): lowercase, digits, `_`.
fn fqcn_part(name: &str, parts: usize) -> bool {
    let split: Vec<&str> = name.split('.').collect();
    split.len() == parts
        && split.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 64
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

fn check_vars(vars: &Map<String, Value>, field: &str) -> Result<(), AppError> {
    for k in vars.keys() {
        if !valid_group(k) {
            return Err(bad(format!("`{field}`: {k:?} is not a variable name")));
        }
    }
    Ok(())
}

/// A branch or tag as git's check-ref-format allows it (and not a refspec or an option).
pub(super) fn check_branch(branch: Option<&str>, field: &str) -> Result<(), AppError> {
    if let Some(b) = branch {
        let bad_name = b.is_empty()
            || b.len() > 255
            || b.starts_with(['-', '/', '.'])
            || b.ends_with(['/', '.'])
            || b.ends_with(".lock")
            || b.contains("..")
            || b.contains("//")
            || b.contains("@{")
            || b == "@"
            || b.chars().any(|c| c.is_whitespace() || c.is_control() || ":?*[\\^~".contains(c));
        if bad_name {
            return Err(bad(format!("`{field}` {b:?} is not a branch or tag name")));
        }
    }
    Ok(())
}

/// A Galaxy server: an http(s) API URL, or (when local sources are allowed) a `file://` tarball
/// or directory of tarballs.
fn check_galaxy_server(config: &EngineConfig, server: &str) -> Result<(), AppError> {
    let u = reqwest::Url::parse(server)
        .map_err(|e| bad(format!("`source.galaxy_server` {server:?} is not a URL: {e}")))?;
    match u.scheme() {
        "http" | "https" if u.host_str().is_some() && u.username().is_empty() && u.password().is_none() => {
            Ok(())
        }
        "file" if config.git_allow_file => Ok(()),
        "file" => Err(bad(
            "`source.galaxy_server`: file:// sources are refused on this server (PLAYDECK_GIT_ALLOW_FILE)",
        )),
        _ => Err(bad(format!(
            "`source.galaxy_server` {server:?}: use a Galaxy or Automation Hub URL (https://…), without a \
             user or token in it (name a credential in `galaxy_credential`)"
        ))),
    }
}

pub(super) fn check_repo(config: &EngineConfig, repo: &str, field: &str) -> Result<(), AppError> {
    let r = repo.trim();
    if r.is_empty() || r.starts_with('-') || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!("`{field}` {repo:?} is not a repository URL")));
    }
    let scheme_ok = r.starts_with("https://")
        || r.starts_with("ssh://")
        || r.starts_with("git://")
        || (r.contains('@') && r.contains(':') && !r.contains("://"));
    if r.starts_with("file://") {
        if config.git_allow_file {
            return Ok(());
        }
        return Err(bad(format!(
            "`{field}`: file:// repositories are refused on this server (PLAYDECK_GIT_ALLOW_FILE)"
        )));
    }
    if !scheme_ok {
        return Err(bad(format!(
            "`{field}` {repo:?}: use an https://, ssh:// or git@host:path repository URL"
        )));
    }
    Ok(())
}

fn check_options(config: &EngineConfig, o: &LaunchOptions) -> Result<u64, AppError> {
    let timeout = o.timeout.unwrap_or(config.default_timeout);
    if timeout == 0 || timeout > config.max_timeout {
        return Err(bad(format!(
            "`options.timeout` must be between 1 and {} seconds, got {timeout}",
            config.max_timeout
        )));
    }
    for (field, list) in [("tags", &o.tags), ("skip_tags", &o.skip_tags)] {
        for t in list {
            if t.trim().is_empty() || t.contains(',') || t.starts_with('-') || t.chars().any(char::is_control)
            {
                return Err(bad(format!("`options.{field}`: {t:?} is not a tag name")));
            }
        }
    }
    if let Some(limit) = &o.limit {
        if limit.trim().is_empty() || limit.len() > 4096 || limit.chars().any(char::is_control) {
            return Err(bad(
                "`options.limit` must be a host pattern such as `webservers` or `web-01,web-02`",
            ));
        }
    }
    if let Some(v) = o.verbosity {
        if v > 5 {
            return Err(bad(format!("`options.verbosity` is 0 to 5, got {v}")));
        }
    }
    if let Some(f) = o.forks {
        if f == 0 || f > 500 {
            return Err(bad(format!("`options.forks` is 1 to 500, got {f}")));
        }
    }
    Ok(timeout)
}

fn valid_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '['])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '"' | '\'' | '#'))
}

fn valid_group(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 255
}

/// The inline inventory as the YAML inventory plugin reads it (JSON is YAML), after checking it.
pub fn inline_inventory(inv: &Inventory) -> Result<Value, AppError> {
    let Inventory::Inline { hosts, groups, host_vars, vars } = inv else {
        return Err(AppError::Internal("inline_inventory on a file inventory".into()));
    };
    if hosts.is_empty() {
        return Err(bad("`inventory.hosts` is empty: an inline inventory lists at least one host"));
    }
    let mut all_hosts = Map::new();
    for h in hosts {
        if !valid_host(h) {
            return Err(bad(format!("`inventory.hosts`: {h:?} is not a host name or address")));
        }
        if all_hosts.insert(h.clone(), Value::Null).is_some() {
            return Err(bad(format!("`inventory.hosts` lists {h:?} twice")));
        }
    }
    for (h, v) in host_vars {
        if !all_hosts.contains_key(h) {
            return Err(bad(format!(
                "`inventory.host_vars` has variables for {h:?}, which is not in `inventory.hosts`"
            )));
        }
        all_hosts.insert(h.clone(), Value::Object(v.clone()));
    }
    let mut children = Map::new();
    for (g, members) in groups {
        if !valid_group(g) || g == "all" || g == "ungrouped" {
            return Err(bad(format!(
                "`inventory.groups`: {g:?} is not a usable group name (letters, digits and _, not starting with a digit)"
            )));
        }
        let mut gh = Map::new();
        for m in members {
            if !all_hosts.contains_key(m) {
                return Err(bad(format!(
                    "`inventory.groups.{g}` names {m:?}, which is not in `inventory.hosts`"
                )));
            }
            gh.insert(m.clone(), Value::Null);
        }
        children.insert(g.clone(), json!({ "hosts": gh }));
    }
    let mut all = Map::new();
    all.insert("hosts".into(), Value::Object(all_hosts));
    if !children.is_empty() {
        all.insert("children".into(), Value::Object(children));
    }
    if !vars.is_empty() {
        all.insert("vars".into(), Value::Object(vars.clone()));
    }
    Ok(json!({ "all": all }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside() {
        assert!(check_relative("site.yml", "p").is_ok());
        assert!(check_relative("sub/site.yml", "p").is_ok());
        assert!(check_relative("../etc/passwd", "p").is_err());
        assert!(check_relative("a/../../b.yml", "p").is_err());
        assert!(check_relative("/etc/passwd", "p").is_err());
        assert!(check_relative("", "p").is_err());
    }
}
