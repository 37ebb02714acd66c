//! The sign-in form: trades an API key for an HttpOnly session cookie. The key goes to the bff once
//! and is kept nowhere in the browser (not in state, not in storage).

use std::rc::Rc;

use shared::SessionInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;

#[derive(Properties, PartialEq)]
pub struct SignInProps {
    pub on_signed_in: Callback<SessionInfo>,
}

/// The form's state: nothing sent yet, a key on its way, or why the last one was refused.
#[derive(Clone, PartialEq)]
enum Attempt {
    Idle,
    Sending,
    Failed(String),
}

enum AttemptAction {
    Send,
    Refused(String),
}

impl Reducible for Attempt {
    type Action = AttemptAction;

    fn reduce(self: Rc<Self>, action: AttemptAction) -> Rc<Self> {
        Rc::new(match action {
            AttemptAction::Send => Attempt::Sending,
            AttemptAction::Refused(why) => Attempt::Failed(why),
        })
    }
}

#[function_component(SignIn)]
pub fn sign_in(props: &SignInProps) -> Html {
    let key_input = use_node_ref();
    let attempt = use_reducer(|| Attempt::Idle);
    let onsubmit = {
        let key_input = key_input.clone();
        let attempt = attempt.clone();
        let on_signed_in = props.on_signed_in.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(input) = key_input.cast::<HtmlInputElement>() else { return };
            let key = input.value().trim().to_owned();
            if key.is_empty() || *attempt == Attempt::Sending {
                return;
            }
            attempt.dispatch(AttemptAction::Send);
            let attempt = attempt.dispatcher();
            let on_signed_in = on_signed_in.clone();
            wasm_bindgen_futures::spawn_local(async move {
                match api::sign_in(key).await {
                    Ok(info) => {
                        input.set_value("");
                        on_signed_in.emit(info);
                    }
                    Err(e) => {
                        attempt.dispatch(AttemptAction::Refused(e.to_string()));
                        // Ready for the corrected key without another click.
                        input.select();
                    }
                }
            });
        })
    };
    let sending = *attempt == Attempt::Sending;
    html! {
        <main class="sign-in">
            <form class="card" {onsubmit} data-testid="signin-form">
                <h1>{ "Sign in to Playdeck" }</h1>
                <label for="api-key">{ "API key" }</label>
                <input id="api-key" ref={key_input} type="password" name="key" required=true
                       autocomplete="current-password" spellcheck="false" autofocus=true
                       aria-describedby="signin-error" data-testid="signin-key" />
                <button type="submit" disabled={sending} data-testid="signin-submit">
                    { if sending { "Signing in…" } else { "Sign in" } }
                </button>
                <p id="signin-error" class="error" role="alert" data-testid="signin-error"
                   hidden={!matches!(*attempt, Attempt::Failed(_))}>
                    if let Attempt::Failed(message) = &*attempt { { message } }
                </p>
            </form>
        </main>
    }
}
