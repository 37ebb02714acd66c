//! Settings (`/settings`): the credentials launches refer to by name (operators see names and
//! kinds; admins add and delete them) and, for admins, the notifiers that mail or post to a chat
//! when jobs end, with a test button, pause/resume and the latest notifications sent.
//!
//! A credential's secret is typed into a form, sent once and dropped from the page: the server
//! never returns it, so the list can only ever show names, kinds and when each was last used.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Map, Value};
use shared::credentials::{Credential, CredentialKind, NewCredential};
use shared::engine::WEBHOOK_EVENTS;
use shared::notifiers::{
    NewNotifier, Notifier, NotifierConfig, NotifierDelivery, NotifierKind, NotifierPatch,
};
use shared::{Role, SessionInfo};
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::form::{self, delete_actions, edit, item_list, on_input, when, Items, ItemsAction, Section};
use crate::people;
use crate::route::Link;
use crate::ui::use_title;
use crate::ui::value_of;

#[function_component(SettingsPage)]
pub fn settings_page() -> Html {
    use_title("Settings".to_owned());
    let session = use_context::<Rc<SessionInfo>>();
    let admin = session.as_ref().is_some_and(|s| s.may(Role::Admin));
    let operator = session.as_ref().is_some_and(|s| s.may(Role::Operator));
    let role = session.as_ref().and_then(|s| s.role).unwrap_or(Role::Viewer);
    html! {
        <main class="page settings-page" data-testid="settings-page">
            <div class="toolbar"><h1>{ "Settings" }</h1></div>
            <people::Tokens {role} />
            <people::Sessions />
            if admin {
                <people::People />
                <people::Bindings />
            }
            if operator {
                <Credentials {admin} />
            }
            if admin {
                <Notifiers />
            } else if operator {
                <section class="settings-section">
                    <h2>{ "Notifications" }</h2>
                    <p class="muted">{ "Only admins see and change who is told when jobs end." }</p>
                </section>
            }
        </main>
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// What a person calls a field of a credential's inputs.
fn field_label(field: &str) -> &'static str {
    match field {
        "private_key" => "Private key (PEM or OpenSSH)",
        "passphrase" => "Passphrase of the key",
        "username" => "User name",
        "password" => "Password",
        "method" => "Become method (sudo, su, …)",
        "vault_id" => "Vault id",
        "token" => "Token",
        "address" => "Vault address (https://…)",
        "role_id" => "AppRole role_id",
        "secret_id" => "AppRole secret_id",
        "namespace" => "Namespace",
        "approle_mount" => "AppRole mount (default approle)",
        "ca_cert" => "CA certificate (PEM)",
        "variables" => "Variables, one NAME=value a line",
        _ => "Value",
    }
}

fn multiline(field: &str) -> bool {
    matches!(field, "private_key" | "ca_cert" | "variables")
}

#[derive(Clone, PartialEq)]
struct CredForm {
    name: String,
    kind: CredentialKind,
    description: String,
    inputs: BTreeMap<String, String>,
    hosts: String,
}

/// Kinds that Playdeck, git or ansible-galaxy send to a server of the launch's choosing (an
/// inventory URL, a repository, a Galaxy server), and so may be bound to hosts.
fn bindable(kind: CredentialKind) -> bool {
    matches!(kind, CredentialKind::SshKey | CredentialKind::Password | CredentialKind::ApiToken)
}

impl CredForm {
    fn new() -> CredForm {
        CredForm {
            name: String::new(),
            kind: CredentialKind::SshKey,
            description: String::new(),
            inputs: BTreeMap::new(),
            hosts: String::new(),
        }
    }

    /// The request, or what is wrong in words (the server checks the rest).
    fn request(&self) -> Result<NewCredential, Vec<String>> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("Give the credential a name.".to_owned());
        }
        let (required, optional) = self.kind.fields();
        let mut inputs = Map::new();
        for field in required.iter().chain(optional) {
            let value = self.inputs.get(*field).map(String::as_str).unwrap_or("");
            if value.trim().is_empty() {
                if required.contains(field) {
                    problems.push(format!("Fill in “{}”.", field_label(field)));
                }
                continue;
            }
            if *field == "variables" {
                let mut vars = Map::new();
                for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    match line.split_once('=') {
                        Some((k, v)) if !k.trim().is_empty() => {
                            vars.insert(k.trim().to_owned(), Value::String(v.to_owned()));
                        }
                        _ => problems.push(format!("“{line}” is not NAME=value.")),
                    }
                }
                inputs.insert((*field).to_owned(), Value::Object(vars));
            } else {
                let keep = if multiline(field) { value.to_owned() } else { value.trim().to_owned() };
                inputs.insert((*field).to_owned(), Value::String(keep));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(NewCredential {
            name: self.name.trim().to_owned(),
            kind: self.kind,
            description: self.description.trim().to_owned(),
            inputs,
            hosts: if bindable(self.kind) {
                self.hosts
                    .split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect()
            } else {
                Vec::new()
            },
        })
    }
}

#[derive(Properties, PartialEq)]
struct CredentialsProps {
    admin: bool,
}

/// The credentials section's state: the list and the add form; a Delete asks by name.
type CredentialsState = Items<Credential, CredForm, String>;

#[function_component(Credentials)]
fn credentials(props: &CredentialsProps) -> Html {
    let state = use_reducer(CredentialsState::default);
    let send = state.dispatcher().to_callback();
    {
        let send = send.clone();
        use_effect_with(state.reload, move |_| {
            form::spawn(&send, async { ItemsAction::Loaded(api::credentials().await.map(|p| p.results)) });
        });
    }
    let on_kind = {
        let send = send.clone();
        Callback::from(move |e: Event| {
            send.emit(ItemsAction::Problems(None));
            let kind = CredentialKind::parse(&value_of(&e));
            send.emit(ItemsAction::Edit(Box::new(move |f: &mut CredForm| {
                if let Some(k) = kind {
                    f.kind = k;
                    f.inputs.clear();
                }
            })));
        })
    };

    let set = |f: fn(&mut CredForm, String)| on_input(edit(&send, f));
    let editor = state.form.as_ref().map(|f| {
        let (required, optional) = f.kind.fields();
        let fields = required.iter().map(|x| (*x, true)).chain(optional.iter().map(|x| (*x, false)));
        let onsubmit = form::save(&send, f, CredForm::request, |request| async move {
            let saved = api::credential_create(&request).await;
            saved.map(|c| {
                format!("Saved “{}”. Its secret is sealed and will not be shown again.", c.name)
            })
        });
        state.editor(&send, ("credential", "cred"), onsubmit).view(html! {
            <>
                <div class="filter-grid">
                    <div class="field">
                        <label for="cred-name">{ "Name" }</label>
                        <input id="cred-name" type="text" value={f.name.clone()} oninput={set(|f, v| f.name = v)}
                               data-testid="cred-name" />
                    </div>
                    <div class="field">
                        <label for="cred-kind">{ "Kind" }</label>
                        <select id="cred-kind" onchange={on_kind} data-testid="cred-kind">
                            { for CredentialKind::ALL.into_iter().map(|k| html! {
                                <option value={k.as_str()} selected={k == f.kind}>{ k.label() }</option>
                            }) }
                        </select>
                    </div>
                </div>
                <div class="field">
                    <label for="cred-description">{ "Description (optional)" }</label>
                    <input id="cred-description" type="text" value={f.description.clone()}
                           oninput={set(|f, v| f.description = v)} data-testid="cred-description" />
                </div>
                { for fields.map(|(field, needed)| {
                    let id = format!("cred-{field}");
                    let label = if needed { field_label(field).to_owned() } else { format!("{} (optional)", field_label(field)) };
                    let value = f.inputs.get(field).cloned().unwrap_or_default();
                    let oninput = on_input(edit(&send, move |f: &mut CredForm, v| {
                        f.inputs.insert(field.to_owned(), v);
                    }));
                    let control = if multiline(field) {
                        html! { <textarea id={id.clone()} rows="5" spellcheck="false" {value} {oninput}
                                          data-testid={id.clone()} class="mono" /> }
                    } else {
                        let kind = if CredentialKind::secret_field(field) { "password" } else { "text" };
                        html! { <input id={id.clone()} type={kind} {value} {oninput} autocomplete="new-password"
                                       data-testid={id.clone()} /> }
                    };
                    html! {
                        <div class="field">
                            <label for={id.clone()}>{ label }</label>
                            { control }
                        </div>
                    }
                }) }
                if bindable(f.kind) {
                    <div class="field">
                        <label for="cred-hosts">{ "Only for these hosts (optional)" }</label>
                        <input id="cred-hosts" type="text" value={f.hosts.clone()} oninput={set(|f, v| f.hosts = v)}
                               placeholder="git.example.com, *.cmdb.example.com" data-testid="cred-hosts" />
                        <p class="hint">{ "Sent only to inventory URLs, git repositories or Galaxy servers on these hosts; empty: any." }</p>
                    </div>
                }
            </>
        })
    });

    let body = item_list(&state.list, "credential-list", ("cred-empty", "No credentials yet."), |c| {
        html! {
            <li class="item" data-testid="credential" data-name={c.name.clone()}>
                <div class="item-main">
                    <span class="item-title">{ &c.name }</span>
                    <span class="tag">{ c.kind.label() }</span>
                    if !c.description.is_empty() { <p class="item-line">{ &c.description }</p> }
                    if !c.hosts.is_empty() {
                        <p class="item-line" data-testid="cred-bound">{ format!("Only for {}", c.hosts.join(", ")) }</p>
                    }
                    <p class="item-line muted">
                        { format!("Added by {} on {} · ", c.created_by, when(c.created)) }
                        { c.last_used.map(|t| format!("last used {}", when(t))).unwrap_or_else(|| "never used".to_owned()) }
                    </p>
                </div>
                if props.admin {
                    { delete_actions(&send, "cred", &state.confirm, (c.name.clone(), &c.name),
                        |name| async move { api::credential_delete(&name).await }, Html::default()) }
                }
            </li>
        }
    });
    // Section, Items::editor and delete_actions make the test ids credentials, cred-new, cred-notice,
    // credential-editor, cred-errors, cred-save, cred-delete and cred-delete-confirm.
    let section = Section {
        noun: "credential",
        short: "cred",
        title: "Credentials",
        intro: "Launches name these for SSH, become and vault passwords, git, inventory URLs and cloud plugins. Secrets are sealed at rest and never shown again.",
        notice: state.notice.as_deref(),
        on_new: (props.admin && state.form.is_none())
            .then(|| send.reform(|_| ItemsAction::Form(Some(CredForm::new())))),
    };
    section.view(html! { <>{ for editor }{ body }</> })
}

// ---------------------------------------------------------------------------------------------
// Notifiers

#[derive(Clone, PartialEq)]
struct NotifierForm {
    name: String,
    kind: NotifierKind,
    events: Vec<String>,
    templates: String,
    host: String,
    port: String,
    tls: String,
    username: String,
    password: String,
    /// `password` or `xoauth2`.
    auth: String,
    token_url: String,
    client_id: String,
    scope: String,
    refresh_token: String,
    from: String,
    to: String,
    subject_prefix: String,
    url: String,
    style: String,
}

impl NotifierForm {
    fn new() -> NotifierForm {
        NotifierForm {
            name: String::new(),
            kind: NotifierKind::Mail,
            events: vec!["job.failed".into(), "job.error".into()],
            templates: String::new(),
            host: String::new(),
            port: "587".into(),
            tls: "starttls".into(),
            username: String::new(),
            password: String::new(),
            auth: "password".into(),
            token_url: String::new(),
            client_id: String::new(),
            scope: String::new(),
            refresh_token: String::new(),
            from: String::new(),
            to: String::new(),
            subject_prefix: String::new(),
            url: String::new(),
            style: "slack".into(),
        }
    }

    fn request(&self) -> Result<NewNotifier, Vec<String>> {
        let mut problems = Vec::new();
        let list = |s: &str| -> Vec<String> {
            s.split([',', '\n']).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
        };
        if self.name.trim().is_empty() {
            problems.push("Give the notifier a name.".to_owned());
        }
        if self.events.is_empty() {
            problems.push("Pick at least one job end to tell.".to_owned());
        }
        let config = match self.kind {
            NotifierKind::Mail => {
                let port = self.port.trim().parse::<u16>().ok().filter(|p| *p > 0);
                if self.host.trim().is_empty() {
                    problems.push("Give the mail server.".to_owned());
                }
                if port.is_none() {
                    problems.push("The port is a number from 1 to 65535.".to_owned());
                }
                if self.from.trim().is_empty() || list(&self.to).is_empty() {
                    problems.push("Give the sender and at least one recipient.".to_owned());
                }
                let mut c = json!({"host": self.host.trim(), "port": port.unwrap_or(587), "tls": self.tls,
                                   "from": self.from.trim(), "to": list(&self.to)});
                if self.auth == "xoauth2" {
                    if self.username.trim().is_empty() || self.password.is_empty() {
                        problems
                            .push("OAuth 2 needs the mailbox (user name) and the client secret.".to_owned());
                    }
                    if self.token_url.trim().is_empty() || self.client_id.trim().is_empty() {
                        problems.push("OAuth 2 needs the token URL and the client ID.".to_owned());
                    }
                    c["auth"] = json!("xoauth2");
                    let mut oauth =
                        json!({"token_url": self.token_url.trim(), "client_id": self.client_id.trim()});
                    if !self.scope.trim().is_empty() {
                        oauth["scope"] = json!(self.scope.trim());
                    }
                    if !self.refresh_token.trim().is_empty() {
                        oauth["refresh_token"] = json!(self.refresh_token.trim());
                    }
                    c["oauth"] = oauth;
                    c["username"] = json!(self.username.trim());
                    c["password"] = json!(self.password);
                } else if !self.username.trim().is_empty() {
                    c["username"] = json!(self.username.trim());
                    c["password"] = json!(self.password);
                }
                if !self.subject_prefix.trim().is_empty() {
                    c["subject_prefix"] = json!(self.subject_prefix.trim());
                }
                c
            }
            NotifierKind::Chat => {
                if self.url.trim().is_empty() {
                    problems.push("Give the channel's incoming-webhook URL.".to_owned());
                }
                json!({"url": self.url.trim(), "style": self.style})
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(NewNotifier {
            name: self.name.trim().to_owned(),
            kind: self.kind,
            events: self.events.clone(),
            templates: list(&self.templates),
            config,
        })
    }
}

/// Where a notifier sends, in words.
fn destination(n: &Notifier) -> String {
    match &n.config {
        NotifierConfig::Mail(m) => format!(
            "Mail to {} through {}:{} ({}{})",
            m.to.join(", "),
            m.host,
            m.port,
            match m.tls {
                shared::notifiers::MailTls::Starttls => "STARTTLS",
                shared::notifiers::MailTls::Tls => "TLS",
                shared::notifiers::MailTls::None => "no encryption",
            },
            if m.auth == shared::notifiers::MailAuth::Xoauth2 { ", OAuth 2" } else { "" }
        ),
        NotifierConfig::Chat(c) => format!(
            "{} channel at {}",
            match c.style {
                shared::notifiers::ChatStyle::Slack => "Slack",
                shared::notifiers::ChatStyle::Mattermost => "Mattermost",
                shared::notifiers::ChatStyle::Teams => "Teams",
            },
            c.host
        ),
    }
}

/// The notifiers section's state: the list and the add form (a Delete asks by id), the latest
/// notifications sent, and what each notifier's last test came to.
#[derive(Clone, PartialEq)]
struct NotifiersState {
    items: Items<Notifier, NotifierForm, i64>,
    sent: Load<Vec<NotifierDelivery>>,
    tests: BTreeMap<i64, String>,
}

// An action lives only until the reducer takes it: its size (an open form) costs nothing.
#[allow(clippy::large_enum_variant)]
enum NotifiersAction {
    Items(ItemsAction<Notifier, NotifierForm, i64>),
    Sent(Result<Vec<NotifierDelivery>, ApiError>),
    Testing(i64),
    /// What a test came to; the lists are read again.
    Tested(i64, String),
}

impl Reducible for NotifiersState {
    type Action = NotifiersAction;

    fn reduce(self: Rc<Self>, action: NotifiersAction) -> Rc<Self> {
        let mut state = Rc::unwrap_or_clone(self);
        match action {
            NotifiersAction::Items(action) => state.items.apply(action),
            NotifiersAction::Sent(sent) => state.sent = Load::Loaded(sent),
            NotifiersAction::Testing(id) => {
                state.tests.insert(id, "Sending a test message…".to_owned());
            }
            NotifiersAction::Tested(id, said) => {
                state.tests.insert(id, said);
                state.items.reload = state.items.reload.wrapping_add(1);
            }
        }
        Rc::new(state)
    }
}

#[function_component(Notifiers)]
fn notifiers() -> Html {
    let state = use_reducer(|| NotifiersState {
        items: Items::default(),
        sent: Load::Loading,
        tests: BTreeMap::new(),
    });
    let dispatch = state.dispatcher().to_callback();
    let send = dispatch.reform(NotifiersAction::Items);
    let items = &state.items;
    {
        let dispatch = dispatch.clone();
        use_effect_with(items.reload, move |_| {
            crate::ui::spawn(async move {
                let listed = api::notifiers().await.map(|p| p.results);
                dispatch.emit(NotifiersAction::Items(ItemsAction::Loaded(listed)));
                dispatch.emit(NotifiersAction::Sent(api::notifier_deliveries().await.map(|p| p.results)));
            });
        });
    }
    let toggle_event = |event: &'static str| {
        edit(&send, move |f: &mut NotifierForm, _| {
            if let Some(i) = f.events.iter().position(|e| e == event) {
                f.events.remove(i);
            } else {
                f.events.push(event.to_owned());
            }
        })
    };

    let editor = items.form.as_ref().map(|f| {
        type Set = fn(&mut NotifierForm, String);
        type Options = &'static [(&'static str, &'static str)];
        let text = |id: &'static str, label: &'static str, value: &str, set: Set, kind: &'static str| {
            html! {
                <div class="field">
                    <label for={id}>{ label }</label>
                    <input {id} type={kind} value={value.to_owned()} oninput={on_input(edit(&send, set))} data-testid={id}
                           autocomplete={if kind == "password" { "new-password" } else { "off" }} />
                </div>
            }
        };
        let choice = |id: &'static str, label: &'static str, value: &str, set: Set, options: Options| {
            html! {
                <div class="field">
                    <label for={id}>{ label }</label>
                    <select {id} onchange={edit(&send, set)} data-testid={id}>
                        { for options.iter().map(|&(k, l)| html! { <option value={k} selected={value == k}>{ l }</option> }) }
                    </select>
                </div>
            }
        };
        let onsubmit = form::save(&send, f, NotifierForm::request, |request| async move {
            let saved = api::notifier_create(&request).await;
            saved.map(|n| format!("Saved “{}”. Use “Send test” to check it reaches people.", n.name))
        });
        items.editor(&send, ("notifier", "ntf"), onsubmit).view(html! {
            <>
                <div class="filter-grid">
                    { text("ntf-name", "Name", &f.name, |f, v| f.name = v, "text") }
                    { choice("ntf-kind", "Kind", f.kind.as_str(), |f, v| f.kind = if v == "chat" { NotifierKind::Chat } else { NotifierKind::Mail },
                        &[("mail", "Mail (SMTP)"), ("chat", "Chat (Slack, Mattermost, Teams)")]) }
                </div>
                <fieldset class="field events">
                    <legend>{ "Tell when a job" }</legend>
                    { for WEBHOOK_EVENTS.into_iter().map(|e| {
                        let id = format!("ntf-event-{}", e.trim_start_matches("job."));
                        html! {
                            <label class="check" for={id.clone()}>
                                <input id={id.clone()} type="checkbox" checked={f.events.iter().any(|x| x == e)}
                                       onchange={toggle_event(e)} data-testid={id} />
                                { e.trim_start_matches("job.") }
                            </label>
                        }
                    }) }
                </fieldset>
                { text("ntf-templates", "Only these templates or playbooks (comma-separated; empty: every job)", &f.templates, |f, v| f.templates = v, "text") }
                if f.kind == NotifierKind::Mail {
                    <div class="filter-grid">
                        { text("ntf-host", "Mail server", &f.host, |f, v| f.host = v, "text") }
                        { text("ntf-port", "Port", &f.port, |f, v| f.port = v, "text") }
                        { choice("ntf-tls", "Encryption", &f.tls, |f, v| f.tls = v,
                            &[("starttls", "STARTTLS (587)"), ("tls", "TLS (465)"), ("none", "none (local relay)")]) }
                        { choice("ntf-auth", "Sign in with", &f.auth, |f, v| f.auth = v,
                            &[("password", "a password"), ("xoauth2", "OAuth 2 (Microsoft 365, Gmail)")]) }
                        { text("ntf-username", if f.auth == "xoauth2" { "Mailbox" } else { "User name (optional)" }, &f.username, |f, v| f.username = v, "text") }
                        { text("ntf-password", if f.auth == "xoauth2" { "Client secret" } else { "Password (optional)" }, &f.password, |f, v| f.password = v, "password") }
                        { text("ntf-from", "From", &f.from, |f, v| f.from = v, "text") }
                    </div>
                    if f.auth == "xoauth2" {
                        <div class="filter-grid">
                            { text("ntf-token-url", "Token URL", &f.token_url, |f, v| f.token_url = v, "text") }
                            { text("ntf-client-id", "Client ID", &f.client_id, |f, v| f.client_id = v, "text") }
                            { text("ntf-scope", "Scope", &f.scope, |f, v| f.scope = v, "text") }
                            { text("ntf-refresh-token", "Refresh token (Gmail; empty: client credentials)", &f.refresh_token, |f, v| f.refresh_token = v, "password") }
                        </div>
                    }
                    { text("ntf-to", "To (comma-separated)", &f.to, |f, v| f.to = v, "text") }
                    { text("ntf-prefix", "Subject prefix (optional)", &f.subject_prefix, |f, v| f.subject_prefix = v, "text") }
                } else {
                    { text("ntf-url", "Incoming-webhook URL", &f.url, |f, v| f.url = v, "password") }
                    { choice("ntf-style", "Message format", &f.style, |f, v| f.style = v,
                        &[("slack", "Slack"), ("mattermost", "Mattermost"), ("teams", "Microsoft Teams")]) }
                }
            </>
        })
    });

    let empty = ("ntf-empty", "No notifiers yet: nobody is told when jobs end, besides webhooks.");
    let body = item_list(&items.list, "notifier-list", empty, |n| {
        let id = n.id;
        let toggle = {
            let (send, active, name) = (send.clone(), n.active, n.name.clone());
            Callback::from(move |_: MouseEvent| {
                let name = name.clone();
                form::spawn(&send, async move {
                    let patch = NotifierPatch { active: Some(!active), ..NotifierPatch::default() };
                    ItemsAction::Done(match api::notifier_patch(id, &patch).await {
                        Ok(n) if n.active => format!("“{name}” is on again."),
                        Ok(_) => format!("“{name}” is paused: nothing is sent until it is resumed."),
                        Err(e) => format!("Could not change “{name}”: {}", e.words()),
                    })
                });
            })
        };
        let test = {
            let dispatch = dispatch.clone();
            Callback::from(move |_: MouseEvent| {
                dispatch.emit(NotifiersAction::Testing(id));
                form::spawn(&dispatch, async move {
                    let said = match api::notifier_test(id).await {
                        Ok(t) if t.delivered => format!("Test message delivered in {} ms.", t.duration_ms),
                        Ok(t) => format!("Not delivered: {}", t.error.unwrap_or_default()),
                        Err(e) => format!("Could not send a test: {}", e.words()),
                    };
                    NotifiersAction::Tested(id, said)
                });
            })
        };
        let events: Vec<&str> = n.events.iter().map(|e| e.trim_start_matches("job.")).collect();
        html! {
            <li class={classes!("item", (!n.active).then_some("paused"))} data-testid="notifier"
                data-name={n.name.clone()} data-active={n.active.to_string()}>
                <div class="item-main">
                    <span class="item-title">{ &n.name }</span>
                    <span class="tag">{ n.kind.as_str() }</span>
                    if !n.active { <span class="badge status-canceled" data-testid="ntf-paused">{ "paused" }</span> }
                    <p class="item-line">{ destination(n) }</p>
                    <p class="item-line muted">
                        { format!("When a job is {} · {}", events.join(", "),
                            if n.templates.is_empty() { "every job".to_owned() } else { format!("only {}", n.templates.join(", ")) }) }
                    </p>
                    if let Some(t) = state.tests.get(&id) { <p class="item-line" role="status" data-testid="ntf-test-result">{ t }</p> }
                </div>
                { delete_actions(&send, "ntf", &items.confirm, (id, &n.name), api::notifier_delete, html! { <>
                    <button type="button" class="secondary" onclick={test} data-testid="ntf-test">{ "Send test" }</button>
                    <button type="button" class="secondary" onclick={toggle} data-testid="ntf-toggle">
                        { if n.active { "Pause" } else { "Resume" } }
                    </button>
                </> }) }
            </li>
        }
    });

    let deliveries = match &state.sent {
        Load::Loading => Html::default(),
        sent => item_list(sent, "delivery-list", ("ntf-sent-empty", "Nothing sent yet."), |d| {
            let again = {
                let (send, id) = (send.clone(), d.id);
                Callback::from(move |_: MouseEvent| {
                    form::spawn(&send, async move {
                        ItemsAction::Done(match api::notifier_redeliver(id).await {
                            Ok(()) => "Sending it again.".to_owned(),
                            Err(e) => format!("Could not send it again: {}", e.words()),
                        })
                    });
                })
            };
            let state_class = match d.state.as_str() {
                "delivered" => "status-successful",
                "failed" => "status-failed",
                _ => "status-pending",
            };
            html! {
                <li class="item" data-testid="delivery" data-state={d.state.clone()}>
                    <div class="item-main">
                        <span class={classes!("badge", state_class)}>{ &d.state }</span>
                        { " " }
                        <Link to={format!("/jobs/{}", d.job_id)}>{ format!("Job {}", d.job_id) }</Link>
                        { format!(" {} → {}", d.event.trim_start_matches("job."), d.notifier_name.as_deref().unwrap_or("(deleted notifier)")) }
                        <p class="item-line muted">
                            { format!("{} · {} attempt{}", when(d.created), d.attempts, if d.attempts == 1 { "" } else { "s" }) }
                            { d.attempt_log.last().and_then(|a| a.code).map(|c| format!(" · last answer {c}")).unwrap_or_default() }
                        </p>
                        if let Some(e) = &d.last_error { <p class="item-line error">{ e }</p> }
                    </div>
                    if d.state != "pending" && d.notifier_id.is_some() {
                        <div class="item-actions">
                            <button type="button" class="secondary" onclick={again} data-testid="ntf-redeliver">{ "Send again" }</button>
                        </div>
                    }
                </li>
            }
        }),
    };

    // Section, Items::editor and delete_actions make the test ids notifiers, ntf-new, ntf-notice,
    // notifier-editor, ntf-errors, ntf-save, ntf-delete and ntf-delete-confirm.
    let section = Section {
        noun: "notifier",
        short: "ntf",
        title: "Notifications",
        intro: "Mail or a chat message when jobs end, with the failing hosts and what the known errors say.",
        notice: items.notice.as_deref(),
        on_new: items.form.is_none().then(|| send.reform(|_| ItemsAction::Form(Some(NotifierForm::new())))),
    };
    section.view(html! {
        <>
            { for editor }
            { body }
            <h3>{ "Latest notifications" }</h3>
            { deliveries }
        </>
    })
}
