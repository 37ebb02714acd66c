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

use crate::api::{self, Load};
use crate::kb::value_of;
use crate::route::Link;
use crate::ui::use_title;

/// An `oninput` handler from a handler of [`Event`]s (typed text is kept as it is typed).
fn on_input(cb: Callback<Event>) -> Callback<InputEvent> {
    Callback::from(move |e: InputEvent| cb.emit(e.into()))
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[function_component(SettingsPage)]
pub fn settings_page() -> Html {
    use_title("Settings".to_owned());
    let session = use_context::<Rc<SessionInfo>>();
    let admin = session.as_ref().is_some_and(|s| s.role >= Role::Admin);
    html! {
        <main class="page settings-page" data-testid="settings-page">
            <div class="toolbar"><h1>{ "Settings" }</h1></div>
            <Credentials {admin} />
            if admin {
                <Notifiers />
            } else {
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

#[function_component(Credentials)]
fn credentials(props: &CredentialsProps) -> Html {
    let reload = use_state(|| 0u32);
    let list = use_state(|| Load::<Vec<Credential>>::Loading);
    let form = use_state(|| None::<CredForm>);
    let problems = use_state(|| None::<Vec<String>>);
    let notice = use_state(|| None::<String>);
    let confirm = use_state(|| None::<String>);
    let busy = use_state(|| false);
    {
        let list = list.clone();
        use_effect_with(*reload, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                list.set(Load::Loaded(api::credentials().await.map(|p| p.results)));
            });
        });
    }
    let set = {
        let form = form.clone();
        move |f: fn(&mut CredForm, String)| {
            let form = form.clone();
            Callback::from(move |e: Event| {
                if let Some(mut v) = (*form).clone() {
                    f(&mut v, value_of(&e));
                    form.set(Some(v));
                }
            })
        }
    };
    let set_input = {
        let form = form.clone();
        move |field: &'static str| {
            let form = form.clone();
            Callback::from(move |e: Event| {
                if let Some(mut v) = (*form).clone() {
                    v.inputs.insert(field.to_owned(), value_of(&e));
                    form.set(Some(v));
                }
            })
        }
    };
    let on_save = {
        let (form, problems, notice, reload, busy) =
            (form.clone(), problems.clone(), notice.clone(), reload.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(f) = (*form).clone() else { return };
            let request = match f.request() {
                Ok(r) => r,
                Err(p) => return problems.set(Some(p)),
            };
            busy.set(true);
            let (form, problems, notice, reload, busy) =
                (form.clone(), problems.clone(), notice.clone(), reload.clone(), busy.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let saved = api::credential_create(&request).await;
                busy.set(false);
                match saved {
                    Ok(c) => {
                        // The secret leaves the page's memory with the form.
                        form.set(None);
                        problems.set(None);
                        notice.set(Some(format!(
                            "Saved “{}”. Its secret is sealed and will not be shown again.",
                            c.name
                        )));
                        reload.set(*reload + 1);
                    }
                    Err(e) => problems.set(Some(vec![e.words()])),
                }
            });
        })
    };
    let open = {
        let (form, problems) = (form.clone(), problems.clone());
        Callback::from(move |_: MouseEvent| {
            problems.set(None);
            form.set(Some(CredForm::new()));
        })
    };
    let close = {
        let (form, problems) = (form.clone(), problems.clone());
        Callback::from(move |_: MouseEvent| {
            problems.set(None);
            form.set(None);
        })
    };
    let on_kind = {
        let (form, problems) = (form.clone(), problems.clone());
        Callback::from(move |e: Event| {
            problems.set(None);
            if let Some(mut v) = (*form).clone() {
                if let Some(k) = CredentialKind::parse(&value_of(&e)) {
                    v.kind = k;
                    v.inputs.clear();
                }
                form.set(Some(v));
            }
        })
    };

    let editor = (*form).clone().map(|f| {
        let (required, optional) = f.kind.fields();
        let fields = required.iter().map(|x| (*x, true)).chain(optional.iter().map(|x| (*x, false)));
        html! {
            <form class="card wide settings-editor" onsubmit={on_save.clone()} data-testid="credential-editor"
                  aria-labelledby="credential-editor-head" novalidate=true autocomplete="off">
                <h3 id="credential-editor-head">{ "New credential" }</h3>
                <div class="filter-grid">
                    <div class="field">
                        <label for="cred-name">{ "Name" }</label>
                        <input id="cred-name" type="text" value={f.name.clone()} oninput={on_input(set(|f, v| f.name = v))}
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
                           oninput={on_input(set(|f, v| f.description = v))} data-testid="cred-description" />
                </div>
                { for fields.map(|(field, needed)| {
                    let id = format!("cred-{field}");
                    let label = if needed { field_label(field).to_owned() } else { format!("{} (optional)", field_label(field)) };
                    let value = f.inputs.get(field).cloned().unwrap_or_default();
                    let cb = set_input(field);
                    let control = if multiline(field) {
                        let oninput = Callback::from(move |e: InputEvent| cb.emit(e.into()));
                        html! { <textarea id={id.clone()} rows="5" spellcheck="false" {value} {oninput}
                                          data-testid={id.clone()} class="mono" /> }
                    } else {
                        let kind = if CredentialKind::secret_field(field) { "password" } else { "text" };
                        let oninput = Callback::from(move |e: InputEvent| cb.emit(e.into()));
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
                        <input id="cred-hosts" type="text" value={f.hosts.clone()} oninput={on_input(set(|f, v| f.hosts = v))}
                               placeholder="git.example.com, *.cmdb.example.com" data-testid="cred-hosts" />
                        <p class="hint">{ "Sent only to inventory URLs, git repositories or Galaxy servers on these hosts; empty: any." }</p>
                    </div>
                }
                if let Some(p) = &*problems {
                    <div class="error" role="alert" data-testid="cred-errors">
                        { for p.iter().map(|p| html! { <p>{ p }</p> }) }
                    </div>
                }
                <div class="actions">
                    <button type="submit" disabled={*busy} data-testid="cred-save">{ "Save" }</button>
                    <button type="button" class="secondary" onclick={close}>{ "Cancel" }</button>
                </div>
            </form>
        }
    });

    let body = match &*list {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(items)) if items.is_empty() => html! {
            <p class="muted" data-testid="cred-empty">{ "No credentials yet." }</p>
        },
        Load::Loaded(Ok(items)) => html! {
            <ul class="item-list" data-testid="credential-list">
                { for items.iter().map(|c| {
                    let name = c.name.clone();
                    let ask = { let confirm = confirm.clone(); let n = name.clone(); Callback::from(move |_: MouseEvent| confirm.set(Some(n.clone()))) };
                    let keep = { let confirm = confirm.clone(); Callback::from(move |_: MouseEvent| confirm.set(None)) };
                    let delete = {
                        let (confirm, notice, reload, n) = (confirm.clone(), notice.clone(), reload.clone(), name.clone());
                        Callback::from(move |_: MouseEvent| {
                            let (confirm, notice, reload, n) = (confirm.clone(), notice.clone(), reload.clone(), n.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                confirm.set(None);
                                notice.set(Some(match api::credential_delete(&n).await {
                                    Ok(()) => format!("Deleted “{n}”."),
                                    Err(e) => format!("Could not delete “{n}”: {}", e.words()),
                                }));
                                reload.set(*reload + 1);
                            });
                        })
                    };
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
                                <div class="item-actions">
                                    if confirm.as_deref() == Some(c.name.as_str()) {
                                        <span role="alert">{ format!("Delete “{}”? ", c.name) }</span>
                                        <button type="button" class="danger" onclick={delete} data-testid="cred-delete-confirm">{ "Delete" }</button>
                                        <button type="button" class="secondary" onclick={keep}>{ "Keep" }</button>
                                    } else {
                                        <button type="button" class="secondary" onclick={ask} data-testid="cred-delete"
                                                aria-label={format!("Delete {}", c.name)}>{ "Delete" }</button>
                                    }
                                </div>
                            }
                        </li>
                    }
                }) }
            </ul>
        },
    };
    html! {
        <section class="settings-section" aria-labelledby="credentials-head" data-testid="credentials">
            <div class="toolbar">
                <h2 id="credentials-head">{ "Credentials" }</h2>
                <span class="spacer"></span>
                if props.admin && form.is_none() {
                    <button type="button" onclick={open} data-testid="cred-new">{ "New credential" }</button>
                }
            </div>
            <p class="muted">
                { "Launches name these for SSH, become and vault passwords, git, inventory URLs and cloud plugins. Secrets are sealed at rest and never shown again." }
            </p>
            if let Some(n) = &*notice { <p class="notice ok" role="status" data-testid="cred-notice">{ n }</p> }
            { for editor }
            { body }
        </section>
    }
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
                if !self.username.trim().is_empty() {
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
            "Mail to {} through {}:{} ({})",
            m.to.join(", "),
            m.host,
            m.port,
            match m.tls {
                shared::notifiers::MailTls::Starttls => "STARTTLS",
                shared::notifiers::MailTls::Tls => "TLS",
                shared::notifiers::MailTls::None => "no encryption",
            }
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

#[function_component(Notifiers)]
fn notifiers() -> Html {
    let reload = use_state(|| 0u32);
    let list = use_state(|| Load::<Vec<Notifier>>::Loading);
    let sent = use_state(|| Load::<Vec<NotifierDelivery>>::Loading);
    let form = use_state(|| None::<NotifierForm>);
    let problems = use_state(|| None::<Vec<String>>);
    let notice = use_state(|| None::<String>);
    let confirm = use_state(|| None::<i64>);
    let tests = use_state(BTreeMap::<i64, String>::new);
    let busy = use_state(|| false);
    {
        let (list, sent) = (list.clone(), sent.clone());
        use_effect_with(*reload, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                list.set(Load::Loaded(api::notifiers().await.map(|p| p.results)));
                sent.set(Load::Loaded(api::notifier_deliveries().await.map(|p| p.results)));
            });
        });
    }
    let set = {
        let form = form.clone();
        move |f: fn(&mut NotifierForm, String)| {
            let form = form.clone();
            Callback::from(move |e: Event| {
                if let Some(mut v) = (*form).clone() {
                    f(&mut v, value_of(&e));
                    form.set(Some(v));
                }
            })
        }
    };
    let toggle_event = {
        let form = form.clone();
        move |event: &'static str| {
            let form = form.clone();
            Callback::from(move |_: Event| {
                if let Some(mut v) = (*form).clone() {
                    if let Some(i) = v.events.iter().position(|e| e == event) {
                        v.events.remove(i);
                    } else {
                        v.events.push(event.to_owned());
                    }
                    form.set(Some(v));
                }
            })
        }
    };
    let on_save = {
        let (form, problems, notice, reload, busy) =
            (form.clone(), problems.clone(), notice.clone(), reload.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(f) = (*form).clone() else { return };
            let request = match f.request() {
                Ok(r) => r,
                Err(p) => return problems.set(Some(p)),
            };
            busy.set(true);
            let (form, problems, notice, reload, busy) =
                (form.clone(), problems.clone(), notice.clone(), reload.clone(), busy.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let saved = api::notifier_create(&request).await;
                busy.set(false);
                match saved {
                    Ok(n) => {
                        form.set(None);
                        problems.set(None);
                        notice.set(Some(format!(
                            "Saved “{}”. Use “Send test” to check it reaches people.",
                            n.name
                        )));
                        reload.set(*reload + 1);
                    }
                    Err(e) => problems.set(Some(vec![e.words()])),
                }
            });
        })
    };
    let open = {
        let (form, problems) = (form.clone(), problems.clone());
        Callback::from(move |_: MouseEvent| {
            problems.set(None);
            form.set(Some(NotifierForm::new()));
        })
    };
    let close = {
        let (form, problems) = (form.clone(), problems.clone());
        Callback::from(move |_: MouseEvent| {
            problems.set(None);
            form.set(None);
        })
    };
    let on_kind = {
        let form = form.clone();
        Callback::from(move |e: Event| {
            if let Some(mut v) = (*form).clone() {
                v.kind = if value_of(&e) == "chat" { NotifierKind::Chat } else { NotifierKind::Mail };
                form.set(Some(v));
            }
        })
    };

    let editor = (*form).clone().map(|f| {
        let text = |id: &'static str, label: &'static str, value: &str, cb: Callback<Event>, kind: &'static str| {
            html! {
                <div class="field">
                    <label for={id}>{ label }</label>
                    <input {id} type={kind} value={value.to_owned()} oninput={on_input(cb)} data-testid={id}
                           autocomplete={if kind == "password" { "new-password" } else { "off" }} />
                </div>
            }
        };
        html! {
            <form class="card wide settings-editor" onsubmit={on_save.clone()} data-testid="notifier-editor"
                  aria-labelledby="notifier-editor-head" novalidate=true autocomplete="off">
                <h3 id="notifier-editor-head">{ "New notifier" }</h3>
                <div class="filter-grid">
                    { text("ntf-name", "Name", &f.name, set(|f, v| f.name = v), "text") }
                    <div class="field">
                        <label for="ntf-kind">{ "Kind" }</label>
                        <select id="ntf-kind" onchange={on_kind} data-testid="ntf-kind">
                            <option value="mail" selected={f.kind == NotifierKind::Mail}>{ "Mail (SMTP)" }</option>
                            <option value="chat" selected={f.kind == NotifierKind::Chat}>{ "Chat (Slack, Mattermost, Teams)" }</option>
                        </select>
                    </div>
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
                { text("ntf-templates", "Only these templates or playbooks (comma-separated; empty: every job)", &f.templates, set(|f, v| f.templates = v), "text") }
                if f.kind == NotifierKind::Mail {
                    <div class="filter-grid">
                        { text("ntf-host", "Mail server", &f.host, set(|f, v| f.host = v), "text") }
                        { text("ntf-port", "Port", &f.port, set(|f, v| f.port = v), "text") }
                        <div class="field">
                            <label for="ntf-tls">{ "Encryption" }</label>
                            <select id="ntf-tls" onchange={set(|f, v| f.tls = v)} data-testid="ntf-tls">
                                { for [("starttls", "STARTTLS (587)"), ("tls", "TLS (465)"), ("none", "none (local relay)")].into_iter().map(|(k, l)| html! {
                                    <option value={k} selected={f.tls == k}>{ l }</option>
                                }) }
                            </select>
                        </div>
                        { text("ntf-username", "User name (optional)", &f.username, set(|f, v| f.username = v), "text") }
                        { text("ntf-password", "Password (optional)", &f.password, set(|f, v| f.password = v), "password") }
                        { text("ntf-from", "From", &f.from, set(|f, v| f.from = v), "text") }
                    </div>
                    { text("ntf-to", "To (comma-separated)", &f.to, set(|f, v| f.to = v), "text") }
                    { text("ntf-prefix", "Subject prefix (optional)", &f.subject_prefix, set(|f, v| f.subject_prefix = v), "text") }
                } else {
                    { text("ntf-url", "Incoming-webhook URL", &f.url, set(|f, v| f.url = v), "password") }
                    <div class="field">
                        <label for="ntf-style">{ "Message format" }</label>
                        <select id="ntf-style" onchange={set(|f, v| f.style = v)} data-testid="ntf-style">
                            { for [("slack", "Slack"), ("mattermost", "Mattermost"), ("teams", "Microsoft Teams")].into_iter().map(|(k, l)| html! {
                                <option value={k} selected={f.style == k}>{ l }</option>
                            }) }
                        </select>
                    </div>
                }
                if let Some(p) = &*problems {
                    <div class="error" role="alert" data-testid="ntf-errors">
                        { for p.iter().map(|p| html! { <p>{ p }</p> }) }
                    </div>
                }
                <div class="actions">
                    <button type="submit" disabled={*busy} data-testid="ntf-save">{ "Save" }</button>
                    <button type="button" class="secondary" onclick={close}>{ "Cancel" }</button>
                </div>
            </form>
        }
    });

    let body = match &*list {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(items)) if items.is_empty() => html! {
            <p class="muted" data-testid="ntf-empty">{ "No notifiers yet: nobody is told when jobs end, besides webhooks." }</p>
        },
        Load::Loaded(Ok(items)) => html! {
            <ul class="item-list" data-testid="notifier-list">
                { for items.iter().map(|n| {
                    let id = n.id;
                    let toggle = {
                        let (notice, reload, active, name) = (notice.clone(), reload.clone(), n.active, n.name.clone());
                        Callback::from(move |_: MouseEvent| {
                            let (notice, reload, name) = (notice.clone(), reload.clone(), name.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                let patch = NotifierPatch { active: Some(!active), ..NotifierPatch::default() };
                                notice.set(Some(match api::notifier_patch(id, &patch).await {
                                    Ok(n) if n.active => format!("“{name}” is on again."),
                                    Ok(_) => format!("“{name}” is paused: nothing is sent until it is resumed."),
                                    Err(e) => format!("Could not change “{name}”: {}", e.words()),
                                }));
                                reload.set(*reload + 1);
                            });
                        })
                    };
                    let test = {
                        let (tests, reload) = (tests.clone(), reload.clone());
                        Callback::from(move |_: MouseEvent| {
                            let (tests, reload) = (tests.clone(), reload.clone());
                            let mut pending = (*tests).clone();
                            pending.insert(id, "Sending a test message…".to_owned());
                            tests.set(pending.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                let said = match api::notifier_test(id).await {
                                    Ok(t) if t.delivered => format!("Test message delivered in {} ms.", t.duration_ms),
                                    Ok(t) => format!("Not delivered: {}", t.error.unwrap_or_default()),
                                    Err(e) => format!("Could not send a test: {}", e.words()),
                                };
                                pending.insert(id, said);
                                tests.set(pending);
                                reload.set(*reload + 1);
                            });
                        })
                    };
                    let ask = { let confirm = confirm.clone(); Callback::from(move |_: MouseEvent| confirm.set(Some(id))) };
                    let keep = { let confirm = confirm.clone(); Callback::from(move |_: MouseEvent| confirm.set(None)) };
                    let delete = {
                        let (confirm, notice, reload, name) = (confirm.clone(), notice.clone(), reload.clone(), n.name.clone());
                        Callback::from(move |_: MouseEvent| {
                            let (confirm, notice, reload, name) = (confirm.clone(), notice.clone(), reload.clone(), name.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                confirm.set(None);
                                notice.set(Some(match api::notifier_delete(id).await {
                                    Ok(()) => format!("Deleted “{name}”."),
                                    Err(e) => format!("Could not delete “{name}”: {}", e.words()),
                                }));
                                reload.set(*reload + 1);
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
                                if let Some(t) = tests.get(&id) { <p class="item-line" role="status" data-testid="ntf-test-result">{ t }</p> }
                            </div>
                            <div class="item-actions">
                                if *confirm == Some(id) {
                                    <span role="alert">{ format!("Delete “{}”? ", n.name) }</span>
                                    <button type="button" class="danger" onclick={delete} data-testid="ntf-delete-confirm">{ "Delete" }</button>
                                    <button type="button" class="secondary" onclick={keep}>{ "Keep" }</button>
                                } else {
                                    <button type="button" class="secondary" onclick={test} data-testid="ntf-test">{ "Send test" }</button>
                                    <button type="button" class="secondary" onclick={toggle} data-testid="ntf-toggle">
                                        { if n.active { "Pause" } else { "Resume" } }
                                    </button>
                                    <button type="button" class="secondary" onclick={ask} data-testid="ntf-delete"
                                            aria-label={format!("Delete {}", n.name)}>{ "Delete" }</button>
                                }
                            </div>
                        </li>
                    }
                }) }
            </ul>
        },
    };

    let deliveries = match &*sent {
        Load::Loading => Html::default(),
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(d)) if d.is_empty() => html! {
            <p class="muted" data-testid="ntf-sent-empty">{ "Nothing sent yet." }</p>
        },
        Load::Loaded(Ok(d)) => html! {
            <ul class="item-list" data-testid="delivery-list">
                { for d.iter().map(|d| {
                    let again = {
                        let (notice, reload, id) = (notice.clone(), reload.clone(), d.id);
                        Callback::from(move |_: MouseEvent| {
                            let (notice, reload) = (notice.clone(), reload.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                notice.set(Some(match api::notifier_redeliver(id).await {
                                    Ok(()) => "Sending it again.".to_owned(),
                                    Err(e) => format!("Could not send it again: {}", e.words()),
                                }));
                                reload.set(*reload + 1);
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
                }) }
            </ul>
        },
    };

    html! {
        <section class="settings-section" aria-labelledby="notifiers-head" data-testid="notifiers">
            <div class="toolbar">
                <h2 id="notifiers-head">{ "Notifications" }</h2>
                <span class="spacer"></span>
                if form.is_none() {
                    <button type="button" onclick={open} data-testid="ntf-new">{ "New notifier" }</button>
                }
            </div>
            <p class="muted">
                { "Mail or a chat message when jobs end, with the failing hosts and what the known errors say." }
            </p>
            if let Some(n) = &*notice { <p class="notice ok" role="status" data-testid="ntf-notice">{ n }</p> }
            { for editor }
            { body }
            <h3>{ "Latest notifications" }</h3>
            { deliveries }
        </section>
    }
}
