//! The settings of people: your personal tokens (for pipelines), your sessions (browsers signed
//! in), and for admins everyone who signed in and the service accounts, who can be disabled. Also
//! the page of someone signed in whose groups grant no access.

use std::rc::Rc;

use shared::people::{NewRoleBinding, NewToken, RoleBinding, Token, User, UserSession};
use shared::{Role, SessionInfo};
use yew::prelude::*;

use crate::api;
use crate::form::{self, delete_actions, edit, item_list, on_input, when, Items, ItemsAction, Section};

#[derive(Properties, PartialEq)]
pub struct NoAccessProps {
    pub info: SessionInfo,
}

/// Signed in, but none of their groups grants a role: which groups would.
#[function_component(NoAccess)]
pub fn no_access(props: &NoAccessProps) -> Html {
    let info = &props.info;
    let groups = info.access_groups.clone().unwrap_or_default();
    let line = |role: &str, names: &[String]| {
        html! {
            <li>
                <strong>{ role }</strong>{ ": " }
                { if names.is_empty() { "no group is set".to_owned() } else { names.join(", ") } }
            </li>
        }
    };
    html! {
        <main class="sign-in" data-testid="no-access">
            <div class="card">
                <h1>{ "No access yet" }</h1>
                <p>{ format!("You are signed in as {}, but none of your groups grants access to Playdeck.", info.name) }</p>
                <p>{ "Ask to be added to one of these groups:" }</p>
                <ul class="access-groups">
                    { line("Admins", &groups.admin) }
                    { line("Operators", &groups.operator) }
                    { line("Viewers", &groups.viewer) }
                </ul>
                <p class="muted" data-testid="my-groups">
                    { if info.groups.is_empty() { "You are in no group.".to_owned() } else { format!("Your groups: {}", info.groups.join(", ")) } }
                </p>
            </div>
        </main>
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Clone, PartialEq)]
struct TokenForm {
    name: String,
    days: String,
    role: String,
}

impl TokenForm {
    fn request(&self) -> Result<NewToken, Vec<String>> {
        let mut problems = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            problems.push("Give the token a name, such as the pipeline that will use it.".to_owned());
        }
        let days = self.days.trim().parse::<u32>().ok().filter(|d| (1..=366).contains(d));
        if days.is_none() {
            problems.push("It expires in 1 to 366 days.".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(NewToken {
            name: name.to_owned(),
            expires_days: days,
            role: Role::parse(&self.role),
            user_id: None,
        })
    }
}

/// The tokens section's state; the secret of the token just made, shown once.
#[derive(Clone, PartialEq, Default)]
struct TokensState {
    items: Items<Token, TokenForm, i64>,
    secret: Option<String>,
}

enum TokensAction {
    Items(ItemsAction<Token, TokenForm, i64>),
    Made(Result<(String, String), api::ApiError>),
    Hide,
}

impl Reducible for TokensState {
    type Action = TokensAction;
    fn reduce(self: Rc<Self>, action: TokensAction) -> Rc<Self> {
        let mut s = Rc::unwrap_or_clone(self);
        match action {
            TokensAction::Items(a) => s.items.apply(a),
            TokensAction::Made(Ok((name, secret))) => {
                s.secret = Some(secret);
                s.items.apply(ItemsAction::Saved(Ok(format!(
                    "Made “{name}”. Copy it now: it is shown only this once."
                ))));
            }
            TokensAction::Made(Err(e)) => s.items.apply(ItemsAction::Saved(Err(e))),
            TokensAction::Hide => s.secret = None,
        }
        Rc::new(s)
    }
}

#[derive(Properties, PartialEq)]
pub struct TokensProps {
    pub role: Role,
}

#[function_component(Tokens)]
pub fn tokens(props: &TokensProps) -> Html {
    let state = use_reducer(TokensState::default);
    let send: form::Dispatch<Token, TokenForm, i64> =
        state.dispatcher().to_callback().reform(TokensAction::Items);
    {
        let send = send.clone();
        use_effect_with(state.items.reload, move |_| {
            form::spawn(&send, async { ItemsAction::Loaded(api::tokens().await.map(|p| p.results)) });
        });
    }
    let items = &state.items;
    let editor = items.form.as_ref().map(|f| {
        let made = state.dispatcher();
        let form_value = f.clone();
        let send_items = send.clone();
        let onsubmit = Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match form_value.request() {
                Err(problems) => send_items.emit(ItemsAction::Problems(Some(problems))),
                Ok(request) => {
                    send_items.emit(ItemsAction::Saving);
                    let made = made.clone();
                    crate::ui::spawn(async move {
                        let answer = api::token_create(&request).await.map(|t| (t.token.name, t.secret));
                        made.dispatch(TokensAction::Made(answer));
                    });
                }
            }
        });
        let set = |f: fn(&mut TokenForm, String)| on_input(edit(&send, f));
        let roles = [Role::Viewer, Role::Operator, Role::Admin].into_iter().filter(|r| *r <= props.role);
        items.editor(&send, ("token", "token"), onsubmit).view(html! {
            <div class="filter-grid">
                <div class="field">
                    <label for="token-name">{ "Name" }</label>
                    <input id="token-name" type="text" value={f.name.clone()} oninput={set(|f, v| f.name = v)}
                           placeholder="gitlab deploy" data-testid="token-name" />
                </div>
                <div class="field">
                    <label for="token-days">{ "Expires in (days)" }</label>
                    <input id="token-days" type="number" min="1" max="366" value={f.days.clone()}
                           oninput={set(|f, v| f.days = v)} data-testid="token-days" />
                </div>
                <div class="field">
                    <label for="token-role">{ "At most" }</label>
                    <select id="token-role" onchange={edit(&send, |f: &mut TokenForm, v| f.role = v)} data-testid="token-role">
                        { for roles.map(|r| html! { <option value={r.as_str()} selected={r.as_str() == f.role}>{ r.as_str() }</option> }) }
                    </select>
                </div>
            </div>
        })
    });
    let secret = state.secret.as_ref().map(|s| {
        let hide = state.dispatcher().to_callback().reform(|_: MouseEvent| TokensAction::Hide);
        html! {
            <div class="card wide secret-once" role="status">
                <p>{ "Your new token (send it as Authorization: Bearer …):" }</p>
                <code class="mono secret" data-testid="token-secret">{ s }</code>
                <button type="button" class="secondary" onclick={hide}>{ "I have copied it" }</button>
            </div>
        }
    });
    let body = item_list(&items.list, "token-list", ("token-empty", "No tokens yet."), |t| {
        html! {
            <li class="item" data-testid="token" data-name={t.name.clone()}>
                <div class="item-main">
                    <span class="item-title">{ &t.name }</span>
                    <span class="tag">{ t.role.as_str() }</span>
                    <p class="item-line muted">
                        { format!("{}… · made {} · ", t.prefix, when(t.created)) }
                        { t.expires.map(|e| format!("expires {} · ", when(e))).unwrap_or_default() }
                        { t.last_used.map(|u| format!("last used {}", when(u))).unwrap_or_else(|| "never used".to_owned()) }
                    </p>
                </div>
                { delete_actions(&send, "token", &items.confirm, (t.id, &t.name), |id| async move { api::token_delete(id).await }, Html::default()) }
            </li>
        }
    });
    let role = props.role.as_str().to_owned();
    Section {
        noun: "token",
        short: "token",
        title: "Your tokens",
        intro: "For pipelines and scripts: a token acts as you, with at most your role, until it expires or you delete it.",
        notice: items.notice.as_deref(),
        on_new: items.form.is_none().then(|| {
            send.reform(move |_| ItemsAction::Form(Some(TokenForm { name: String::new(), days: "90".into(), role: role.clone() })))
        }),
    }
    .view(html! { <>{ for secret }{ for editor }{ body }</> })
}

// ---------------------------------------------------------------------------------------------
// Sessions

type SessionsState = Items<UserSession, (), i64>;

#[function_component(Sessions)]
pub fn sessions() -> Html {
    let state = use_reducer(SessionsState::default);
    let send = state.dispatcher().to_callback();
    {
        let send = send.clone();
        use_effect_with(state.reload, move |_| {
            form::spawn(&send, async { ItemsAction::Loaded(api::my_sessions().await.map(|p| p.results)) });
        });
    }
    let body = item_list(&state.list, "session-list", ("session-empty", "No sessions."), |s| {
        let how = match s.method.as_str() {
            "oidc" => "single sign-on",
            "ldap" => "password",
            _ => "API key",
        };
        let end = {
            let (send, id) = (send.clone(), s.id);
            Callback::from(move |_: MouseEvent| {
                form::spawn(&send, async move {
                    ItemsAction::Done(match api::end_session(id).await {
                        Ok(()) => "That browser is signed out.".to_owned(),
                        Err(e) => format!("Could not sign it out: {}", e.words()),
                    })
                })
            })
        };
        html! {
            <li class="item" data-testid="session">
                <div class="item-main">
                    <span class="item-title">{ s.user_agent.clone().unwrap_or_else(|| "A browser".to_owned()) }</span>
                    if s.current { <span class="tag">{ "this one" }</span> }
                    <p class="item-line muted">
                        { format!("By {how} from {} · since {} · last seen {} · ends by {}",
                                  s.client.clone().unwrap_or_else(|| "?".to_owned()), when(s.created), when(s.last_seen),
                                  when(s.idle_expires)) }
                    </p>
                </div>
                if !s.current {
                    <div class="item-actions">
                        <button type="button" class="secondary" onclick={end} data-testid="session-end">{ "Sign out" }</button>
                    </div>
                }
            </li>
        }
    });
    Section {
        noun: "session",
        short: "session",
        title: "Your sessions",
        intro: "Browsers signed in as you. A session ends after an hour unused, and at the latest half a day after signing in.",
        notice: state.notice.as_deref(),
        on_new: None,
    }
    .view(body)
}

// ---------------------------------------------------------------------------------------------
// People (admins)

type PeopleState = Items<User, (), i64>;

#[function_component(People)]
pub fn people() -> Html {
    let state = use_reducer(PeopleState::default);
    let send = state.dispatcher().to_callback();
    let me = use_context::<Rc<SessionInfo>>().and_then(|s| s.user_id);
    {
        let send = send.clone();
        use_effect_with(state.reload, move |_| {
            form::spawn(&send, async { ItemsAction::Loaded(api::users().await.map(|p| p.results)) });
        });
    }
    let body = item_list(&state.list, "user-list", ("user-empty", "Nobody has signed in yet."), |u| {
        let kind = match u.kind.as_str() {
            "oidc" => "single sign-on",
            "ldap" => "LDAP",
            "proxy" => "proxy",
            _ => "service account",
        };
        let toggle = {
            let (send, id, disable, name) = (send.clone(), u.id, u.disabled.is_none(), u.username.clone());
            Callback::from(move |_: MouseEvent| {
                let name = name.clone();
                form::spawn(&send, async move {
                    ItemsAction::Done(match api::user_disable(id, disable).await {
                        Ok(_) if disable => format!("Disabled “{name}”: their sessions and tokens stopped."),
                        Ok(_) => format!("Enabled “{name}”."),
                        Err(e) => format!("Could not change “{name}”: {}", e.words()),
                    })
                })
            })
        };
        html! {
            <li class={classes!("item", u.disabled.is_some().then_some("disabled"))} data-testid="user" data-name={u.username.clone()}>
                <div class="item-main">
                    <span class="item-title">{ &u.username }</span>
                    <span class="tag">{ kind }</span>
                    <span class="tag">{ u.role.map_or("no access", |r| r.as_str()) }</span>
                    if u.disabled.is_some() { <span class="tag bad">{ "disabled" }</span> }
                    <p class="item-line">
                        { if u.display_name.is_empty() || u.display_name == u.username { String::new() } else { format!("{} ", u.display_name) } }
                        { u.email.clone().unwrap_or_default() }
                    </p>
                    if !u.groups.is_empty() { <p class="item-line muted">{ format!("Groups: {}", u.groups.join(", ")) }</p> }
                    <p class="item-line muted">
                        { u.last_seen.map(|t| format!("Last seen {}", when(t))).unwrap_or_else(|| "Never seen".to_owned()) }
                        { format!(" · {} active token{}", u.tokens, if u.tokens == 1 { "" } else { "s" }) }
                    </p>
                </div>
                if me != Some(u.id) {
                    <div class="item-actions">
                        <button type="button" class={if u.disabled.is_some() { "secondary" } else { "danger" }} onclick={toggle}
                                data-testid="user-toggle">{ if u.disabled.is_some() { "Enable" } else { "Disable" } }</button>
                    </div>
                }
            </li>
        }
    });
    Section {
        noun: "user",
        short: "user",
        title: "People and service accounts",
        intro: "Everyone who signed in, and the service accounts whose tokens pipelines use. Disabling someone stops their sessions and tokens at once.",
        notice: state.notice.as_deref(),
        on_new: None,
    }
    .view(body)
}

// ---------------------------------------------------------------------------------------------
// Team access (admins): role bindings

#[derive(Clone, PartialEq)]
struct BindingForm {
    /// `group` or `user`.
    kind: String,
    name: String,
    role: String,
    templates: String,
    inventories: String,
    sources: String,
    credentials: String,
}

/// A comma-separated list, trimmed, empty parts dropped.
fn list_of(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl BindingForm {
    fn request(&self) -> Result<NewRoleBinding, Vec<String>> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(vec![format!("Name the {} this binding is for.", self.kind)]);
        }
        let role = Role::parse(&self.role).ok_or_else(|| vec!["Choose a role.".to_owned()])?;
        let (user, group) =
            if self.kind == "user" { (Some(name.to_owned()), None) } else { (None, Some(name.to_owned())) };
        Ok(NewRoleBinding {
            user,
            group,
            role,
            sources: list_of(&self.sources),
            templates: list_of(&self.templates),
            inventories: list_of(&self.inventories),
            credentials: list_of(&self.credentials),
        })
    }
}

fn scope_words(b: &RoleBinding) -> String {
    let mut parts = Vec::new();
    for (what, list) in
        [("templates", &b.templates), ("inventories", &b.inventories), ("sources", &b.sources)]
    {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    let scope = if parts.is_empty() { "every job".to_owned() } else { parts.join(" · ") };
    if b.credentials.is_empty() {
        scope
    } else {
        format!("{scope}, with the credentials {}", b.credentials.join(", "))
    }
}

type BindingsState = Items<RoleBinding, BindingForm, i64>;

#[function_component(Bindings)]
pub fn bindings() -> Html {
    let state = use_reducer(BindingsState::default);
    let send = state.dispatcher().to_callback();
    {
        let send = send.clone();
        use_effect_with(state.reload, move |_| {
            form::spawn(&send, async { ItemsAction::Loaded(api::bindings().await.map(|p| p.results)) });
        });
    }
    let editor = state.form.as_ref().map(|f| {
        let form_value = f.clone();
        let send_items = send.clone();
        let onsubmit = Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match form_value.request() {
                Err(problems) => send_items.emit(ItemsAction::Problems(Some(problems))),
                Ok(request) => {
                    send_items.emit(ItemsAction::Saving);
                    form::spawn(&send_items, async move {
                        ItemsAction::Saved(api::binding_create(&request).await.map(|b| {
                            format!("{} {} is now {} over {}.", if b.user.is_some() { "User" } else { "Group" },
                                b.user.or(b.group).unwrap_or_default(), b.role.as_str(), scope_words_of(&request))
                        }))
                    });
                }
            }
        });
        let set = |f: fn(&mut BindingForm, String)| on_input(edit(&send, f));
        let text = |id: &'static str, label: &'static str, value: &str, hint: &'static str, f: fn(&mut BindingForm, String)| {
            html! {
                <div class="field">
                    <label for={id}>{ label }</label>
                    <input id={id} type="text" value={value.to_owned()} oninput={set(f)} placeholder={hint} data-testid={id} />
                </div>
            }
        };
        state.editor(&send, ("binding", "binding"), onsubmit).view(html! {
            <div class="filter-grid">
                <div class="field">
                    <label for="binding-kind">{ "For a" }</label>
                    <select id="binding-kind" onchange={edit(&send, |f: &mut BindingForm, v| f.kind = v)} data-testid="binding-kind">
                        <option value="group" selected={f.kind == "group"}>{ "group" }</option>
                        <option value="user" selected={f.kind == "user"}>{ "user" }</option>
                    </select>
                </div>
                { text("binding-name", "Name", &f.name, "patch-team", |f, v| f.name = v) }
                <div class="field">
                    <label for="binding-role">{ "Role" }</label>
                    <select id="binding-role" onchange={edit(&send, |f: &mut BindingForm, v| f.role = v)} data-testid="binding-role">
                        { for [Role::Viewer, Role::Operator, Role::Admin].into_iter().map(|r| html! {
                            <option value={r.as_str()} selected={r.as_str() == f.role}>{ r.as_str() }</option>
                        }) }
                    </select>
                </div>
                { text("binding-templates", "Templates (commas, * and ?)", &f.templates, "patch-*.yml", |f, v| f.templates = v) }
                { text("binding-inventories", "Inventories", &f.inventories, "web-*", |f, v| f.inventories = v) }
                { text("binding-sources", "Sources", &f.sources, "local, aap-prod", |f, v| f.sources = v) }
                { text("binding-credentials", "Credentials its launches may use", &f.credentials, "all", |f, v| f.credentials = v) }
            </div>
        })
    });
    let body = item_list(
        &state.list,
        "binding-list",
        ("binding-empty", "No bindings: nobody but the bootstrap key has a role."),
        |b| {
            let who = b
                .user
                .as_ref()
                .map(|u| format!("user {u}"))
                .or_else(|| b.group.as_ref().map(|g| format!("group {g}")))
                .unwrap_or_default();
            let actions = match b.id {
                Some(id) => delete_actions(
                    &send,
                    "binding",
                    &state.confirm,
                    (id, &who),
                    |id| async move { api::binding_delete(id).await },
                    Html::default(),
                ),
                None => Html::default(),
            };
            html! {
                <li class="item" data-testid="binding" data-origin={b.origin.clone()}>
                    <div class="item-main">
                        <span class="item-title">{ who.clone() }</span>
                        <span class="tag">{ b.role.as_str() }</span>
                        <p class="item-line">{ format!("over {}", scope_words(b)) }</p>
                        <p class="item-line muted">{ format!("from {}", b.origin) }</p>
                    </div>
                    { actions }
                </li>
            }
        },
    );
    Section {
        noun: "binding",
        short: "binding",
        title: "Team access",
        intro: "Who sees and runs what: a user or group, a role, and the templates, inventories and sources it holds over (empty: every job). Bindings from the access file and the group settings are changed there.",
        notice: state.notice.as_deref(),
        on_new: state.form.is_none().then(|| {
            send.reform(|_| ItemsAction::Form(Some(BindingForm {
                kind: "group".into(),
                name: String::new(),
                role: "viewer".into(),
                templates: String::new(),
                inventories: String::new(),
                sources: String::new(),
                credentials: String::new(),
            })))
        }),
    }
    .view(html! { <>{ for editor }{ body }</> })
}

fn scope_words_of(r: &NewRoleBinding) -> String {
    scope_words(&RoleBinding {
        id: None,
        origin: String::new(),
        user: None,
        group: None,
        role: r.role,
        sources: r.sources.clone(),
        templates: r.templates.clone(),
        inventories: r.inventories.clone(),
        credentials: r.credentials.clone(),
    })
}
