//! The job grid: one page of jobs with the filters of the URL, kept current by the live feed
//! without reloading: changed jobs change in place, new ones that match the filters appear on top
//! of the first page, and the browser's scroll anchoring keeps the rows in view where they were.

use std::rc::Rc;

use gloo_timers::callback::Timeout;
use shared::{Job, JobStatus, Page};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::live::{use_live_feed, Feed, Subscription};
use crate::route::{query_string, use_nav, Link, Location};
use crate::ui::{
    connection_badge, current_step, duration_secs, format_duration, host_counts, local_time, status_badge,
    use_ticking, use_title, HOST_STATES,
};

/// Jobs per page.
pub const PAGE_SIZE: i64 = 50;

/// The grid's filters as the URL holds them; dates are the days typed, in the browser's zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub statuses: Vec<JobStatus>,
    pub template: String,
    pub inventory: String,
    pub launched_by: String,
    pub source: String,
    pub q: String,
    /// `YYYY-MM-DD`: started on or after that day.
    pub from: String,
    /// `YYYY-MM-DD`: started on or before that day.
    pub to: String,
    pub page: i64,
}

impl Filters {
    pub fn from_location(location: &Location) -> Filters {
        let p = |k: &str| location.param(k).unwrap_or_default();
        Filters {
            statuses: p("status").split(',').filter_map(|s| JobStatus::parse(s.trim())).collect(),
            template: p("template"),
            inventory: p("inventory"),
            launched_by: p("launched_by"),
            source: p("source"),
            q: p("q"),
            from: p("from"),
            to: p("to"),
            page: p("page").parse().ok().filter(|n| *n >= 1).unwrap_or(1),
        }
    }

    fn status_param(&self) -> String {
        self.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }

    /// The page's own query string (what a bookmark keeps).
    pub fn to_query(&self) -> String {
        query_string([
            ("q", self.q.clone()),
            ("status", self.status_param()),
            ("template", self.template.clone()),
            ("inventory", self.inventory.clone()),
            ("launched_by", self.launched_by.clone()),
            ("source", self.source.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("page", if self.page > 1 { self.page.to_string() } else { String::new() }),
        ])
    }

    /// The same filters as the read API takes them.
    pub fn api_query(&self) -> String {
        query_string([
            ("q", self.q.trim().to_owned()),
            ("status", self.status_param()),
            ("template", self.template.trim().to_owned()),
            ("inventory", self.inventory.trim().to_owned()),
            ("launched_by", self.launched_by.trim().to_owned()),
            ("source", self.source.trim().to_owned()),
            ("started_after", day_start(&self.from, 0).unwrap_or_default()),
            ("started_before", day_start(&self.to, 1).unwrap_or_default()),
            ("page", self.page.to_string()),
            ("page_size", PAGE_SIZE.to_string()),
        ])
    }

    pub fn is_filtered(&self) -> bool {
        Filters { page: 1, ..self.clone() } != Filters { page: 1, ..Filters::default() }
    }

    /// Whether a job belongs in this view, for jobs the live feed brings.
    pub fn matches(&self, job: &Job) -> bool {
        let eq = |want: &str, have: &Option<String>| {
            let want = want.trim();
            want.is_empty() || have.as_deref() == Some(want)
        };
        let q = self.q.trim().to_lowercase();
        let in_q = q.is_empty()
            || job.id.to_string() == q
            || [
                Some(&job.name),
                job.template.as_ref(),
                job.inventory.as_ref(),
                job.launched_by.as_ref(),
                job.limit.as_ref(),
                Some(&job.external_id),
            ]
            .into_iter()
            .flatten()
            .any(|s| s.to_lowercase().contains(&q));
        let started_ms = job.started.map(|t| t.timestamp_millis() as f64);
        let after_ok = day_start_ms(&self.from, 0).is_none_or(|t| started_ms.is_some_and(|s| s >= t));
        let before_ok = day_start_ms(&self.to, 1).is_none_or(|t| started_ms.is_some_and(|s| s < t));
        (self.statuses.is_empty() || self.statuses.contains(&job.status))
            && eq(&self.template, &job.template)
            && eq(&self.inventory, &job.inventory)
            && eq(&self.launched_by, &job.launched_by)
            && eq(&self.source, &Some(job.source.clone()))
            && in_q
            && after_ok
            && before_ok
    }
}

/// Midnight (browser time) of `day` plus `plus_days`, in milliseconds.
fn day_start_ms(day: &str, plus_days: u32) -> Option<f64> {
    let mut parts = day.trim().splitn(3, '-').map(|p| p.parse::<u32>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    let date = js_sys::Date::new_with_year_month_day(y, m as i32 - 1, (d + plus_days) as i32);
    let t = date.get_time();
    (!t.is_nan()).then_some(t)
}

fn day_start(day: &str, plus_days: u32) -> Option<String> {
    let t = day_start_ms(day, plus_days)?;
    Some(String::from(js_sys::Date::new(&t.into()).to_iso_string()))
}

/// The rows and how the last fetch of them went.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsState {
    rows: Vec<Job>,
    count: Option<i64>,
    /// False when the server estimated the count (a filter matching very many jobs).
    count_exact: bool,
    /// Rows stay shown while the next page loads and when a later fetch fails, so the fetch's
    /// outcome is kept beside them rather than wrapping them.
    fetch: Load<()>,
    /// The query asked for last; answers to older queries are dropped.
    query: String,
    /// The query the rows shown answer. Until a new query's answer arrives, the old rows stay (no
    /// blank table while typing), and then they are replaced, not merged.
    rows_query: String,
}

pub enum JobsAction {
    Fetching(String),
    Fetched(String, Result<Page<Job>, ApiError>),
    /// Boxed: a job is large next to a fetch result, and actions are moved around.
    Changed(Box<Job>, Rc<Filters>),
}

impl Reducible for JobsState {
    type Action = JobsAction;

    fn reduce(self: Rc<Self>, action: JobsAction) -> Rc<Self> {
        let mut state = Rc::unwrap_or_clone(self);
        match action {
            JobsAction::Fetching(query) => {
                state.query = query;
                state.fetch = Load::Loading;
            }
            JobsAction::Fetched(query, _) if query != state.query => {}
            JobsAction::Fetched(query, Ok(page)) => {
                state.rows = if query == state.rows_query {
                    merge_page(std::mem::take(&mut state.rows), page.results)
                } else {
                    page.results
                };
                state.rows_query = query;
                state.count = Some(page.count);
                state.count_exact = page.count_exact;
                state.fetch = Load::Loaded(Ok(()));
            }
            JobsAction::Fetched(_, Err(e)) => state.fetch = Load::Loaded(Err(e)),
            JobsAction::Changed(job, filters) => {
                let known = state.rows.iter().any(|r| r.id == job.id);
                // New jobs belong on the first page only, and only if they match the filters.
                if known || (filters.page == 1 && filters.matches(&job)) {
                    if !known {
                        state.count = state.count.map(|c| c + 1);
                    }
                    upsert(&mut state.rows, *job, known);
                }
            }
        }
        Rc::new(state)
    }
}

/// Puts a changed job in place, or a new one where its id sorts. The socket and a fetch can
/// deliver the same job in either order, so an older copy (by `modified`) never replaces a newer.
fn upsert(rows: &mut Vec<Job>, job: Job, known: bool) {
    if known {
        if let Some(row) = rows.iter_mut().find(|r| r.id == job.id) {
            if job.modified >= row.modified {
                *row = job;
            }
        }
        return;
    }
    let full = rows.len() as i64 >= PAGE_SIZE;
    if full && rows.last().is_some_and(|oldest| job.id < oldest.id) {
        return;
    }
    let at = rows.partition_point(|r| r.id > job.id);
    rows.insert(at, job);
    rows.truncate(PAGE_SIZE as usize);
}

/// The fetched page decides which jobs are shown, except for what the socket brought after the
/// server took the page: newer copies of its jobs, and jobs newer than all of them.
fn merge_page(live: Vec<Job>, page: Vec<Job>) -> Vec<Job> {
    let newest_in_page = page.iter().map(|j| j.id).max().unwrap_or(i64::MIN);
    let mut rows = page;
    for job in live {
        let known = rows.iter().any(|r| r.id == job.id);
        if job.id > newest_in_page || known {
            upsert(&mut rows, job, known);
        }
    }
    rows.sort_by_key(|j| std::cmp::Reverse(j.id));
    rows.truncate(PAGE_SIZE as usize);
    rows
}

#[function_component(JobsPage)]
pub fn jobs_page() -> Html {
    let nav = use_nav();
    let filters = Rc::new(Filters::from_location(&nav.location));
    let state = use_reducer(|| JobsState {
        rows: Vec::new(),
        count: None,
        count_exact: true,
        fetch: Load::Loading,
        query: String::new(),
        rows_query: String::new(),
    });
    let api_query = filters.api_query();
    // The live feed's callback outlives renders: it reads the filters of the latest one here.
    let current = use_mut_ref(|| (filters.clone(), api_query.clone()));
    *current.borrow_mut() = (filters.clone(), api_query.clone());

    let refetch = {
        let dispatcher = state.dispatcher();
        let current = current.clone();
        Callback::from(move |()| {
            let dispatcher = dispatcher.clone();
            let query = current.borrow().1.clone();
            dispatcher.dispatch(JobsAction::Fetching(query.clone()));
            crate::ui::spawn(async move {
                let result = api::jobs(&query).await;
                dispatcher.dispatch(JobsAction::Fetched(query, result));
            });
        })
    };
    {
        // Every change of the filters fetches; the feed fetches again once subscribed, which
        // closes the gap between this answer and the subscription.
        let refetch = refetch.clone();
        use_effect_with(api_query.clone(), move |_| refetch.emit(()));
    }
    let on_feed = {
        let dispatcher = state.dispatcher();
        let current = current.clone();
        Callback::from(move |feed| match feed {
            Feed::Job(job) => dispatcher.dispatch(JobsAction::Changed(job, current.borrow().0.clone())),
            Feed::Resync => refetch.emit(()),
            Feed::Events(_) => {}
        })
    };
    let connection = use_live_feed(Some(Subscription { jobs: true, job: None }), on_feed);
    let any_running = state.rows.iter().any(|j| j.status == JobStatus::Running);
    use_title("Jobs".into());
    use_ticking(any_running);
    let now_ms = js_sys::Date::now();

    let set_filters = {
        let nav = nav.clone();
        Callback::from(move |f: Filters| {
            let q = f.to_query();
            nav.replace(&if q.is_empty() { "/".to_string() } else { format!("/?{q}") });
        })
    };

    html! {
        <main class="page jobs">
            <div class="toolbar">
                <h1>{ "Jobs" }</h1>
                { connection_badge(connection) }
                <span class="spacer"></span>
                if let Some(count) = state.count {
                    <span class="muted" data-testid="jobs-count">{ format!("{}{count} jobs", about(state.count_exact)) }</span>
                }
            </div>
            <FilterBar filters={(*filters).clone()} on_change={set_filters.clone()} />
            { fetch_notice(&state, filters.is_filtered()) }
            if !state.rows.is_empty() {
                { jobs_table(&state.rows, now_ms) }
            }
            { pager(&filters, state.count, state.count_exact, &set_filters) }
        </main>
    }
}

#[derive(Properties, PartialEq)]
struct FilterBarProps {
    filters: Filters,
    on_change: Callback<Filters>,
}

/// Text filters wait for a pause in typing before they change the URL (and fetch).
const TYPING_PAUSE_MS: u32 = 300;

#[function_component(FilterBar)]
fn filter_bar(props: &FilterBarProps) -> Html {
    // What is typed, ahead of the URL by up to one pause.
    let draft = use_state(|| props.filters.clone());
    let pending = use_mut_ref(|| None::<Timeout>);
    {
        let draft = draft.clone();
        use_effect_with(props.filters.clone(), move |f| draft.set(f.clone()));
    }
    let commit = {
        let on_change = props.on_change.clone();
        let pending = pending.clone();
        Rc::new(move |mut f: Filters, wait: bool| {
            f.page = 1;
            let on_change = on_change.clone();
            let timer = if wait {
                Some(Timeout::new(TYPING_PAUSE_MS, move || on_change.emit(f)))
            } else {
                on_change.emit(f);
                None
            };
            *pending.borrow_mut() = timer;
        })
    };
    let text = |field: &'static str, label: &'static str, placeholder: &'static str, kind: &'static str| {
        let value = match field {
            "q" => draft.q.clone(),
            "template" => draft.template.clone(),
            "inventory" => draft.inventory.clone(),
            "launched_by" => draft.launched_by.clone(),
            "source" => draft.source.clone(),
            "from" => draft.from.clone(),
            _ => draft.to.clone(),
        };
        let draft = draft.clone();
        let commit = commit.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let Some(input) = e.target_dyn_into::<HtmlInputElement>() else { return };
            let mut f = (*draft).clone();
            let v = input.value();
            match field {
                "q" => f.q = v,
                "template" => f.template = v,
                "inventory" => f.inventory = v,
                "launched_by" => f.launched_by = v,
                "source" => f.source = v,
                "from" => f.from = v,
                _ => f.to = v,
            }
            draft.set(f.clone());
            commit(f, kind != "date");
        });
        let id = format!("f-{field}");
        html! {
            <div class={classes!("field", format!("field-{field}"))}>
                <label for={id.clone()}>{ label }</label>
                <input id={id} type={kind} {value} {placeholder} {oninput} autocomplete="off"
                       data-testid={format!("filter-{field}")} />
            </div>
        }
    };
    let chips = JobStatus::ALL.iter().map(|st| {
        let on = props.filters.statuses.contains(st);
        let onclick = {
            let commit = commit.clone();
            let draft = draft.clone();
            let st = *st;
            Callback::from(move |_: MouseEvent| {
                let mut f = (*draft).clone();
                if on {
                    f.statuses.retain(|s| *s != st);
                } else {
                    f.statuses.push(st);
                    f.statuses.sort_by_key(|s| JobStatus::ALL.iter().position(|a| a == s));
                }
                commit(f, false);
            })
        };
        html! {
            <button type="button" class={classes!("chip", format!("status-{}", st.as_str()), on.then_some("on"))}
                    aria-pressed={on.to_string()} {onclick} data-testid={format!("filter-status-{}", st.as_str())}>
                { st.as_str() }
            </button>
        }
    });
    let clear = {
        let commit = commit.clone();
        Callback::from(move |_: MouseEvent| commit(Filters::default(), false))
    };
    let more_open = !props.filters.template.is_empty()
        || !props.filters.inventory.is_empty()
        || !props.filters.launched_by.is_empty()
        || !props.filters.source.is_empty()
        || !props.filters.from.is_empty()
        || !props.filters.to.is_empty();
    html! {
        <form class="filters" role="search" onsubmit={Callback::from(|e: SubmitEvent| e.prevent_default())}
              data-testid="filters">
            <div class="filter-row">
                { text("q", "Search", "name, template, inventory, user, limit or id", "search") }
                if props.filters.is_filtered() {
                    <button type="button" class="secondary" onclick={clear} data-testid="filter-clear">{ "Clear filters" }</button>
                }
            </div>
            <div class="chips" role="group" aria-label="Status">{ for chips }</div>
            <details class="more-filters" open={more_open}>
                <summary>{ "More filters" }</summary>
                <div class="filter-grid">
                    { text("template", "Template", "exact name", "text") }
                    { text("inventory", "Inventory", "exact name", "text") }
                    { text("launched_by", "Launched by", "user", "text") }
                    { text("source", "Source", "local or a controller", "text") }
                    { text("from", "Started from", "", "date") }
                    { text("to", "Started until", "", "date") }
                </div>
            </details>
        </form>
    }
}

fn fetch_notice(state: &JobsState, filtered: bool) -> Html {
    match (&state.fetch, state.rows.is_empty()) {
        (Load::Loading, true) => html! { <p class="notice">{ "Loading jobs…" }</p> },
        (Load::Loaded(Ok(())), true) if filtered => html! {
            <p class="notice" data-testid="no-jobs">{ "No job matches these filters." }</p>
        },
        (Load::Loaded(Ok(())), true) => html! {
            <p class="notice" data-testid="no-jobs">
                { "No jobs yet. They appear here as soon as a source sends their first event." }
            </p>
        },
        (Load::Loaded(Err(e)), _) => html! {
            <p class="notice error" role="alert">{ format!("Could not load jobs: {}", e.words()) }</p>
        },
        _ => html! {},
    }
}

/// "about " before an estimated count.
fn about(exact: bool) -> &'static str {
    if exact {
        ""
    } else {
        "about "
    }
}

fn pager(filters: &Filters, count: Option<i64>, exact: bool, set: &Callback<Filters>) -> Html {
    let Some(count) = count else { return html! {} };
    let pages = ((count + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if pages <= 1 && filters.page <= 1 {
        return html! {};
    }
    let go = |page: i64| {
        let mut f = filters.clone();
        f.page = page;
        let set = set.clone();
        Callback::from(move |_: MouseEvent| set.emit(f.clone()))
    };
    let first = (filters.page - 1) * PAGE_SIZE + 1;
    let last = (filters.page * PAGE_SIZE).min(count);
    html! {
        <nav class="pager" aria-label="Pages">
            <button type="button" class="secondary" disabled={filters.page <= 1} onclick={go(filters.page - 1)}
                    data-testid="page-prev">{ "← Newer" }</button>
            <span data-testid="page-info">{ format!("{first}–{last} of {a}{count} · page {} of {a}{pages}", filters.page, a = about(exact)) }</span>
            <button type="button" class="secondary" disabled={filters.page >= pages} onclick={go(filters.page + 1)}
                    data-testid="page-next">{ "Older →" }</button>
        </nav>
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
                    <th scope="col" class="col-current">{ "Progress" }</th>
                </tr>
            </thead>
            <tbody>
                { for rows.iter().map(|job| job_row(job, now_ms)) }
            </tbody>
        </table>
    }
}

fn job_row(job: &Job, now_ms: f64) -> Html {
    let counts = host_counts(job);
    let status = job.status.as_str();
    let running = job.status == JobStatus::Running;
    html! {
        <tr key={job.id} data-testid="job-row" data-job-id={job.id.to_string()} data-status={status}>
            <td class="col-id" data-label="ID">{ job.id }</td>
            <td class="col-name" data-label="Name">
                <Link to={format!("/jobs/{}", job.id)} class="name" testid="job-name">{ &job.name }</Link>
                if let Some(template) = &job.template {
                    <div class="template">{ template }</div>
                }
            </td>
            <td class="col-source" data-label="Source">{ &job.source }</td>
            <td class="col-status" data-label="Status">{ status_badge(job.status) }</td>
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
            <td class="col-current" data-label="Progress">
                if running {
                    { progress(job) }
                }
            </td>
        </tr>
    }
}

/// Tasks done of tasks seen (the one running is not done), and where the run is.
fn progress(job: &Job) -> Html {
    let seen = job.tasks.max(0);
    let done = (seen - 1).max(0);
    let step = current_step(job);
    html! {
        <div class="progress" data-testid="job-progress">
            <progress max={seen.max(1).to_string()} value={done.to_string()}
                      aria-label={format!("{done} of {seen} tasks done")}></progress>
            <span class="muted">{ format!("{done}/{seen} tasks") }</span>
            if let Some(step) = step {
                <span class="step" title={step.clone()}>{ step }</span>
            }
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
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
            scm_revision: None,
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
        upsert(&mut rows, job(3, T2, JobStatus::Successful), true);
        upsert(&mut rows, job(4, T2, JobStatus::Running), false);
        upsert(&mut rows, job(2, T2, JobStatus::Running), false);
        assert_eq!(ids(&rows), [4, 3, 2, 1]);
        assert_eq!(rows[1].status, JobStatus::Successful);
    }

    #[test]
    fn an_older_copy_never_replaces_a_newer_one() {
        let mut rows = vec![job(3, T2, JobStatus::Successful)];
        upsert(&mut rows, job(3, T1, JobStatus::Running), true);
        assert_eq!(rows[0].status, JobStatus::Successful);
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
}
