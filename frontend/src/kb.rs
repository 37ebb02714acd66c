//! The knowledge base of known errors (`/kb`): the entries with a search and a tag filter, and
//! for operators an editor with a "Try it" box that lists the recent failures a rule would match
//! before it is saved. `/kb?new=1&pattern=…&module=…&task=…` opens the editor pre-filled (the job
//! page links there from a failure nothing explains).

use std::rc::Rc;

use shared::kb::{KbEntry, KbEntryInput, KbField, KbMatch, KbTryMatch};
use shared::Role;
use yew::prelude::*;

use crate::api::{self, ApiError, Load};
use crate::markdown::markdown;
use crate::route::{use_nav, Link};
use crate::session::use_session;
use crate::ui::{use_title, value_of};

/// The editor's fields, as typed.
#[derive(Clone, PartialEq, Default)]
struct Form {
    title: String,
    field: String,
    kind: String,
    pattern: String,
    module: String,
    task: String,
    solution: String,
    tags: String,
}

impl Form {
    fn of(e: &KbEntryInput) -> Form {
        Form {
            title: e.title.clone(),
            field: field_key(e.field).into(),
            kind: if e.kind == KbMatch::Regex { "regex" } else { "substring" }.into(),
            pattern: e.pattern.clone(),
            module: e.module.clone().unwrap_or_default(),
            task: e.task.clone().unwrap_or_default(),
            solution: e.solution.clone(),
            tags: e.tags.join(", "),
        }
    }

    fn input(&self) -> KbEntryInput {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        KbEntryInput {
            title: self.title.trim().to_owned(),
            field: match self.field.as_str() {
                "message" => KbField::Message,
                "stderr" => KbField::Stderr,
                "stdout" => KbField::Stdout,
                "module" => KbField::Module,
                _ => KbField::Any,
            },
            kind: if self.kind == "regex" { KbMatch::Regex } else { KbMatch::Substring },
            pattern: self.pattern.clone(),
            module: opt(&self.module),
            task: opt(&self.task),
            solution: self.solution.clone(),
            tags: self.tags.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
        }
    }

    /// What is wrong before asking the server, in words; the server checks the rest (a regular
    /// expression that does not compile, lengths).
    fn problems(&self, for_try: bool) -> Vec<String> {
        let mut out = Vec::new();
        if !for_try && self.title.trim().is_empty() {
            out.push("Give the entry a title.".to_owned());
        }
        if self.pattern.trim().is_empty() {
            out.push("Give the pattern to look for in the failure.".to_owned());
        }
        out
    }
}

fn field_key(f: KbField) -> &'static str {
    match f {
        KbField::Any => "any",
        KbField::Message => "message",
        KbField::Stderr => "stderr",
        KbField::Stdout => "stdout",
        KbField::Module => "module",
    }
}

#[derive(Clone, PartialEq)]
struct Editing {
    id: Option<i64>,
    form: Form,
}

/// The page's state: the search, the list, the entry being edited and what trying or saving it
/// answered.
#[derive(Clone, PartialEq)]
struct KbState {
    q: String,
    tag: String,
    /// Bumped after a save or a delete: the list is read again.
    reload: u32,
    list: Load<Vec<KbEntry>>,
    notice: Option<String>,
    editing: Option<Editing>,
    /// What is wrong with the entry, found before sending or said by the server.
    problems: Option<Vec<String>>,
    tried: Option<Load<Vec<KbTryMatch>>>,
    confirm_delete: Option<i64>,
    busy: bool,
}

enum KbAction {
    Search(String),
    Tag(String),
    Listed(Result<Vec<KbEntry>, ApiError>),
    /// Opens the editor on an entry, or on a new one.
    Open(Option<KbEntry>),
    Close,
    Edit(fn(&mut Form, String), String),
    Refused(Vec<String>),
    Trying,
    Tried(Result<Vec<KbTryMatch>, ApiError>),
    Saving,
    Saved(String),
    AskDelete(Option<i64>),
    Deleted(String),
}

impl KbState {
    /// `?new=1&title=…&pattern=…` (from a job's failure) opens a new entry filled in.
    fn new(nav: &crate::route::Location) -> KbState {
        let editing = nav.param("new").is_some().then(|| Editing {
            id: None,
            form: Form {
                title: nav.param("title").unwrap_or_default(),
                pattern: nav.param("pattern").unwrap_or_default(),
                module: nav.param("module").unwrap_or_default(),
                task: nav.param("task").unwrap_or_default(),
                field: "any".into(),
                kind: "substring".into(),
                ..Form::default()
            },
        });
        KbState {
            q: String::new(),
            tag: String::new(),
            reload: 0,
            list: Load::Loading,
            notice: None,
            editing,
            problems: None,
            tried: None,
            confirm_delete: None,
            busy: false,
        }
    }
}

impl Reducible for KbState {
    type Action = KbAction;

    fn reduce(self: Rc<Self>, action: KbAction) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            KbAction::Search(q) => s.q = q,
            KbAction::Tag(t) => s.tag = t,
            KbAction::Listed(r) => s.list = Load::Loaded(r),
            KbAction::Open(e) => {
                s.problems = None;
                s.tried = None;
                s.editing = Some(match e {
                    Some(e) => Editing { id: Some(e.id), form: Form::of(&e.entry) },
                    None => Editing {
                        id: None,
                        form: Form { field: "any".into(), kind: "substring".into(), ..Form::default() },
                    },
                });
            }
            KbAction::Close => s.editing = None,
            KbAction::Edit(f, v) => {
                if let Some(ed) = &mut s.editing {
                    f(&mut ed.form, v);
                }
            }
            KbAction::Refused(problems) => {
                s.busy = false;
                s.problems = Some(problems);
            }
            KbAction::Trying => {
                s.problems = None;
                s.tried = Some(Load::Loading);
            }
            KbAction::Tried(r) => s.tried = Some(Load::Loaded(r)),
            KbAction::Saving => s.busy = true,
            KbAction::Saved(title) => {
                s.busy = false;
                s.notice = Some(format!("Saved “{title}”. Jobs are re-checked against it."));
                s.problems = None;
                s.editing = None;
                s.reload += 1;
            }
            KbAction::AskDelete(id) => s.confirm_delete = id,
            KbAction::Deleted(notice) => {
                s.confirm_delete = None;
                s.notice = Some(notice);
                s.reload += 1;
            }
        }
        Rc::new(s)
    }
}

#[function_component(KbPage)]
pub fn kb_page() -> Html {
    use_title("Known errors".to_owned());
    let nav = use_nav();
    let session = use_session();
    let may_edit = session.as_ref().is_some_and(|s| s.may(Role::Operator));
    let state = use_reducer(|| KbState::new(&nav.location));

    // Only the newest list request may fill the list: a reload after saving that answers after
    // the search typed meanwhile must not overwrite the search's results.
    {
        let (dispatcher, latest) = (state.dispatcher(), crate::ui::use_latest());
        use_effect_with((state.q.clone(), state.reload), move |(q, _)| {
            let q = q.clone();
            let mine = latest.ask();
            crate::ui::spawn(async move {
                let loaded = api::kb_list(&q, "").await.map(|p| p.results);
                if latest.is(mine) {
                    dispatcher.dispatch(KbAction::Listed(loaded));
                }
            });
        });
    }

    let dispatcher = state.dispatcher();
    let open = {
        let d = dispatcher.clone();
        Callback::from(move |e: Option<KbEntry>| d.dispatch(KbAction::Open(e)))
    };
    let close = {
        let d = dispatcher.clone();
        let nav = nav.clone();
        Callback::from(move |_: MouseEvent| {
            d.dispatch(KbAction::Close);
            if nav.location.param("new").is_some() {
                nav.replace("/kb");
            }
        })
    };
    let set = {
        let d = dispatcher.clone();
        move |f: fn(&mut Form, String)| {
            let d = d.clone();
            Callback::from(move |e: Event| d.dispatch(KbAction::Edit(f, value_of(&e))))
        }
    };
    let on_try = {
        let d = dispatcher.clone();
        let editing = state.editing.clone();
        Callback::from(move |_: MouseEvent| {
            let Some(ed) = editing.clone() else { return };
            let problems = ed.form.problems(true);
            if !problems.is_empty() {
                return d.dispatch(KbAction::Refused(problems));
            }
            d.dispatch(KbAction::Trying);
            let d = d.clone();
            crate::ui::spawn(async move {
                d.dispatch(KbAction::Tried(api::kb_try(&ed.form.input()).await.map(|p| p.results)));
            });
        })
    };
    let on_save = {
        let d = dispatcher.clone();
        let editing = state.editing.clone();
        let nav = nav.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(ed) = editing.clone() else { return };
            let problems = ed.form.problems(false);
            if !problems.is_empty() {
                return d.dispatch(KbAction::Refused(problems));
            }
            d.dispatch(KbAction::Saving);
            let (d, nav) = (d.clone(), nav.clone());
            crate::ui::spawn(async move {
                match api::kb_save(ed.id, &ed.form.input()).await {
                    Ok(entry) => {
                        d.dispatch(KbAction::Saved(entry.entry.title));
                        if nav.location.param("new").is_some() {
                            nav.replace("/kb");
                        }
                    }
                    Err(e) => d.dispatch(KbAction::Refused(vec![e.words()])),
                }
            });
        })
    };
    let on_delete = {
        let d = dispatcher.clone();
        Callback::from(move |(id, title): (i64, String)| {
            let d = d.clone();
            crate::ui::spawn(async move {
                d.dispatch(KbAction::Deleted(match api::kb_delete(id).await {
                    Ok(()) => format!("Deleted “{title}”."),
                    Err(e) => format!("Could not delete “{title}”: {}", e.words()),
                }));
            });
        })
    };

    let on_q = {
        let d = dispatcher.clone();
        Callback::from(move |e: InputEvent| d.dispatch(KbAction::Search(value_of(&e.into()))))
    };
    let on_tag = {
        let d = dispatcher.clone();
        Callback::from(move |e: Event| d.dispatch(KbAction::Tag(value_of(&e))))
    };

    let editor = state.editing.clone().map(|ed| {
        let f = &ed.form;
        let tried_view = match &state.tried {
            None => Html::default(),
            Some(Load::Loading) => html! { <p class="notice">{ "Looking through recent failures…" }</p> },
            Some(Load::Loaded(Err(e))) => html! { <p class="error" role="alert">{ e.words() }</p> },
            Some(Load::Loaded(Ok(m))) if m.is_empty() => html! {
                <p class="notice" data-testid="kb-try-none">{ "This rule matches none of the recent failures." }</p>
            },
            Some(Load::Loaded(Ok(m))) => html! {
                <div data-testid="kb-try-results">
                    <p>{ format!("This rule matches {} recent failure{}:", m.len(), if m.len() == 1 { "" } else { "s" }) }</p>
                    <ul class="tries">
                        { for m.iter().map(|t| html! {
                            <li data-testid="kb-try-match">
                                <Link to={format!("/jobs/{}", t.job_id)}>{ format!("{} #{}", t.job_name, t.job_id) }</Link>
                                { format!(" · {} · {}", t.host.as_deref().unwrap_or("—"), t.task.as_deref().unwrap_or("—")) }
                                <pre class="block stderr">{ &t.error }</pre>
                            </li>
                        }) }
                    </ul>
                </div>
            },
        };
        let text = |id: &'static str, label: &'static str, value: &str, cb: Callback<Event>, hint: &'static str| {
            let oninput = Callback::from(move |e: InputEvent| cb.emit(e.into()));
            html! {
                <div class="field">
                    <label for={id}>{ label }</label>
                    <input {id} type="text" value={value.to_owned()} {oninput} data-testid={id} />
                    if !hint.is_empty() { <p class="hint">{ hint }</p> }
                </div>
            }
        };
        let sol_cb = set(|f, v| f.solution = v);
        let on_solution = Callback::from(move |e: InputEvent| sol_cb.emit(e.into()));
        html! {
            <form class="card wide kb-editor" onsubmit={on_save.clone()} data-testid="kb-editor" aria-labelledby="kb-editor-head" novalidate=true>
                <h2 id="kb-editor-head">{ if ed.id.is_some() { "Edit entry" } else { "New entry" } }</h2>
                { text("kb-title", "Title", &f.title, set(|f, v| f.title = v), "") }
                <div class="filter-grid">
                    <div class="field">
                        <label for="kb-field">{ "Look in" }</label>
                        <select id="kb-field" onchange={set(|f, v| f.field = v)} data-testid="kb-field">
                            { for [("any", "message, stderr, stdout or module"), ("message", "message"), ("stderr", "stderr"), ("stdout", "stdout"), ("module", "module")]
                                .into_iter().map(|(k, l)| html! { <option value={k} selected={f.field == k}>{ l }</option> }) }
                        </select>
                    </div>
                    <div class="field">
                        <label for="kb-kind">{ "Match" }</label>
                        <select id="kb-kind" onchange={set(|f, v| f.kind = v)} data-testid="kb-kind">
                            <option value="substring" selected={f.kind != "regex"}>{ "contains the text (any case)" }</option>
                            <option value="regex" selected={f.kind == "regex"}>{ "regular expression" }</option>
                        </select>
                    </div>
                </div>
                { text("kb-pattern", "Pattern", &f.pattern, set(|f, v| f.pattern = v), "") }
                <div class="filter-grid">
                    { text("kb-module", "Only the module (optional)", &f.module, set(|f, v| f.module = v), "e.g. ansible.builtin.dnf or dnf") }
                    { text("kb-task", "Only tasks named (optional)", &f.task, set(|f, v| f.task = v), "part of the task's name") }
                </div>
                <div class="field">
                    <label for="kb-solution">{ "Solution (Markdown: paragraphs, * lists, `code`, **bold**)" }</label>
                    <textarea id="kb-solution" rows="6" value={f.solution.clone()} oninput={on_solution} data-testid="kb-solution" />
                </div>
                { text("kb-tags", "Tags (comma-separated)", &f.tags, set(|f, v| f.tags = v), "") }
                if let Some(problems) = &state.problems {
                    <div class="error" role="alert" data-testid="kb-errors">
                        { for problems.iter().map(|p| html! { <p>{ p }</p> }) }
                    </div>
                }
                <div class="actions">
                    <button type="submit" disabled={state.busy} data-testid="kb-save">{ "Save" }</button>
                    <button type="button" class="secondary" onclick={on_try.clone()} data-testid="kb-try">{ "Try it" }</button>
                    <button type="button" class="secondary" onclick={close.clone()}>{ "Cancel" }</button>
                </div>
                { tried_view }
                if !f.solution.trim().is_empty() {
                    <details class="preview"><summary>{ "Preview of the solution" }</summary>{ markdown(&f.solution) }</details>
                }
            </form>
        }
    });

    let tag = &state.tag;
    let body = match &state.list {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(entries)) => {
            let mut tags: Vec<String> = entries.iter().flat_map(|e| e.entry.tags.clone()).collect();
            tags.sort();
            tags.dedup();
            if !tag.is_empty() && !tags.contains(tag) {
                tags.push(tag.clone());
            }
            let shown: Vec<&KbEntry> =
                entries.iter().filter(|e| tag.is_empty() || e.entry.tags.contains(tag)).collect();
            html! {
                <>
                <div class="filter-row">
                    <div class="field">
                        <label for="kb-search">{ "Search" }</label>
                        <input id="kb-search" type="search" value={state.q.clone()} oninput={on_q} placeholder="title, pattern or solution" data-testid="kb-search" />
                    </div>
                    <div class="field">
                        <label for="kb-tag">{ "Tag" }</label>
                        <select id="kb-tag" onchange={on_tag} data-testid="kb-tag">
                            <option value="" selected={tag.is_empty()}>{ "all tags" }</option>
                            { for tags.iter().map(|t| html! { <option value={t.clone()} selected={t == tag}>{ t }</option> }) }
                        </select>
                    </div>
                </div>
                <p class="muted" data-testid="kb-count">{ format!("{} entr{}", shown.len(), if shown.len() == 1 { "y" } else { "ies" }) }</p>
                <ul class="kb-list">
                    { for shown.into_iter().map(|e| {
                        let edit = { let open = open.clone(); let e = e.clone(); Callback::from(move |_: MouseEvent| open.emit(Some(e.clone()))) };
                        let ask = { let d = dispatcher.clone(); let id = e.id; Callback::from(move |_: MouseEvent| d.dispatch(KbAction::AskDelete(Some(id)))) };
                        let keep = { let d = dispatcher.clone(); Callback::from(move |_: MouseEvent| d.dispatch(KbAction::AskDelete(None))) };
                        let delete = { let d = on_delete.clone(); let id = e.id; let t = e.entry.title.clone(); Callback::from(move |_: MouseEvent| d.emit((id, t.clone()))) };
                        let rule = format!("{} {} “{}”{}{}",
                            field_key(e.entry.field),
                            if e.entry.kind == KbMatch::Regex { "matches" } else { "contains" },
                            e.entry.pattern,
                            e.entry.module.as_ref().map(|m| format!(", module {m}")).unwrap_or_default(),
                            e.entry.task.as_ref().map(|t| format!(", task “{t}”")).unwrap_or_default());
                        html! {
                            <li class="kb-entry" data-testid="kb-entry" data-kb-id={e.id.to_string()}>
                                <details>
                                    <summary>
                                        <span class="kb-title">{ &e.entry.title }</span>
                                        { for e.entry.tags.iter().map(|t| html! { <span class="tag">{ t }</span> }) }
                                    </summary>
                                    <p class="muted rule"><code>{ rule }</code></p>
                                    { markdown(&e.entry.solution) }
                                    <p class="muted">{ format!("Changed by {} on {}{}", e.modified_by, e.modified.format("%Y-%m-%d %H:%M UTC"), if e.seeded { " (shipped with Playdeck)" } else { "" }) }</p>
                                </details>
                                if may_edit {
                                    <div class="kb-actions">
                                        if state.confirm_delete == Some(e.id) {
                                            <span role="alert">{ format!("Delete “{}”? ", e.entry.title) }</span>
                                            <button type="button" class="danger" onclick={delete} data-testid="kb-delete-confirm">{ "Delete" }</button>
                                            <button type="button" class="secondary" onclick={keep}>{ "Keep" }</button>
                                        } else {
                                            <button type="button" class="secondary" onclick={edit} data-testid="kb-edit" aria-label={format!("Edit {}", e.entry.title)}>{ "Edit" }</button>
                                            <button type="button" class="secondary" onclick={ask} data-testid="kb-delete" aria-label={format!("Delete {}", e.entry.title)}>{ "Delete" }</button>
                                        }
                                    </div>
                                }
                            </li>
                        }
                    }) }
                </ul>
                </>
            }
        }
    };
    let new_entry = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.emit(None))
    };
    html! {
        <main class="page kb-page" data-testid="kb-page">
            <div class="toolbar">
                <h1>{ "Known errors" }</h1>
                <span class="spacer"></span>
                if may_edit && state.editing.is_none() {
                    <button type="button" onclick={new_entry} data-testid="kb-new">{ "New entry" }</button>
                }
            </div>
            <p class="muted">{ "Failed tasks are matched against these entries; the job page shows the solutions." }</p>
            if let Some(n) = &state.notice { <p class="notice ok" role="status" data-testid="kb-notice">{ n }</p> }
            { for editor }
            { body }
        </main>
    }
}
