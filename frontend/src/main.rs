//! Playdeck's single-page app: the sign-in form, then the live job grid (`/`), a job's page
//! (`/jobs/{id}`), the launch form (`/launch`), the request box (`/requests`), the knowledge base
//! (`/kb`), the dashboard (`/dashboard`), the settings (`/settings`: tokens, sessions, people,
//! credentials, notifiers) and the audit log (`/audit`).
//!
//! Built by trunk (`trunk build` at the workspace root) and served by the bff at `/`.

mod ansi;
mod api;
mod audit;
mod dashboard;
mod event;
mod form;
mod hosts;
mod job;
mod jobs;
mod json;
mod kb;
mod launch;
mod live;
mod markdown;
mod output;
mod people;
mod pick;
mod requests;
mod route;
mod schedules;
mod session;
mod settings;
mod sign_in;
mod store;
mod timeline;
mod ui;
mod vars;

use std::rc::Rc;

use shared::SessionInfo;
use yew::prelude::*;

use crate::api::{ApiError, Load};
use crate::job::JobPage;
use crate::jobs::JobsPage;
use crate::launch::LaunchPage;
use crate::route::{use_nav_provider, Link, Nav, Route};
use crate::session::{use_sign_out_on_401, SessionAction, SessionState};
use crate::sign_in::SignIn;

fn main() {
    sign_in::close_if_sign_in_popup();
    yew::Renderer::<App>::new().render();
}

#[function_component(App)]
fn app() -> Html {
    let state = use_reducer(|| SessionState { session: Load::Loading, sign_out_error: None });
    use_sign_out_on_401(state.dispatcher());
    let nav = use_nav_provider();
    let embedded = nav.location.param("embed").is_some_and(|v| v == "1");
    {
        let dispatcher = state.dispatcher();
        let checking = state.session == Load::Loading;
        use_effect_with(checking, move |checking| {
            if *checking {
                crate::ui::spawn(async move {
                    dispatcher.dispatch(SessionAction::Checked(api::session().await));
                });
            }
        });
    }
    let dispatcher = state.dispatcher();
    let on_signed_in = {
        let dispatcher = dispatcher.clone();
        Callback::from(move |info| dispatcher.dispatch(SessionAction::SignedIn(info)))
    };
    let sign_out = {
        let dispatcher = dispatcher.clone();
        Callback::from(move |_: MouseEvent| {
            let dispatcher = dispatcher.clone();
            crate::ui::spawn(async move {
                dispatcher.dispatch(match api::sign_out().await {
                    // After single sign-on, the provider's own sign-out page, which comes back here.
                    Ok(Some(url)) => {
                        if let Some(w) = web_sys::window() {
                            let _ = w.location().assign(&url);
                        }
                        SessionAction::SignedOut
                    }
                    // Already signed out elsewhere: the goal is reached.
                    Ok(None) | Err(ApiError::Unauthorized(_)) => SessionAction::SignedOut,
                    Err(e) => SessionAction::SignOutFailed(e),
                });
            });
        })
    };
    let retry = Callback::from(move |_: MouseEvent| dispatcher.dispatch(SessionAction::Recheck));

    let signed_in = match &state.session {
        Load::Loaded(Ok(Some(info))) => Some(info),
        _ => None,
    };
    let may_launch = signed_in.is_some_and(|s| s.may(shared::Role::Operator));
    let admin = signed_in.is_some_and(|s| s.may(shared::Role::Admin));
    let has_role = signed_in.is_some_and(|s| s.role.is_some());
    let route = nav.location.route.clone();
    let header = (!embedded).then(|| {
        html! {
            <header class="topbar">
                <Link to="/" class="brand">{ "Playdeck" }</Link>
                if has_role {
                    <nav class="mainnav" aria-label="Main">
                        <Link to="/" class={classes!((route == Route::Jobs).then_some("current"))}>{ "Jobs" }</Link>
                        <Link to="/dashboard" class={classes!((route == Route::Dashboard).then_some("current"))}
                              testid="nav-dashboard">{ "Dashboard" }</Link>
                        <Link to="/requests" class={classes!((route == Route::Requests).then_some("current"))}
                              testid="nav-requests">{ "Ask" }</Link>
                        <Link to="/schedules" class={classes!((route == Route::Schedules).then_some("current"))}
                              testid="nav-schedules">{ "Schedules" }</Link>
                        <Link to="/kb" class={classes!((route == Route::Kb).then_some("current"))}
                              testid="nav-kb">{ "Known errors" }</Link>
                        if may_launch {
                            <Link to="/launch" class={classes!((route == Route::Launch).then_some("current"))}
                                  testid="nav-launch">{ "Launch" }</Link>
                        }
                        <Link to="/settings" class={classes!((route == Route::Settings).then_some("current"))}
                              testid="nav-settings">{ "Settings" }</Link>
                        if admin {
                            <Link to="/audit" class={classes!((route == Route::Audit).then_some("current"))}
                                  testid="nav-audit">{ "Audit" }</Link>
                        }
                    </nav>
                }
                <span class="spacer"></span>
                if let Some(info) = signed_in {
                    <span class="who" data-testid="who">
                        { format!("{} · {}", info.name, info.role.map_or("no access", |r| r.as_str())) }
                    </span>
                    if let Some(e) = &state.sign_out_error {
                        <span class="error" role="alert">{ format!("Sign-out failed: {e}") }</span>
                    }
                    <button type="button" class="secondary" onclick={sign_out} data-testid="sign-out">
                        { "Sign out" }
                    </button>
                }
            </header>
        }
    });
    let body = match &state.session {
        Load::Loading => html! { <p class="notice page">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! {
            <main class="sign-in">
                <div class="card">
                    <p class="error" role="alert">{ e.to_string() }</p>
                    <button type="button" onclick={retry}>{ "Try again" }</button>
                </div>
            </main>
        },
        Load::Loaded(Ok(None)) => html! { <SignIn {on_signed_in} /> },
        Load::Loaded(Ok(Some(info))) if info.role.is_none() => {
            html! { <people::NoAccess info={info.clone()} /> }
        }
        Load::Loaded(Ok(Some(info))) => {
            let page = match route {
                Route::Jobs => html! { <JobsPage /> },
                Route::Job(id) => html! { <JobPage key={id} {id} /> },
                Route::Launch => html! { <LaunchPage /> },
                Route::Schedules => html! { <schedules::SchedulesPage /> },
                Route::Kb => html! { <kb::KbPage /> },
                Route::Requests => html! { <requests::RequestsPage /> },
                Route::Dashboard => html! { <dashboard::DashboardPage /> },
                Route::Settings => html! { <settings::SettingsPage /> },
                Route::Audit => html! { <audit::AuditPage /> },
                Route::NotFound => html! {
                    <main class="page">
                        <h1>{ "Not found" }</h1>
                        <p>{ "There is no page at this address. " }<Link to="/">{ "Go to the jobs" }</Link></p>
                    </main>
                },
            };
            html! {
                <ContextProvider<Rc<SessionInfo>> context={Rc::new(info.clone())}>{ page }</ContextProvider<Rc<SessionInfo>>>
            }
        }
    };
    html! {
        <ContextProvider<Nav> context={nav.clone()}>
            <div class={classes!("app", embedded.then_some("embed"))}>
                <a class="skip" href="#main">{ "Skip to content" }</a>
                { for header }
                <div id="main">{ body }</div>
            </div>
        </ContextProvider<Nav>>
    }
}
