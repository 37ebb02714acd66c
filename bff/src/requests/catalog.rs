//! The catalog of actions the request box knows (`PLAYDECK_CATALOG`, a JSON file), and the
//! inventories that say which hosts and groups exist.
//!
//! ```json
//! {"options": [{"option": "check_mode", "phrases": ["check mode", "dry run"]}],
//!  "actions": [{
//!    "name": "patch", "description": "patch servers with a patch group",
//!    "phrases": ["patch", "apply patches"],
//!    "run": {"playbook": "patch.yml", "inventory": "demo.yml"},
//!    "slots": [
//!      {"name": "hosts", "from": "inventory", "to": ["limit"], "required": true,
//!       "question": "Which servers or groups should I patch?"},
//!      {"name": "patch_group", "pattern": "\\bgroup[\\s_-]*0*(\\d+)\\b", "value": "Group-$1",
//!       "to": ["extra_vars.patch_group"], "required": true, "question": "Which patch group?"}],
//!    "phases": [{"name": "Pre-checks started", "play": "pre-check"}]}]}
//! ```
//!
//! `run` is a local playbook (`playbook`, `inventory`: paths in the playbook and inventory
//! directories, exactly as a launch names them) or an AAP/AWX job template (`template`, optional
//! `controller`, and `known_hosts`: an inventory file in the inventory directory listing the
//! template's hosts, so names can be checked here). A slot `from: inventory` takes host and group
//! names (`accept: "hosts"` for hosts only, `multiple: false` for one); a `pattern` slot takes what
//! a case-insensitive regular expression finds, written as `value` (`$1` is the first group).
//! `to` says where the value goes: `limit` or `extra_vars.<name>`. Phases name a play or task
//! (case-insensitive substring) whose start means the phase was reached.
//!
//! The files are read for each request, so edits to the catalog or an inventory apply at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use regex::Regex;
use serde::Deserialize;

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    options: Vec<OptionDef>,
    actions: Vec<ActionDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionDef {
    name: String,
    #[serde(default)]
    description: String,
    phrases: Vec<String>,
    run: RunDef,
    #[serde(default)]
    slots: Vec<SlotDef>,
    #[serde(default)]
    options: Vec<OptionDef>,
    #[serde(default)]
    phases: Vec<PhaseDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunDef {
    playbook: Option<String>,
    inventory: Option<String>,
    template: Option<String>,
    controller: Option<String>,
    known_hosts: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotDef {
    name: String,
    from: Option<String>,
    pattern: Option<String>,
    value: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    required: bool,
    question: Option<String>,
    accept: Option<String>,
    multiple: Option<bool>,
    #[serde(default)]
    allow_all: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionDef {
    option: String,
    phrases: Vec<String>,
}

/// A phase of an action's progress, reached when a play (or task) whose name contains these words
/// starts; stored with a request when it is confirmed.
#[derive(Deserialize, serde::Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PhaseDef {
    pub name: String,
    pub play: Option<String>,
    pub task: Option<String>,
}

// ---- the catalog as used ----

/// The actions, checked, with their inventories read.
#[derive(Debug)]
pub struct Catalog {
    pub actions: Vec<Action>,
}

#[derive(Debug)]
pub struct Action {
    pub name: String,
    pub description: String,
    /// Each phrase as lowercase words.
    pub phrases: Vec<Vec<String>>,
    pub run: Run,
    pub slots: Vec<Slot>,
    pub options: Vec<OptionRule>,
    pub phases: Vec<PhaseDef>,
    /// The hosts and groups names are checked against (the playbook's inventory, or the
    /// template's `known_hosts`).
    pub inventory: Option<Inventory>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    Playbook { path: String, inventory: Option<String> },
    Template { name: String, controller: Option<String> },
}

#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub kind: SlotKind,
    pub to: Vec<Target>,
    pub required: bool,
    pub question: String,
}

#[derive(Debug)]
pub enum SlotKind {
    /// Host and group names from the inventory.
    Inventory { groups: bool, multiple: bool, allow_all: bool },
    /// What the expression finds, written as `value`.
    Pattern { regex: Regex, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Limit,
    ExtraVar(String),
}

/// Execution options that can be asked for in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunOption {
    CheckMode,
    DiffMode,
}

impl RunOption {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOption::CheckMode => "check_mode",
            RunOption::DiffMode => "diff_mode",
        }
    }

    fn parse(s: &str) -> Option<RunOption> {
        match s {
            "check_mode" => Some(RunOption::CheckMode),
            "diff_mode" => Some(RunOption::DiffMode),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OptionRule {
    pub option: RunOption,
    pub phrases: Vec<Vec<String>>,
}

impl Catalog {
    /// Reads the catalog file; `inventory` gives an inventory file by its name in the catalog
    /// (as `ansible-inventory` read it: see [`Inventory::from_listing`]).
    pub fn load(
        config: &crate::infra::config::RequestsConfig,
        inventory: impl FnMut(&str) -> Result<Inventory, String>,
    ) -> Result<Catalog, String> {
        let text = std::fs::read_to_string(&config.catalog).map_err(|e| {
            format!("the request catalog {} cannot be read (PLAYDECK_CATALOG): {e}", config.catalog.display())
        })?;
        Catalog::parse(&text, inventory)
            .map_err(|e| format!("the request catalog {}: {e}", config.catalog.display()))
    }

    /// The inventory files a catalog names (before they are read).
    pub fn inventories_named(config: &crate::infra::config::RequestsConfig) -> Vec<String> {
        let mut names = Vec::new();
        let _ = Catalog::load(config, |name| {
            names.push(name.to_owned());
            Ok(Inventory { name: name.to_owned(), ..Inventory::default() })
        });
        names
    }

    /// Checks a catalog; `inventory` reads an inventory file by its name in the catalog.
    pub fn parse(
        text: &str,
        mut inventory: impl FnMut(&str) -> Result<Inventory, String>,
    ) -> Result<Catalog, String> {
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|e| format!("not a valid catalog: {e}"))?;
        let common = file.options.into_iter().map(option_rule).collect::<Result<Vec<_>, _>>()?;
        if file.actions.is_empty() {
            return Err("the catalog has no actions".into());
        }
        let mut read: BTreeMap<String, Inventory> = BTreeMap::new();
        let mut actions: Vec<Action> = Vec::new();
        for def in file.actions {
            let name = def.name.trim().to_string();
            if name.is_empty() || actions.iter().any(|a| a.name == name) {
                return Err(format!("action names must be non-empty and unique ({name:?})"));
            }
            let action = action(def, &common, &mut |file: &str| {
                if let Some(inv) = read.get(file) {
                    return Ok(inv.clone());
                }
                let inv = inventory(file)?;
                read.insert(file.to_string(), inv.clone());
                Ok(inv)
            })
            .map_err(|e| format!("action {name:?}: {e}"))?;
            actions.push(action);
        }
        Ok(Catalog { actions })
    }

    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }
}

fn action(
    def: ActionDef,
    common: &[OptionRule],
    inventory: &mut dyn FnMut(&str) -> Result<Inventory, String>,
) -> Result<Action, String> {
    let phrases: Vec<Vec<String>> =
        def.phrases.iter().map(|p| words(p)).filter(|w: &Vec<String>| !w.is_empty()).collect();
    if phrases.is_empty() {
        return Err("an action needs at least one phrase".into());
    }
    let r = def.run;
    let (run, inventory_file) = match (r.playbook, r.template) {
        (Some(path), None) => {
            if r.controller.is_some() || r.known_hosts.is_some() {
                return Err(
                    "`controller` and `known_hosts` are for templates; a playbook names its `inventory`"
                        .into(),
                );
            }
            relative_path(&path, "run.playbook")?;
            if let Some(inv) = &r.inventory {
                relative_path(inv, "run.inventory")?;
            }
            (Run::Playbook { path, inventory: r.inventory.clone() }, r.inventory)
        }
        (None, Some(name)) => {
            if r.inventory.is_some() {
                return Err("a template uses its own inventory on the controller; name a local copy of its hosts in `known_hosts`".into());
            }
            if name.trim().is_empty() {
                return Err("`run.template` is empty".into());
            }
            if let Some(k) = &r.known_hosts {
                relative_path(k, "run.known_hosts")?;
            }
            (Run::Template { name, controller: r.controller }, r.known_hosts)
        }
        _ => return Err("`run` names either a `playbook` or a `template`".into()),
    };
    let mut slots: Vec<Slot> = Vec::new();
    for s in def.slots {
        if !is_identifier(&s.name) || slots.iter().any(|o| o.name == s.name) || s.name == "action" {
            return Err(format!("slot names are unique identifiers other than `action` ({:?})", s.name));
        }
        let kind = match (s.from.as_deref(), &s.pattern) {
            (Some("inventory"), None) => {
                if s.value.is_some() {
                    return Err(format!("slot {}: `value` is for pattern slots", s.name));
                }
                let groups = match s.accept.as_deref() {
                    None | Some("hosts_and_groups") => true,
                    Some("hosts") => false,
                    Some(other) => {
                        return Err(format!(
                            "slot {}: `accept` is \"hosts\" or \"hosts_and_groups\", not {other:?}",
                            s.name
                        ))
                    }
                };
                SlotKind::Inventory { groups, multiple: s.multiple.unwrap_or(true), allow_all: s.allow_all }
            }
            (None, Some(pattern)) => {
                if s.accept.is_some() || s.multiple.is_some() || s.allow_all {
                    return Err(format!(
                        "slot {}: `accept`, `multiple` and `allow_all` are for inventory slots",
                        s.name
                    ));
                }
                let regex = regex::RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("slot {}: the pattern does not compile: {e}", s.name))?;
                SlotKind::Pattern { value: s.value.clone().unwrap_or_else(|| "$0".into()), regex }
            }
            _ => {
                return Err(format!("slot {}: give either `\"from\": \"inventory\"` or a `pattern`", s.name))
            }
        };
        if s.to.is_empty() {
            return Err(format!(
                "slot {}: `to` says where the value goes (limit, extra_vars.<name>)",
                s.name
            ));
        }
        let mut to = Vec::new();
        for t in &s.to {
            let target = match t.as_str() {
                "limit" => Target::Limit,
                other => match other.strip_prefix("extra_vars.") {
                    Some(var) if is_identifier(var) => Target::ExtraVar(var.to_string()),
                    _ => {
                        return Err(format!(
                            "slot {}: `to` entries are \"limit\" or \"extra_vars.<name>\", not {other:?}",
                            s.name
                        ))
                    }
                },
            };
            if target == Target::Limit && !matches!(kind, SlotKind::Inventory { .. }) {
                return Err(format!("slot {}: only an inventory slot can set the limit", s.name));
            }
            to.push(target);
        }
        let question =
            s.question.clone().unwrap_or_else(|| format!("What is the {}?", s.name.replace('_', " ")));
        slots.push(Slot { name: s.name, kind, to, required: s.required, question });
    }
    if slots.iter().filter(|s| matches!(s.kind, SlotKind::Inventory { .. })).count() > 1 {
        return Err("at most one slot takes names from the inventory".into());
    }
    let mut targets: Vec<&Target> = slots.iter().flat_map(|s| s.to.iter()).collect();
    let n = targets.len();
    targets.sort_by_key(|t| format!("{t:?}"));
    targets.dedup();
    if targets.len() != n {
        return Err("two slots set the same variable or the limit".into());
    }
    let inventory = match inventory_file {
        Some(f) => Some(inventory(&f)?),
        None => None,
    };
    if inventory.is_none() && slots.iter().any(|s| matches!(s.kind, SlotKind::Inventory { .. })) {
        return Err(
            "an inventory slot needs an inventory to check names against (`run.inventory` or `run.known_hosts`)"
                .into(),
        );
    }
    let mut options = common.to_vec();
    for o in def.options {
        options.push(option_rule(o)?);
    }
    for p in &def.phases {
        if p.name.trim().is_empty() || (p.play.is_none() == p.task.is_none()) {
            return Err("each phase has a name and either a `play` or a `task` to match".into());
        }
    }
    Ok(Action {
        name: def.name.trim().to_string(),
        description: def.description,
        phrases,
        run,
        slots,
        options,
        phases: def.phases,
        inventory,
    })
}

fn option_rule(def: OptionDef) -> Result<OptionRule, String> {
    let option = RunOption::parse(&def.option)
        .ok_or_else(|| format!("option {:?}: known options are check_mode and diff_mode", def.option))?;
    let phrases: Vec<Vec<String>> = def.phrases.iter().map(|p| words(p)).filter(|w| !w.is_empty()).collect();
    if phrases.is_empty() {
        return Err(format!("option {}: needs at least one phrase", def.option));
    }
    Ok(OptionRule { option, phrases })
}

/// A phrase as the lowercase words the parser compares.
fn words(phrase: &str) -> Vec<String> {
    super::parse::tokens(phrase).into_iter().map(|t| t.word).collect()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn relative_path(path: &str, field: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.trim().is_empty()
        || p.is_absolute()
        || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!("`{field}` must be a relative path without `..`, got {path:?}"));
    }
    Ok(())
}

// ---- inventories ----

/// The host and group names of an inventory file (INI or YAML); variables are not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// The file's name as the catalog gives it.
    pub name: String,
    pub hosts: BTreeSet<String>,
    /// Each group's direct hosts and child groups.
    pub groups: BTreeMap<String, Group>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub hosts: BTreeSet<String>,
    pub children: BTreeSet<String>,
}

impl Inventory {
    /// An inventory as `ansible-inventory` read it (the launch form's list of the same file).
    pub fn from_listing(file: &shared::playbooks::InventoryFile) -> Inventory {
        let mut groups: BTreeMap<String, Group> = file
            .groups
            .iter()
            .map(|g| {
                let group = Group {
                    hosts: g.hosts.iter().cloned().collect(),
                    children: g.children.iter().cloned().collect(),
                };
                (g.name.clone(), group)
            })
            .collect();
        let hosts: BTreeSet<String> = file.hosts.iter().cloned().collect();
        groups.entry("all".into()).or_default().hosts.extend(hosts.iter().cloned());
        Inventory { name: file.name.clone(), hosts, groups }
    }

    /// Reads INI (`[group]`, `[group:children]`; `[group:vars]` skipped) or YAML (`all:` with
    /// `hosts` and `children`), chosen by the file's extension (`.yml`, `.yaml`, `.json` are YAML).
    /// (The server reads inventories with `ansible-inventory`; this reader is what it falls back to
    /// when ansible-core is not installed, as on a server that only talks to controllers.)
    pub fn parse(name: &str, text: &str) -> Result<Inventory, String> {
        let lower = name.to_ascii_lowercase();
        let mut inv = if lower.ends_with(".yml") || lower.ends_with(".yaml") || lower.ends_with(".json") {
            Inventory::from_yaml(name, text)?
        } else {
            Inventory::from_ini(name, text)?
        };
        // Ansible's implicit groups.
        let all_hosts = inv.hosts.clone();
        let all = inv.groups.entry("all".into()).or_default();
        all.hosts.extend(all_hosts);
        Ok(inv)
    }

    fn from_ini(name: &str, text: &str) -> Result<Inventory, String> {
        let mut inv = Inventory { name: name.to_string(), ..Default::default() };
        enum Section {
            Hosts(String),
            Children(String),
            Vars,
        }
        let mut section = Section::Hosts("ungrouped".into());
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header
                    .split_once(']')
                    .map(|(h, _)| h.trim())
                    .ok_or_else(|| format!("{name} line {}: a section header ends with ]", n + 1))?;
                let (group, kind) = header.split_once(':').unwrap_or((header, ""));
                if group.is_empty() {
                    return Err(format!("{name} line {}: a section needs a group name", n + 1));
                }
                section = match kind {
                    "" => Section::Hosts(group.to_string()),
                    "children" => Section::Children(group.to_string()),
                    "vars" => Section::Vars,
                    other => return Err(format!("{name} line {}: unknown section kind :{other}", n + 1)),
                };
                if !matches!(section, Section::Vars) {
                    inv.groups.entry(group.to_string()).or_default();
                }
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or_default();
            match &section {
                Section::Vars => {}
                Section::Children(group) => {
                    inv.groups.entry(first.to_string()).or_default();
                    inv.groups.entry(group.clone()).or_default().children.insert(first.to_string());
                }
                Section::Hosts(group) => {
                    for host in
                        expand_range(strip_port(first)).map_err(|e| format!("{name} line {}: {e}", n + 1))?
                    {
                        inv.hosts.insert(host.clone());
                        inv.groups.entry(group.clone()).or_default().hosts.insert(host);
                    }
                }
            }
        }
        Ok(inv)
    }

    fn from_yaml(name: &str, text: &str) -> Result<Inventory, String> {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| format!("{name} is not valid YAML: {e}"))?;
        let mut inv = Inventory { name: name.to_string(), ..Default::default() };
        match doc {
            serde_yaml::Value::Null => {}
            serde_yaml::Value::Mapping(top) => {
                for (group, body) in top {
                    let group = yaml_key(&group, name)?;
                    inv.yaml_group(name, &group, &body, 0)?;
                }
            }
            _ => return Err(format!("{name}: a YAML inventory is a mapping of groups (all: …)")),
        }
        Ok(inv)
    }

    fn yaml_group(
        &mut self,
        file: &str,
        group: &str,
        body: &serde_yaml::Value,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 32 {
            return Err(format!("{file}: groups are nested too deeply"));
        }
        self.groups.entry(group.to_string()).or_default();
        let Some(map) = body.as_mapping() else {
            if body.is_null() {
                return Ok(());
            }
            return Err(format!("{file}: group {group} must be a mapping (hosts, children, vars)"));
        };
        if let Some(hosts) = map.get("hosts") {
            match hosts {
                serde_yaml::Value::Mapping(h) => {
                    for (host, _vars) in h {
                        for host in expand_range(&yaml_key(host, file)?)? {
                            self.hosts.insert(host.clone());
                            self.groups.entry(group.to_string()).or_default().hosts.insert(host);
                        }
                    }
                }
                serde_yaml::Value::Null => {}
                _ => return Err(format!("{file}: {group}.hosts must be a mapping of host names")),
            }
        }
        if let Some(children) = map.get("children") {
            match children {
                serde_yaml::Value::Mapping(c) => {
                    for (child, child_body) in c {
                        let child = yaml_key(child, file)?;
                        self.groups.entry(group.to_string()).or_default().children.insert(child.clone());
                        self.yaml_group(file, &child, child_body, depth + 1)?;
                    }
                }
                serde_yaml::Value::Null => {}
                _ => return Err(format!("{file}: {group}.children must be a mapping of groups")),
            }
        }
        Ok(())
    }

    pub fn is_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// Every host of a group, through its children.
    pub fn members(&self, group: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![group.to_string()];
        while let Some(g) = todo.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(def) = self.groups.get(&g) {
                out.extend(def.hosts.iter().cloned());
                todo.extend(def.children.iter().cloned());
            }
        }
        out
    }
}

fn yaml_key(v: &serde_yaml::Value, file: &str) -> Result<String, String> {
    match v {
        serde_yaml::Value::String(s) => Ok(s.clone()),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{file}: host and group names are strings")),
    }
}

/// `web-01:2222` → `web-01` (not an IPv6 address, which has several colons).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Ansible's host ranges: `web-[01:03]` is web-01, web-02, web-03 (numeric ranges; the width of
/// the start is kept).
fn expand_range(host: &str) -> Result<Vec<String>, String> {
    let Some((head, rest)) = host.split_once('[') else {
        return Ok(vec![host.to_string()]);
    };
    let (range, tail) = rest.split_once(']').ok_or_else(|| format!("host range {host:?} has no ]"))?;
    let (from, to) = range.split_once(':').ok_or_else(|| format!("host range {host:?} is not [a:b]"))?;
    let (to, step) = match to.split_once(':') {
        Some((t, s)) => (t, s.parse::<usize>().map_err(|_| format!("host range {host:?}: bad step"))?),
        None => (to, 1),
    };
    let (a, b) = match (from.parse::<usize>(), to.parse::<usize>()) {
        (Ok(a), Ok(b)) if a <= b && step > 0 && (b - a) / step < 10_000 => (a, b),
        _ => return Err(format!("host range {host:?}: only numeric ranges up to 10000 hosts are read")),
    };
    let width = from.len();
    let mut out = Vec::new();
    for n in (a..=b).step_by(step) {
        for rest in expand_range(tail)? {
            out.push(format!("{head}{n:0width$}{rest}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "\
# comment
bastion
[webservers]
web-01 ansible_host=10.0.0.1
web-02:2222
[databases]
db-[01:02]
[prod:children]
webservers
databases
[prod:vars]
ntp=pool.ntp.org
";

    #[test]
    fn reads_ini_hosts_groups_and_children() {
        let inv = Inventory::parse("hosts.ini", INI).expect("parses");
        let hosts: Vec<&str> = inv.hosts.iter().map(String::as_str).collect();
        assert_eq!(hosts, ["bastion", "db-01", "db-02", "web-01", "web-02"]);
        assert!(inv.is_group("webservers") && inv.is_group("prod") && inv.is_group("all"));
        assert!(inv.is_group("ungrouped"));
        assert!(!inv.is_group("ntp"), "vars are not groups");
        let prod: Vec<String> = inv.members("prod").into_iter().collect();
        assert_eq!(prod, ["db-01", "db-02", "web-01", "web-02"]);
        assert_eq!(inv.members("all").len(), 5);
    }

    #[test]
    fn reads_yaml_inventories() {
        let yaml = "
all:
  vars: {ansible_connection: local}
  children:
    webservers:
      hosts:
        web-01: {host_patch_group: Group-1}
        web-02:
    databases:
      hosts:
        db-01:
      children:
        replicas:
          hosts:
            db-[02:03]:
";
        let inv = Inventory::parse("demo.yml", yaml).expect("parses");
        let hosts: Vec<&str> = inv.hosts.iter().map(String::as_str).collect();
        assert_eq!(hosts, ["db-01", "db-02", "db-03", "web-01", "web-02"]);
        assert_eq!(inv.members("databases").len(), 3);
        assert!(inv.is_group("replicas"));
        assert!(Inventory::parse("x.yml", "- a\n- b\n").is_err());
    }

    #[test]
    fn ranges_keep_their_width() {
        assert_eq!(expand_range("web-[08:10].lan").expect("ok"), ["web-08.lan", "web-09.lan", "web-10.lan"]);
        assert_eq!(expand_range("plain").expect("ok"), ["plain"]);
        assert!(expand_range("bad-[a:c]").is_err());
    }

    #[test]
    fn a_broken_catalog_says_what_is_wrong() {
        let inv = |_: &str| Ok(Inventory::default());
        let cases = [
            (r#"{"actions": []}"#, "no actions"),
            (r#"{"actions": [{"name": "x", "phrases": [], "run": {"playbook": "x.yml"}}]}"#, "phrase"),
            (r#"{"actions": [{"name": "x", "phrases": ["x"], "run": {"playbook": "../x.yml"}}]}"#, ".."),
            (r#"{"actions": [{"name": "x", "phrases": ["x"], "run": {}}]}"#, "either"),
            (
                r#"{"actions": [{"name": "x", "phrases": ["x"], "run": {"playbook": "x.yml"},
                   "slots": [{"name": "h", "from": "inventory", "to": ["limit"]}]}]}"#,
                "needs an inventory",
            ),
            (
                r#"{"actions": [{"name": "x", "phrases": ["x"], "run": {"playbook": "x.yml"},
                   "slots": [{"name": "g", "pattern": "(", "to": ["extra_vars.g"]}]}]}"#,
                "does not compile",
            ),
            (
                r#"{"actions": [{"name": "x", "phrases": ["x"], "run": {"playbook": "x.yml"},
                   "slots": [{"name": "g", "pattern": "g", "to": ["extra_vars.a b"]}]}]}"#,
                "extra_vars.<name>",
            ),
            (
                r#"{"actions": [{"name": "x", "phrases": ["x"], "run": {"playbook": "x.yml"}, "typo": 1}]}"#,
                "typo",
            ),
            (r#"{"options": [{"option": "turbo", "phrases": ["fast"]}], "actions": []}"#, "turbo"),
        ];
        for (text, words) in cases {
            let err = Catalog::parse(text, inv).expect_err(text);
            assert!(err.contains(words), "{text}: {err}");
        }
    }
}
