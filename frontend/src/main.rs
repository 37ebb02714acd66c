//! Playdeck's single-page app: the sign-in form, then the live job grid.
//!
//! Built by trunk (`trunk build` at the workspace root) and served by the bff at `/`.

mod api;
mod jobs;
mod live;
mod sign_in;

use std::rc::Rc;

use shared::SessionInfo;
use yew::prelude::*;

use crate::api::{ApiError, Load};
use crate::jobs::JobsPage;
use crate::sign_in::SignIn;

fn main() {
    yew::Renderer::<App>::new().render();
}

/// Who is signed in: `Loaded(Ok(None))` shows the sign-in form.
#[derive(Debug, Clone, PartialEq)]
struct SessionState {
    session: Load<Option<SessionInfo>>,
    /// A sign-out the server did not confirm: the cookie may still be valid, so say so.
    sign_out_error: Option<String>,
}

enum SessionAction {
    Checked(Result<Option<SessionInfo>, ApiError>),
    SignedIn(SessionInfo),
    SignedOut,
    SignOutFailed(ApiError),
    Recheck,
}

impl Reducible for SessionState {
    type Action = SessionAction;

    fn reduce(self: Rc<Self>, action: SessionAction) -> Rc<Self> {
        let (session, sign_out_error) = match action {
            SessionAction::Checked(result) => (Load::Loaded(result), None),
            SessionAction::SignedIn(info) => (Load::Loaded(Ok(Some(info))), None),
            SessionAction::SignedOut => (Load::Loaded(Ok(None)), None),
            SessionAction::SignOutFailed(e) => (self.session.clone(), Some(e.to_string())),
            SessionAction::Recheck => (Load::Loading, None),
        };
        Rc::new(SessionState { session, sign_out_error })
    }
}

#[function_component(App)]
fn app() -> Html {
    let state = use_reducer(|| SessionState { session: Load::Loading, sign_out_error: None });
    let embedded = use_memo((), |_| embedded());
    {
        let dispatcher = state.dispatcher();
        let checking = state.session == Load::Loading;
        use_effect_with(checking, move |checking| {
            if *checking {
                wasm_bindgen_futures::spawn_local(async move {
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
    let on_signed_out = {
        let dispatcher = dispatcher.clone();
        Callback::from(move |()| dispatcher.dispatch(SessionAction::SignedOut))
    };
    let sign_out = {
        let dispatcher = dispatcher.clone();
        Callback::from(move |_: MouseEvent| {
            let dispatcher = dispatcher.clone();
            wasm_bindgen_futures::spawn_local(async move {
                dispatcher.dispatch(match api::sign_out().await {
                    // Already signed out elsewhere: the goal is reached.
                    Ok(()) | Err(ApiError::Unauthorized(_)) => SessionAction::SignedOut,
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
    let header = (!*embedded).then(|| {
        html! {
            <header class="topbar">
                <span class="brand">{ "Playdeck" }</span>
                if let Some(info) = signed_in {
                    <span class="who">{ format!("{} · {}", info.name, info.role.as_str()) }</span>
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
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! {
            <main class="sign-in">
                <div class="card">
                    <p class="error" role="alert">{ e.to_string() }</p>
                    <button type="button" onclick={retry}>{ "Try again" }</button>
                </div>
            </main>
        },
        Load::Loaded(Ok(None)) => html! { <SignIn {on_signed_in} /> },
        Load::Loaded(Ok(Some(_))) => html! { <JobsPage {on_signed_out} /> },
    };
    html! {
        <div class={classes!("app", (*embedded).then_some("embed"))}>
            { for header }
            { body }
        </div>
    }
}

/// `?embed=1`: the page sits inside another tool's frame, so it drops its own header.
fn embedded() -> bool {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|search| web_sys::UrlSearchParams::new_with_str(&search).ok())
        .and_then(|params| params.get("embed"))
        .is_some_and(|v| v == "1")
}
