//! Small pieces every page shows the same way: status badges, the connection badge, times and
//! durations, the ticking clock.

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use gloo_timers::callback::Interval;
use shared::{Job, JobStatus};
use yew::prelude::*;

use crate::live::Connection;

pub fn status_badge(status: JobStatus) -> Html {
    let s = status.as_str();
    html! {
        <span class={classes!("badge", format!("status-{s}"))} data-testid="job-status">{ s }</span>
    }
}

pub fn connection_badge(connection: Connection) -> Html {
    let label = match connection {
        Connection::Connecting => "connecting…",
        Connection::Live => "live",
        Connection::LiveSse => "live (SSE)",
        Connection::Polling => "polling",
        Connection::Reconnecting => "reconnecting…",
        Connection::Offline => "offline",
    };
    let title = match connection {
        Connection::Live => "Updates arrive as they happen",
        Connection::LiveSse => {
            "Updates arrive as they happen, over Server-Sent Events: something between here and Playdeck refuses WebSockets"
        }
        Connection::Polling => {
            "Neither WebSockets nor Server-Sent Events get through to Playdeck: the page asks for changes every 5 seconds"
        }
        Connection::Connecting => "Connecting to the live feed",
        Connection::Reconnecting => "The live feed dropped; reconnecting by itself. Nothing will be missed.",
        Connection::Offline => "This browser is offline; the page reconnects when the network is back",
    };
    html! {
        <span class={classes!("conn", format!("conn-{}", connection.as_str()))} title={title}
              data-testid="connection" data-state={connection.as_str()} role="status">
            <span class="dot" aria-hidden="true"></span>{ label }
        </span>
    }
}

/// Names the browser tab after what the page shows, so a row of tabs can be told apart.
#[hook]
pub fn use_title(title: String) {
    use_effect_with(title, |title| {
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&format!("{title} — Playdeck"));
        }
    });
}

/// Answers come back in any order: a component that asks again as its input changes shows only
/// the answer to its newest question, so an older one that arrives last never replaces it.
#[derive(Clone)]
pub struct Latest(Rc<Cell<u32>>);

impl Latest {
    /// A new question: every one asked before it is stale from now on.
    pub fn ask(&self) -> u32 {
        let n = self.0.get().wrapping_add(1);
        self.0.set(n);
        n
    }

    /// Whether the question `n` is still the newest.
    pub fn is(&self, n: u32) -> bool {
        self.0.get() == n
    }
}

#[hook]
pub fn use_latest() -> Latest {
    (*use_memo((), |_| Latest(Rc::new(Cell::new(0))))).clone()
}

/// Re-renders every second while `active`, so running jobs' durations tick.
#[hook]
pub fn use_ticking(active: bool) {
    let update = use_force_update();
    use_effect_with(active, move |active| {
        let interval = active.then(|| Interval::new(1_000, move || update.force_update()));
        move || drop(interval)
    });
}

/// Seconds the job has run: up to now while running (counted by this browser's clock, from
/// `started`), else the server's figure.
pub fn duration_secs(job: &Job, now_ms: f64) -> Option<f64> {
    let started = job.started?;
    if job.status == JobStatus::Running {
        // A browser clock behind the server's would show a negative time.
        return Some(((now_ms - started.timestamp_millis() as f64) / 1000.0).max(0.0));
    }
    job.elapsed.or_else(|| {
        let finished = job.finished?;
        Some((finished - started).num_milliseconds() as f64 / 1000.0)
    })
}

pub fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// A short duration with its fraction, for task and host results.
pub fn format_seconds(secs: f64) -> String {
    if secs < 1.0 {
        format!("{}ms", (secs.max(0.0) * 1000.0).round())
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format_duration(secs)
    }
}

/// A time in the browser's time zone: the time alone when it is today, else the date too.
pub fn local_time(at: DateTime<Utc>, now_ms: f64) -> String {
    let at = js_sys::Date::new(&(at.timestamp_millis() as f64).into());
    let now = js_sys::Date::new(&now_ms.into());
    let time = format!("{:02}:{:02}:{:02}", at.get_hours(), at.get_minutes(), at.get_seconds());
    let same_day = (at.get_full_year(), at.get_month(), at.get_date())
        == (now.get_full_year(), now.get_month(), now.get_date());
    if same_day {
        time
    } else {
        format!("{}-{:02}-{:02} {time}", at.get_full_year(), at.get_month() + 1, at.get_date())
    }
}

pub fn time_tag(at: DateTime<Utc>, now_ms: f64) -> Html {
    html! {
        <time datetime={at.to_rfc3339()} title={at.to_rfc3339()}>{ local_time(at, now_ms) }</time>
    }
}

/// Host states in the order AWX shows them, with the class that colours them.
pub const HOST_STATES: [(&str, &str); 5] = [
    ("ok", "ok"),
    ("changed", "changed"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("unreachable", "unreachable"),
];

pub fn host_counts(job: &Job) -> [i64; 5] {
    let h = &job.hosts;
    [h.ok, h.changed, h.failed, h.skipped, h.unreachable]
}

/// "play / task" of a running job.
pub fn current_step(job: &Job) -> Option<String> {
    if job.status != JobStatus::Running {
        return None;
    }
    match (&job.current_play, &job.current_task) {
        (Some(play), Some(task)) => Some(format!("{play} / {task}")),
        (Some(one), None) | (None, Some(one)) => Some(one.clone()),
        (None, None) => None,
    }
}

/// The value of the input, textarea or select an event came from.
pub fn value_of(e: &Event) -> String {
    let Some(t) = e.target() else { return String::new() };
    if let Some(i) = wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlInputElement>(&t) {
        return i.value();
    }
    if let Some(i) = wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlTextAreaElement>(&t) {
        return i.value();
    }
    wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlSelectElement>(&t).map(|s| s.value()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(format_duration(4.7), "4s");
        assert_eq!(format_duration(65.0), "1m 05s");
        assert_eq!(format_duration(3_725.0), "1h 02m");
        assert_eq!(format_duration(-3.0), "0s");
        assert_eq!(format_seconds(2.25), "2.2s");
        assert_eq!(format_seconds(0.037), "37ms");
    }
}

/// Runs `task` on the page's event loop. Every task goes through one boxed, non-generic call, so
/// the executor's spawning code is built once rather than once per task (a smaller web app).
pub fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
    spawn_boxed(Box::pin(task));
}

fn spawn_boxed(task: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    wasm_bindgen_futures::spawn_local(task);
}
