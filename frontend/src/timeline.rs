//! The play/task timeline: one bar per task over the job's time, coloured by its worst result; a
//! task opens to show one bar per host.

use std::collections::HashMap;
use std::rc::Rc;

use shared::Job;
use yew::prelude::*;

use crate::output::Shared;
use crate::store::{Ev, JobEvents};
use crate::ui::format_seconds;

/// Results from best to worst: a task's bar takes its worst host's colour.
const OUTCOMES: [&str; 6] = ["running", "skipped", "ok", "changed", "unreachable", "failed"];

fn rank(outcome: &str) -> usize {
    OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostBar {
    pub host: Rc<str>,
    pub start: f64,
    pub end: f64,
    pub outcome: &'static str,
    pub counter: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskBar {
    pub counter: i64,
    pub play: Option<Rc<str>>,
    pub name: Rc<str>,
    pub start: f64,
    pub end: Option<f64>,
    pub outcome: &'static str,
    pub hosts: Vec<HostBar>,
}

fn ms(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<f64> {
    t.map(|t| t.timestamp_millis() as f64)
}

fn host_outcome(ev: &Ev) -> Option<&'static str> {
    Some(match &*ev.event {
        "runner_on_failed" | "runner_on_async_failed" if ev.failed => "failed",
        "runner_on_failed" => "ok",
        "runner_on_unreachable" => "unreachable",
        "runner_on_skipped" => "skipped",
        "runner_on_ok" | "runner_on_async_ok" if ev.changed => "changed",
        "runner_on_ok" | "runner_on_async_ok" => "ok",
        _ => return None,
    })
}

/// The tasks of the job in Ansible's order, each with its hosts' results.
pub fn tasks(store: &JobEvents) -> Vec<TaskBar> {
    let mut tasks: Vec<TaskBar> = Vec::new();
    let mut by_uuid: HashMap<Rc<str>, usize> = HashMap::new();
    let mut play: Option<Rc<str>> = None;
    for ev in store.events.values() {
        match &*ev.event {
            "playbook_on_play_start" => play = ev.play.clone(),
            "playbook_on_task_start" | "playbook_on_handler_task_start" => {
                let Some(start) = ms(ev.created) else { continue };
                if let Some(uuid) = &ev.uuid {
                    by_uuid.insert(uuid.clone(), tasks.len());
                }
                tasks.push(TaskBar {
                    counter: ev.counter,
                    play: ev.play.clone().or_else(|| play.clone()),
                    name: ev.task.clone().unwrap_or_else(|| Rc::from("(unnamed task)")),
                    start,
                    end: None,
                    outcome: "running",
                    hosts: Vec::new(),
                });
            }
            _ => {
                let Some(outcome) = host_outcome(ev) else { continue };
                let Some(host) = ev.host.clone() else { continue };
                let i = ev
                    .parent_uuid
                    .as_ref()
                    .and_then(|p| by_uuid.get(p).copied())
                    .or_else(|| tasks.iter().rposition(|t| Some(&t.name) == ev.task.as_ref()))
                    .or(tasks.len().checked_sub(1));
                let Some(task) = i.and_then(|i| tasks.get_mut(i)) else { continue };
                let end = ms(ev.end).or(ms(ev.created)).unwrap_or(task.start);
                let start = ms(ev.start).unwrap_or(task.start).min(end);
                task.end = Some(task.end.map_or(end, |e: f64| e.max(end)));
                if rank(outcome) > rank(task.outcome) {
                    task.outcome = outcome;
                }
                task.hosts.push(HostBar { host, start, end, outcome, counter: ev.counter });
            }
        }
    }
    // A task without results ends where the next one starts.
    for i in 0..tasks.len().saturating_sub(1) {
        if tasks[i].end.is_none() {
            tasks[i].end = Some(tasks[i + 1].start);
        }
    }
    tasks
}

#[derive(Properties, PartialEq)]
pub struct TimelineProps {
    pub job: Job,
    pub store: Shared,
    pub version: u64,
    pub on_open_event: Callback<i64>,
}

#[function_component(Timeline)]
pub fn timeline(props: &TimelineProps) -> Html {
    let tasks = {
        let store = props.store.clone();
        use_memo(props.version, move |_| tasks(&store.0.borrow()))
    };
    let open = use_state(|| None::<i64>);
    if tasks.is_empty() {
        return html! { <p class="notice">{ "No task has started yet." }</p> };
    }
    let now = js_sys::Date::now();
    let t0 = ms(props.job.started).unwrap_or(tasks[0].start).min(tasks[0].start);
    let last_end = tasks.iter().filter_map(|t| t.end).fold(t0, f64::max);
    let t1 = ms(props.job.finished)
        .unwrap_or(if props.job.status.is_finished() { last_end } else { now })
        .max(last_end)
        .max(t0 + 1000.0);
    let span = t1 - t0;
    let pct = |t: f64| ((t - t0) / span * 100.0).clamp(0.0, 100.0);
    let bar = |start: f64, end: f64, outcome: &str, label: String| {
        let left = pct(start);
        let width = (pct(end) - left).max(0.4);
        html! {
            <span class={classes!("bar", format!("bar-{outcome}"))} title={label}
                  style={format!("left:{left:.3}%;width:{width:.3}%")}></span>
        }
    };
    let ticks = (0..=4).map(|i| {
        let secs = span / 1000.0 * i as f64 / 4.0;
        let label = if i == 0 { "0s".to_string() } else { format_seconds(secs) };
        html! { <span class="tick" style={format!("left:{}%", i * 25)}>{ label }</span> }
    });
    let mut last_play: Option<Rc<str>> = None;
    let mut rows: Vec<Html> = Vec::new();
    for t in tasks.iter() {
        if t.play != last_play {
            if let Some(p) = &t.play {
                rows.push(html! { <li class="tl-play" key={format!("p{}", t.counter)}>{ format!("PLAY {p}") }</li> });
            }
            last_play = t.play.clone();
        }
        let end = t.end.unwrap_or(now).max(t.start);
        let is_open = *open == Some(t.counter);
        let counter = t.counter;
        let toggle = {
            let open = open.clone();
            Callback::from(move |_: MouseEvent| open.set(if is_open { None } else { Some(counter) }))
        };
        let label = format!(
            "{} — {} — {} hosts, {}",
            t.name,
            t.outcome,
            t.hosts.len(),
            format_seconds((end - t.start) / 1000.0)
        );
        rows.push(html! {
            <li key={format!("t{}", t.counter)} class="tl-task" data-testid="timeline-task">
                <button type="button" class="tl-label" onclick={toggle} aria-expanded={is_open.to_string()}
                        title={if t.hosts.is_empty() { "No host results yet".to_string() } else { "Show each host".to_string() }}>
                    <span class="caret" aria-hidden="true">{ if is_open { "▾" } else { "▸" } }</span>
                    { t.name.to_string() }
                </button>
                <span class="track">{ bar(t.start, end, t.outcome, label) }</span>
            </li>
        });
        if is_open {
            for h in &t.hosts {
                let on_open = props.on_open_event.clone();
                let c = h.counter;
                let onclick = Callback::from(move |_: MouseEvent| on_open.emit(c));
                let label =
                    format!("{} — {} — {}", h.host, h.outcome, format_seconds((h.end - h.start) / 1000.0));
                rows.push(html! {
                    <li key={format!("h{}", h.counter)} class="tl-host" data-testid="timeline-host">
                        <button type="button" class="tl-label linkish" {onclick} title="Open this result">{ h.host.to_string() }</button>
                        <span class="track">{ bar(h.start, h.end, h.outcome, label) }</span>
                    </li>
                });
            }
        }
    }
    html! {
        <section class="timeline" aria-label="Timeline" data-testid="timeline">
            <div class="tl-scale"><span class="tl-label"></span><span class="track">{ for ticks }</span></div>
            <ul class="tl-rows">{ rows }</ul>
            <p class="legend">
                { for ["ok", "changed", "failed", "unreachable", "skipped", "running"].iter().map(|o| html! {
                    <span><span class={classes!("swatch", format!("bar-{o}"))}></span>{ *o }</span>
                }) }
            </p>
        </section>
    }
}
