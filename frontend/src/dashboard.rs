//! The dashboard (`/dashboard?window=24h|7d|30d`): jobs, success rate and durations over the
//! window, jobs by status, a trend chart drawn here in SVG, the templates' figures, the running
//! jobs and the templates that fail most with their most common known error.

use std::rc::Rc;

use shared::stats::{Stats, TemplateStats, TrendPoint};
use shared::JobStatus;
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::route::{use_nav, Link};
use crate::ui::{format_seconds, status_badge, use_title};

const WINDOWS: [(&str, &str); 3] = [("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")];

fn rate(r: Option<f64>) -> String {
    r.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "—".into())
}

fn secs(s: Option<f64>) -> String {
    s.map(format_seconds).unwrap_or_else(|| "—".into())
}

/// The page's state: the figures of the window shown.
#[derive(Clone, PartialEq)]
struct DashboardState {
    stats: Load<Stats>,
}

enum DashboardAction {
    /// Another window: its figures are on their way.
    Loading,
    Loaded(Result<Stats, ApiError>),
}

impl Reducible for DashboardState {
    type Action = DashboardAction;

    fn reduce(self: Rc<Self>, action: DashboardAction) -> Rc<Self> {
        Rc::new(DashboardState {
            stats: match action {
                DashboardAction::Loading => Load::Loading,
                DashboardAction::Loaded(r) => Load::Loaded(r),
            },
        })
    }
}

#[function_component(DashboardPage)]
pub fn dashboard_page() -> Html {
    use_title("Dashboard".to_owned());
    let nav = use_nav();
    let window = nav
        .location
        .param("window")
        .filter(|w| WINDOWS.iter().any(|(k, _)| k == w))
        .unwrap_or_else(|| "24h".into());
    let state = use_reducer(|| DashboardState { stats: Load::Loading });
    {
        let (d, latest) = (state.dispatcher(), crate::ui::use_latest());
        use_effect_with(window.clone(), move |w| {
            let w = w.clone();
            d.dispatch(DashboardAction::Loading);
            let mine = latest.ask();
            crate::ui::spawn(async move {
                let stats = api::stats(&w).await;
                if latest.is(mine) {
                    d.dispatch(DashboardAction::Loaded(stats));
                }
            });
        });
    }
    let switch = html! {
        <div class="chips" role="group" aria-label="Window" data-testid="window-switch">
            { for WINDOWS.iter().map(|(k, label)| {
                let nav = nav.clone();
                let key = k.to_string();
                html! {
                    <button type="button" class={classes!("chip", (window == *k).then_some("on"))}
                            aria-pressed={(window == *k).to_string()} data-testid={format!("window-{k}")}
                            onclick={Callback::from(move |_: MouseEvent| nav.replace(&format!("/dashboard?window={key}")))}>
                        { format!("Last {label}") }
                    </button>
                }
            }) }
        </div>
    };
    let all_templates = use_state(|| false);
    let show_all = {
        let all_templates = all_templates.clone();
        Callback::from(move |_: MouseEvent| all_templates.set(true))
    };
    let body = match &state.stats {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(s)) => figures(s, *all_templates, show_all),
    };
    html! {
        <main class="page dashboard" data-testid="dashboard" data-window={window.clone()}>
            <div class="toolbar">
                <h1>{ "Dashboard" }</h1>
                <span class="spacer"></span>
                { switch }
            </div>
            { body }
        </main>
    }
}

/// How many templates and running jobs the dashboard lists before it offers the rest: a team's
/// fifty templates or a hundred running jobs would otherwise push everything below out of sight.
const SHOWN: usize = 10;

fn figures(s: &Stats, all_templates: bool, show_all: Callback<MouseEvent>) -> Html {
    let running_total = s.by_status.get("running").copied().unwrap_or(0).max(s.running.len() as i64);
    let running_more = running_total - s.running.len().min(SHOWN) as i64;
    let templates =
        if all_templates { &s.templates[..] } else { &s.templates[..s.templates.len().min(SHOWN)] };
    let cards = [
        ("jobs", "Jobs", s.jobs.to_string()),
        ("success", "Success rate", rate(s.success_rate)),
        ("median", "Median duration", secs(s.durations.median)),
        ("p95", "95th percentile", secs(s.durations.p95)),
    ];
    html! {
        <div data-testid="stats" data-window={s.window.clone()}>
            <div class="counters cards">
                { for cards.into_iter().map(|(k, label, value)| html! {
                    <div class="counter" data-testid={format!("card-{k}")}>
                        <span class="value">{ value }</span><span class="label">{ label }</span>
                    </div>
                }) }
            </div>
            <section aria-labelledby="bystatus-head">
                <h2 id="bystatus-head">{ "Jobs by status" }</h2>
                <ul class="by-status" data-testid="by-status">
                    { for s.by_status.iter().filter(|(_, n)| **n > 0).map(|(st, n)| html! {
                        <li data-status={st.clone()}>
                            { match JobStatus::parse(st) { Some(j) => status_badge(j), None => html! { <span class="badge">{ st }</span> } } }
                            { format!(" {n}") }
                        </li>
                    }) }
                    if s.by_status.values().all(|n| *n == 0) { <li class="muted">{ "No jobs in this window." }</li> }
                </ul>
            </section>
            <section aria-labelledby="trend-head">
                <h2 id="trend-head">{ "Trend" }</h2>
                { trend(&s.trend, &s.window) }
            </section>
            <section aria-labelledby="tpl-head">
                <h2 id="tpl-head">{ "Templates" }</h2>
                { template_table(templates) }
                if templates.len() < s.templates.len() {
                    <button type="button" class="secondary" onclick={show_all} data-testid="templates-all">
                        { format!("Show all {} templates", s.templates.len()) }
                    </button>
                }
            </section>
            <section aria-labelledby="running-head">
                <h2 id="running-head">{ "Running now" }</h2>
                if s.running.is_empty() {
                    <p class="muted">{ "Nothing is running." }</p>
                } else {
                    <ul class="running" data-testid="running">
                        { for s.running.iter().take(SHOWN).map(|j| html! {
                            <li><Link to={format!("/jobs/{}", j.id)}>{ format!("{} #{}", j.name, j.id) }</Link>{ " " }{ status_badge(j.status) }</li>
                        }) }
                    </ul>
                    if running_more > 0 {
                        <p><Link to={"/?status=running".to_string()} testid="running-all">
                            { format!("and {running_more} more: all {running_total} running jobs in the grid") }
                        </Link></p>
                    }
                }
            </section>
            <section aria-labelledby="failing-head">
                <h2 id="failing-head">{ "Failing most" }</h2>
                if s.failing_templates.is_empty() {
                    <p class="muted">{ "No template failed in this window." }</p>
                } else {
                    <ul class="failing" data-testid="failing">
                        { for s.failing_templates.iter().map(|t| html! {
                            <li>
                                <strong>{ &t.template }</strong>{ format!(" — {} failed of {}", t.failed, t.jobs) }
                                if let Some(top) = &t.top_failure {
                                    { " · most often: " }<Link to={format!("/kb?q={}", js_sys::encode_uri_component(&top.title))}>{ &top.title }</Link>
                                    { format!(" ({}×)", top.count) }
                                }
                            </li>
                        }) }
                    </ul>
                }
            </section>
        </div>
    }
}

fn template_table(rows: &[TemplateStats]) -> Html {
    if rows.is_empty() {
        return html! { <p class="muted">{ "No jobs in this window." }</p> };
    }
    html! {
        <div class="table-wrap">
            <table class="data" data-testid="templates">
                <thead><tr>
                    <th scope="col">{ "Template" }</th><th scope="col" class="num">{ "Jobs" }</th>
                    <th scope="col" class="num">{ "Success" }</th><th scope="col" class="num">{ "Median" }</th>
                    <th scope="col" class="num">{ "p95" }</th><th scope="col">{ "Top failure" }</th>
                </tr></thead>
                <tbody>
                    { for rows.iter().map(|t| html! {
                        <tr data-template={t.template.clone()}>
                            <td class="tpl-name">{ &t.template }</td>
                            <td class="num">{ t.jobs }</td>
                            <td class="num">{ rate(t.success_rate) }</td>
                            <td class="num">{ secs(t.durations.median) }</td>
                            <td class="num">{ secs(t.durations.p95) }</td>
                            <td class="tpl-failure">{ t.top_failure.as_ref().map(|f| f.title.clone()).unwrap_or_else(|| "—".into()) }</td>
                        </tr>
                    }) }
                </tbody>
            </table>
        </div>
    }
}

fn bucket_label(p: &TrendPoint, hourly: bool) -> String {
    if hourly {
        p.start.format("%H:00").to_string()
    } else {
        p.start.format("%m-%d").to_string()
    }
}

/// Stacked bars per bucket (successful, failed, other), with axis labels, and a table as the
/// text alternative.
fn trend(points: &[TrendPoint], window: &str) -> Html {
    let hourly = window == "24h";
    let (w, h, left, bottom, top) = (800.0_f64, 220.0_f64, 40.0_f64, 26.0_f64, 20.0_f64);
    let max = points.iter().map(|p| p.successful + p.failed + p.other).max().unwrap_or(0).max(1);
    let n = points.len().max(1) as f64;
    let slot = (w - left) / n;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: i64| top + (h - top - bottom) * (1.0 - v as f64 / max as f64);
    let every = (points.len() / 8).max(1);
    let total: i64 = points.iter().map(|p| p.successful + p.failed + p.other).sum();
    let summary = format!(
        "Jobs started per {} over the last {}: {} in all, the busiest {} had {}.",
        if hourly { "hour" } else { "day" },
        window,
        total,
        if hourly { "hour" } else { "day" },
        max
    );
    let bars = points.iter().enumerate().map(|(i, p)| {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0;
        let segs = [("successful", p.successful), ("failed", p.failed), ("other", p.other)].into_iter().filter(|(_, v)| *v > 0).map(|(k, v)| {
            let (y0, y1) = (y(base), y(base + v));
            base += v;
            html! {
                <rect class={format!("tr-{k}")} x={format!("{x:.1}")} y={format!("{y1:.1}")} width={format!("{bar:.1}")}
                      height={format!("{:.1}", (y0 - y1).max(0.5))}>
                    <title>{ format!("{}: {v} {k}", bucket_label(p, hourly)) }</title>
                </rect>
            }
        }).collect::<Html>();
        let label = (i % every == 0).then(|| html! {
            <text class="axis" x={format!("{:.1}", x + bar / 2.0)} y={format!("{:.1}", h - 6.0)} text-anchor="middle">{ bucket_label(p, hourly) }</text>
        });
        html! { <g>{ segs }{ for label }</g> }
    });
    html! {
        <figure class="trend" data-testid="trend">
            <svg viewBox={format!("0 0 {w} {h}")} role="img" aria-labelledby="trend-desc" data-testid="trend-svg">
                <desc id="trend-desc">{ summary.clone() }</desc>
                <line class="axis-line" x1={left.to_string()} y1={y(0).to_string()} x2={w.to_string()} y2={y(0).to_string()} />
                <text class="axis" x={(left - 4.0).to_string()} y={(y(max) + 4.0).to_string()} text-anchor="end">{ max }</text>
                <text class="axis" x={(left - 4.0).to_string()} y={(y(0)).to_string()} text-anchor="end">{ "0" }</text>
                { for bars }
            </svg>
            <figcaption>
                <span class="legend">
                    <span><span class="swatch tr-successful"></span>{ " successful" }</span>
                    <span><span class="swatch tr-failed"></span>{ " failed" }</span>
                    <span><span class="swatch tr-other"></span>{ " other" }</span>
                </span>
                <details>
                    <summary>{ "The figures as a table" }</summary>
                    <p>{ summary }</p>
                    <div class="table-wrap">
                        <table class="data" data-testid="trend-table">
                            <thead><tr><th scope="col">{ if hourly { "Hour" } else { "Day" } }</th><th scope="col" class="num">{ "Successful" }</th><th scope="col" class="num">{ "Failed" }</th><th scope="col" class="num">{ "Other" }</th></tr></thead>
                            <tbody>
                                { for points.iter().filter(|p| p.successful + p.failed + p.other > 0).map(|p| html! {
                                    <tr><td>{ p.start.format(if hourly { "%Y-%m-%d %H:00 UTC" } else { "%Y-%m-%d" }).to_string() }</td>
                                        <td class="num">{ p.successful }</td><td class="num">{ p.failed }</td><td class="num">{ p.other }</td></tr>
                                }) }
                            </tbody>
                        </table>
                    </div>
                </details>
            </figcaption>
        </figure>
    }
}
