//! The job's hosts: one row per host with its counts, and a drill-down into one host's events
//! (task, module, result, duration, then the event in full).

use shared::{JobEvent, JobHost};
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::event::{duration, error_text, event_body, module, outcome};
use crate::ui::format_seconds;

#[derive(Properties, PartialEq)]
pub struct HostsProps {
    pub job_id: i64,
    pub hosts: Load<Vec<JobHost>>,
    /// The host whose events are open (from the URL).
    pub selected: Option<String>,
    pub on_select: Callback<Option<String>>,
}

#[function_component(Hosts)]
pub fn hosts(props: &HostsProps) -> Html {
    let filter = use_state(String::new);
    let oninput = {
        let filter = filter.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(i) = e.target_dyn_into::<web_sys::HtmlInputElement>() {
                filter.set(i.value());
            }
        })
    };
    let list = match &props.hosts {
        Load::Loading => return html! { <p class="notice">{ "Loading hosts…" }</p> },
        Load::Loaded(Err(e)) => return error_text("Could not load the hosts", e),
        Load::Loaded(Ok(list)) => list,
    };
    if let Some(host) = &props.selected {
        let back = {
            let on_select = props.on_select.clone();
            Callback::from(move |_: MouseEvent| on_select.emit(None))
        };
        let summary = list.iter().find(|h| &h.host == host);
        return html! {
            <section class="host-detail" aria-label={format!("Host {host}")}>
                <div class="panel-head">
                    <button type="button" class="secondary" onclick={back} data-testid="host-back">{ "← All hosts" }</button>
                    <h2>{ host }</h2>
                    if let Some(h) = summary {
                        <span class={classes!("badge", format!("host-{}", h.status))}>{ &h.status }</span>
                    }
                </div>
                <HostEvents job_id={props.job_id} host={host.clone()} />
            </section>
        };
    }
    if list.is_empty() {
        return html! { <p class="notice">{ "No host has reported a result yet." }</p> };
    }
    let needle = filter.to_lowercase();
    let rows = list
        .iter()
        .filter(|h| needle.is_empty() || h.host.to_lowercase().contains(&needle) || h.status == needle);
    html! {
        <section aria-label="Hosts">
            <div class="out-tools">
                <label class="visually-hidden" for="host-filter">{ "Filter hosts" }</label>
                <input id="host-filter" type="search" placeholder="Filter hosts (name or status)" {oninput} />
                <span class="muted">{ format!("{} hosts", list.len()) }</span>
            </div>
            <div class="table-wrap">
                <table class="data hosts-table" data-testid="hosts-table">
                    <thead><tr>
                        <th scope="col">{ "Host" }</th><th scope="col">{ "Status" }</th>
                        <th scope="col" class="num">{ "ok" }</th><th scope="col" class="num">{ "changed" }</th>
                        <th scope="col" class="num">{ "failed" }</th><th scope="col" class="num">{ "unreachable" }</th>
                        <th scope="col" class="num">{ "skipped" }</th><th scope="col" class="num">{ "rescued" }</th>
                        <th scope="col" class="num">{ "ignored" }</th><th scope="col">{ "Last task" }</th>
                    </tr></thead>
                    <tbody>
                        { for rows.map(|h| host_row(h, &props.on_select)) }
                    </tbody>
                </table>
            </div>
        </section>
    }
}

fn host_row(h: &JobHost, on_select: &Callback<Option<String>>) -> Html {
    let onclick = {
        let on_select = on_select.clone();
        let host = h.host.clone();
        Callback::from(move |_: MouseEvent| on_select.emit(Some(host.clone())))
    };
    let n = |v: i64, class: &str| html! { <td class={classes!("num", (v > 0).then_some(class.to_owned()), (v == 0).then_some("zero"))}>{ v }</td> };
    html! {
        <tr key={h.host.clone()} data-testid="host-row" data-host={h.host.clone()}>
            <td><button type="button" class="linkish" {onclick} title="Show this host's events">{ &h.host }</button></td>
            <td><span class={classes!("badge", format!("host-{}", h.status))}>{ &h.status }</span></td>
            { n(h.ok, "ok") }{ n(h.changed, "changed") }{ n(h.failures, "failed") }{ n(h.dark, "failed") }
            { n(h.skipped, "skipped") }{ n(h.rescued, "ok") }{ n(h.ignored, "changed") }
            <td class="muted">{ h.last_task.clone().unwrap_or_default() }</td>
        </tr>
    }
}

/// Events of one host per page: its results matter, the rest (task starts) is noise here.
const HOST_PAGE: usize = 200;

#[derive(Properties, PartialEq)]
struct HostEventsProps {
    job_id: i64,
    host: String,
}

#[derive(Clone, PartialEq)]
struct HostEventsState {
    events: Vec<JobEvent>,
    /// Where the next page starts; `None` once everything is here.
    more: Option<i64>,
    load: Load<()>,
}

#[function_component(HostEvents)]
fn host_events(props: &HostEventsProps) -> Html {
    let state = use_state(|| HostEventsState { events: Vec::new(), more: Some(-1), load: Load::Loading });
    let open = use_state(|| None::<i64>);
    let fetch = {
        let state = state.clone();
        let (job_id, host) = (props.job_id, props.host.clone());
        Callback::from(move |after: i64| {
            let state = state.clone();
            let host = host.clone();
            let mut s = (*state).clone();
            s.load = Load::Loading;
            state.set(s.clone());
            crate::ui::spawn(async move {
                match api::events(job_id, after, HOST_PAGE, false, Some(&host)).await {
                    Ok(page) => {
                        s.more = page.next.as_ref().and_then(|_| page.results.last().map(|e| e.counter));
                        s.events.extend(page.results);
                        s.load = Load::Loaded(Ok(()));
                    }
                    Err(e) => s.load = Load::Loaded(Err::<(), ApiError>(e)),
                }
                state.set(s);
            });
        })
    };
    {
        let fetch = fetch.clone();
        use_effect_with((props.job_id, props.host.clone()), move |_| fetch.emit(-1));
    }
    let results: Vec<&JobEvent> = state.events.iter().filter(|e| !outcome(e).is_empty()).collect();
    let load_more = state.more.filter(|_| state.events.len() >= HOST_PAGE).map(|after| {
        let fetch = fetch.clone();
        Callback::from(move |_: MouseEvent| fetch.emit(after))
    });
    html! {
        <>
            if let Load::Loaded(Err(e)) = &state.load { { error_text("Could not load the host's events", e) } }
            if results.is_empty() && state.load == Load::Loaded(Ok(())) {
                <p class="notice">{ "No results for this host yet." }</p>
            }
            <ol class="host-events" data-testid="host-events">
                { for results.into_iter().map(|ev| {
                    let counter = ev.counter;
                    let is_open = *open == Some(counter);
                    let toggle = {
                        let open = open.clone();
                        Callback::from(move |_: MouseEvent| open.set(if is_open { None } else { Some(counter) }))
                    };
                    let result = outcome(ev);
                    html! {
                        <li key={counter} class={classes!("host-event", is_open.then_some("open"))} data-testid="host-event">
                            <button type="button" class="host-event-head" onclick={toggle} aria-expanded={is_open.to_string()}>
                                <span class={classes!("badge", format!("host-{result}"))}>{ result }</span>
                                <span class="task">{ ev.task.clone().unwrap_or_else(|| ev.event.clone()) }</span>
                                <span class="muted module">{ module(ev).unwrap_or_default() }</span>
                                <span class="muted dur">{ duration(ev).map(format_seconds).unwrap_or_default() }</span>
                            </button>
                            if is_open { { event_body(ev) } }
                        </li>
                    }
                }) }
            </ol>
            if state.load == Load::Loading { <p class="notice">{ "Loading…" }</p> }
            if let Some(onclick) = load_more {
                <button type="button" class="secondary" {onclick}>{ "Load more" }</button>
            }
        </>
    }
}
