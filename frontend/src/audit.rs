//! The audit page (admins): who did what and when, filtered by person, action, object and time,
//! paged, and downloaded as CSV with the same filters. The filters live in the URL, so a view can
//! be bookmarked and shared.

use std::rc::Rc;

use shared::Page;
use web_sys::UrlSearchParams;
use yew::prelude::*;

use crate::api::{self, ApiError, AuditEntry, Load};
use crate::route::use_nav;
use crate::ui::{use_title, value_of};

/// The filters' names in the URL and the API alike.
const FILTERS: [&str; 5] = ["actor", "action", "target", "since", "until"];

#[derive(Clone, PartialEq)]
struct State {
    page: Load<Page<AuditEntry>>,
    actions: Vec<String>,
}

enum Action {
    Page(Result<Page<AuditEntry>, ApiError>),
    Actions(Vec<String>),
}

impl Reducible for State {
    type Action = Action;
    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = Rc::unwrap_or_clone(self);
        match action {
            Action::Page(p) => s.page = Load::Loaded(p),
            Action::Actions(a) => s.actions = a,
        }
        Rc::new(s)
    }
}

/// `2026-12-01T10:00` (a `datetime-local` input, read as UTC) as RFC 3339, and back.
fn to_rfc3339(local: &str) -> String {
    if local.is_empty() || local.ends_with('Z') {
        local.to_owned()
    } else {
        format!("{local}:00Z")
    }
}

fn to_input(rfc: &str) -> String {
    rfc.trim_end_matches('Z').get(..16).unwrap_or(rfc).to_owned()
}

#[function_component(AuditPage)]
pub fn audit_page() -> Html {
    use_title("Audit".to_owned());
    let nav = use_nav();
    let query = nav.location.query.clone();
    let state = use_reducer(|| State { page: Load::Loading, actions: Vec::new() });
    {
        let send = state.dispatcher();
        use_effect_with((), move |_| {
            crate::ui::spawn(async move {
                if let Ok(a) = api::audit_actions().await {
                    send.dispatch(Action::Actions(a));
                }
            });
        });
    }
    {
        let (send, latest) = (state.dispatcher(), crate::ui::use_latest());
        use_effect_with(query.clone(), move |q| {
            let q = q.clone();
            let mine = latest.ask();
            crate::ui::spawn(async move {
                let page = api::audit(&q).await;
                if latest.is(mine) {
                    send.dispatch(Action::Page(page));
                }
            });
        });
    }
    let param = |name: &str| nav.location.param(name).unwrap_or_default();
    // A filter changed: the URL says so (page 1), and the list follows it.
    let set = |name: &'static str| {
        let nav = nav.clone();
        Callback::from(move |e: Event| {
            let params = UrlSearchParams::new_with_str(&nav.location.query).ok();
            let Some(params) = params else { return };
            let mut value = value_of(&e).trim().to_owned();
            if name == "since" || name == "until" {
                value = to_rfc3339(&value);
            }
            if value.is_empty() {
                params.delete(name);
            } else {
                params.set(name, &value);
            }
            params.delete("page");
            nav.replace(&format!("/audit?{}", String::from(params.to_string())));
        })
    };
    let go_page = |to: Option<&String>| {
        let nav = nav.clone();
        to.and_then(|link| link.split_once('?').map(|(_, q)| q.to_owned()))
            .map(move |q| Callback::from(move |_: MouseEvent| nav.replace(&format!("/audit?{q}"))))
    };
    let csv_query: Vec<String> = FILTERS
        .iter()
        .filter_map(|f| {
            nav.location.param(f).map(|v| format!("{f}={}", String::from(js_sys::encode_uri_component(&v))))
        })
        .collect();
    let list = match &state.page {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(page)) if page.results.is_empty() => html! {
            <p class="muted" data-testid="audit-empty">{ "Nothing was recorded that matches these filters." }</p>
        },
        Load::Loaded(Ok(page)) => html! {
            <>
                <p class="muted" data-testid="audit-count">{ format!("{} entr{}", page.count, if page.count == 1 { "y" } else { "ies" }) }</p>
                <div class="table-wrap">
                    <table class="data audit-table" data-testid="audit-table">
                        <thead><tr><th>{ "When (UTC)" }</th><th>{ "Who" }</th><th>{ "Action" }</th><th>{ "Object" }</th><th>{ "Detail" }</th></tr></thead>
                        <tbody>
                            { for page.results.iter().map(|e| html! {
                                <tr data-testid="audit-row">
                                    <td class="nowrap">{ e.at.format("%Y-%m-%d %H:%M:%S").to_string() }</td>
                                    <td data-testid="audit-actor">{ &e.actor }</td>
                                    <td data-testid="audit-action">{ &e.action }</td>
                                    <td>{ e.target.clone().unwrap_or_default() }</td>
                                    <td class="mono detail">{ detail(&e.detail) }</td>
                                </tr>
                            }) }
                        </tbody>
                    </table>
                </div>
                <div class="pager">
                    if let Some(onclick) = go_page(page.previous.as_ref()) {
                        <button type="button" class="secondary" {onclick}>{ "Newer" }</button>
                    }
                    if let Some(onclick) = go_page(page.next.as_ref()) {
                        <button type="button" class="secondary" {onclick} data-testid="audit-older">{ "Older" }</button>
                    }
                </div>
            </>
        },
    };
    let action = param("action");
    html! {
        <main class="page audit-page" data-testid="audit-page">
            <div class="toolbar">
                <h1>{ "Audit" }</h1>
                <span class="spacer"></span>
                <a class="button secondary" href={format!("/api/v1/audit/csv?{}", csv_query.join("&"))} download="playdeck-audit.csv"
                   data-testid="audit-csv">{ "Download CSV" }</a>
            </div>
            <div class="filter-grid" role="search">
                <div class="field">
                    <label for="audit-actor">{ "Person" }</label>
                    <input id="audit-actor" type="search" value={param("actor")} onchange={set("actor")}
                           placeholder="user name or service account" data-testid="audit-filter-actor" />
                </div>
                <div class="field">
                    <label for="audit-action">{ "Action" }</label>
                    <select id="audit-action" onchange={set("action")} data-testid="audit-filter-action">
                        <option value="" selected={action.is_empty()}>{ "Any" }</option>
                        { for state.actions.iter().map(|a| html! { <option value={a.clone()} selected={*a == action}>{ a }</option> }) }
                    </select>
                </div>
                <div class="field">
                    <label for="audit-target">{ "Object" }</label>
                    <input id="audit-target" type="search" value={param("target")} onchange={set("target")}
                           placeholder="job 42, key 3, user 7" data-testid="audit-filter-target" />
                </div>
                <div class="field">
                    <label for="audit-since">{ "From (UTC)" }</label>
                    <input id="audit-since" type="datetime-local" value={to_input(&param("since"))} onchange={set("since")}
                           data-testid="audit-filter-since" />
                </div>
                <div class="field">
                    <label for="audit-until">{ "Until (UTC)" }</label>
                    <input id="audit-until" type="datetime-local" value={to_input(&param("until"))} onchange={set("until")}
                           data-testid="audit-filter-until" />
                </div>
            </div>
            { list }
        </main>
    }
}

/// An entry's detail as `key: value` pairs, short.
fn detail(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        serde_json::Value::Object(_) | serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
