//! The launch form (`/launch`): an AAP job template or a local playbook, with the extra vars
//! (YAML or JSON, checked before sending), limit and tags the template asks for. The server's
//! answer decides: a new job opens, or its error is shown as it said it.

use std::rc::Rc;

use serde_json::{Map, Value};
use shared::{Role, SessionInfo};
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::job::new_job_id;
use crate::route::{use_nav, Link};
use crate::vars::parse_vars;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Template,
    Playbook,
}

/// A template as `GET /api/v1/templates` lists it, read loosely (the connector's types are new).
#[derive(Clone, PartialEq)]
struct Template {
    name: String,
    description: String,
    /// What the template lets the launcher set; absent means it may.
    asks_vars: bool,
    asks_limit: bool,
    asks_tags: bool,
    /// The template's default extra vars, as a starting point.
    default_vars: String,
}

fn templates_from(answer: &Value) -> Vec<Template> {
    let list = answer.get("results").unwrap_or(answer);
    let ask = |t: &Value, k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(true);
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|t| {
                    let name = t.as_str().or_else(|| t.get("name").and_then(Value::as_str))?.to_owned();
                    Some(Template {
                        name,
                        description: t.get("description").and_then(Value::as_str).unwrap_or("").to_owned(),
                        asks_vars: ask(t, "ask_variables_on_launch"),
                        asks_limit: ask(t, "ask_limit_on_launch"),
                        asks_tags: ask(t, "ask_tags_on_launch"),
                        default_vars: t.get("extra_vars").and_then(Value::as_str).unwrap_or("").to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[function_component(LaunchPage)]
pub fn launch_page() -> Html {
    let session = use_context::<Rc<SessionInfo>>();
    let nav = use_nav();
    let kind =
        use_state(|| if nav.location.param("source").is_some() { Kind::Playbook } else { Kind::Template });
    let templates = use_state(|| Load::<Vec<Template>>::Loading);
    let template = use_state(|| nav.location.param("template").unwrap_or_default());
    let playbook = use_state(|| nav.location.param("source").unwrap_or_default());
    let inventory = use_state(String::new);
    let vars = use_state(String::new);
    let limit = use_state(String::new);
    let tags = use_state(String::new);
    let sending = use_state(|| false);
    crate::ui::use_title("Launch a job".into());
    let error = use_state(|| None::<String>);
    {
        let templates = templates.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                templates.set(Load::Loaded(api::templates().await.map(|v| templates_from(&v))));
            });
        });
    }
    if session.as_ref().is_none_or(|s| s.role < Role::Operator) {
        return html! {
            <main class="page narrow">
                <h1>{ "Launch a job" }</h1>
                <p class="notice">{ "Launching needs the operator role; this key is a viewer." }</p>
                <p><Link to="/">{ "← Jobs" }</Link></p>
            </main>
        };
    }
    let chosen = match &*templates {
        Load::Loaded(Ok(list)) => list.iter().find(|t| t.name == *template).cloned(),
        _ => None,
    };
    let asks = |f: fn(&Template) -> bool| *kind == Kind::Playbook || chosen.as_ref().is_none_or(f);
    let vars_check = parse_vars(&vars);
    let bind_input = |state: &UseStateHandle<String>| {
        let state = state.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(i) = e.target_dyn_into::<HtmlInputElement>() {
                state.set(i.value());
            }
        })
    };
    let on_vars = {
        let vars = vars.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(t) = e.target_dyn_into::<HtmlTextAreaElement>() {
                vars.set(t.value());
            }
        })
    };
    let on_template_select = {
        let template = template.clone();
        let vars = vars.clone();
        let list = match &*templates {
            Load::Loaded(Ok(list)) => list.clone(),
            _ => Vec::new(),
        };
        Callback::from(move |e: Event| {
            if let Some(s) = e.target_dyn_into::<HtmlSelectElement>() {
                let name = s.value();
                if let Some(t) = list.iter().find(|t| t.name == name) {
                    if vars.trim().is_empty() {
                        vars.set(t.default_vars.clone());
                    }
                }
                template.set(name);
            }
        })
    };
    let set_kind = |k: Kind| {
        let kind = kind.clone();
        let error = error.clone();
        Callback::from(move |_: Event| {
            kind.set(k);
            error.set(None);
        })
    };
    let onsubmit = {
        let (kind, template, playbook, inventory, vars, limit, tags) = (
            *kind,
            (*template).clone(),
            (*playbook).clone(),
            (*inventory).clone(),
            (*vars).clone(),
            (*limit).clone(),
            (*tags).clone(),
        );
        let sending = sending.clone();
        let error = error.clone();
        let nav = nav.clone();
        let chosen = chosen.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *sending {
                return;
            }
            let mut body = Map::new();
            match kind {
                Kind::Template if template.trim().is_empty() => {
                    return error.set(Some("Choose a job template.".into()))
                }
                Kind::Playbook if playbook.trim().is_empty() => {
                    return error.set(Some("Name the playbook to run.".into()))
                }
                Kind::Template => {
                    body.insert("template".into(), Value::String(template.trim().to_owned()));
                }
                Kind::Playbook => {
                    body.insert("source".into(), Value::String(playbook.trim().to_owned()));
                    if !inventory.trim().is_empty() {
                        body.insert("inventory".into(), Value::String(inventory.trim().to_owned()));
                    }
                }
            }
            let asks = |f: fn(&Template) -> bool| kind == Kind::Playbook || chosen.as_ref().is_none_or(f);
            if asks(|t| t.asks_vars) {
                match parse_vars(&vars) {
                    Ok(Some(v)) => {
                        body.insert("extra_vars".into(), v);
                    }
                    Ok(None) => {}
                    Err(e) => return error.set(Some(format!("Extra vars: {e}"))),
                }
            }
            if asks(|t| t.asks_limit) && !limit.trim().is_empty() {
                body.insert("limit".into(), Value::String(limit.trim().to_owned()));
            }
            if asks(|t| t.asks_tags) && !tags.trim().is_empty() {
                body.insert("job_tags".into(), Value::String(tags.trim().to_owned()));
            }
            sending.set(true);
            error.set(None);
            let sending = sending.clone();
            let error = error.clone();
            let nav = nav.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::launch(&Value::Object(body)).await;
                sending.set(false);
                match result {
                    Ok(answer) => match new_job_id(&answer) {
                        Some(id) => nav.push(&format!("/jobs/{id}")),
                        None => error.set(Some(format!("Launched, but the answer names no job: {answer}"))),
                    },
                    Err(ApiError::Unauthorized(d)) => error.set(Some(format!("Not signed in: {d}"))),
                    Err(e) => error.set(Some(format!("The launch was refused: {e}"))),
                }
            });
        })
    };

    html! {
        <main class="page narrow">
            <div class="toolbar"><Link to="/" class="back">{ "← Jobs" }</Link></div>
            <form class="launch card wide" {onsubmit} data-testid="launch-form" novalidate=true>
                <h1>{ "Launch a job" }</h1>
                <fieldset class="kind">
                    <legend>{ "What to run" }</legend>
                    <label><input type="radio" name="kind" checked={*kind == Kind::Template}
                                  onchange={set_kind(Kind::Template)} data-testid="launch-kind-template" />
                        { " An AAP job template" }</label>
                    <label><input type="radio" name="kind" checked={*kind == Kind::Playbook}
                                  onchange={set_kind(Kind::Playbook)} data-testid="launch-kind-playbook" />
                        { " A local playbook" }</label>
                </fieldset>
                if *kind == Kind::Template {
                    { match &*templates {
                        Load::Loaded(Ok(list)) if !list.is_empty() => html! {
                            <>
                                <label for="l-template">{ "Job template" }</label>
                                <select id="l-template" onchange={on_template_select} data-testid="launch-template">
                                    <option value="" selected={template.is_empty()}>{ "Choose…" }</option>
                                    { for list.iter().map(|t| html! {
                                        <option value={t.name.clone()} selected={*template == t.name}>{ &t.name }</option>
                                    }) }
                                </select>
                                if let Some(t) = chosen.as_ref().filter(|t| !t.description.is_empty()) {
                                    <p class="hint">{ &t.description }</p>
                                }
                            </>
                        },
                        other => html! {
                            <>
                                <label for="l-template">{ "Job template" }</label>
                                <input id="l-template" type="text" value={(*template).clone()} oninput={bind_input(&template)}
                                       placeholder="the template's name" data-testid="launch-template" />
                                <p class="hint">{ match other {
                                    Load::Loading => "Loading the templates…".to_string(),
                                    Load::Loaded(Err(e)) => format!("The templates could not be listed ({e}); type the name."),
                                    Load::Loaded(Ok(_)) => "No templates are listed; type the name.".to_string(),
                                } }</p>
                            </>
                        },
                    } }
                } else {
                    <label for="l-playbook">{ "Playbook" }</label>
                    <input id="l-playbook" type="text" value={(*playbook).clone()} oninput={bind_input(&playbook)}
                           placeholder="site.yml" data-testid="launch-playbook" />
                    <label for="l-inventory">{ "Inventory (optional)" }</label>
                    <input id="l-inventory" type="text" value={(*inventory).clone()} oninput={bind_input(&inventory)}
                           placeholder="hosts.ini" data-testid="launch-inventory" />
                }
                if asks(|t| t.asks_vars) {
                    <label for="l-vars">{ "Extra vars (YAML or JSON)" }</label>
                    <textarea id="l-vars" rows="6" spellcheck="false" value={(*vars).clone()} oninput={on_vars}
                              aria-invalid={vars_check.is_err().to_string()} aria-describedby="l-vars-check"
                              placeholder={"patch_group: Group-1\nreboot: false"} data-testid="launch-vars" />
                    <p id="l-vars-check" class={classes!("hint", vars_check.is_err().then_some("error"))} data-testid="launch-vars-check">
                        { match &vars_check {
                            Ok(None) => "No extra vars.".to_string(),
                            Ok(Some(v)) => format!("{} variable{}.", v.as_object().map_or(0, |o| o.len()),
                                                   if v.as_object().map_or(0, |o| o.len()) == 1 { "" } else { "s" }),
                            Err(e) => e.clone(),
                        } }
                    </p>
                }
                if asks(|t| t.asks_limit) {
                    <label for="l-limit">{ "Limit (optional)" }</label>
                    <input id="l-limit" type="text" value={(*limit).clone()} oninput={bind_input(&limit)}
                           placeholder="web-01,web-02 or a group" data-testid="launch-limit" />
                }
                if asks(|t| t.asks_tags) {
                    <label for="l-tags">{ "Tags (optional)" }</label>
                    <input id="l-tags" type="text" value={(*tags).clone()} oninput={bind_input(&tags)}
                           placeholder="patch,reboot" data-testid="launch-tags" />
                }
                <button type="submit" disabled={*sending} data-testid="launch-submit">
                    { if *sending { "Launching…" } else { "Launch" } }
                </button>
                <p class="error" role="alert" data-testid="launch-error" hidden={error.is_none()}>
                    { (*error).clone().unwrap_or_default() }
                </p>
            </form>
        </main>
    }
}
