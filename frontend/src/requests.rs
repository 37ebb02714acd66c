//! The request box (`/requests`, one request at `/requests?id=N`): the operator asks in plain
//! words; Playdeck answers with what it understood and exactly what it would run, asks for what
//! is missing, refuses unknown names with the closest ones, and launches on Confirm. Once
//! launched, the job's progress shows as phases, polled every second until the job has finished,
//! then the result and any failure explanation.

use gloo_timers::callback::Interval;
use serde_json::Value;
use std::rc::Rc;

use shared::requests::{Request, RequestStatus, RequestSummary};
use shared::Role;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::job::explanation_list;
use crate::route::{use_nav, Link};
use crate::session::use_session;
use crate::ui::{status_badge, use_title};

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// Exactly what would run, in words, from the `POST /api/v1/jobs` body.
fn would_run(body: &Value) -> Html {
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(src) = body.get("source") {
        let kind = src.get("type").and_then(Value::as_str).unwrap_or("source");
        let what = src.get("path").or_else(|| src.get("name")).map(compact).unwrap_or_else(|| compact(src));
        rows.push((if kind == "playbook" { "Playbook".into() } else { "Template".into() }, what));
    }
    if let Some(t) = body.get("template") {
        rows.push(("Template".into(), compact(t)));
    }
    if let Some(inv) = body.get("inventory") {
        rows.push(("Inventory".into(), inv.get("path").map(compact).unwrap_or_else(|| compact(inv))));
    }
    let opts = body.get("options").and_then(Value::as_object);
    let limit = opts.and_then(|o| o.get("limit")).or_else(|| body.get("limit"));
    rows.push((
        "Hosts (limit)".into(),
        limit.map(compact).unwrap_or_else(|| "all hosts of the inventory".into()),
    ));
    if let Some(vars) = body.get("extra_vars").and_then(Value::as_object) {
        for (k, v) in vars {
            rows.push((format!("Variable {k}"), compact(v)));
        }
    }
    if let Some(o) = opts {
        for (k, v) in o.iter().filter(|(k, _)| k.as_str() != "limit") {
            rows.push((format!("Option {k}"), compact(v)));
        }
    }
    html! {
        <div class="would-run" data-testid="would-run">
            <h3>{ "What would run" }</h3>
            <dl class="facts">
                { for rows.into_iter().map(|(k, v)| html! { <div><dt>{ k }</dt><dd><code>{ v }</code></dd></div> }) }
            </dl>
            <details><summary>{ "The exact launch request" }</summary>
                <pre class="block">{ serde_json::to_string_pretty(body).unwrap_or_default() }</pre>
            </details>
        </div>
    }
}

/// The page's state: the request shown (or the recent ones), what is being typed, and the last
/// refusal.
#[derive(Clone, PartialEq)]
struct AskState {
    current: Option<Load<Request>>,
    recent: Load<Vec<RequestSummary>>,
    text: String,
    reply: String,
    error: Option<String>,
    busy: bool,
}

enum AskAction {
    /// The URL names request `id`: loading, unless it is the one shown.
    Opening(i64),
    Opened(Result<Request, ApiError>),
    /// The URL names none: the recent requests.
    ShowRecent,
    Recent(Result<Vec<RequestSummary>, ApiError>),
    Text(String),
    Reply(String),
    Sending,
    Answered(Request),
    Failed(String),
}

impl Reducible for AskState {
    type Action = AskAction;

    fn reduce(self: Rc<Self>, action: AskAction) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            AskAction::Opening(id) => {
                if !matches!(&s.current, Some(Load::Loaded(Ok(r))) if r.id == id) {
                    s.current = Some(Load::Loading);
                }
            }
            AskAction::Opened(r) => s.current = Some(Load::Loaded(r)),
            AskAction::ShowRecent => s.current = None,
            AskAction::Recent(r) => s.recent = Load::Loaded(r),
            AskAction::Text(t) => s.text = t,
            AskAction::Reply(t) => s.reply = t,
            AskAction::Sending => s.busy = true,
            AskAction::Answered(r) => {
                s.busy = false;
                s.error = None;
                s.current = Some(Load::Loaded(Ok(r)));
            }
            AskAction::Failed(e) => {
                s.busy = false;
                s.error = Some(e);
            }
        }
        Rc::new(s)
    }
}

#[function_component(RequestsPage)]
pub fn requests_page() -> Html {
    use_title("Ask".to_owned());
    let nav = use_nav();
    let session = use_session();
    let may_ask = session.as_ref().is_some_and(|s| s.may(Role::Operator));
    let id = nav.location.param("id").and_then(|v| v.parse::<i64>().ok());
    let state = use_reducer(|| AskState {
        current: None,
        recent: Load::Loading,
        text: String::new(),
        reply: String::new(),
        error: None,
        busy: false,
    });
    let dispatcher = state.dispatcher();

    // Load the request the URL names, or the recent ones.
    {
        let d = dispatcher.clone();
        use_effect_with(id, move |id| {
            let id = *id;
            d.dispatch(match id {
                Some(id) => AskAction::Opening(id),
                None => AskAction::ShowRecent,
            });
            crate::ui::spawn(async move {
                match id {
                    Some(id) => d.dispatch(AskAction::Opened(api::request_get(id).await)),
                    None => d.dispatch(AskAction::Recent(api::requests().await.map(|p| p.results))),
                }
            });
        });
    }
    // Follow a launched request until its job has a result.
    let following = match &state.current {
        Some(Load::Loaded(Ok(r))) => {
            r.status == RequestStatus::Launching
                || (r.status == RequestStatus::Launched
                    && r.progress.as_ref().is_none_or(|p| p.result.is_none()))
        }
        _ => false,
    };
    {
        let d = dispatcher.clone();
        use_effect_with((id, following), move |(id, following)| {
            let interval = match (id, following) {
                (Some(id), true) => {
                    let id = *id;
                    Some(Interval::new(1_000, move || {
                        let d = d.clone();
                        crate::ui::spawn(async move {
                            if let Ok(r) = api::request_get(id).await {
                                d.dispatch(AskAction::Opened(Ok(r)));
                            }
                        });
                    }))
                }
                _ => None,
            };
            move || drop(interval)
        });
    }

    let send = {
        let (d, nav) = (dispatcher.clone(), nav.clone());
        move |words: String, to: Option<i64>, confirm: bool| {
            let (d, nav) = (d.clone(), nav.clone());
            d.dispatch(AskAction::Sending);
            crate::ui::spawn(async move {
                let result = match (to, confirm) {
                    (Some(id), true) => api::request_confirm(id).await,
                    (Some(id), false) => api::request_reply(id, &words).await,
                    (None, _) => api::request_new(&words).await,
                };
                match result {
                    Ok(r) => {
                        let rid = r.id;
                        d.dispatch(AskAction::Answered(r));
                        if to.is_none() {
                            nav.push(&format!("/requests?id={rid}"));
                        }
                    }
                    Err(e) => d.dispatch(AskAction::Failed(e.words())),
                }
            });
        }
    };
    let on_ask = {
        let (send, d, text) = (send.clone(), dispatcher.clone(), state.text.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !text.trim().is_empty() {
                send(text.clone(), None, false);
                d.dispatch(AskAction::Text(String::new()));
            }
        })
    };
    let on_reply = {
        let (send, d, reply) = (send.clone(), dispatcher.clone(), state.reply.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !reply.trim().is_empty() {
                send(reply.clone(), id, false);
                d.dispatch(AskAction::Reply(String::new()));
            }
        })
    };
    let answer_with = {
        let send = send.clone();
        Callback::from(move |words: String| send(words, id, false))
    };
    let on_confirm = {
        let send = send.clone();
        Callback::from(move |_: MouseEvent| send(String::new(), id, true))
    };
    let input = |to: fn(String) -> AskAction| {
        let d = dispatcher.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(i) = e.target_dyn_into::<HtmlInputElement>() {
                d.dispatch(to(i.value()));
            }
        })
    };

    let ask_box = html! {
        <form class="ask" onsubmit={on_ask} data-testid="ask-form">
            <label for="ask-text">{ "What should Playdeck do?" }</label>
            <div class="ask-row">
                <input id="ask-text" type="text" value={state.text.clone()} oninput={input(AskAction::Text)} autocomplete="off"
                       placeholder="Patch server web-01 with Group-1" data-testid="ask-text" />
                <button type="submit" disabled={state.busy} data-testid="ask-send">{ "Ask" }</button>
            </div>
            <p class="hint">{ "For example: “Patch server web-01 with Group-1”, “retire vm web-02”, “run hello on webservers in check mode”. Nothing runs before you confirm." }</p>
        </form>
    };

    let body = match &state.current {
        None => match &state.recent {
            Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
            Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
            Load::Loaded(Ok(list)) if list.is_empty() => {
                html! { <p class="muted">{ "No requests yet." }</p> }
            }
            Load::Loaded(Ok(list)) => html! {
                <section aria-labelledby="recent-head">
                    <h2 id="recent-head">{ "Recent requests" }</h2>
                    <ul class="recent" data-testid="recent-requests">
                        { for list.iter().map(|r| html! {
                            <li>
                                <Link to={format!("/requests?id={}", r.id)}>{ &r.text }</Link>
                                <span class="muted">{ format!(" · {} · {}", r.status.as_str().replace('_', " "), r.created_by) }</span>
                                if let Some(s) = r.job_status { { " " }{ status_badge(s) } }
                            </li>
                        }) }
                    </ul>
                </section>
            },
        },
        Some(Load::Loading) => html! { <p class="notice">{ "Loading…" }</p> },
        Some(Load::Loaded(Err(e))) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Some(Load::Loaded(Ok(r))) => conversation(
            r,
            &state.reply,
            input(AskAction::Reply),
            on_reply,
            answer_with,
            on_confirm,
            state.busy,
            may_ask,
        ),
    };

    html! {
        <main class="page narrow requests-page" data-testid="requests-page">
            <div class="toolbar">
                <h1>{ "Ask Playdeck" }</h1>
                <span class="spacer"></span>
                if id.is_some() { <Link to="/requests" testid="new-request">{ "New request" }</Link> }
            </div>
            if id.is_none() && may_ask { { ask_box } }
            if !may_ask {
                <p class="notice" data-testid="ask-viewer">{ "Asking, answering and confirming need the operator role; you can read the requests." }</p>
            }
            if let Some(e) = &state.error { <p class="error" role="alert" data-testid="request-error">{ e }</p> }
            { body }
        </main>
    }
}

#[allow(clippy::too_many_arguments)]
fn conversation(
    r: &Request,
    reply: &str,
    on_input: Callback<InputEvent>,
    on_reply: Callback<SubmitEvent>,
    answer_with: Callback<String>,
    on_confirm: Callback<MouseEvent>,
    busy: bool,
    may_ask: bool,
) -> Html {
    let u = &r.understood;
    let understood: Vec<(&str, String)> = [
        ("Action", u.action.clone()),
        ("Hosts", (!u.hosts.is_empty()).then(|| u.hosts.join(", "))),
        ("Except", (!u.excluded.is_empty()).then(|| u.excluded.join(", "))),
        (
            "Variables",
            (!u.variables.is_empty()).then(|| {
                u.variables
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", compact(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ),
        (
            "Options",
            (!u.options.is_empty()).then(|| {
                u.options.iter().map(|(k, v)| format!("{k} = {}", compact(v))).collect::<Vec<_>>().join(", ")
            }),
        ),
        (
            "When",
            u.when.as_ref().map(|w| {
                format!("once, {} ({})", w.replace('T', " "), u.time_zone.clone().unwrap_or_default())
            }),
        ),
        ("Not understood", (!u.ignored.is_empty()).then(|| u.ignored.join(" "))),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let open = matches!(r.status, RequestStatus::NeedsInput | RequestStatus::Refused | RequestStatus::Ready);
    let act = open && may_ask;
    let choice = |c: &String| {
        let answer_with = answer_with.clone();
        let c2 = c.clone();
        html! {
            <button type="button" class="secondary chip" onclick={Callback::from(move |_: MouseEvent| answer_with.emit(c2.clone()))}
                    data-testid="request-choice">{ c }</button>
        }
    };
    html! {
        <div class="request" data-testid="request" data-status={r.status.as_str()}>
            <ol class="messages" aria-label="Conversation">
                { for r.conversation.iter().map(|m| html! {
                    <li class={classes!("msg", if m.author == "operator" { "mine" } else { "theirs" })} data-testid="message">
                        <span class="who muted">{ if m.author == "operator" { m.by.clone() } else { "Playdeck".to_owned() } }</span>
                        <p>{ &m.text }</p>
                    </li>
                }) }
            </ol>
            if !understood.is_empty() {
                <section class="understood" data-testid="understood">
                    <h3>{ "What I understood" }</h3>
                    <dl class="facts">
                        { for understood.into_iter().map(|(k, v)| html! { <div><dt>{ k }</dt><dd>{ v }</dd></div> }) }
                    </dl>
                </section>
            }
            if !r.missing.is_empty() && open {
                <section class="missing" data-testid="missing">
                    <h3>{ "What I still need" }</h3>
                    { for r.missing.iter().map(|m| html! {
                        <div class="question">
                            <p>{ &m.question }</p>
                            if !m.choices.is_empty() { <div class="chips">{ for m.choices.iter().map(choice) }</div> }
                        </div>
                    }) }
                </section>
            }
            if let Some(refusal) = r.refused.as_ref().filter(|_| open) {
                <section class="refused" data-testid="refused" role="alert">
                    <h3>{ "I cannot run this" }</h3>
                    <p>{ &refusal.reason }</p>
                    { for refusal.unknown.iter().map(|u| html! {
                        <p data-testid="unknown-name">
                            <code>{ &u.name }</code>{ if u.suggestions.is_empty() { " is unknown, and nothing is close.".to_owned() } else { " is unknown. Did you mean: ".to_owned() } }
                        </p>
                    }) }
                    if !refusal.suggestions.is_empty() {
                        <div class="chips" data-testid="suggestions">{ for refusal.suggestions.iter().map(choice) }</div>
                    }
                </section>
            }
            if let Some(body) = &r.would_run { { would_run(body) } }
            if r.status == RequestStatus::Ready && may_ask {
                <div class="actions">
                    <button type="button" onclick={on_confirm} disabled={busy} data-testid="request-confirm">
                        { if u.when.is_some() { "Confirm and schedule" } else { "Confirm and run" } }
                    </button>
                </div>
            }
            if act {
                <form class="ask" onsubmit={on_reply} data-testid="reply-form">
                    <label for="reply-text">{ if r.status == RequestStatus::Ready { "Change something" } else { "Your answer" } }</label>
                    <div class="ask-row">
                        <input id="reply-text" type="text" value={reply.to_owned()} oninput={on_input} autocomplete="off" data-testid="reply-text" />
                        <button type="submit" class="secondary" disabled={busy} data-testid="reply-send">{ "Reply" }</button>
                    </div>
                </form>
            }
            if let Some(sid) = r.schedule_id {
                <p class="notice" data-testid="request-scheduled">
                    { format!("Scheduled (schedule {sid}). ") }<Link to="/schedules">{ "Schedules" }</Link>
                </p>
            }
            if r.status == RequestStatus::Launching {
                <p class="notice" data-testid="launching">{ "Launching…" }</p>
            }
            if let Some(p) = &r.progress {
                <section class="progress-phases" data-testid="phases" aria-live="polite">
                    <h3>
                        { "Progress" }
                        if let Some(job_id) = r.job_id {
                            { " " }<Link to={format!("/jobs/{job_id}")} testid="request-job-link">{ format!("job #{job_id}") }</Link>
                        }
                        if let Some(j) = &r.job { { " " }{ status_badge(j.status) } }
                    </h3>
                    <ol class="phases">
                        { for p.phases.iter().map(|ph| html! {
                            <li class={classes!("phase", format!("phase-{}", ph.state))} data-testid="phase" data-state={ph.state.clone()}>
                                <span class="phase-mark" aria-hidden="true">{ match ph.state.as_str() { "done" => "✓", "active" => "▶", "skipped" => "–", _ => "○" } }</span>
                                { " " }{ &ph.name }
                                <span class="muted">{ format!(" ({})", ph.state) }</span>
                            </li>
                        }) }
                    </ol>
                    if let Some(c) = &p.current { <p class="muted" data-testid="phase-current">{ format!("Now: {c}") }</p> }
                    if let Some(res) = &p.result {
                        <div class="result" data-testid="request-result" data-status={res.status.as_str()}>
                            { status_badge(res.status) }{ " " }{ &res.summary }
                        </div>
                    }
                    if let Some(j) = r.job.as_ref().filter(|j| !j.explanations.is_empty()) {
                        <h3>{ "Why it failed" }</h3>
                        { explanation_list(&j.explanations, may_ask) }
                    }
                </section>
            }
        </div>
    }
}
