//! The launch form (`/launch`): an AAP job template or a local playbook, opening on what exists.
//! For a template the form is built from what the template asks for at launch (its
//! `ask_*_on_launch` prompts and its survey); a local playbook and its inventory are picked from
//! the server's lists, its survey (file or `vars_prompt`) asked with choices the server resolves
//! for the chosen inventory and earlier answers, the limit picked from the inventory's groups and
//! hosts, and the hosts the launch will touch counted before it runs. Extra vars are YAML or
//! JSON, checked before sending. The server's answer decides: the new job opens, or its error is
//! shown as it said it.

use std::rc::Rc;

use serde_json::{Map, Value};
use shared::aap::{LaunchPrompts, SurveyQuestion, TemplatePage};
use shared::playbooks::{InventoryFile, Playbook, ResolvedSurvey, SurveyRequest};
use shared::Role;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::route::{use_nav, Link};
use crate::session::use_session;
use crate::vars::parse_vars;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Template,
    Playbook,
}

/// One survey question (AWX's `survey_spec` entry); its answer goes into the extra vars.
#[derive(Clone, PartialEq)]
struct Question {
    label: String,
    help: String,
    variable: String,
    /// `text`, `textarea`, `password`, `integer`, `float`, `multiplechoice`, `multiselect`.
    kind: String,
    required: bool,
    default: String,
    choices: Vec<String>,
    /// Why its choices could not be had (from the server).
    error: Option<String>,
    /// Any answer is taken (its choices could not be had, and its spec allows free text).
    free: bool,
    /// The earlier questions whose answers its choices depend on.
    depends: Vec<String>,
}

/// What the form asks for one of AWX's survey questions (a template's or a local playbook's).
fn question_from(q: &SurveyQuestion) -> Question {
    Question {
        label: if q.question_name.is_empty() { q.variable.clone() } else { q.question_name.clone() },
        help: q.question_description.clone(),
        kind: if q.kind.is_empty() { "text".into() } else { q.kind.clone() },
        required: q.required,
        default: match &q.default {
            Value::Array(a) => a.iter().map(text_of).collect::<Vec<_>>().join("\n"),
            other => text_of(other),
        },
        variable: q.variable.clone(),
        choices: match &q.choices {
            Value::String(s) => s.lines().map(str::to_owned).filter(|c| !c.is_empty()).collect(),
            Value::Array(a) => a.iter().map(text_of).collect(),
            _ => Vec::new(),
        },
        error: None,
        free: false,
        depends: Vec::new(),
    }
}

/// A local playbook's survey as the server resolved it.
fn resolved_questions(s: &ResolvedSurvey) -> Vec<Question> {
    s.questions
        .iter()
        .map(|r| Question {
            error: r.choices_error.clone(),
            free: r.choices_error.is_some() && r.question.choices_from.as_ref().is_some_and(|f| f.free_text),
            depends: r.depends_on.clone(),
            ..question_from(&r.question)
        })
        .collect()
}

/// A playbook's plays as the form names them (templated parts shown as "…").
fn plays_of(p: &Playbook) -> String {
    let names: Vec<String> = p
        .plays
        .iter()
        .map(|pl| {
            let mut out = String::new();
            let mut rest = pl.name.as_str();
            while let Some((before, after)) = rest.split_once("{{") {
                out.push_str(before);
                out.push('…');
                rest = after.split_once("}}").map_or("", |(_, r)| r);
            }
            out.push_str(rest);
            out
        })
        .collect();
    format!("{}: {}", if names.len() == 1 { "Play" } else { "Plays" }, names.join("; "))
}

/// A playbook picked from the list: what was typed for another path or a repository goes.
fn pick_playbook(f: &mut Form, v: String) {
    if v != OTHER_PLAYBOOK {
        f.path.clear();
        f.repo.clear();
        f.branch.clear();
    }
    f.playbook = v;
}

/// An inventory picked from the list: hosts typed for an inline inventory go with another choice.
fn pick_inventory(f: &mut Form, v: String) {
    if v != TYPED_HOSTS {
        f.hosts.clear();
    }
    f.inventory = v;
}

/// The inventory select's choice that types host names instead of naming a file.
const TYPED_HOSTS: &str = "(hosts)";
/// The playbook select's choice that types a path (or a git repository's) instead.
const OTHER_PLAYBOOK: &str = "(other)";

/// A template as the form uses it (from `GET /api/v1/templates`).
#[derive(Clone, PartialEq)]
struct Template {
    controller: Option<String>,
    name: String,
    description: String,
    /// What the template asks for at launch.
    prompts: LaunchPrompts,
    survey: Vec<Question>,
}

impl Template {
    /// Whether the template asks for `prompt` (`variables`, `limit`, `tags`, …) at launch.
    fn asks(&self, prompt: &str) -> bool {
        let p = &self.prompts;
        match prompt {
            "variables" => p.ask_variables_on_launch,
            "limit" => p.ask_limit_on_launch,
            "tags" => p.ask_tags_on_launch,
            "skip_tags" => p.ask_skip_tags_on_launch,
            "inventory" => p.ask_inventory_on_launch,
            "verbosity" => p.ask_verbosity_on_launch,
            "diff_mode" => p.ask_diff_mode_on_launch,
            "job_type" => p.ask_job_type_on_launch,
            _ => false,
        }
    }

    /// How the select names it: `name` alone, or `name (controller)`.
    fn key(&self) -> String {
        match &self.controller {
            Some(c) => format!("{} ({c})", self.name),
            None => self.name.clone(),
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn templates_from(page: &TemplatePage) -> Vec<Template> {
    page.results.iter().map(template_from).collect()
}

/// A controller's template as the form uses it: its prompts by name and its survey's questions
/// (a survey that is switched off asks nothing).
fn template_from(t: &shared::aap::Template) -> Template {
    let survey = t
        .survey
        .as_ref()
        .filter(|_| t.survey_enabled)
        .map(|s| s.spec.iter().filter(|q| !q.variable.is_empty()).map(question_from).collect())
        .unwrap_or_default();
    Template {
        controller: Some(t.controller.clone()),
        name: t.name.clone(),
        description: t.description.clone(),
        prompts: t.prompts.clone(),
        survey,
    }
}

/// What is typed into the form.
#[derive(Clone, PartialEq, Default)]
struct Form {
    template: String,
    /// The playbook picked from the list, or [`OTHER_PLAYBOOK`] with the one typed in `path`.
    playbook: String,
    path: String,
    /// A git repository to take the playbook from (local engine), and its branch.
    repo: String,
    branch: String,
    inventory: String,
    /// Hosts to run on, comma-separated (local engine, instead of an inventory file).
    hosts: String,
    vars: String,
    limit: String,
    tags: String,
    skip_tags: String,
    check: bool,
    diff: bool,
    verbosity: String,
    /// Survey answers by variable (multiselect: one per line).
    answers: Map<String, Value>,
}

/// A survey answer as the controller wants it, or what is wrong with it.
fn answer(q: &Question, raw: Option<&Value>) -> Result<Option<Value>, String> {
    let text = raw.map(text_of).unwrap_or_else(|| q.default.clone());
    if text.trim().is_empty() {
        return if q.required { Err(format!("“{}” needs an answer", q.label)) } else { Ok(None) };
    }
    Ok(Some(match q.kind.as_str() {
        "integer" => Value::from(
            text.trim().parse::<i64>().map_err(|_| format!("“{}” must be a whole number", q.label))?,
        ),
        "float" => {
            Value::from(text.trim().parse::<f64>().map_err(|_| format!("“{}” must be a number", q.label))?)
        }
        "multiselect" => Value::Array(
            text.lines().filter(|l| !l.is_empty()).map(|l| Value::String(l.to_owned())).collect(),
        ),
        _ => Value::String(text),
    }))
}

/// The extra vars: what is typed, then the survey's answers.
/// `strict`: a survey answer that is missing or wrong is the error (else it is left out, for the
/// host count while the form is being filled in).
fn extra_vars(
    form: &Form,
    typed: bool,
    survey: &[Question],
    strict: bool,
) -> Result<Map<String, Value>, String> {
    let mut vars = match parse_vars(&form.vars).map_err(|e| format!("Extra vars: {e}"))? {
        Some(Value::Object(o)) if typed => o,
        _ => Map::new(),
    };
    for q in survey {
        // A question left unanswered whose variable is typed in the extra vars: the server checks it.
        if !form.answers.contains_key(&q.variable) && vars.contains_key(&q.variable) {
            continue;
        }
        match answer(q, form.answers.get(&q.variable)) {
            Ok(Some(v)) => drop(vars.insert(q.variable.clone(), v)),
            Err(e) if strict => return Err(e),
            _ => {}
        }
    }
    Ok(vars)
}

fn trimmed(s: &str) -> Option<Value> {
    let s = s.trim();
    (!s.is_empty()).then(|| Value::String(s.to_owned()))
}

fn list(s: &str) -> Vec<Value> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(|t| Value::String(t.to_owned())).collect()
}

/// The body of `POST /api/v1/jobs`, or what to fix first: a template launch takes what the template
/// prompts for (the connector's `TemplateLaunch`), a playbook launch the local engine's
/// `LaunchRequest` (source, inventory, extra vars, options).
fn launch_body(
    kind: Kind,
    form: &Form,
    chosen: Option<&Template>,
    survey: &[Question],
) -> Result<Value, String> {
    let mut body = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    };
    match kind {
        Kind::Template => {
            let asks = |prompt: &str| chosen.is_none_or(|t| t.asks(prompt));
            let name = chosen.map_or(form.template.trim(), |t| t.name.as_str());
            if name.is_empty() {
                return Err("Choose a job template.".into());
            }
            put("template", trimmed(name));
            put("controller", chosen.and_then(|t| t.controller.clone()).map(Value::String));
            let vars = extra_vars(
                form,
                asks("variables"),
                chosen.map(|t| t.survey.as_slice()).unwrap_or_default(),
                true,
            )?;
            put("extra_vars", (!vars.is_empty()).then_some(Value::Object(vars)));
            let asked = |prompt: &str, v: &str| if asks(prompt) { trimmed(v) } else { None };
            put("inventory", asked("inventory", &form.inventory));
            put("limit", asked("limit", &form.limit));
            put("job_tags", asked("tags", &form.tags));
            put("skip_tags", asked("skip_tags", &form.skip_tags));
            put("job_type", (asks("job_type") && form.check).then(|| Value::String("check".into())));
            put("diff_mode", (asks("diff_mode") && form.diff).then_some(Value::Bool(true)));
            put(
                "verbosity",
                if asks("verbosity") { form.verbosity.parse::<u8>().ok().map(Value::from) } else { None },
            );
        }
        Kind::Playbook => {
            // Typed (or picked from a repository's list), else picked from the directory's list.
            let typed = form.playbook == OTHER_PLAYBOOK
                || !(form.repo.trim().is_empty() || form.path.trim().is_empty());
            let path = if typed { form.path.trim() } else { form.playbook.trim() };
            if path.is_empty() {
                return Err("Name the playbook to run.".into());
            }
            let source = match trimmed(&form.repo) {
                Some(repo) => {
                    serde_json::json!({"type": "git", "repo": repo, "branch": trimmed(&form.branch), "path": path})
                }
                None => serde_json::json!({"type": "playbook", "path": path}),
            };
            put("source", Some(strip_nulls(source)));
            let hosts = list(&form.hosts);
            put(
                "inventory",
                match (trimmed(&form.inventory).filter(|i| i != TYPED_HOSTS), hosts.is_empty()) {
                    (Some(_), false) => {
                        return Err("Give an inventory file or a list of hosts, not both.".into())
                    }
                    (Some(file), true) => Some(serde_json::json!({"type": "file", "path": file})),
                    (None, false) => Some(serde_json::json!({"type": "inline", "hosts": hosts})),
                    (None, true) => None,
                },
            );
            let vars = extra_vars(form, true, survey, true)?;
            put("extra_vars", (!vars.is_empty()).then_some(Value::Object(vars)));
            let mut options = Map::new();
            for (k, v) in [
                ("limit", trimmed(&form.limit)),
                (
                    "tags",
                    Some(Value::Array(list(&form.tags)))
                        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty())),
                ),
                (
                    "skip_tags",
                    Some(Value::Array(list(&form.skip_tags)))
                        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty())),
                ),
                ("verbosity", form.verbosity.parse::<u8>().ok().map(Value::from)),
                ("check_mode", form.check.then_some(Value::Bool(true))),
                ("diff_mode", form.diff.then_some(Value::Bool(true))),
            ] {
                if let Some(v) = v {
                    options.insert(k.into(), v);
                }
            }
            put("options", (!options.is_empty()).then_some(Value::Object(options)));
        }
    }
    Ok(Value::Object(body))
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// The form's state: what to run, the templates to choose from, what is typed, and the answer.
#[derive(Clone, PartialEq)]
struct LaunchState {
    kind: Kind,
    /// The kind was chosen (by the person or the address), not from what exists.
    kind_chosen: bool,
    templates: Load<Vec<Template>>,
    /// (Shared, not copied: the state is copied on every keystroke.)
    playbooks: Load<Rc<Vec<Playbook>>>,
    inventories: Load<Rc<Vec<InventoryFile>>>,
    /// The chosen local playbook's survey as the server resolved it, and for what it was asked.
    survey: Option<(String, String, Result<Vec<Question>, String>)>,
    form: Form,
    sending: bool,
    error: Option<String>,
}

enum LaunchAction {
    Kind(Kind),
    Templates(Result<Vec<Template>, ApiError>),
    Playbooks(Result<Vec<Playbook>, ApiError>),
    Inventories(Result<Vec<InventoryFile>, ApiError>),
    /// A survey as resolved for this request (its key) of this playbook.
    Survey(String, String, Result<Vec<Question>, String>),
    /// A field typed: written into the form (an earlier refusal is cleared).
    Field(fn(&mut Form, String), String),
    /// A survey answer: its variable and value.
    Answer(String, String),
    /// The form cannot be sent as it is: why.
    Refused(String),
    Sending,
    Sent,
    Failed(String),
}

impl Reducible for LaunchState {
    type Action = LaunchAction;

    fn reduce(self: Rc<Self>, action: LaunchAction) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            LaunchAction::Kind(k) => {
                s.kind = k;
                s.kind_chosen = true;
                s.error = None;
            }
            LaunchAction::Templates(r) => s.templates = Load::Loaded(r),
            LaunchAction::Playbooks(r) => s.playbooks = Load::Loaded(r.map(Rc::new)),
            LaunchAction::Inventories(r) => s.inventories = Load::Loaded(r.map(Rc::new)),
            LaunchAction::Survey(key, path, r) => s.survey = Some((key, path, r)),
            LaunchAction::Field(write, value) => {
                write(&mut s.form, value);
                s.error = None;
            }
            LaunchAction::Answer(variable, value) => {
                s.form.answers.insert(variable, Value::String(value));
                s.error = None;
            }
            LaunchAction::Refused(e) => s.error = Some(e),
            LaunchAction::Sending => {
                s.sending = true;
                s.error = None;
            }
            LaunchAction::Sent => s.sending = false,
            LaunchAction::Failed(e) => {
                s.sending = false;
                s.error = Some(e);
            }
        }
        // The page opens on what exists: templates when a controller lists some, else local
        // playbooks when there are some.
        if !s.kind_chosen {
            let templates = matches!(&s.templates, Load::Loaded(Ok(t)) if !t.is_empty());
            let playbooks = matches!(&s.playbooks, Load::Loaded(Ok(p)) if !p.is_empty());
            s.kind = if !templates && playbooks { Kind::Playbook } else { Kind::Template };
        }
        Rc::new(s)
    }
}

#[function_component(LaunchPage)]
pub fn launch_page() -> Html {
    let session = use_session();
    let nav = use_nav();
    let state = use_reducer(|| LaunchState {
        kind: if nav.location.param("source").is_some() { Kind::Playbook } else { Kind::Template },
        kind_chosen: nav.location.param("source").is_some() || nav.location.param("template").is_some(),
        templates: Load::Loading,
        playbooks: Load::Loading,
        inventories: Load::Loading,
        survey: None,
        form: Form {
            template: nav.location.param("template").unwrap_or_default(),
            playbook: nav.location.param("source").unwrap_or_default(),
            path: nav.location.param("source").unwrap_or_default(),
            ..Form::default()
        },
        sending: false,
        error: None,
    });
    let dispatcher = state.dispatcher();
    let scheduling = use_state(|| false);
    let repo_list = use_state(|| None::<Load<Vec<String>>>);
    // The repository and branch the list is of: another one typed forgets it.
    let repo_now = use_mut_ref(String::new);
    {
        let (repo_list, repo_now) = (repo_list.clone(), repo_now.clone());
        use_effect_with(format!("{}\n{}", state.form.repo.trim(), state.form.branch.trim()), move |key| {
            *repo_now.borrow_mut() = key.clone();
            repo_list.set(None);
        });
    }
    let scheduled = use_state(|| Load::<Vec<shared::schedules::Schedule>>::Loading);
    {
        let scheduled = scheduled.clone();
        use_effect_with((), move |_| {
            crate::ui::spawn(async move {
                scheduled.set(Load::Loaded(api::schedules().await.map(|p| p.results)));
            });
        });
    }
    crate::ui::use_title("Launch a job".into());
    // The chosen local playbook (from the list) and its survey, asked of the server again when
    // the playbook, the inventory or an answer that choices depend on changes.
    let picked: Option<&Playbook> = match (&state.playbooks, state.kind) {
        (Load::Loaded(Ok(list)), Kind::Playbook) => list.iter().find(|p| p.path == state.form.playbook),
        _ => None,
    };
    let inventory_file =
        Some(state.form.inventory.trim().to_owned()).filter(|i| !i.is_empty() && i != TYPED_HOSTS);
    let local_survey: Vec<Question> = match (&state.survey, picked) {
        (Some((_, path, Ok(q))), Some(p)) if *path == p.path => q.clone(),
        _ => Vec::new(),
    };
    let survey_key = picked.filter(|p| p.survey.is_some()).map(|p| {
        let mut answers = Map::new();
        for dep in local_survey.iter().flat_map(|q| q.depends.iter()) {
            if let Some(v) = state.form.answers.get(dep) {
                answers.insert(dep.clone(), v.clone());
            }
        }
        let req = SurveyRequest { path: p.path.clone(), inventory: inventory_file.clone(), answers };
        (p.path.clone(), serde_json::to_string(&req).unwrap_or_default())
    });
    {
        // Only the answer to the latest question is kept (a slow one for an earlier inventory or
        // earlier answers is dropped).
        let (d, latest) = (dispatcher.clone(), use_mut_ref(String::new));
        use_effect_with(survey_key.clone(), move |key| {
            if let Some((path, key)) = key.clone() {
                *latest.borrow_mut() = key.clone();
                crate::ui::spawn(async move {
                    let answer = api::playbook_survey(key.clone())
                        .await
                        .map(|s| resolved_questions(&s))
                        .map_err(|e| e.words());
                    if *latest.borrow() == key {
                        d.dispatch(LaunchAction::Survey(key, path, answer));
                    }
                });
            }
        });
    }
    {
        let d = dispatcher.clone();
        use_effect_with((), move |_| {
            // Each list as soon as it comes (inventories are read by ansible-inventory).
            let (d2, d3) = (d.clone(), d.clone());
            crate::ui::spawn(async move {
                d.dispatch(LaunchAction::Playbooks(api::playbooks().await.map(|p| p.results)));
            });
            crate::ui::spawn(async move {
                d2.dispatch(LaunchAction::Inventories(api::inventories().await.map(|p| p.results)));
            });
            crate::ui::spawn(async move {
                d3.dispatch(LaunchAction::Templates(api::templates().await.map(|p| templates_from(&p))));
            });
        });
    }
    if session.as_ref().is_none_or(|s| !s.may(Role::Operator)) {
        return html! {
            <main class="page narrow">
                <h1>{ "Launch a job" }</h1>
                <p class="notice">{ "Launching needs the operator role; this key is a viewer." }</p>
                <p><Link to="/">{ "← Jobs" }</Link></p>
            </main>
        };
    }
    let form = &state.form;
    let list = match &state.templates {
        Load::Loaded(Ok(list)) => list.clone(),
        _ => Vec::new(),
    };
    let chosen = (state.kind == Kind::Template)
        .then(|| list.iter().find(|t| t.key() == form.template))
        .flatten()
        .cloned();
    let asks = |prompt: &str| state.kind == Kind::Playbook || chosen.as_ref().is_none_or(|t| t.asks(prompt));
    let vars_check = parse_vars(&form.vars);

    // One callback per field: it writes the field and clears an earlier refusal.
    let field = |write: fn(&mut Form, String)| {
        let d = dispatcher.clone();
        Callback::from(move |e: Event| {
            let target = e.target();
            let value = target
                .clone()
                .and_then(|t| wasm_bindgen::JsCast::dyn_into::<HtmlInputElement>(t).ok())
                .map(|i| if i.type_() == "checkbox" { i.checked().to_string() } else { i.value() })
                .or_else(|| {
                    target
                        .clone()
                        .and_then(|t| wasm_bindgen::JsCast::dyn_into::<HtmlTextAreaElement>(t).ok())
                        .map(|t| t.value())
                })
                .or_else(|| {
                    target
                        .and_then(|t| wasm_bindgen::JsCast::dyn_into::<HtmlSelectElement>(t).ok())
                        .map(|s| s.value())
                });
            if let Some(value) = value {
                d.dispatch(LaunchAction::Field(write, value));
            }
        })
    };
    let text_input = |id: &'static str,
                      label: &str,
                      value: &str,
                      placeholder: &'static str,
                      write: fn(&mut Form, String)| {
        let cb = field(write);
        let oninput = Callback::from(move |e: InputEvent| cb.emit(e.into()));
        html! {
            <>
                <label for={id}>{ label.to_owned() }</label>
                <input id={id} type="text" value={value.to_owned()} {oninput} {placeholder} data-testid={id} />
            </>
        }
    };
    let set_kind = |k: Kind| {
        let d = dispatcher.clone();
        Callback::from(move |_: Event| d.dispatch(LaunchAction::Kind(k)))
    };
    let onsubmit = {
        let (kind, form, sending) = (state.kind, form.clone(), state.sending);
        let d = dispatcher.clone();
        let nav = nav.clone();
        let chosen = chosen.clone();
        let survey_now = local_survey.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if sending {
                return;
            }
            let body = match launch_body(kind, &form, chosen.as_ref(), &survey_now) {
                Ok(b) => b,
                Err(e) => return d.dispatch(LaunchAction::Refused(e)),
            };
            d.dispatch(LaunchAction::Sending);
            let (d, nav) = (d.clone(), nav.clone());
            crate::ui::spawn(async move {
                match api::launch(&body).await {
                    Ok(answer) => {
                        d.dispatch(LaunchAction::Sent);
                        nav.push(&format!("/jobs/{}", answer.job.id));
                    }
                    Err(e) => {
                        d.dispatch(LaunchAction::Failed(format!("The launch was refused: {}", e.words())))
                    }
                }
            });
        })
    };
    let on_vars = {
        let cb = field(|f, v| f.vars = v);
        Callback::from(move |e: InputEvent| cb.emit(e.into()))
    };

    let template_field = match &state.templates {
        Load::Loaded(Ok(list)) if !list.is_empty() => html! {
            <>
                <label for="launch-template">{ "Job template" }</label>
                <select id="launch-template" onchange={field(|f, v| f.template = v)} data-testid="launch-template">
                    <option value="" selected={form.template.is_empty()}>{ "Choose…" }</option>
                    { for list.iter().map(|t| html! {
                        <option value={t.key()} selected={form.template == t.key()}>{ t.key() }</option>
                    }) }
                </select>
                if let Some(t) = chosen.as_ref().filter(|t| !t.description.is_empty()) {
                    <p class="hint">{ &t.description }</p>
                }
            </>
        },
        other => html! {
            <>
                { text_input("launch-template", "Job template", &form.template, "the template's name", |f, v| f.template = v) }
                <p class="hint">{ match other {
                    Load::Loading => "Loading the templates…".to_string(),
                    Load::Loaded(Err(e)) => format!("The templates could not be listed ({e}); type the name."),
                    Load::Loaded(Ok(_)) => "No templates are listed; type the name.".to_string(),
                } }</p>
            </>
        },
    };
    let survey = if state.kind == Kind::Playbook {
        local_survey.clone()
    } else {
        chosen.as_ref().map(|t| t.survey.clone()).unwrap_or_default()
    };
    let survey_problem = match (picked, &state.survey) {
        (Some(p), _) if p.survey_error.is_some() => p.survey_error.clone(),
        (Some(p), Some((_, path, Err(e)))) if *path == p.path => {
            Some(format!("The survey could not be read: {e}"))
        }
        _ => None,
    };
    // What `--list-hosts` is asked: the launch as the form stands.
    let count_body = picked.and_then(|p| {
        let hosts = self::list(&form.hosts);
        let mut body = serde_json::json!({"path": p.path, "limit": trimmed(&form.limit),
            "extra_vars": extra_vars(form, true, &survey, false).unwrap_or_default()});
        match (&inventory_file, hosts.is_empty()) {
            (Some(inv), _) => body["inventory"] = Value::String(inv.clone()),
            (None, false) => body["hosts"] = Value::Array(hosts),
            (None, true) => return None,
        }
        Some(body)
    });
    let on_limit = {
        let d = dispatcher.clone();
        Callback::from(move |limit: String| d.dispatch(LaunchAction::Field(|f, v| f.limit = v, limit)))
    };
    // A repository's playbooks, listed when asked (the server fetches the branch).
    let list_repo = {
        let (repo_list, repo, branch) =
            (repo_list.clone(), form.repo.trim().to_owned(), form.branch.trim().to_owned());
        let repo_now = repo_now.clone();
        Callback::from(move |_: MouseEvent| {
            let (repo_list, repo, branch, repo_now) =
                (repo_list.clone(), repo.clone(), branch.clone(), repo_now.clone());
            repo_list.set(Some(Load::Loading));
            crate::ui::spawn(async move {
                let listed = api::repo_playbooks(&repo, &branch)
                    .await
                    .map(|p| p.results.into_iter().map(|p| p.path).collect());
                if *repo_now.borrow() == format!("{repo}\n{branch}") {
                    repo_list.set(Some(Load::Loaded(listed)));
                }
            });
        })
    };
    let repo_fields = html! {
        <>
            { text_input("launch-repo", "From a git repository (optional)", &form.repo, "https://git.example.com/ops/playbooks.git", |f, v| f.repo = v) }
            if !form.repo.trim().is_empty() {
                { text_input("launch-branch", "Branch (optional)", &form.branch, "main", |f, v| f.branch = v) }
                <button type="button" class="secondary" onclick={list_repo} data-testid="launch-repo-list">{ "List its playbooks" }</button>
                { match &*repo_list {
                    None => html! {},
                    Some(Load::Loading) => html! { <p class="hint">{ "Fetching the branch…" }</p> },
                    Some(Load::Loaded(Err(e))) => html! { <p class="hint error" data-testid="launch-repo-error">{ e.words() }</p> },
                    Some(Load::Loaded(Ok(paths))) => html! {
                        <select aria-label="The repository's playbooks" onchange={field(|f, v| f.path = v)} data-testid="launch-repo-playbooks">
                            <option value="" selected={form.path.is_empty()}>{ format!("{} playbook{} in the branch: choose…", paths.len(), if paths.len() == 1 { "" } else { "s" }) }</option>
                            { for paths.iter().map(|p| html! { <option value={p.clone()} selected={form.path == *p}>{ p }</option> }) }
                        </select>
                    },
                } }
            }
        </>
    };
    let playbook_field = match &state.playbooks {
        Load::Loaded(Ok(list)) if !list.is_empty() => html! {
            <>
                <label for="launch-playbook">{ "Playbook" }</label>
                <select id="launch-playbook" onchange={field(pick_playbook)} data-testid="launch-playbook">
                    <option value="" selected={form.playbook.is_empty()}>{ "Choose…" }</option>
                    { for list.iter().map(|p| html! {
                        <option value={p.path.clone()} selected={form.playbook == p.path}>
                            { if p.survey.is_some() { format!("{} (survey)", p.path) } else { p.path.clone() } }
                        </option>
                    }) }
                    <option value={OTHER_PLAYBOOK} selected={form.playbook == OTHER_PLAYBOOK || (!form.playbook.is_empty() && !list.iter().any(|p| p.path == form.playbook))}>
                        { "Another path, or from a git repository…" }</option>
                </select>
                if let Some(p) = picked {
                    <p class="hint" data-testid="launch-plays">{ plays_of(p) }</p>
                    if let Some(e) = &p.error { <p class="hint error">{ e }</p> }
                }
                if form.playbook == OTHER_PLAYBOOK || (!form.playbook.is_empty() && picked.is_none()) {
                    { text_input("launch-playbook-path", "Playbook path", &form.path, "site.yml", |f, v| f.path = v) }
                    { repo_fields.clone() }
                }
            </>
        },
        _ => html! {
            <>
                { text_input("launch-playbook", "Playbook", &form.playbook, "site.yml", |f, v| f.playbook = v) }
                { repo_fields }
            </>
        },
    };
    let inventory_field = match &state.inventories {
        Load::Loaded(Ok(list)) if !list.is_empty() => html! {
            <>
                <label for="launch-inventory">{ "Inventory" }</label>
                <select id="launch-inventory" onchange={field(pick_inventory)} data-testid="launch-inventory">
                    <option value="" selected={form.inventory.is_empty()}>{ "None (the playbook's hosts)" }</option>
                    { for list.iter().map(|i| html! {
                        <option value={i.name.clone()} selected={form.inventory == i.name}>
                            { match &i.error { Some(_) => format!("{} (cannot be read)", i.name),
                                None => format!("{} ({} host{})", i.name, i.host_count, if i.host_count == 1 { "" } else { "s" }) } }
                        </option>
                    }) }
                    <option value={TYPED_HOSTS} selected={form.inventory == TYPED_HOSTS}>{ "Hosts typed in…" }</option>
                </select>
                if let Some(e) = list.iter().find(|i| i.name == form.inventory).and_then(|i| i.error.clone()) {
                    <p class="hint error">{ e }</p>
                }
                if form.inventory == TYPED_HOSTS {
                    { text_input("launch-hosts", "Hosts", &form.hosts, "web-01, web-02", |f, v| f.hosts = v) }
                }
            </>
        },
        _ => html! {
            <>
                { text_input("launch-inventory", "Inventory file (optional)", &form.inventory, "demo.yml", |f, v| f.inventory = v) }
                { text_input("launch-hosts", "Or hosts (optional)", &form.hosts, "web-01, web-02", |f, v| f.hosts = v) }
            </>
        },
    };
    let picker_inventory = match &state.inventories {
        Load::Loaded(Ok(list)) if state.kind == Kind::Playbook => {
            inventory_file.clone().filter(|i| list.iter().any(|f| f.name == *i && f.error.is_none()))
        }
        _ => None,
    };
    let toggle_schedule = {
        let scheduling = scheduling.clone();
        Callback::from(move |_: MouseEvent| scheduling.set(!*scheduling))
    };
    let target_name =
        if state.kind == Kind::Playbook { form.playbook.trim().to_owned() } else { form.template.clone() };
    // What is already scheduled for the chosen playbook or template: its next run.
    let next_run = match &*scheduled {
        Load::Loaded(Ok(list)) if !target_name.is_empty() => list
            .iter()
            .filter(|s| s.enabled && s.target.ends_with(target_name.as_str()))
            .filter_map(|s| s.next_run.map(|t| (t, s.name.clone())))
            .min_by_key(|(t, _)| *t)
            .map(|(t, name)| format!("Scheduled: next run {} ({name})", t.format("%a %Y-%m-%d %H:%M %:z"))),
        _ => None,
    };
    let on_answer = {
        let d = dispatcher.clone();
        Callback::from(move |(variable, value): (String, String)| {
            d.dispatch(LaunchAction::Answer(variable, value))
        })
    };

    html! {
        <main class="page narrow">
            <div class="toolbar"><Link to="/" class="back">{ "← Jobs" }</Link></div>
            <form class="launch card wide" {onsubmit} data-testid="launch-form" novalidate=true>
                <h1>{ "Launch a job" }</h1>
                <fieldset class="kind">
                    <legend>{ "What to run" }</legend>
                    <label><input type="radio" name="kind" checked={state.kind == Kind::Template}
                                  onchange={set_kind(Kind::Template)} data-testid="launch-kind-template" />
                        { " An AAP job template" }</label>
                    <label><input type="radio" name="kind" checked={state.kind == Kind::Playbook}
                                  onchange={set_kind(Kind::Playbook)} data-testid="launch-kind-playbook" />
                        { " A local playbook" }</label>
                </fieldset>
                if state.kind == Kind::Template {
                    { template_field }
                } else {
                    { playbook_field }
                    { inventory_field }
                }
                if let Some(problem) = survey_problem {
                    <p class="hint error" data-testid="launch-survey-error">{ problem }</p>
                }
                if !survey.is_empty() {
                    <fieldset class="survey" data-testid="launch-survey">
                        <legend>{ "Survey" }</legend>
                        { for survey.iter().map(|q| survey_field(q, form, &on_answer)) }
                    </fieldset>
                }
                if asks("variables") {
                    <label for="launch-vars">{ "Extra vars (YAML or JSON)" }</label>
                    <textarea id="launch-vars" rows="6" spellcheck="false" value={form.vars.clone()} oninput={on_vars}
                              aria-invalid={vars_check.is_err().to_string()} aria-describedby="launch-vars-check"
                              placeholder={"patch_group: Group-1\nreboot: false"} data-testid="launch-vars" />
                    <p id="launch-vars-check" class={classes!("hint", vars_check.is_err().then_some("error"))}
                       data-testid="launch-vars-check">
                        { match &vars_check {
                            Ok(None) => "No extra vars.".to_string(),
                            Ok(Some(v)) => {
                                let n = v.as_object().map_or(0, |o| o.len());
                                format!("{n} variable{}.", if n == 1 { "" } else { "s" })
                            }
                            Err(e) => e.clone(),
                        } }
                    </p>
                }
                if state.kind == Kind::Template && asks("inventory") {
                    { text_input("launch-inventory", "Inventory (optional)", &form.inventory, "the inventory's name or id", |f, v| f.inventory = v) }
                }
                if asks("limit") {
                    { text_input("launch-limit", "Limit (optional)", &form.limit, "web-01,web-02 or a group", |f, v| f.limit = v) }
                }
                if let Some(inventory) = picker_inventory {
                    <crate::pick::HostPicker {inventory} limit={form.limit.clone()} on_limit={on_limit} />
                }
                if let Some(body) = count_body {
                    <crate::pick::HostCounter {body} />
                }
                if asks("tags") {
                    { text_input("launch-tags", "Tags (optional)", &form.tags, "patch,reboot", |f, v| f.tags = v) }
                }
                if asks("skip_tags") {
                    { text_input("launch-skip-tags", "Skip tags (optional)", &form.skip_tags, "reboot", |f, v| f.skip_tags = v) }
                }
                if asks("verbosity") {
                    <label for="launch-verbosity">{ "Verbosity" }</label>
                    <select id="launch-verbosity" onchange={field(|f, v| f.verbosity = v)}>
                        { for ["", "0", "1", "2", "3", "4"].iter().map(|v| html! {
                            <option value={*v} selected={form.verbosity == *v}>
                                { if v.is_empty() { "As the template says".to_string() } else { format!("{v} ({})", ["normal", "verbose", "more verbose", "debug", "connection debug"][v.parse::<usize>().unwrap_or(0)]) } }
                            </option>
                        }) }
                    </select>
                }
                if asks("job_type") {
                    <label class="check"><input type="checkbox" checked={form.check} onchange={field(|f, v| f.check = v == "true")} />
                        { " Check mode (change nothing)" }</label>
                }
                if asks("diff_mode") {
                    <label class="check"><input type="checkbox" checked={form.diff} onchange={field(|f, v| f.diff = v == "true")} />
                        { " Show differences" }</label>
                }
                <div class="actions">
                    <button type="submit" disabled={state.sending} data-testid="launch-submit">
                        { if state.sending { "Launching…" } else { "Launch" } }
                    </button>
                    <button type="button" class="secondary" onclick={toggle_schedule} data-testid="launch-schedule">
                        { if *scheduling { "No schedule" } else { "Schedule…" } }
                    </button>
                </div>
                if let Some(next) = next_run {
                    <p class="hint" data-testid="launch-next-run">{ next }</p>
                }
                if *scheduling {
                    <crate::schedules::ScheduleForm launch={launch_body(state.kind, form, chosen.as_ref(), &survey)}
                        name={target_name.clone()} />
                }
                <p class="error" role="alert" data-testid="launch-error" hidden={state.error.is_none()}>
                    { state.error.clone().unwrap_or_default() }
                </p>
            </form>
        </main>
    }
}

fn survey_field(q: &Question, form: &Form, on_answer: &Callback<(String, String)>) -> Html {
    let id = format!("survey-{}", q.variable);
    let value = form.answers.get(&q.variable).map(text_of).unwrap_or_else(|| q.default.clone());
    let onchange = {
        let on_answer = on_answer.clone();
        let variable = q.variable.clone();
        Callback::from(move |e: Event| {
            let Some(t) = e.target() else { return };
            let value = wasm_bindgen::JsCast::dyn_ref::<HtmlInputElement>(&t)
                .map(|i| i.value())
                .or_else(|| wasm_bindgen::JsCast::dyn_ref::<HtmlTextAreaElement>(&t).map(|t| t.value()))
                .or_else(|| {
                    wasm_bindgen::JsCast::dyn_ref::<HtmlSelectElement>(&t).map(|s| {
                        let options = s.selected_options();
                        (0..options.length())
                            .filter_map(|i| options.item(i))
                            .filter_map(|o| o.get_attribute("value"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                });
            if let Some(value) = value {
                on_answer.emit((variable.clone(), value));
            }
        })
    };
    let label = if q.required { format!("{} *", q.label) } else { q.label.clone() };
    // Choices that could not be had, where any answer is taken: typed (a multiselect one per line).
    let kind = match (q.free, q.kind.as_str()) {
        (true, "multiselect") => "textarea",
        (true, _) => "text",
        (false, k) => k,
    };
    let control = match kind {
        "multiplechoice" | "multiselect" => {
            let chosen: Vec<&str> = value.lines().collect();
            html! {
                <select id={id.clone()} multiple={q.kind == "multiselect"} onchange={onchange} required={q.required}>
                    if q.kind == "multiplechoice" {
                        <option value="" selected={value.is_empty()}>{ if q.required { "Choose…" } else { "—" } }</option>
                    }
                    { for q.choices.iter().map(|c| html! { <option value={c.clone()} selected={chosen.contains(&c.as_str())}>{ c }</option> }) }
                </select>
            }
        }
        "textarea" => {
            html! { <textarea id={id.clone()} rows="3" value={value} onchange={onchange} required={q.required} /> }
        }
        kind => {
            let input_type = match kind {
                "password" => "password",
                "integer" | "float" => "number",
                _ => "text",
            };
            let step = (kind == "float").then_some("any");
            html! { <input id={id.clone()} type={input_type} {step} value={value} onchange={onchange} required={q.required} /> }
        }
    };
    html! {
        <>
            <label for={id}>{ label }</label>
            { control }
            if let Some(e) = &q.error {
                <p class="hint error" data-testid={format!("survey-{}-error", q.variable)}>
                    { if q.free { format!("{e}; type the answer.") } else { e.clone() } }</p>
            }
            if !q.help.is_empty() { <p class="hint">{ &q.help }</p> }
        </>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_launch_takes_only_what_the_template_asks_for_plus_its_survey() {
        let page: TemplatePage = serde_json::from_value(json!({"count": 1, "next": null, "previous": null, "results": [{
            "controller": "aap", "id": 7, "name": "patch", "ask_variables_on_launch": true, "ask_limit_on_launch": false,
            "ask_tags_on_launch": true, "survey_enabled": true,
            "survey": {"spec": [
                {"question_name": "Group", "variable": "patch_group", "type": "multiplechoice",
                 "required": true, "default": "", "choices": "Group-1\nGroup-2"},
                {"question_name": "Retries", "variable": "retries", "type": "integer", "required": false, "default": 3}
            ]}
        }]}))
        .expect("a template page");
        let list = templates_from(&page);
        let t = &list[0];
        assert_eq!(t.key(), "patch (aap)");
        assert!(t.asks("variables") && !t.asks("limit") && t.asks("tags") && !t.asks("verbosity"));
        let mut form =
            Form { vars: "reboot: no".into(), limit: "web-01".into(), tags: "x".into(), ..Form::default() };
        assert_eq!(launch_body(Kind::Template, &form, Some(t), &[]), Err("“Group” needs an answer".into()));
        form.answers.insert("patch_group".into(), json!("Group-2"));
        assert_eq!(
            launch_body(Kind::Template, &form, Some(t), &[]),
            Ok(json!({"template": "patch", "controller": "aap", "job_tags": "x",
                      "extra_vars": {"reboot": false, "patch_group": "Group-2", "retries": 3}}))
        );
        form.answers.insert("retries".into(), json!("many"));
        assert_eq!(
            launch_body(Kind::Template, &form, Some(t), &[]),
            Err("“Retries” must be a whole number".into())
        );
    }

    #[test]
    fn a_playbook_launch_is_the_local_engines_request() {
        let mut form = Form {
            playbook: "patch.yml".into(),
            hosts: "web-01, web-02".into(),
            limit: "web-01".into(),
            tags: "patch, reboot".into(),
            vars: "patch_group: Group-1".into(),
            check: true,
            ..Form::default()
        };
        assert_eq!(
            launch_body(Kind::Playbook, &form, None, &[]),
            Ok(json!({"source": {"type": "playbook", "path": "patch.yml"},
                      "inventory": {"type": "inline", "hosts": ["web-01", "web-02"]},
                      "extra_vars": {"patch_group": "Group-1"},
                      "options": {"limit": "web-01", "tags": ["patch", "reboot"], "check_mode": true}}))
        );
        form.inventory = "demo.yml".into();
        assert!(launch_body(Kind::Playbook, &form, None, &[]).is_err(), "a file and hosts at once");
        let form = Form {
            playbook: "site.yml".into(),
            repo: "https://git.example.com/ops.git".into(),
            ..Form::default()
        };
        assert_eq!(
            launch_body(Kind::Playbook, &form, None, &[]),
            Ok(
                json!({"source": {"type": "git", "repo": "https://git.example.com/ops.git", "path": "site.yml"}})
            )
        );
        assert!(launch_body(Kind::Playbook, &Form::default(), None, &[]).is_err());
    }
}
