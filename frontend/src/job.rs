//! The job page (`/jobs/{id}`): header counters, host status bar, actions, and tabs for the live
//! output, the hosts, the timeline and the status history.
//!
//! Its events come from the read API in long brief pages (oldest first) and from the live feed,
//! which starts at the job's cursor as first read: everything stored before that cursor is in the
//! pages, everything after it comes over the socket, and the store keeps each event once.

use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use shared::kb::Explanation;
use shared::{Job, JobHost, JobStatus, Role, StatusChange};
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::event::{error_text, EventPanel};
use crate::hosts::Hosts;
use crate::live::{use_live_feed, Feed, Subscription};
use crate::markdown::markdown;
use crate::output::{Output, Shared};
use crate::route::{query_string, use_nav, Link};
use crate::session::use_session;
use crate::timeline::Timeline;
use crate::ui::{
    connection_badge, current_step, duration_secs, format_duration, host_counts, status_badge, time_tag,
    use_ticking, use_title, HOST_STATES,
};

/// Brief events per request while loading a job's output: a short first page, so the first lines
/// show at once, then long ones.
const FIRST_EVENTS_PAGE: usize = 1_000;
const EVENTS_PAGE: usize = 5_000;

#[derive(Properties, PartialEq)]
pub struct JobPageProps {
    pub id: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Output,
    Hosts,
    Timeline,
    History,
}

impl Tab {
    const ALL: [Tab; 4] = [Tab::Output, Tab::Hosts, Tab::Timeline, Tab::History];

    fn key(self) -> &'static str {
        match self {
            Tab::Output => "output",
            Tab::Hosts => "hosts",
            Tab::Timeline => "timeline",
            Tab::History => "history",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Output => "Output",
            Tab::Hosts => "Hosts",
            Tab::Timeline => "Timeline",
            Tab::History => "History",
        }
    }

    fn parse(s: Option<String>) -> Tab {
        Tab::ALL.into_iter().find(|t| s.as_deref() == Some(t.key())).unwrap_or(Tab::Output)
    }
}

/// How the output is loading.
#[derive(Clone, PartialEq)]
enum Backfill {
    Loading { events: usize },
    Done,
    Failed(ApiError),
}

/// The page's state: the job, its hosts and history, and how far its output has loaded (the
/// events themselves are in the shared store, which this state's `version` follows).
#[derive(Clone, PartialEq)]
struct JobPageState {
    job: Load<Job>,
    hosts: Load<Vec<JobHost>>,
    history: Load<Vec<StatusChange>>,
    version: u64,
    backfill: Backfill,
    /// The cursor the live feed starts from: the job's, as first read.
    start_cursor: Option<String>,
}

enum JobPageAction {
    Loading,
    /// The first read of the job: shown, and the live feed starts from its cursor.
    Found(Job),
    Job(Result<Job, ApiError>),
    Hosts(Result<Vec<JobHost>, ApiError>),
    History(Result<Vec<StatusChange>, ApiError>),
    /// The store took events in: its new version.
    Version(u64),
    Backfill(Backfill),
}

impl Reducible for JobPageState {
    type Action = JobPageAction;

    fn reduce(self: Rc<Self>, action: JobPageAction) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            JobPageAction::Loading => s.job = Load::Loading,
            JobPageAction::Found(job) => {
                s.start_cursor = Some(job.cursor.clone());
                s.job = Load::Loaded(Ok(job));
            }
            JobPageAction::Job(r) => s.job = Load::Loaded(r),
            JobPageAction::Hosts(r) => s.hosts = Load::Loaded(r),
            JobPageAction::History(r) => s.history = Load::Loaded(r),
            JobPageAction::Version(v) => s.version = v,
            JobPageAction::Backfill(b) => s.backfill = b,
        }
        Rc::new(s)
    }
}

#[function_component(JobPage)]
pub fn job_page(props: &JobPageProps) -> Html {
    let id = props.id;
    let nav = use_nav();
    let session = use_session();
    // `_eq`: a dispatch that changes nothing (the same store version) does not render again.
    let state = use_reducer_eq(|| JobPageState {
        job: Load::Loading,
        hosts: Load::Loading,
        history: Load::Loading,
        version: 0,
        backfill: Backfill::Loading { events: 0 },
        start_cursor: None,
    });
    let dispatcher = state.dispatcher();
    let store = use_memo(id, |_| Shared::default());
    let hosts_due = use_mut_ref(|| Cell::new(false));
    // The job as last shown, for the live feed's callback, which outlives renders.
    let latest = use_mut_ref(|| None::<Job>);
    *latest.borrow_mut() = match &state.job {
        Load::Loaded(Ok(j)) => Some(j.clone()),
        _ => None,
    };

    let refresh_job = {
        let d = dispatcher.clone();
        Callback::from(move |()| {
            let d = d.clone();
            crate::ui::spawn(async move {
                d.dispatch(JobPageAction::Job(api::job(id).await));
            });
        })
    };
    // Whether hosts were shown once: a failed refresh then keeps them rather than an error.
    let hosts_shown = use_mut_ref(|| Cell::new(false));
    let refresh_hosts = {
        let d = dispatcher.clone();
        let hosts_shown = hosts_shown.clone();
        Callback::from(move |()| {
            let d = d.clone();
            let hosts_shown = hosts_shown.clone();
            crate::ui::spawn(async move {
                let result = api::hosts(id).await.map(|p| p.results);
                if result.is_ok() || !hosts_shown.borrow().get() {
                    hosts_shown.borrow().set(result.is_ok());
                    d.dispatch(JobPageAction::Hosts(result));
                }
            });
        })
    };
    let refresh_history = {
        let d = dispatcher.clone();
        Callback::from(move |()| {
            let d = d.clone();
            crate::ui::spawn(async move {
                d.dispatch(JobPageAction::History(api::history(id).await.map(|p| p.results)));
            });
        })
    };

    // First read of the job; then the output, page by page, until the pages run out.
    {
        let d = dispatcher.clone();
        let store = store.clone();
        let refresh_hosts = refresh_hosts.clone();
        let refresh_history = refresh_history.clone();
        use_effect_with(id, move |_| {
            let alive = Rc::new(Cell::new(true));
            let still = alive.clone();
            d.dispatch(JobPageAction::Loading);
            crate::ui::spawn(async move {
                match api::job(id).await {
                    Ok(found) => d.dispatch(JobPageAction::Found(found)),
                    failed => return d.dispatch(JobPageAction::Job(failed)),
                }
                refresh_hosts.emit(());
                refresh_history.emit(());
                // The next page is asked for before this one is taken in, so the server works
                // while the page does.
                let mut after = -1;
                let mut page = api::events(id, after, FIRST_EVENTS_PAGE, true, None).await;
                loop {
                    if !still.get() {
                        return;
                    }
                    let results = match page {
                        Ok(p) if p.next.is_some() => p.results,
                        Ok(p) => {
                            take_in(&store, &d, p.results);
                            return d.dispatch(JobPageAction::Backfill(Backfill::Done));
                        }
                        Err(e) => return d.dispatch(JobPageAction::Backfill(Backfill::Failed(e))),
                    };
                    after = results.last().map_or(after, |e| e.counter);
                    let take = async {
                        let events = take_in(&store, &d, results);
                        d.dispatch(JobPageAction::Backfill(Backfill::Loading { events }));
                    };
                    page =
                        futures::future::join(api::events(id, after, EVENTS_PAGE, true, None), take).await.0;
                }
            });
            move || alive.set(false)
        });
    }

    let on_feed = {
        let d = dispatcher.clone();
        let store = store.clone();
        let refresh_job = refresh_job.clone();
        let refresh_hosts = refresh_hosts.clone();
        let refresh_history = refresh_history.clone();
        let hosts_due = hosts_due.clone();
        let latest = latest.clone();
        Callback::from(move |feed: Feed| match feed {
            Feed::Job(fresh) => {
                if fresh.id != id {
                    return;
                }
                let before = latest.borrow().clone();
                if before.as_ref().is_some_and(|b| fresh.modified < b.modified) {
                    return;
                }
                if before.as_ref().map(|b| b.status) != Some(fresh.status) {
                    refresh_history.emit(());
                    refresh_hosts.emit(());
                } else {
                    hosts_due.borrow().set(true);
                }
                *latest.borrow_mut() = Some((*fresh).clone());
                d.dispatch(JobPageAction::Job(Ok(*fresh)));
            }
            Feed::Events(events) => {
                let mut s = store.0.borrow_mut();
                if s.add(events) > 0 {
                    d.dispatch(JobPageAction::Version(s.version));
                }
            }
            Feed::Resync => {
                refresh_job.emit(());
                refresh_hosts.emit(());
                refresh_history.emit(());
            }
        })
    };
    let subscription =
        state.start_cursor.clone().map(|cursor| Subscription { jobs: false, job: Some((id, Some(cursor))) });
    let connection = use_live_feed(subscription, on_feed);

    // Host counts move with nearly every event: read them at most every two seconds.
    {
        let hosts_due = hosts_due.clone();
        let refresh_hosts = refresh_hosts.clone();
        use_effect_with(id, move |_| {
            let interval = Interval::new(2_000, move || {
                if hosts_due.borrow().replace(false) {
                    refresh_hosts.emit(());
                }
            });
            move || drop(interval)
        });
    }

    let running = matches!(&state.job, Load::Loaded(Ok(j)) if !j.status.is_finished());
    use_title(match &state.job {
        Load::Loaded(Ok(j)) => format!("{} ({}) #{id}", j.name, j.status),
        _ => format!("Job {id}"),
    });
    use_ticking(running);

    let job = match &state.job {
        Load::Loading => {
            return html! { <main class="page"><p class="notice">{ "Loading the job…" }</p></main> }
        }
        Load::Loaded(Err(e)) => {
            return html! {
                <main class="page">
                    <p><Link to="/">{ "← Jobs" }</Link></p>
                    { error_text(&format!("Could not load job {id}"), e) }
                </main>
            }
        }
        Load::Loaded(Ok(job)) => job.clone(),
    };

    let tab = Tab::parse(nav.location.param("tab"));
    let selected_line =
        nav.location.param("line").and_then(|l| l.parse::<usize>().ok()).and_then(|l| l.checked_sub(1));
    let selected_host = nav.location.param("host");
    let selected_event = nav.location.param("event").and_then(|c| c.parse::<i64>().ok());
    let goto = {
        let nav = nav.clone();
        Rc::new(move |tab: Tab, extra: Vec<(&'static str, String)>| {
            let mut pairs = Vec::new();
            if tab != Tab::Output {
                pairs.push(("tab", tab.key().to_string()));
            }
            pairs.extend(extra);
            let q = query_string(pairs);
            nav.replace(&if q.is_empty() { format!("/jobs/{id}") } else { format!("/jobs/{id}?{q}") });
        })
    };
    let on_select_line = {
        let goto = goto.clone();
        Callback::from(move |n: usize| goto(Tab::Output, vec![("line", (n + 1).to_string())]))
    };
    let on_select_host = {
        let goto = goto.clone();
        Callback::from(move |h: Option<String>| {
            goto(Tab::Hosts, h.map(|h| ("host", h)).into_iter().collect())
        })
    };
    let on_open_event = {
        let goto = goto.clone();
        Callback::from(move |c: i64| goto(Tab::Timeline, vec![("event", c.to_string())]))
    };
    let on_close_event = {
        let goto = goto.clone();
        Callback::from(move |()| goto(tab, Vec::new()))
    };

    // The event panel: the selected line's event, or an event opened from the timeline.
    let panel = {
        let s = store.0.borrow();
        let from_line =
            selected_line.filter(|_| tab == Tab::Output).and_then(|n| s.line(n).map(|(_, c)| (c, Some(n))));
        from_line.or(selected_event.map(|c| (c, None)))
    };

    let now_ms = js_sys::Date::now();
    let may_act = session.as_ref().is_some_and(|s| s.may(Role::Operator));
    let tabs = Tab::ALL.iter().map(|t| {
        let goto = goto.clone();
        let t = *t;
        let onclick = Callback::from(move |_: MouseEvent| goto(t, Vec::new()));
        let count = match t {
            Tab::Hosts => match &state.hosts {
                Load::Loaded(Ok(h)) => format!(" ({})", h.len()),
                _ => String::new(),
            },
            _ => String::new(),
        };
        html! {
            <button type="button" role="tab" class="tab" aria-selected={(t == tab).to_string()} {onclick}
                    data-testid={format!("tab-{}", t.key())}>
                { t.label() }{ count }
            </button>
        }
    });

    html! {
        <main class="page job-page" data-testid="job-page" data-job-id={id.to_string()} data-status={job.status.as_str()}>
            <div class="toolbar">
                <Link to="/" class="back">{ "← Jobs" }</Link>
                <span class="spacer"></span>
                { connection_badge(connection) }
            </div>
            { header(&job, now_ms) }
            { counters(&job, now_ms) }
            { host_bar(&job) }
            <Actions job={job.clone()} may_act={may_act} />
            { explanations(&job, may_act) }
            { backfill_notice(&state.backfill, job.event_count) }
            { expired_notice(&job) }
            <div class="tabs" role="tablist" aria-label="Job views">{ for tabs }</div>
            if let Some((counter, line)) = panel {
                <EventPanel job_id={id} {counter} {line} on_close={on_close_event} />
            }
            <div role="tabpanel" class="tabpanel">
                { match tab {
                    // Retention deleted the output: say so where it would be, not an empty view.
                    Tab::Output if job.events_expired.is_some() => html! {
                        <p class="empty" data-testid="output-expired">
                            { "The output is no longer kept. The Hosts and History tabs still show how the job went." }
                        </p>
                    },
                    Tab::Output => html! {
                        <Output job_id={id} store={(*store).clone()} version={state.version}
                                live={!job.status.is_finished()} selected={selected_line}
                                on_select={on_select_line} />
                    },
                    Tab::Hosts => html! {
                        <Hosts job_id={id} hosts={state.hosts.clone()} selected={selected_host} on_select={on_select_host} />
                    },
                    Tab::Timeline => html! {
                        <Timeline job={job.clone()} store={(*store).clone()} version={state.version} {on_open_event} />
                    },
                    Tab::History => history_view(&state.history, now_ms),
                } }
            </div>
        </main>
    }
}

/// Adds a page of events to the store and says how many it holds now.
fn take_in(store: &Shared, d: &UseReducerDispatcher<JobPageState>, events: Vec<shared::JobEvent>) -> usize {
    let mut s = store.0.borrow_mut();
    s.add(events);
    d.dispatch(JobPageAction::Version(s.version));
    s.events.len()
}

fn header(job: &Job, now_ms: f64) -> Html {
    let facts: Vec<(&str, Html)> = [
        ("Template", job.template.clone().map(Html::from)),
        ("Inventory", job.inventory.clone().map(Html::from)),
        ("Project", job.project.clone().map(Html::from)),
        (
            "Revision",
            job.scm_revision.as_ref().map(|r| {
                // A commit shows short, whole on hover; a collection's version as it is.
                let short =
                    if r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()) { &r[..12] } else { r };
                html! { <code title={r.clone()}>{ short.to_string() }</code> }
            }),
        ),
        ("Launched by", job.launched_by.clone().map(Html::from)),
        ("Limit", job.limit.clone().map(Html::from)),
        ("Source", Some(Html::from(format!("{} #{}", job.source, job.external_id)))),
        ("Started", job.started.map(|t| time_tag(t, now_ms))),
        ("Finished", job.finished.map(|t| time_tag(t, now_ms))),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    html! {
        <header class="job-head">
            <div class="job-title">
                <h1 data-testid="job-title">{ &job.name }</h1>
                { status_badge(job.status) }
                <span class="muted">{ format!("#{}", job.id) }</span>
            </div>
            if let Some(step) = current_step(job) {
                <p class="current" data-testid="job-current">{ step }</p>
            }
            if let Some(why) = &job.explanation {
                <p class="explanation" role="note">{ why }</p>
            }
            <dl class="facts inline">
                { for facts.into_iter().map(|(k, v)| html! { <div><dt>{ k }</dt><dd>{ v }</dd></div> }) }
            </dl>
        </header>
    }
}

/// The knowledge base entry to create from a failure no entry knows: the editor's address.
pub fn new_entry_link(e: &Explanation) -> String {
    let pattern: String =
        e.error.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").chars().take(120).collect();
    let title = match &e.task {
        Some(t) => format!("{t} failed"),
        None => "New failure".to_owned(),
    };
    let q = query_string([
        ("new", "1".to_owned()),
        ("title", title),
        ("pattern", pattern),
        ("module", e.module.clone().unwrap_or_default()),
        ("task", e.task.clone().unwrap_or_default()),
    ]);
    format!("/kb?{q}")
}

/// Per failing host and task: the error and the knowledge base entries that explain it.
pub fn explanation_list(list: &[Explanation], may_edit: bool) -> Html {
    let items = list.iter().map(|e| {
        let place = match (&e.host, &e.task) {
            (Some(h), Some(t)) => format!("{h} · {t}"),
            (Some(h), None) => h.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => format!("event {}", e.counter),
        };
        html! {
            <li class="expl" data-testid="explanation">
                <h3>
                    <span class={classes!("badge", if e.event.contains("unreachable") { "status-error" } else { "status-failed" })}>
                        { if e.event.contains("unreachable") { "unreachable" } else { "failed" } }
                    </span>
                    { " " }{ place }
                    if let Some(m) = &e.module { <span class="muted">{ format!(" ({m})") }</span> }
                </h3>
                <pre class="block stderr" data-testid="explanation-error">{ &e.error }</pre>
                if e.matches.is_empty() {
                    <p class="muted" data-testid="explanation-none">{ "No knowledge base entry knows this failure yet." }
                        if may_edit {
                            { " " }<Link to={new_entry_link(e)} testid="explanation-create">{ "Create an entry from this failure" }</Link>
                        }
                    </p>
                } else {
                    { for e.matches.iter().map(|m| html! {
                        <div class="solution" data-testid="explanation-match">
                            <h4>{ &m.title }
                                { for m.tags.iter().map(|t| html! { <span class="tag">{ t }</span> }) }
                            </h4>
                            { markdown(&m.solution) }
                        </div>
                    }) }
                }
            </li>
        }
    });
    html! { <ul class="expls">{ for items }</ul> }
}

fn explanations(job: &Job, may_edit: bool) -> Html {
    if job.explanations.is_empty() {
        return Html::default();
    }
    html! {
        <section class="explanations" aria-labelledby="expl-head" data-testid="explanations">
            <h2 id="expl-head">{ "Explanations" }</h2>
            { explanation_list(&job.explanations, may_edit) }
        </section>
    }
}

fn counters(job: &Job, now_ms: f64) -> Html {
    let counts = host_counts(job);
    let hosts: i64 = counts.iter().sum();
    let tiles = [
        ("Plays", job.plays.to_string(), ""),
        ("Tasks", job.tasks.to_string(), ""),
        ("Hosts", hosts.to_string(), ""),
        ("Failed", job.hosts.failed.to_string(), if job.hosts.failed > 0 { "bad" } else { "" }),
        (
            "Unreachable",
            job.hosts.unreachable.to_string(),
            if job.hosts.unreachable > 0 { "bad" } else { "" },
        ),
        ("Elapsed", duration_secs(job, now_ms).map(format_duration).unwrap_or_else(|| "–".into()), ""),
    ];
    html! {
        <ul class="counters" data-testid="counters">
            { for tiles.into_iter().map(|(label, value, class)| html! {
                <li class={classes!("counter", (!class.is_empty()).then_some(class))}
                    data-testid={format!("count-{}", label.to_lowercase())}>
                    <span class="value">{ value }</span><span class="label">{ label }</span>
                </li>
            }) }
        </ul>
    }
}

fn host_bar(job: &Job) -> Html {
    let counts = host_counts(job);
    let total: i64 = counts.iter().sum();
    if total == 0 {
        return html! {};
    }
    let summary = HOST_STATES
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|((_, label), n)| format!("{n} {label}"))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        <div class="hostbar-wrap">
            <div class="hostbar" role="img" aria-label={format!("Hosts: {summary}")} data-testid="host-bar">
                { for HOST_STATES.iter().zip(counts).filter(|(_, n)| *n > 0).map(|((class, label), n)| html! {
                    <span class={classes!("seg", format!("seg-{class}"))} title={format!("{n} {label}")}
                          style={format!("flex-grow:{n}")}></span>
                }) }
            </div>
            <p class="legend">
                { for HOST_STATES.iter().zip(counts).map(|((class, label), n)| html! {
                    <span class={classes!((n == 0).then_some("zero"))}>
                        <span class={classes!("swatch", format!("seg-{class}"))}></span>{ format!("{n} {label}") }
                    </span>
                }) }
            </p>
        </div>
    }
}

fn backfill_notice(backfill: &Backfill, total: i64) -> Html {
    match backfill {
        Backfill::Done => html! {},
        Backfill::Loading { events } => html! {
            <p class="notice" data-testid="backfill">
                { format!("Loading output: {events} of {total} events…") }
            </p>
        },
        Backfill::Failed(e) => error_text("Part of the output could not be loaded; reload to try again", e),
    }
}

fn history_view(history: &Load<Vec<StatusChange>>, now_ms: f64) -> Html {
    match history {
        Load::Loading => html! { <p class="notice">{ "Loading the history…" }</p> },
        Load::Loaded(Err(e)) => error_text("Could not load the status history", e),
        Load::Loaded(Ok(changes)) if changes.is_empty() => {
            html! { <p class="notice">{ "No status change yet." }</p> }
        }
        Load::Loaded(Ok(changes)) => html! {
            <ol class="history" data-testid="history">
                { for changes.iter().map(|c| html! {
                    <li>
                        { time_tag(c.at, now_ms) }
                        <span class="change">
                            if let Some(p) = c.previous { { status_badge(p) }<span aria-label="to">{ " → " }</span> }
                            { status_badge(c.status) }
                        </span>
                        <span class="muted">{ &c.by }</span>
                    </li>
                }) }
            </ol>
        },
    }
}

#[derive(Properties, PartialEq)]
struct ActionsProps {
    job: Job,
    may_act: bool,
}

/// Cancel, relaunch (all or failed hosts) for operators; downloading the output for everyone.
#[function_component(Actions)]
fn actions(props: &ActionsProps) -> Html {
    let outcome = use_state(|| None::<Result<String, String>>);
    let busy = use_state(|| false);
    let nav = use_nav();
    let job = &props.job;
    let id = job.id;
    let act = {
        let outcome = outcome.clone();
        let busy = busy.clone();
        let nav = nav.clone();
        Rc::new(move |what: &'static str| {
            let outcome = outcome.clone();
            let busy = busy.clone();
            let nav = nav.clone();
            busy.set(true);
            crate::ui::spawn(async move {
                let result = match what {
                    "cancel" => api::cancel(id).await,
                    "failed" => api::relaunch(id, true).await,
                    _ => api::relaunch(id, false).await,
                };
                busy.set(false);
                match result {
                    Ok(answer) => {
                        let new_id = Some(answer.job.id).filter(|n| *n != id);
                        let message = match (what, new_id) {
                            ("cancel", _) => "Cancel requested.".to_string(),
                            (_, Some(n)) => format!("Relaunched as job {n}."),
                            _ => "Relaunch requested.".to_string(),
                        };
                        outcome.set(Some(Ok(message)));
                        if let Some(n) = new_id {
                            nav.push(&format!("/jobs/{n}"));
                        }
                    }
                    Err(e) => {
                        let verb = if what == "cancel" { "Cancel" } else { "Relaunch" };
                        outcome.set(Some(Err(format!("{verb} failed: {}", e.words()))));
                    }
                }
            });
        })
    };
    let button = |what: &'static str, label: &str, class: &str| {
        let act = act.clone();
        let onclick = Callback::from(move |_: MouseEvent| act(what));
        html! {
            <button type="button" class={class.to_owned()} {onclick} disabled={*busy} data-testid={format!("action-{what}")}>
                { label.to_owned() }
            </button>
        }
    };
    let finished = job.status.is_finished();
    let any_failed = job.hosts.failed + job.hosts.unreachable > 0 || job.status == JobStatus::Failed;
    html! {
        <div class="actions" data-testid="actions">
            if props.may_act && !finished {
                { button("cancel", "Cancel job", "danger") }
            }
            if props.may_act && finished {
                { button("all", "Relaunch", "") }
                if any_failed { { button("failed", "Relaunch failed hosts", "secondary") } }
            }
            // Nothing to download once retention deleted the output.
            if job.events_expired.is_none() {
                <a class="button secondary" href={format!("/api/v1/jobs/{id}/stdout?format=txt")}
                   download={format!("job-{id}.txt")} data-testid="download-txt">{ "Download output" }</a>
                <a class="button secondary" href={format!("/api/v1/jobs/{id}/stdout?format=ansi")}
                   download={format!("job-{id}.ansi.txt")} title="With colour codes, for a terminal">{ "with colours" }</a>
            }
            if let Some(result) = &*outcome {
                { match result {
                    Ok(m) => html! { <p class="notice ok" role="status" data-testid="action-result">{ m }</p> },
                    Err(m) => html! { <p class="notice error" role="alert" data-testid="action-error">{ m }</p> },
                } }
            }
        </div>
    }
}

/// Retention deleted this job's raw events: say so rather than show an empty output.
fn expired_notice(job: &Job) -> Html {
    match job.events_expired {
        None => html! {},
        Some(at) => html! {
            <p class="notice" role="status" data-testid="events-expired">
                { format!(
                    "This job's output and events were deleted by the retention policy on {}; \
                     its summary, hosts, history and explanations are kept.",
                    at.format("%Y-%m-%d")
                ) }
            </p>
        },
    }
}
