//! `/api/v1/playbooks`: the playbooks of `PLAYDECK_PLAYBOOK_DIR` (or of a git repository at a
//! branch) with their plays, `vars_prompt` and survey (`survey`); a survey's choices resolved for a launch (`POST /survey`: from the
//! chosen inventory, or from a URL through the outbound guard, cached a minute); and the hosts a
//! launch would touch (`POST /hosts`, `ansible-playbook --list-hosts`). `POST /api/v1/jobs`
//! checks a launch's extra vars against the survey with [`surveyed`].

pub mod survey;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};
use shared::aap::Survey;
use shared::credentials::CredentialKind;
use shared::playbooks::{
    HostCount, HostsRequest, Play, PlayHosts, Playbook, ResolvedQuestion, ResolvedSurvey, SurveyRequest,
    VarPrompt,
};
use shared::Page;

use crate::infra::access::Glob;
use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::Q;
use crate::infra::paths::{files_in, resolve_in, Removed};
use crate::infra::state::{App, AppState};
use crate::inventories::{self, Inventories};
use survey::Choices;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list)).route("/survey", post(resolve)).route("/hosts", post(hosts))
}

/// How long a URL's choices are kept.
const URL_CHOICES_TTL: Duration = Duration::from_secs(60);
/// The most choices a URL may give.
const MAX_URL_CHOICES: usize = 10_000;
/// The largest answer read from a choices URL.
const MAX_URL_BYTES: usize = 4 << 20;
/// How long `ansible-playbook --list-hosts` may take.
const LIST_HOSTS_TIMEOUT: Duration = Duration::from_secs(60);
/// Playbooks listed at most.
const MAX_PLAYBOOKS: usize = 1000;

/// A choices URL and the credential it is asked with.
type UrlKey = (String, Option<String>);

/// The playbooks' service: the choices URLs answered, for a minute (by URL and credential: when
/// it answered, and what).
#[derive(Default)]
pub struct Playbooks {
    url_choices: Mutex<HashMap<UrlKey, (Instant, Choices)>>,
}

impl Playbooks {
    pub fn of(app: &App) -> &Playbooks {
        app.service::<Playbooks>()
    }
}

fn bad(m: impl Into<String>) -> AppError {
    AppError::Unprocessable(m.into())
}

/// Directories of a project that hold no playbooks.
const NOT_PLAYBOOKS: [&str; 12] = [
    "roles",
    "group_vars",
    "host_vars",
    "collections",
    "templates",
    "files",
    "vars",
    "tasks",
    "handlers",
    "defaults",
    "meta",
    "library",
];

/// The playbook files of the directory by their paths in it, with their text: `.yml`/`.yaml`
/// files that are lists of plays (or, at the top, any such file: one that does not read is shown
/// with its error). Survey files are not playbooks.
fn playbook_files(dir: &Path) -> Vec<(String, Result<Value, String>)> {
    let keep = |name: &str| {
        (name.ends_with(".yml") || name.ends_with(".yaml"))
            && !name.ends_with(".survey.yml")
            && !name.ends_with(".survey.yaml")
    };
    let mut out = Vec::new();
    for f in files_in(dir, 3, &NOT_PLAYBOOKS, keep, MAX_PLAYBOOKS) {
        let read = read_yaml(&f.path);
        let plays = read.as_ref().ok().and_then(Value::as_array).is_some_and(|a| {
            a.iter().any(|p| {
                ["hosts", "import_playbook", "ansible.builtin.import_playbook"]
                    .iter()
                    .any(|k| p.get(k).is_some())
            })
        });
        if plays || (f.depth == 0 && read.is_err()) {
            out.push((f.rel, read));
        }
    }
    out
}

/// A playbook file's YAML, or what is wrong with it ("cannot be read: …", "is not YAML: …").
fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    serde_yaml::from_str::<Value>(&text).map_err(|e| format!("is not YAML: {e}"))
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().filter_map(survey::scalar_text).collect::<Vec<_>>().join(","),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::new(),
    }
}

/// A playbook's plays and prompts, and its survey (its file beside it, else its prompts).
fn playbook(dir: &Path, path: String, read: Result<Value, String>) -> Playbook {
    let mut plays = Vec::new();
    let mut vars_prompt = Vec::new();
    let error = match &read {
        Ok(Value::Array(list)) => {
            for p in list {
                if let Some(import) =
                    p.get("import_playbook").or_else(|| p.get("ansible.builtin.import_playbook"))
                {
                    plays.push(Play {
                        name: format!("imports {}", text_of(Some(import))),
                        hosts: String::new(),
                    });
                    continue;
                }
                plays.push(Play { name: text_of(p.get("name")), hosts: text_of(p.get("hosts")) });
                for vp in p.get("vars_prompt").and_then(Value::as_array).into_iter().flatten() {
                    let name = text_of(vp.get("name"));
                    if name.is_empty() || vars_prompt.iter().any(|x: &VarPrompt| x.name == name) {
                        continue;
                    }
                    vars_prompt.push(VarPrompt {
                        prompt: text_of(vp.get("prompt")),
                        // Ansible's default: a prompt is private unless it says otherwise.
                        private: vp.get("private").and_then(Value::as_bool).unwrap_or(true),
                        default: vp.get("default").cloned().filter(|d| !d.is_null()),
                        name,
                    });
                }
            }
            None
        }
        Ok(_) => Some("is not a list of plays".to_string()),
        Err(e) => Some(e.clone()),
    };
    let (survey, survey_error) = match survey_file(dir, &path) {
        Some(file) => match std::fs::read_to_string(&file) {
            Ok(text) => match survey::parse(&text) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("survey invalid: {e}"))),
            },
            Err(e) => (None, Some(format!("survey invalid: {} cannot be read: {e}", file.display()))),
        },
        None => (survey::from_prompts(&vars_prompt), None),
    };
    Playbook {
        path,
        plays,
        vars_prompt,
        survey,
        survey_error,
        error: error.map(|e| format!("the playbook {e}")),
    }
}

/// `<playbook>.survey.yml` (or `.survey.yaml`) beside it, if there is one.
fn survey_file(dir: &Path, path: &str) -> Option<PathBuf> {
    let stem = path.strip_suffix(".yml").or_else(|| path.strip_suffix(".yaml"))?;
    [format!("{stem}.survey.yml"), format!("{stem}.survey.yaml")]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|f| f.is_file() && f.canonicalize().is_ok_and(|real| real.starts_with(dir)))
}

/// A playbook (on an inventory) the caller's lists show: else a 404, as for one that is not there.
fn shown_to(caller: &Caller, path: &str, inventory: Option<&str>) -> Result<(), AppError> {
    if inventories::may_name(caller, Some(path), inventory) {
        Ok(())
    } else {
        Err(AppError::NotFound(format!(
            "there is no playbook {path:?}{} that you may launch",
            inventory.map(|i| format!(" on {i:?}")).unwrap_or_default()
        )))
    }
}

/// One playbook by its path in the directory (404 when it is not there).
async fn one(app: &App, path: &str) -> Result<Playbook, AppError> {
    let dir = app.config.engine.playbook_dir.clone();
    let full = resolve_in(&dir, path, "path", "playbook directory (PLAYDECK_PLAYBOOK_DIR)")
        .map_err(|e| AppError::NotFound(e.to_string()))?;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let read = read_yaml(&full);
        let root = dir.canonicalize().unwrap_or(dir);
        playbook(&root, path, read)
    })
    .await
    .map_err(|e| AppError::Internal(format!("reading a playbook: {e}")))
}

/// `GET /api/v1/playbooks`'s query: a git repository (and branch, and the stored credential to
/// fetch it with) to list instead of the playbook directory.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    repo: Option<String>,
    branch: Option<String>,
    credential: Option<String>,
}

/// `GET /api/v1/playbooks[?repo=&branch=&credential=]`.
async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Q(q): Q<ListQuery>,
) -> Result<Json<Page<Playbook>>, AppError> {
    inventories::may_list(&caller, "playbooks")?;
    let (dir, checkout) = match &q.repo {
        None => {
            if q.branch.is_some() || q.credential.is_some() {
                return Err(AppError::BadRequest("`branch` and `credential` go with `repo`".into()));
            }
            (app.config.engine.playbook_dir.clone(), None)
        }
        Some(repo) => {
            if let Some(name) = &q.credential {
                if !caller.access.may_use_credential_somewhere(name) {
                    return Err(AppError::Forbidden(format!(
                        "{:?} may not use the credential {name:?}",
                        caller.name
                    )));
                }
            }
            let (dir, _commit) =
                crate::engine::checkout_for_reading(&app, repo, q.branch.as_deref(), q.credential.as_deref())
                    .await?;
            (dir.0.join("src"), Some(dir))
        }
    };
    let read = tokio::task::spawn_blocking(move || {
        let root = dir.canonicalize().unwrap_or(dir);
        let list = playbook_files(&root)
            .into_iter()
            .filter(|(path, _)| inventories::may_name(&caller, Some(path), None))
            .map(|(path, read)| {
                let mut p = playbook(&root, path, read);
                p.survey = p.survey.map(survey::as_shown);
                p
            })
            .collect::<Vec<_>>();
        drop(checkout);
        list
    })
    .await
    .map_err(|e| AppError::Internal(format!("listing playbooks: {e}")))?;
    Ok(Json(Page { count: read.len() as i64, count_exact: true, next: None, previous: None, results: read }))
}

/// The answer given to a question so far, else its default, as text (for `{{ variable }}`).
fn answer_text(survey: &Survey, answers: &Map<String, Value>, variable: &str) -> Option<String> {
    let q = survey.spec.iter().find(|q| q.variable == variable)?;
    let v = answers.get(variable).filter(|v| !v.is_null()).cloned().unwrap_or_else(|| survey::default_of(q));
    match v {
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().filter_map(survey::scalar_text).collect();
            (!joined.is_empty()).then(|| joined.join(","))
        }
        other => survey::scalar_text(&other).filter(|s| !s.is_empty()),
    }
}

/// The choices of every question that takes them from somewhere, given the inventory and the
/// answers so far.
async fn resolve_choices(
    app: &AppState,
    survey: &Survey,
    inventory: Option<&str>,
    answers: &Map<String, Value>,
) -> Result<BTreeMap<String, Choices>, AppError> {
    let mut out = BTreeMap::new();
    for q in &survey.spec {
        let Some(from) = &q.choices_from else { continue };
        let filled = |text: &Option<String>, encode: bool| -> Result<Option<String>, String> {
            let Some(t) = text else { return Ok(None) };
            survey::fill(t, |v| {
                answer_text(survey, answers, v).map(|a| {
                    if encode {
                        percent_encoding::utf8_percent_encode(&a, percent_encoding::NON_ALPHANUMERIC)
                            .to_string()
                    } else {
                        a
                    }
                })
            })
            .map(Some)
            .map_err(|v| {
                let name = survey.spec.iter().find(|q| q.variable == v).map(survey::named).unwrap_or(v);
                format!("answer {name} first")
            })
        };
        let choices: Choices = async {
            match from.source.as_str() {
                "url" => {
                    let url = filled(&from.url, true)?.unwrap_or_default();
                    Ok(url_choices(app, &url, from.credential.as_deref()).await?)
                }
                source => {
                    let (group, pattern) = (filled(&from.group, false)?, filled(&from.pattern, false)?);
                    let Some(name) = inventory else {
                        return Err("choose an inventory file first: the choices are its hosts".to_string());
                    };
                    let read = Inventories::read(app, name).await.map_err(|e| e.to_string())?;
                    let inv = read.as_ref().as_ref().map_err(|e| format!("inventory {name}: {e}"))?;
                    let names = if source == "inventory_hosts" {
                        inventories::hosts_of(inv, group.as_deref().unwrap_or("all"))
                    } else {
                        inventories::groups_of(inv, group.as_deref())
                    }
                    .ok_or_else(|| {
                        format!("inventory {name} has no group {:?}", group.unwrap_or_default())
                    })?;
                    let glob = match pattern.as_deref() {
                        Some(p) => Some(Glob::parse(p).map_err(|e| format!("`pattern` {p:?}: {e}"))?),
                        None => None,
                    };
                    Ok(names.into_iter().filter(|n| glob.as_ref().is_none_or(|g| g.matches(n))).collect())
                }
            }
        }
        .await;
        out.insert(q.variable.clone(), choices);
    }
    Ok(out)
}

/// A choices URL's answer: a JSON list of texts or numbers (or `{"results": [...]}`), fetched
/// through the outbound guard with the stored credential, kept a minute.
async fn url_choices(app: &AppState, url: &str, credential: Option<&str>) -> Result<Vec<String>, String> {
    let shown = url.split(['?', '#']).next().unwrap_or(url).to_owned();
    let key = (url.to_owned(), credential.map(str::to_owned));
    if let Some((at, choices)) =
        Playbooks::of(app).url_choices.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
    {
        if at.elapsed() < URL_CHOICES_TTL {
            return choices.clone();
        }
    }
    let fetched = fetch_choices(app, url, &shown, credential).await;
    let mut cache = Playbooks::of(app).url_choices.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|_, (at, _)| at.elapsed() < URL_CHOICES_TTL);
    cache.insert(key, (Instant::now(), fetched.clone()));
    fetched
}

async fn fetch_choices(
    app: &AppState,
    url: &str,
    shown: &str,
    credential: Option<&str>,
) -> Result<Vec<String>, String> {
    let (checked, addrs) = crate::infra::outbound::check_url(&app.config.deliveries, url).await?;
    let cred = match credential {
        Some(name) => {
            let c = crate::credentials::open(
                app,
                name,
                &[CredentialKind::ApiToken, CredentialKind::Password],
                "choices_from.credential",
            )
            .await
            .map_err(|e| e.to_string())?;
            c.check_target("choices_from.credential", url).map_err(|e| e.to_string())?;
            Some(c)
        }
        None => None,
    };
    let limits = (app.config.deliveries.timeout, MAX_URL_BYTES);
    let auth = cred.as_ref().map(|c| c.url_auth());
    let body =
        crate::infra::outbound::get_checked(&checked, &addrs, auth, "application/json", limits, "").await?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| format!("{shown} did not answer JSON"))?;
    let list = v
        .as_array()
        .or_else(|| v.get("results").and_then(Value::as_array))
        .ok_or_else(|| format!("{shown} did not answer a JSON list"))?;
    let choices: Vec<String> =
        list.iter().filter_map(survey::scalar_text).filter(|s| !s.is_empty()).collect();
    if choices.len() > MAX_URL_CHOICES {
        return Err(format!("{shown} answered more than {MAX_URL_CHOICES} choices"));
    }
    Ok(choices)
}

/// `POST /api/v1/playbooks/survey`: the playbook's survey with each question's choices resolved
/// for this inventory and these answers.
async fn resolve(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<SurveyRequest>,
) -> Result<Json<ResolvedSurvey>, AppError> {
    inventories::may_list(&caller, "playbooks")?;
    shown_to(&caller, &req.path, req.inventory.as_deref())?;
    let pb = one(&app, &req.path).await?;
    if let Some(e) = &pb.survey_error {
        return Err(bad(format!("{}: {e}", req.path)));
    }
    let survey = pb.survey.unwrap_or_default();
    if let Some(inv) = &req.inventory {
        crate::infra::paths::check_relative(inv, "inventory")?;
    }
    let resolved = resolve_choices(&app, &survey, req.inventory.as_deref(), &req.answers).await?;
    // Password defaults are not shown (an answer of `$encrypted$` takes them).
    let questions = survey::as_shown(survey.clone())
        .spec
        .iter()
        .map(|q| {
            let mut question = q.clone();
            let (mut choices_error, mut depends_on) = (None, Vec::new());
            if let Some(from) = &q.choices_from {
                for text in [&from.group, &from.pattern, &from.url].into_iter().flatten() {
                    for r in survey::references(text) {
                        if !depends_on.contains(&r) {
                            depends_on.push(r);
                        }
                    }
                }
                match resolved.get(&q.variable) {
                    Some(Ok(list)) => question.choices = Value::from(list.clone()),
                    Some(Err(e)) => {
                        question.choices = Value::Array(Vec::new());
                        choices_error = Some(e.clone());
                    }
                    None => {}
                }
            } else {
                question.choices = Value::from(survey::listed_choices(q));
            }
            ResolvedQuestion { question, choices_error, depends_on }
        })
        .collect();
    Ok(Json(ResolvedSurvey { path: req.path, questions }))
}

/// A local engine launch body (`POST /api/v1/jobs` with a `source`) with its extra vars checked
/// against the playbook's survey, when it is a playbook of the directory that has a valid one and
/// the caller may launch it (else the engine says why not): defaults filled in, and the password
/// questions' variables, which are masked in what is recorded. A playbook whose survey is invalid
/// is launched with the extra vars as given.
pub async fn surveyed(
    app: &AppState,
    caller: &Caller,
    mut body: Value,
) -> Result<(Value, Vec<String>), AppError> {
    let source = &body["source"];
    let Some(path) = source["path"].as_str().filter(|_| source["type"] == "playbook").map(str::to_owned)
    else {
        return Ok((body, Vec::new()));
    };
    let inventory = match &body["inventory"] {
        i if i["type"] == "file" => i["path"].as_str().map(str::to_owned),
        _ => None,
    };
    // Whoever may launch this playbook on some inventory is held to its survey (the engine then
    // checks the inventory itself); anyone else is refused by the engine, in its words.
    if !inventories::may_name(caller, Some(&path), None) {
        return Ok((body, Vec::new()));
    }
    let Ok(pb) = one(app, &path).await else { return Ok((body, Vec::new())) };
    let Some(survey) = pb.survey else { return Ok((body, Vec::new())) };
    let mut given = match body.get("extra_vars") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        // Not an object: the engine refuses it in its words.
        Some(_) => return Ok((body, Vec::new())),
    };
    let resolved = resolve_choices(app, &survey, inventory.as_deref(), &given).await?;
    let passwords = survey::check_answers(&survey, &resolved, &mut given)
        .map_err(|e| bad(format!("`extra_vars`: {e}")))?;
    if let Some(obj) = body.as_object_mut() {
        if given.is_empty() {
            obj.remove("extra_vars");
        } else {
            obj.insert("extra_vars".into(), Value::Object(given));
        }
    }
    Ok((body, passwords))
}

/// A host name for an inline inventory on the command line.
/// (No `[a:b]` ranges: Ansible would expand them, to any size.)
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && !h.starts_with('-')
        && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
}

/// `POST /api/v1/playbooks/hosts`: the hosts each play of the playbook would run on, as
/// `ansible-playbook --list-hosts` says with the launch's inventory, limit and extra vars.
async fn hosts(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<HostsRequest>,
) -> Result<Json<HostCount>, AppError> {
    inventories::may_list(&caller, "playbooks")?;
    shown_to(&caller, &req.path, req.inventory.as_deref())?;
    let cfg = &app.config.engine;
    let playbook =
        resolve_in(&cfg.playbook_dir, &req.path, "path", "playbook directory (PLAYDECK_PLAYBOOK_DIR)")?;
    let inventory: std::ffi::OsString = match (&req.inventory, req.hosts.is_empty()) {
        (Some(_), false) => return Err(bad("give `inventory` or `hosts`, not both")),
        (Some(inv), true) => {
            resolve_in(&cfg.inventory_dir, inv, "inventory", "inventory directory (PLAYDECK_INVENTORY_DIR)")?
                .into()
        }
        (None, false) => {
            if let Some(h) = req.hosts.iter().find(|h| !plain_host(h)) {
                return Err(bad(format!("`hosts`: {h:?} is not a host name or address")));
            }
            format!("{},", req.hosts.join(",")).into()
        }
        (None, true) => return Err(bad("give `inventory` (a file of the inventory directory) or `hosts`")),
    };
    if let Some(limit) = req.limit.as_deref().map(str::trim) {
        if limit.len() > 4096 || limit.chars().any(char::is_control) || limit.starts_with('-') {
            return Err(bad("`limit` must be a host pattern such as `webservers` or `web-01,web-02`"));
        }
    }
    if let Some(bad_var) = crate::infra::text::nul_in_json(&Value::Object(req.extra_vars.clone())) {
        return Err(bad(format!("`extra_vars`: {bad_var}")));
    }
    let program = cfg.ansible_tool("ansible-playbook").ok_or_else(|| {
        AppError::Unavailable("ansible-playbook is not installed, so the hosts cannot be counted".into())
    })?;
    let vars_file = tempfile_in(&app.config.data_dir, &Value::Object(req.extra_vars.clone()))?;
    let mut cmd = tokio::process::Command::new(&program);
    // Each value joined to its option, so none can be read as an option of its own.
    let mut inventory_arg = std::ffi::OsString::from("--inventory=");
    inventory_arg.push(&inventory);
    cmd.arg("--list-hosts").arg(inventory_arg).arg(format!("--extra-vars=@{}", vars_file.0.display()));
    if let Some(limit) = req.limit.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        cmd.arg(format!("--limit={limit}"));
    }
    cmd.arg(&playbook).current_dir(playbook.parent().unwrap_or(Path::new("/")));
    let out = inventories::run_reading(&app, cmd, "ansible-playbook --list-hosts", LIST_HOSTS_TIMEOUT)
        .await
        .map_err(AppError::Unavailable)?;
    drop(vars_file);
    if !out.status.success() {
        return Err(bad(format!("ansible-playbook --list-hosts: {}", inventories::last_words(&out.stderr))));
    }
    let plays = list_hosts(&String::from_utf8_lossy(&out.stdout));
    let all: BTreeSet<String> = plays.iter().flat_map(|p| p.hosts.iter().cloned()).collect();
    Ok(Json(HostCount { count: all.len(), hosts: all.into_iter().collect(), plays }))
}

/// A file of extra vars only this process can read, removed when dropped.
fn tempfile_in(dir: &Path, v: &Value) -> Result<Removed, AppError> {
    // Absolute: ansible-playbook runs in the playbook's directory.
    let dir = dir.canonicalize().ok().filter(|d| d.is_dir()).unwrap_or_else(std::env::temp_dir);
    let path =
        dir.join(format!(".list-hosts-{}.json", hex::encode(crate::infra::secrets::random_bytes::<8>())));
    crate::infra::secrets::write_private(&path, &v.to_string()).map_err(AppError::Internal)?;
    Ok(Removed(path))
}

/// `ansible-playbook --list-hosts` output as plays and their hosts:
/// `  play #1 (all): Name\tTAGS: []` / `    pattern: ['all']` / `    hosts (2):` / `      web-01`.
fn list_hosts(text: &str) -> Vec<PlayHosts> {
    let mut plays: Vec<PlayHosts> = Vec::new();
    let mut in_hosts = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("play #") {
            let name = t.split_once("): ").map(|(_, n)| n).unwrap_or("");
            let name = name.split("\tTAGS:").next().unwrap_or(name).trim_end_matches("TAGS: []").trim();
            plays.push(PlayHosts { name: name.to_owned(), pattern: String::new(), hosts: Vec::new() });
            in_hosts = false;
        } else if let Some(p) = t.strip_prefix("pattern: ") {
            if let Some(play) = plays.last_mut() {
                play.pattern = p.trim_matches(['[', ']']).replace('\'', "");
            }
        } else if t.starts_with("hosts (") {
            in_hosts = true;
        } else if in_hosts && !t.is_empty() && line.starts_with("      ") {
            if let Some(play) = plays.last_mut() {
                play.hosts.push(t.to_owned());
            }
        } else {
            in_hosts = false;
        }
    }
    plays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_hosts_output_is_read_per_play() {
        let out = "\nplaybook: patch.yml\n\n  play #1 (all): Pre-checks for patch group Group-1\tTAGS: []\n    pattern: ['all']\n    hosts (2):\n      web-01\n      db-01\n\n  play #2 (patching_True): Patching\tTAGS: []\n    pattern: ['patching_True']\n    hosts (0):\n";
        let plays = list_hosts(out);
        assert_eq!(plays.len(), 2);
        assert_eq!(plays[0].name, "Pre-checks for patch group Group-1");
        assert_eq!(plays[0].pattern, "all");
        assert_eq!(plays[0].hosts, ["web-01", "db-01"]);
        assert!(plays[1].hosts.is_empty());
    }

    #[test]
    fn the_examples_playbooks_are_listed_with_their_plays_and_patch_has_its_survey() {
        let dir =
            crate::infra::config::EngineConfig::for_tests().playbook_dir.canonicalize().expect("examples");
        let list: Vec<Playbook> =
            playbook_files(&dir).into_iter().map(|(path, read)| playbook(&dir, path, read)).collect();
        let patch = list.iter().find(|p| p.path == "patch.yml").expect("patch.yml is listed");
        assert_eq!(patch.plays.len(), 4);
        assert_eq!(patch.plays[0].hosts, "{{ patch_hosts | default(['all']) | join(',') }}");
        assert_eq!(patch.survey_error, None);
        let vars: Vec<&str> =
            patch.survey.iter().flat_map(|s| s.spec.iter().map(|q| q.variable.as_str())).collect();
        assert_eq!(vars, ["patch_group", "patch_hosts", "reboot"]);
        assert!(list.iter().all(|p| !p.path.contains(".survey.")), "survey files are not playbooks");
    }
}
