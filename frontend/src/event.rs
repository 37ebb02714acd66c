//! One event in full: task, module, host, duration, the result as formatted JSON, the module's
//! stdout/stderr and the event's own output.

use serde_json::Value;
use shared::JobEvent;
use yew::prelude::*;

use crate::ansi::Style;
use crate::api::{self, ApiError, Load};
use crate::output::render_line;
use crate::ui::format_seconds;

#[derive(Properties, PartialEq)]
pub struct EventPanelProps {
    pub job_id: i64,
    pub counter: i64,
    /// The output line that was clicked, shown in the title.
    #[prop_or_default]
    pub line: Option<usize>,
    pub on_close: Callback<()>,
}

/// The event of a selected output line, fetched with all its data.
#[function_component(EventPanel)]
pub fn event_panel(props: &EventPanelProps) -> Html {
    let event = use_state(|| Load::<Option<JobEvent>>::Loading);
    {
        let event = event.clone();
        use_effect_with((props.job_id, props.counter), move |(job_id, counter)| {
            event.set(Load::Loading);
            let (job_id, counter) = (*job_id, *counter);
            crate::ui::spawn(async move {
                event.set(Load::Loaded(api::event(job_id, counter).await));
            });
        });
    }
    let close = {
        let on_close = props.on_close.clone();
        Callback::from(move |_: MouseEvent| on_close.emit(()))
    };
    let title = match props.line {
        Some(n) => format!("Line {} · event {}", n + 1, props.counter),
        None => format!("Event {}", props.counter),
    };
    html! {
        <section class="panel event-panel" aria-label={title.clone()} data-testid="event-panel">
            <div class="panel-head">
                <h2>{ title }</h2>
                <button type="button" class="secondary" onclick={close} data-testid="event-close">{ "Close" }</button>
            </div>
            { match &*event {
                Load::Loading => html! { <p class="notice">{ "Loading the event…" }</p> },
                Load::Loaded(Err(e)) => error_text("Could not load the event", e),
                Load::Loaded(Ok(None)) => html! {
                    <p class="notice">{ "This event is no longer stored (events expire after the retention period)." }</p>
                },
                Load::Loaded(Ok(Some(ev))) => event_body(ev),
            } }
        </section>
    }
}

pub fn error_text(what: &str, e: &ApiError) -> Html {
    html! { <p class="notice error" role="alert">{ format!("{what}: {}", e.words()) }</p> }
}

/// The module that ran (`resolved_action` on recent Ansible, `task_action` before).
pub fn module(ev: &JobEvent) -> Option<String> {
    ["resolved_action", "task_action"]
        .iter()
        .find_map(|k| ev.event_data.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

/// How long the task ran on the host: `duration`, else `end - start`.
pub fn duration(ev: &JobEvent) -> Option<f64> {
    if let Some(d) = ev.event_data.get("duration").and_then(Value::as_f64) {
        return Some(d);
    }
    let time = |k: &str| {
        ev.event_data
            .get(k)
            .and_then(Value::as_str)
            .and_then(crate::store::parse_time)
            .map(|t| t.timestamp_millis())
    };
    Some((time("end")? - time("start")?) as f64 / 1000.0)
}

/// What happened, in one word, from the event's name.
pub fn outcome(ev: &JobEvent) -> &'static str {
    match ev.event.as_str() {
        "runner_on_failed" | "runner_item_on_failed" | "runner_on_async_failed" if ev.failed => "failed",
        "runner_on_failed" | "runner_item_on_failed" => "ignored",
        "runner_on_unreachable" => "unreachable",
        "runner_on_skipped" | "runner_item_on_skipped" => "skipped",
        "runner_on_ok" | "runner_item_on_ok" | "runner_on_async_ok" if ev.changed => "changed",
        "runner_on_ok" | "runner_item_on_ok" | "runner_on_async_ok" => "ok",
        _ => "",
    }
}

pub fn event_body(ev: &JobEvent) -> Html {
    let res = ev.event_data.get("res");
    let text_of = |k: &str| -> Option<String> {
        match res?.get(k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Array(lines) if !lines.is_empty() => Some(
                lines
                    .iter()
                    .map(|l| l.as_str().map(str::to_owned).unwrap_or_else(|| l.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
    };
    let msg = text_of("msg");
    let stdout = text_of("stdout");
    let stderr = text_of("stderr");
    let result = res.map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    let fields: Vec<(&str, String)> = [
        ("Event", Some(ev.event.clone())),
        ("Host", ev.host.clone()),
        ("Play", ev.play.clone()),
        ("Task", ev.task.clone()),
        ("Role", ev.role.clone()),
        ("Module", module(ev)),
        ("Result", Some(outcome(ev)).filter(|s| !s.is_empty()).map(str::to_owned)),
        ("Duration", duration(ev).map(format_seconds)),
        ("Created", ev.created.map(|c| c.to_rfc3339())),
        ("Counter", Some(ev.counter.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let out_lines: Vec<&str> = ev.stdout.split('\n').collect();
    let mut style = Style::default();
    html! {
        <div class="event-body" data-testid="event-body">
            <dl class="facts">
                { for fields.into_iter().map(|(k, v)| html! { <><dt>{ k }</dt><dd>{ v }</dd></> }) }
            </dl>
            if let Some(msg) = msg {
                <h3>{ "Message" }</h3>
                <pre class="block">{ msg }</pre>
            }
            if let Some(s) = stdout {
                <h3>{ "stdout" }</h3>
                <pre class="block" data-testid="event-stdout">{ s }</pre>
            }
            if let Some(s) = stderr {
                <h3>{ "stderr" }</h3>
                <pre class="block stderr" data-testid="event-stderr">{ s }</pre>
            }
            if !ev.stdout.is_empty() {
                <h3>{ "Output" }</h3>
                <pre class="block term">
                    { for out_lines.iter().map(|l| {
                        let start = style;
                        style = crate::ansi::end_style(l, start);
                        html! { <div>{ render_line(l, start, &[]) }</div> }
                    }) }
                </pre>
            }
            if let Some(json) = result {
                <details open={ev.failed}>
                    <summary>{ "Result (JSON)" }</summary>
                    <pre class="block json" data-testid="event-json">{ json }</pre>
                </details>
            }
        </div>
    }
}
