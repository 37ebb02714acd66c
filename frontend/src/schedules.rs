//! The Schedules page (each schedule's timing, next run, last run with its job and status, paused
//! ones; pause, resume and each one's runs) and the "Schedule…" form the Launch page opens, with
//! the next five runs as the server computes them in the chosen zone (the page carries no
//! time-zone data of its own).

use serde_json::Value;
use shared::schedules::{Preview, PreviewRequest, Schedule, ScheduleInput, ScheduleRun, Timing};
use shared::Role;
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::route::{use_nav, Link};
use crate::session::use_session;
use crate::ui::{use_title, value_of};

/// A time as the schedule's zone shows it.
fn at(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.format("%a %Y-%m-%d %H:%M:%S %:z").to_string()
}

/// The browser's own IANA zone (what "tonight" means to the person), or UTC.
pub fn browser_zone() -> String {
    let options =
        js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new()).resolved_options();
    js_sys::Reflect::get(&options, &"timeZone".into())
        .ok()
        .and_then(|z| z.as_string())
        .unwrap_or_else(|| "UTC".into())
}

fn when(s: &Schedule) -> String {
    match (&s.cron, &s.at) {
        (Some(c), _) => format!("cron {c} ({})", s.time_zone),
        (_, Some(a)) => format!("once at {} ({})", a.replace('T', " "), s.time_zone),
        _ => String::new(),
    }
}

fn run_line(r: &ScheduleRun) -> Html {
    let status = r.job_status.clone().unwrap_or_default();
    html! {
        <li data-testid="schedule-run" data-state={r.state.clone()}>
            <span class="mono">{ at(&r.scheduled_for) }</span>{ " · " }
            <strong>{ &r.state }</strong>
            if let Some(job) = r.job_id {
                { " · " }<Link to={format!("/jobs/{job}")}>{ format!("job {job}") }</Link>
                if !status.is_empty() { { format!(" ({status})") } }
            }
            if let Some(reason) = &r.reason { <span class="muted">{ format!(" · {reason}") }</span> }
        </li>
    }
}

#[function_component(SchedulesPage)]
pub fn schedules_page() -> Html {
    use_title("Schedules".to_owned());
    let session = use_session();
    let operator = session.as_ref().is_some_and(|s| s.may(Role::Operator));
    let list = use_state(|| Load::<Vec<Schedule>>::Loading);
    let reload = use_state(|| 0u32);
    let open = use_state(|| None::<i64>);
    let runs = use_state(|| Load::<Vec<ScheduleRun>>::Loading);
    let error = use_state(|| None::<String>);
    let aap = use_state(Vec::<shared::aap::ControllerSchedule>::new);
    {
        let aap = aap.clone();
        use_effect_with((), move |_| {
            crate::ui::spawn(async move {
                if let Ok(l) = api::controller_schedules().await {
                    aap.set(l.results);
                }
            });
        });
    }
    {
        // Read now and every 5 s: a run that fires shows without a reload.
        let (list, runs, open) = (list.clone(), runs.clone(), open.clone());
        use_effect_with((*reload, *open), move |_| {
            let load = move || {
                let (list, runs, open) = (list.clone(), runs.clone(), *open);
                crate::ui::spawn(async move {
                    list.set(Load::Loaded(api::schedules().await.map(|p| p.results)));
                    if let Some(id) = open {
                        runs.set(Load::Loaded(api::schedule_runs(id).await.map(|p| p.results)));
                    }
                });
            };
            load();
            let timer = gloo_timers::callback::Interval::new(5_000, load);
            move || drop(timer)
        });
    }
    let toggle = |s: &Schedule| {
        let (id, enabled) = (s.id, s.enabled);
        let (reload, error) = (reload.clone(), error.clone());
        Callback::from(move |_: MouseEvent| {
            let (reload, error) = (reload.clone(), error.clone());
            crate::ui::spawn(async move {
                let patch = ScheduleInput { enabled: Some(!enabled), ..ScheduleInput::default() };
                match api::schedule_patch(id, &patch).await {
                    Ok(_) => error.set(None),
                    Err(e) => error.set(Some(e.words())),
                }
                reload.set(*reload + 1);
            });
        })
    };
    let show_runs = |id: i64| {
        let (open, runs) = (open.clone(), runs.clone());
        Callback::from(move |_: MouseEvent| {
            runs.set(Load::Loading);
            open.set(if *open == Some(id) { None } else { Some(id) });
        })
    };
    let body = match &*list {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(l)) if l.is_empty() => html! {
            <p class="muted" data-testid="schedules-empty">
                { "Nothing is scheduled. Open " }<Link to="/launch">{ "Launch" }</Link>{ " and choose “Schedule…”." }
            </p>
        },
        Load::Loaded(Ok(l)) => html! {
            <ul class="schedule-list" data-testid="schedules">
                { for l.iter().map(|s| html! {
                    <li class={classes!("card", (!s.enabled).then_some("paused"))} data-testid="schedule" data-id={s.id.to_string()}>
                        <div class="toolbar">
                            <strong data-testid="schedule-name">{ &s.name }</strong>
                            <span class="badge">{ if s.enabled { "active" } else { "paused" } }</span>
                            if operator {
                                <button type="button" class="secondary" onclick={toggle(s)} data-testid="schedule-toggle">
                                    { if s.enabled { "Pause" } else { "Resume" } }
                                </button>
                            }
                            <button type="button" class="secondary" onclick={show_runs(s.id)} data-testid="schedule-runs-toggle">
                                { if *open == Some(s.id) { "Hide runs" } else { "Runs" } }
                            </button>
                        </div>
                        <p class="muted">{ format!("{} · {} ({}) · by {}", when(s), s.target, s.source, s.created_by) }</p>
                        <p data-testid="schedule-next">{ match &s.next_run {
                            Some(t) => format!("Next run: {}", at(t)),
                            None => "No next run".to_owned(),
                        } }</p>
                        if let (Some(r), false) = (&s.last_run, *open == Some(s.id)) {
                            <ul class="runs" data-testid="schedule-last">{ run_line(r) }</ul>
                        }
                        if *open == Some(s.id) {
                            { match &*runs {
                                Load::Loading => html! { <p class="notice">{ "Loading runs…" }</p> },
                                Load::Loaded(Err(e)) => html! { <p class="error">{ e.words() }</p> },
                                Load::Loaded(Ok(r)) => html! {
                                    <ul class="runs" data-testid="schedule-runs">{ for r.iter().map(run_line) }</ul>
                                },
                            } }
                        }
                    </li>
                }) }
            </ul>
        },
    };
    html! {
        <main class="page narrow schedules" data-testid="schedules-page">
            <div class="toolbar"><h1>{ "Schedules" }</h1></div>
            if let Some(e) = &*error { <p class="error" role="alert">{ e }</p> }
            { body }
            if !aap.is_empty() {
                <h2>{ "On the controllers (read-only)" }</h2>
                <ul class="schedule-list" data-testid="controller-schedules">
                    { for aap.iter().map(|s| html! {
                        <li class="card" data-testid="controller-schedule">
                            <strong>{ &s.name }</strong>
                            <p class="muted">{ format!("{} on {} · {}", s.template, s.controller, s.rrule) }</p>
                            <p>{ match (&s.next_run, s.enabled) {
                                (Some(t), true) => format!("Next run: {}", t.format("%a %Y-%m-%d %H:%M UTC")),
                                (_, false) => "Disabled on the controller".to_owned(),
                                _ => "No next run".to_owned(),
                            } }</p>
                        </li>
                    }) }
                </ul>
            }
        </main>
    }
}

#[derive(Properties, PartialEq)]
pub struct FormProps {
    /// The launch as the Launch page built it (or why it cannot be sent).
    pub launch: Result<Value, String>,
    pub name: String,
}

/// "Schedule…": when (cron or once, in a zone), a preview of the next five runs, and Create.
#[function_component(ScheduleForm)]
pub fn schedule_form(p: &FormProps) -> Html {
    let nav = use_nav();
    let once = use_state(|| false);
    let cron = use_state(|| "0 22 * * 1-5".to_owned());
    let at_local = use_state(String::new);
    let zone = use_state(browser_zone);
    let name = use_state(String::new);
    let preview = use_state(|| None::<Result<Preview, ApiError>>);
    let error = use_state(|| None::<String>);
    let timing = Timing {
        cron: (!*once).then(|| (*cron).clone()),
        at: (*once).then(|| (*at_local).clone()),
        time_zone: Some((*zone).clone()),
        exclusions: Vec::new(),
    };
    {
        let (preview, latest) = (preview.clone(), crate::ui::use_latest());
        use_effect_with(timing.clone(), move |t| {
            let req = PreviewRequest { timing: t.clone(), count: Some(5) };
            let mine = latest.ask();
            crate::ui::spawn(async move {
                let answer = api::schedule_preview(&req).await;
                if latest.is(mine) {
                    preview.set(Some(answer));
                }
            });
        });
    }
    let set = |s: &UseStateHandle<String>| {
        let s = s.clone();
        Callback::from(move |e: InputEvent| {
            let e: Event = e.into();
            s.set(value_of(&e))
        })
    };
    let set_once = |v: bool| {
        let once = once.clone();
        Callback::from(move |_: Event| once.set(v))
    };
    let create = {
        let (launch, error, nav) = (p.launch.clone(), error.clone(), nav.clone());
        let default_name = p.name.clone();
        let (timing, name) = (timing.clone(), (*name).clone());
        Callback::from(move |_: MouseEvent| {
            let launch = match &launch {
                Ok(l) => l.clone(),
                Err(e) => return error.set(Some(e.clone())),
            };
            let input = ScheduleInput {
                name: Some(if name.trim().is_empty() { default_name.clone() } else { name.clone() }),
                cron: timing.cron.clone(),
                at: timing.at.clone(),
                time_zone: timing.time_zone.clone(),
                launch: Some(launch),
                ..ScheduleInput::default()
            };
            let (error, nav) = (error.clone(), nav.clone());
            crate::ui::spawn(async move {
                match api::schedule_create(&input).await {
                    Ok(_) => nav.push("/schedules"),
                    Err(e) => error.set(Some(format!("The schedule was refused: {}", e.words()))),
                }
            });
        })
    };
    html! {
        <fieldset class="schedule-form" data-testid="schedule-form">
            <legend>{ "Schedule" }</legend>
            <label for="schedule-name">{ "Name" }</label>
            <input id="schedule-name" type="text" value={(*name).clone()} oninput={set(&name)} placeholder={p.name.clone()}
                   data-testid="schedule-name-input" />
            <label><input type="radio" name="schedule-kind" checked={!*once} onchange={set_once(false)}
                          data-testid="schedule-kind-cron" />{ " Repeat (cron)" }</label>
            <label><input type="radio" name="schedule-kind" checked={*once} onchange={set_once(true)}
                          data-testid="schedule-kind-once" />{ " Once" }</label>
            if *once {
                <label for="schedule-at">{ "At (in the zone below)" }</label>
                <input id="schedule-at" type="datetime-local" step="1" value={(*at_local).clone()} oninput={set(&at_local)}
                       data-testid="schedule-at" />
            } else {
                <label for="schedule-cron">{ "Cron: minute hour day month weekday (a sixth field in front for seconds; @hourly, @daily…)" }</label>
                <input id="schedule-cron" type="text" class="mono" value={(*cron).clone()} oninput={set(&cron)}
                       data-testid="schedule-cron" />
            }
            <label for="schedule-zone">{ "Time zone" }</label>
            <input id="schedule-zone" type="text" value={(*zone).clone()} oninput={set(&zone)} placeholder="Europe/Berlin"
                   data-testid="schedule-zone" />
            <div class="preview" data-testid="schedule-preview" aria-live="polite">
                { match &*preview {
                    None => html! { <p class="muted">{ "…" }</p> },
                    Some(Err(e)) => html! { <p class="error" data-testid="schedule-preview-error">{ e.to_string() }</p> },
                    Some(Ok(p)) if p.runs.is_empty() => html! { <p class="muted">{ "No run to come." }</p> },
                    Some(Ok(p)) => html! {
                        <>
                            <p class="muted">{ format!("Next runs ({}):", p.time_zone) }</p>
                            <ol>{ for p.runs.iter().map(|t| html! { <li class="mono" data-testid="schedule-preview-run">{ at(t) }</li> }) }</ol>
                        </>
                    },
                } }
            </div>
            <button type="button" onclick={create} data-testid="schedule-create">{ "Create schedule" }</button>
            <p class="error" role="alert" data-testid="schedule-error" hidden={error.is_none()}>
                { (*error).clone().unwrap_or_default() }
            </p>
        </fieldset>
    }
}
