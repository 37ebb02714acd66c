//! The job grid: the newest jobs, kept current by the live feed without reloading.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use gloo_timers::callback::Interval;
use shared::{Job, JobStatus, Page};
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::live::{use_live_feed, Connection, Feed};

/// How many jobs the grid shows: the newest ones; older ones belong to a later page.
pub const PAGE_SIZE: usize = 50;

/// The rows and how the last fetch of them went.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsState {
    /// Newest first (id descending), at most [`PAGE_SIZE`].
    rows: Vec<Job>,
    /// Rows can exist before the first fetch answers (live changes), and stay shown when a later
    /// fetch fails, so the fetch's outcome is kept beside them rather than wrapping them.
    fetch: Load<()>,
}

impl Default for JobsState {
    fn default() -> Self {
        JobsState { rows: Vec::new(), fetch: Load::Loading }
    }
}

pub enum JobsAction {
    Fetched(Result<Page<Job>, ApiError>),
    /// Boxed: a job is large next to a fetch result, and actions are moved around.
    Changed(Box<Job>),
}

impl Reducible for JobsState {
    type Action = JobsAction;

    fn reduce(self: Rc<Self>, action: JobsAction) -> Rc<Self> {
        let mut state = Rc::unwrap_or_clone(self);
        match action {
            JobsAction::Fetched(Ok(page)) => {
                state.rows = merge_page(std::mem::take(&mut state.rows), page.results);
                state.fetch = Load::Loaded(Ok(()));
            }
            JobsAction::Fetched(Err(e)) => state.fetch = Load::Loaded(Err(e)),
            JobsAction::Changed(job) => upsert(&mut state.rows, *job),
        }
        Rc::new(state)
    }
}

/// Puts a changed job in place, or a new one where its id sorts. The socket and a fetch can
/// deliver the same job in either order, so an older copy (by `modified`) never replaces a newer.
fn upsert(rows: &mut Vec<Job>, job: Job) {
    if let Some(row) = rows.iter_mut().find(|r| r.id == job.id) {
        if job.modified >= row.modified {
            *row = job;
        }
        return;
    }
    let full = rows.len() >= PAGE_SIZE;
    if full && rows.last().is_some_and(|oldest| job.id < oldest.id) {
        return;
    }
    let at = rows.partition_point(|r| r.id > job.id);
    rows.insert(at, job);
    rows.truncate(PAGE_SIZE);
}

/// The fetched page decides which jobs are shown, except for what the socket brought after the
/// server took the page: newer copies of its jobs, and jobs newer than all of them.
fn merge_page(live: Vec<Job>, page: Vec<Job>) -> Vec<Job> {
    let newest_in_page = page.iter().map(|j| j.id).max().unwrap_or(i64::MIN);
    let mut rows = page;
    for job in live {
        if job.id > newest_in_page || rows.iter().any(|r| r.id == job.id) {
            upsert(&mut rows, job);
        }
    }
    rows.sort_by_key(|j| std::cmp::Reverse(j.id));
    rows.truncate(PAGE_SIZE);
    rows
}

#[derive(Properties, PartialEq)]
pub struct JobsPageProps {
    /// The session turned out to be gone (expired, signed out in another tab).
    pub on_signed_out: Callback<()>,
}

#[function_component(JobsPage)]
pub fn jobs_page(props: &JobsPageProps) -> Html {
    let state = use_reducer(JobsState::default);
    let refetch = {
        let dispatcher = state.dispatcher();
        let on_signed_out = props.on_signed_out.clone();
        Callback::from(move |()| {
            let dispatcher = dispatcher.clone();
            let on_signed_out = on_signed_out.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::jobs(PAGE_SIZE).await;
                if matches!(result, Err(ApiError::Unauthorized(_))) {
                    on_signed_out.emit(());
                } else {
                    dispatcher.dispatch(JobsAction::Fetched(result));
                }
            });
        })
    };
    {
        // Shown at once; the feed fetches again once subscribed, which closes the gap between
        // this answer and the subscription.
        let refetch = refetch.clone();
        use_effect_with((), move |_| refetch.emit(()));
    }
    let on_feed = {
        let dispatcher = state.dispatcher();
        let on_signed_out = props.on_signed_out.clone();
        Callback::from(move |feed| match feed {
            Feed::Job(job) => dispatcher.dispatch(JobsAction::Changed(job)),
            Feed::Resync => refetch.emit(()),
            Feed::ConnectFailed => {
                let on_signed_out = on_signed_out.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(None) = api::session().await {
                        on_signed_out.emit(());
                    }
                });
            }
        })
    };
    let connection = use_live_feed(on_feed);
    let any_running = state.rows.iter().any(|j| j.status == JobStatus::Running);
    use_ticking(any_running);
    let now_ms = js_sys::Date::now();

    html! {
        <main class="jobs">
            <div class="toolbar">
                <h1>{ "Jobs" }</h1>
                { connection_badge(connection) }
            </div>
            { fetch_notice(&state) }
            if !state.rows.is_empty() {
                { jobs_table(&state.rows, now_ms) }
            }
        </main>
    }
}

/// Re-renders every second while `active`, so running jobs' durations tick.
#[hook]
fn use_ticking(active: bool) {
    let update = use_force_update();
    use_effect_with(active, move |active| {
        let interval = active.then(|| Interval::new(1_000, move || update.force_update()));
        move || drop(interval)
    });
}

fn connection_badge(connection: Connection) -> Html {
    let label = match connection {
        Connection::Connecting => "connecting…",
        Connection::Live => "live",
        Connection::Reconnecting => "reconnecting…",
        Connection::Offline => "offline",
    };
    html! {
        <span class={classes!("conn", format!("conn-{}", connection.as_str()))}
              data-testid="connection" data-state={connection.as_str()} role="status">
            <span class="dot" aria-hidden="true"></span>{ label }
        </span>
    }
}

fn fetch_notice(state: &JobsState) -> Html {
    match (&state.fetch, state.rows.is_empty()) {
        (Load::Loading, true) => html! { <p class="notice">{ "Loading jobs…" }</p> },
        (Load::Loaded(Ok(())), true) => html! {
            <p class="notice" data-testid="no-jobs">
                { "No jobs yet. They appear here as soon as a source sends their first event." }
            </p>
        },
        (Load::Loaded(Err(e)), _) => html! {
            <p class="notice error" role="alert">{ format!("Could not load jobs: {e}") }</p>
        },
        _ => html! {},
    }
}

fn jobs_table(rows: &[Job], now_ms: f64) -> Html {
    html! {
        <table class="jobs-table" data-testid="jobs-table">
            <thead>
                <tr>
                    <th scope="col" class="col-id">{ "ID" }</th>
                    <th scope="col" class="col-name">{ "Name" }</th>
                    <th scope="col" class="col-source">{ "Source" }</th>
                    <th scope="col" class="col-status">{ "Status" }</th>
                    <th scope="col" class="col-started">{ "Started" }</th>
                    <th scope="col" class="col-duration">{ "Duration" }</th>
                    { for HOST_STATES.iter().map(|(class, label)| html! {
                        <th scope="col" class={classes!("col-host", *class)}>{ *label }</th>
                    }) }
                    <th scope="col" class="col-current">{ "Play / task" }</th>
                </tr>
            </thead>
            <tbody>
                { for rows.iter().map(|job| job_row(job, now_ms)) }
            </tbody>
        </table>
    }
}

/// Host states in the order AWX shows them, with the class that colours a non-zero count.
const HOST_STATES: [(&str, &str); 5] = [
    ("ok", "ok"),
    ("changed", "changed"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("unreachable", "unreachable"),
];

fn job_row(job: &Job, now_ms: f64) -> Html {
    let h = &job.hosts;
    let counts = [h.ok, h.changed, h.failed, h.skipped, h.unreachable];
    let status = job.status.as_str();
    let current = (job.status == JobStatus::Running)
        .then(|| match (&job.current_play, &job.current_task) {
            (Some(play), Some(task)) => Some(format!("{play} / {task}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        })
        .flatten();
    html! {
        <tr key={job.id} data-testid="job-row" data-job-id={job.id.to_string()} data-status={status}>
            <td class="col-id" data-label="ID">{ job.id }</td>
            <td class="col-name" data-label="Name">
                <div class="name" data-testid="job-name">{ &job.name }</div>
                if let Some(template) = &job.template {
                    <div class="template">{ template }</div>
                }
            </td>
            <td class="col-source" data-label="Source">{ &job.source }</td>
            <td class="col-status" data-label="Status">
                <span class={classes!("badge", format!("status-{status}"))} data-testid="job-status">
                    { status }
                </span>
            </td>
            <td class="col-started" data-label="Started">
                if let Some(started) = job.started {
                    <time datetime={started.to_rfc3339()} title={started.to_rfc3339()}>
                        { local_time(started, now_ms) }
                    </time>
                }
            </td>
            <td class="col-duration" data-label="Duration" data-testid="job-duration">
                { duration_secs(job, now_ms).map(format_duration).unwrap_or_default() }
            </td>
            { for HOST_STATES.iter().zip(counts).map(|((class, label), n)| html! {
                <td class={classes!("col-host", *class, (n == 0).then_some("zero"))} data-label={*label}>
                    { n }
                </td>
            }) }
            <td class="col-current" data-label="Play / task">
                if let Some(current) = current {
                    <span title={current.clone()}>{ current }</span>
                }
            </td>
        </tr>
    }
}

/// Seconds the job has run: up to now while running (counted by this browser's clock, from
/// `started`), else the server's figure.
fn duration_secs(job: &Job, now_ms: f64) -> Option<f64> {
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

fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// The start in the browser's time zone: the time alone when it is today, else the date too.
fn local_time(at: DateTime<Utc>, now_ms: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::HostCounts;

    fn job(id: i64, modified: &str, status: JobStatus) -> Job {
        let at: DateTime<Utc> = modified.parse().expect("test timestamp");
        Job {
            id,
            source: "local".into(),
            external_id: id.to_string(),
            name: format!("job {id}"),
            template: None,
            inventory: None,
            project: None,
            launched_by: None,
            limit: None,
            status,
            created: at,
            modified: at,
            started: Some(at),
            finished: None,
            elapsed: None,
            hosts: HostCounts::default(),
            current_play: None,
            current_task: None,
            plays: 0,
            tasks: 0,
            event_count: 0,
            cursor: String::new(),
            explanation: None,
            events_expired: None,
            explanations: Vec::new(),
        }
    }

    const T1: &str = "2025-01-01T10:00:00Z";
    const T2: &str = "2025-01-01T10:00:05Z";

    fn ids(rows: &[Job]) -> Vec<i64> {
        rows.iter().map(|j| j.id).collect()
    }

    #[test]
    fn a_changed_job_is_replaced_in_place_and_a_new_one_goes_on_top() {
        let mut rows = vec![job(3, T1, JobStatus::Running), job(1, T1, JobStatus::Running)];
        upsert(&mut rows, job(3, T2, JobStatus::Successful));
        upsert(&mut rows, job(4, T2, JobStatus::Running));
        upsert(&mut rows, job(2, T2, JobStatus::Running));
        assert_eq!(ids(&rows), [4, 3, 2, 1]);
        assert_eq!(rows[1].status, JobStatus::Successful);
    }

    #[test]
    fn an_older_copy_never_replaces_a_newer_one() {
        let mut rows = vec![job(3, T2, JobStatus::Successful)];
        upsert(&mut rows, job(3, T1, JobStatus::Running));
        assert_eq!(rows[0].status, JobStatus::Successful);
    }

    #[test]
    fn a_full_grid_ignores_jobs_older_than_its_last_row() {
        let mut rows: Vec<Job> =
            (0..PAGE_SIZE as i64).rev().map(|i| job(i + 10, T1, JobStatus::Running)).collect();
        upsert(&mut rows, job(5, T1, JobStatus::Running));
        assert_eq!(rows.len(), PAGE_SIZE);
        assert!(rows.iter().all(|j| j.id >= 10));
        upsert(&mut rows, job(100, T1, JobStatus::Running));
        assert_eq!((rows.len(), rows[0].id), (PAGE_SIZE, 100));
    }

    #[test]
    fn a_fetched_page_keeps_what_the_socket_brought_after_it() {
        let live = vec![
            job(9, T2, JobStatus::Running),    // created after the page was taken
            job(5, T2, JobStatus::Successful), // changed after the page was taken
            job(4, T1, JobStatus::Running),    // no longer on the page: dropped
        ];
        let page = vec![job(7, T1, JobStatus::Running), job(5, T1, JobStatus::Running)];
        let rows = merge_page(live, page);
        assert_eq!(ids(&rows), [9, 7, 5]);
        assert_eq!(rows[2].status, JobStatus::Successful);
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(format_duration(4.7), "4s");
        assert_eq!(format_duration(65.0), "1m 05s");
        assert_eq!(format_duration(3_725.0), "1h 02m");
        assert_eq!(format_duration(-3.0), "0s");
    }

    #[test]
    fn a_running_job_counts_from_its_start_and_a_finished_one_shows_its_elapsed() {
        let mut j = job(1, T1, JobStatus::Running);
        let started_ms = j.started.expect("set").timestamp_millis() as f64;
        assert_eq!(duration_secs(&j, started_ms + 12_500.0), Some(12.5));
        j.status = JobStatus::Successful;
        j.elapsed = Some(42.0);
        assert_eq!(duration_secs(&j, started_ms + 99_000.0), Some(42.0));
    }
}
