//! The sign-in page: single sign-on ("Sign in with <provider>", the OpenID provider's own page),
//! a user name and password checked against the directory (LDAP), and an API key; each shown when
//! the server offers it. What is typed goes to the bff once and is kept nowhere in the browser.

use std::rc::Rc;

use shared::people::SignInOptions;
use shared::{SessionInfo, SessionRequest};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api::{self, Load};

#[derive(Properties, PartialEq)]
pub struct SignInProps {
    pub on_signed_in: Callback<SessionInfo>,
}

/// The page's state: what the server offers, and the last attempt.
#[derive(Clone, PartialEq)]
struct State {
    options: Load<SignInOptions>,
    sending: bool,
    /// Why the last attempt was refused, and by which form (`password` or `key`).
    failed: Option<(&'static str, String)>,
}

enum Action {
    Options(Result<SignInOptions, api::ApiError>),
    Send,
    Refused(&'static str, String),
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = Rc::unwrap_or_clone(self);
        match action {
            Action::Options(o) => s.options = Load::Loaded(o),
            Action::Send => {
                s.sending = true;
                s.failed = None;
            }
            Action::Refused(form, why) => {
                s.sending = false;
                s.failed = Some((form, why));
            }
        }
        Rc::new(s)
    }
}

/// Where to come back to after single sign-on: this page's path and query.
fn here() -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return "/".into() };
    let path = location.pathname().unwrap_or_else(|_| "/".into());
    let search = location.search().unwrap_or_default();
    format!("{path}{search}")
}

/// Whether this page is shown in another page's frame (a portal).
fn framed() -> bool {
    web_sys::window().is_some_and(|w| match (w.top(), w.self_()) {
        (Ok(Some(top)), me) => !js_sys::Object::is(&top, &me),
        _ => true,
    })
}

/// In a frame, single sign-on runs in a popup (providers refuse to be framed, and a portal's page
/// must stay where it is). The popup comes back to `/?signed_in=popup`, asks for a one-time code
/// of its session and posts it here (browsers keep a framed page's cookies apart from the same
/// site's own), and this page signs in with it. Where the cookies are shared, the session is
/// simply seen: this page also asks every second.
fn sso_in_popup(on_signed_in: Callback<SessionInfo>) -> Callback<MouseEvent> {
    Callback::from(move |e: MouseEvent| {
        if !framed() {
            return;
        }
        e.prevent_default();
        let Some(window) = web_sys::window() else { return };
        let url = format!(
            "/api/v1/session/oidc/start?return_to={}",
            js_sys::encode_uri_component("/?signed_in=popup")
        );
        let Ok(Some(popup)) = window.open_with_url_and_target_and_features(
            &url,
            "playdeck-sign-in",
            "popup,width=520,height=700",
        ) else {
            // A blocked popup: the frame itself goes (the provider may still refuse to be framed).
            let _ = window.location().set_href(&url);
            return;
        };
        let done = std::rc::Rc::new(std::cell::Cell::new(false));
        let origin = window.location().origin().unwrap_or_default();
        let listener = {
            let (on_signed_in, done) = (on_signed_in.clone(), done.clone());
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |m: web_sys::MessageEvent| {
                if m.origin() != origin || done.get() {
                    return;
                }
                let Some(code) = js_sys::Reflect::get(&m.data(), &"playdeck_handoff".into())
                    .ok()
                    .and_then(|c| c.as_string())
                else {
                    return;
                };
                let (on_signed_in, done) = (on_signed_in.clone(), done.clone());
                crate::ui::spawn(async move {
                    let request = SessionRequest { handoff: Some(code), ..Default::default() };
                    if let Ok(info) = api::sign_in(&request).await {
                        done.set(true);
                        on_signed_in.emit(info);
                    }
                });
            })
        };
        let _ = window.add_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
        let on_signed_in = on_signed_in.clone();
        crate::ui::spawn(async move {
            // Ten minutes: as long as the sign-in itself may take.
            for _ in 0..600 {
                gloo_timers::future::TimeoutFuture::new(1_000).await;
                if done.get() {
                    break;
                }
                if let Ok(Some(info)) = api::session().await {
                    done.set(true);
                    on_signed_in.emit(info);
                    break;
                }
                if popup.closed().unwrap_or(true) {
                    // The code may still be on its way.
                    gloo_timers::future::TimeoutFuture::new(2_000).await;
                    break;
                }
            }
            if let Some(w) = web_sys::window() {
                let _ = w.remove_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
            }
            drop(listener);
        });
    })
}

/// The popup of a framed sign-in, once back: hands its session to the page that opened it and
/// closes itself.
pub fn close_if_sign_in_popup() {
    let Some(window) = web_sys::window() else { return };
    let back = window.location().search().unwrap_or_default().contains("signed_in=popup");
    let Some(opener) = window.opener().ok().filter(|o| !o.is_null()) else { return };
    if !back {
        return;
    }
    crate::ui::spawn(async move {
        if let Ok(handoff) = api::session_handoff().await {
            let message = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&message, &"playdeck_handoff".into(), &handoff.code.into());
            let origin = window.location().origin().unwrap_or_default();
            // Another window's object: not an instance of this window's `Window`, so unchecked.
            let _ = opener.unchecked_into::<web_sys::Window>().post_message(&message, &origin);
        }
        let _ = window.close();
    });
}

#[function_component(SignIn)]
pub fn sign_in(props: &SignInProps) -> Html {
    let state = use_reducer(|| State { options: Load::Loading, sending: false, failed: None });
    {
        let send = state.dispatcher();
        use_effect_with((), move |_| {
            crate::ui::spawn(async move { send.dispatch(Action::Options(api::sign_in_options().await)) });
        });
    }
    let user_input = use_node_ref();
    let password_input = use_node_ref();
    let key_input = use_node_ref();
    // Sends what `read` makes of the inputs; a refusal selects `focus` for the next try.
    let submit = |form: &'static str,
                  read: fn(&[HtmlInputElement]) -> Option<SessionRequest>,
                  inputs: Vec<NodeRef>| {
        let state = state.clone();
        let on_signed_in = props.on_signed_in.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let elements: Vec<HtmlInputElement> =
                inputs.iter().filter_map(|r| r.cast::<HtmlInputElement>()).collect();
            let Some(request) = read(&elements) else { return };
            if state.sending {
                return;
            }
            state.dispatch(Action::Send);
            let send = state.dispatcher();
            let on_signed_in = on_signed_in.clone();
            crate::ui::spawn(async move {
                match api::sign_in(&request).await {
                    Ok(info) => {
                        for input in &elements {
                            input.set_value("");
                        }
                        on_signed_in.emit(info);
                    }
                    Err(e) => {
                        send.dispatch(Action::Refused(form, e.to_string()));
                        // Ready for the corrected secret without another click.
                        if let Some(last) = elements.last() {
                            last.select();
                        }
                    }
                }
            });
        })
    };
    let on_password = submit(
        "password",
        |els| {
            let username = els.first()?.value().trim().to_owned();
            let password = els.get(1)?.value();
            (!username.is_empty() && !password.is_empty()).then_some(SessionRequest {
                username: Some(username),
                password: Some(password),
                ..Default::default()
            })
        },
        vec![user_input.clone(), password_input.clone()],
    );
    let on_key = submit(
        "key",
        |els| {
            let key = els.first()?.value().trim().to_owned();
            (!key.is_empty()).then_some(SessionRequest { key: Some(key), ..Default::default() })
        },
        vec![key_input.clone()],
    );
    let error = |form: &'static str| {
        let message = state.failed.as_ref().filter(|(f, _)| *f == form).map(|(_, m)| m.clone());
        html! {
            <p id={format!("signin-{form}-error")} class="error" role="alert" data-testid={format!("signin-{form}-error")}
               hidden={message.is_none()}>{ message.unwrap_or_default() }</p>
        }
    };
    let sending = state.sending;
    let button = |label: &str| if sending { "Signing in…".to_owned() } else { label.to_owned() };
    let options = match &state.options {
        Load::Loading => return html! { <p class="notice page">{ "Loading…" }</p> },
        // The key form still works when the options cannot be read.
        Load::Loaded(Err(_)) => SignInOptions { key: true, ..Default::default() },
        Load::Loaded(Ok(o)) => o.clone(),
    };
    let others = options.oidc.is_some() || options.password;
    html! {
        <main class="sign-in">
            <div class="card" data-testid="signin-form">
                <h1>{ "Sign in to Playdeck" }</h1>
                if let Some(provider) = &options.oidc {
                    <a class="button sso" data-testid="signin-oidc" onclick={sso_in_popup(props.on_signed_in.clone())}
                       href={format!("/api/v1/session/oidc/start?return_to={}", js_sys::encode_uri_component(&here()))}>
                        { format!("Sign in with {provider}") }
                    </a>
                }
                if options.password {
                    <form onsubmit={on_password} data-testid="signin-password-form" class="signin-part">
                        <label for="signin-user">{ "User name" }</label>
                        <input id="signin-user" ref={user_input} type="text" name="username" required=true
                               autocomplete="username" spellcheck="false" autocapitalize="none"
                               autofocus={options.oidc.is_none()} data-testid="signin-user" />
                        <label for="signin-password">{ "Password" }</label>
                        <input id="signin-password" ref={password_input} type="password" name="password" required=true
                               autocomplete="current-password" aria-describedby="signin-password-error"
                               data-testid="signin-password" />
                        <button type="submit" disabled={sending} data-testid="signin-password-submit">{ button("Sign in") }</button>
                        { error("password") }
                    </form>
                }
                if options.key {
                    <form onsubmit={on_key} class={classes!("signin-part", others.then_some("secondary-way"))}>
                        <label for="api-key">{ if others { "Or an API key" } else { "API key" } }</label>
                        <input id="api-key" ref={key_input} type="password" name="key" required=true
                               autocomplete="current-password" spellcheck="false" autofocus={!others}
                               aria-describedby="signin-key-error" data-testid="signin-key" />
                        <button type="submit" class={classes!(others.then_some("secondary"))} disabled={sending}
                                data-testid="signin-submit">{ button(if others { "Sign in with the key" } else { "Sign in" }) }</button>
                        { error("key") }
                    </form>
                }
                if !options.key && !others {
                    <p class="muted">{ "No way to sign in is configured here; ask your administrator." }</p>
                }
            </div>
        </main>
    }
}
