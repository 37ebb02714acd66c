//! The settings sections' shared form and list: an editable list of named items with an add form
//! that opens and closes, whose problems are listed in words before and after saving, a Delete
//! that asks first, and a line saying what the last change came to.
//!
//! [`Items`] is that state, changed by [`ItemsAction`]s (a section whose state holds more embeds it
//! and [`Items::apply`]s them); [`edit`], [`save`] and [`spawn`] make the handlers; [`Section`],
//! [`Items::editor`], [`item_list`] and [`delete_actions`] show it. Test ids come from two names
//! a section gives: its noun (`credential`: `credentials`, `credentials-head`,
//! `credential-editor`, `credential-editor-head`) and a short prefix (`cred`: `cred-new`,
//! `cred-notice`, `cred-errors`, `cred-save`, `cred-delete`, `cred-delete-confirm`).

use std::future::Future;
use std::rc::Rc;

use yew::prelude::*;

use crate::api::{ApiError, Load};
use crate::ui::value_of;

/// An `oninput` handler from a handler of [`Event`]s (typed text is kept as it is typed).
pub fn on_input(cb: Callback<Event>) -> Callback<InputEvent> {
    cb.reform(Event::from)
}

/// A time as the settings lists show it.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A section's list of items (`T`), its add form (`F`), and the key (`K`) that names an item to
/// delete.
#[derive(Clone, PartialEq)]
pub struct Items<T, F, K> {
    /// Bumped after every change: the list is read again.
    pub reload: u32,
    pub list: Load<Vec<T>>,
    /// The add form, while it is open.
    pub form: Option<F>,
    /// What is wrong with the form, found before sending or said by the server.
    pub problems: Option<Vec<String>>,
    /// What the last change came to.
    pub notice: Option<String>,
    /// The item whose Delete waits for a confirmation.
    pub confirm: Option<K>,
    /// A save is on its way.
    pub busy: bool,
}

impl<T, F, K> Default for Items<T, F, K> {
    fn default() -> Self {
        Items {
            reload: 0,
            list: Load::Loading,
            form: None,
            problems: None,
            notice: None,
            confirm: None,
            busy: false,
        }
    }
}

pub enum ItemsAction<T, F, K> {
    Loaded(Result<Vec<T>, ApiError>),
    /// Opens the form on these values, or closes it; either way its problems go.
    Form(Option<F>),
    /// Changes the open form.
    Edit(Box<dyn FnOnce(&mut F)>),
    Problems(Option<Vec<String>>),
    Saving,
    /// The server's answer to a save: the notice to show (the form closes, and a credential's
    /// secret leaves the page's memory with it), or why not.
    Saved(Result<String, ApiError>),
    /// Asks to confirm an item's Delete, or forgets the question.
    Confirm(Option<K>),
    /// What a change came to; the list is read again.
    Done(String),
}

impl<T, F, K> Items<T, F, K> {
    /// Applies `action` (for [`Reducible`], and for a section whose state holds more than this).
    pub fn apply(&mut self, action: ItemsAction<T, F, K>) {
        match action {
            ItemsAction::Loaded(list) => self.list = Load::Loaded(list),
            ItemsAction::Form(form) => {
                self.form = form;
                self.problems = None;
            }
            ItemsAction::Edit(change) => {
                if let Some(form) = &mut self.form {
                    change(form);
                }
            }
            ItemsAction::Problems(problems) => self.problems = problems,
            ItemsAction::Saving => self.busy = true,
            ItemsAction::Saved(Ok(notice)) => {
                self.busy = false;
                self.form = None;
                self.problems = None;
                self.apply(ItemsAction::Done(notice));
            }
            ItemsAction::Saved(Err(e)) => {
                self.busy = false;
                self.problems = Some(vec![e.words()]);
            }
            ItemsAction::Confirm(key) => self.confirm = key,
            ItemsAction::Done(notice) => {
                self.notice = Some(notice);
                self.reload = self.reload.wrapping_add(1);
            }
        }
    }
}

impl<T: Clone, F: Clone, K: Clone> Reducible for Items<T, F, K> {
    type Action = ItemsAction<T, F, K>;

    fn reduce(self: Rc<Self>, action: Self::Action) -> Rc<Self> {
        let mut items = Rc::unwrap_or_clone(self);
        items.apply(action);
        Rc::new(items)
    }
}

/// Where a section sends its [`ItemsAction`]s: its reducer's dispatcher (`to_callback()`,
/// `reform`ed into the section's own action if it has one).
pub type Dispatch<T, F, K> = Callback<ItemsAction<T, F, K>>;

/// Runs `work`, then sends the action it ends with.
pub fn spawn<A: 'static>(send: &Callback<A>, work: impl Future<Output = A> + 'static) {
    let send = send.clone();
    crate::ui::spawn(async move { send.emit(work.await) });
}

/// A field's handler: `set` puts the typed or picked value in the open form.
pub fn edit<T: 'static, F: 'static, K: 'static>(
    send: &Dispatch<T, F, K>,
    set: impl Fn(&mut F, String) + Copy + 'static,
) -> Callback<Event> {
    send.reform(move |e: Event| {
        let value = value_of(&e);
        ItemsAction::Edit(Box::new(move |form| set(form, value)))
    })
}

/// The add form's submit: `check` says what is wrong in words (the server checks the rest), else
/// `post` sends the request and words what was saved.
pub fn save<T: 'static, F: Clone + 'static, K: 'static, Q: 'static, P>(
    send: &Dispatch<T, F, K>,
    form: &F,
    check: fn(&F) -> Result<Q, Vec<String>>,
    post: impl Fn(Q) -> P + 'static,
) -> Callback<SubmitEvent>
where
    P: Future<Output = Result<String, ApiError>> + 'static,
{
    let (send, form) = (send.clone(), form.clone());
    Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        match check(&form) {
            Err(problems) => send.emit(ItemsAction::Problems(Some(problems))),
            Ok(request) => {
                send.emit(ItemsAction::Saving);
                let saved = post(request);
                spawn(&send, async move { ItemsAction::Saved(saved.await) });
            }
        }
    })
}

/// A list: "Loading…", the error in words, `empty` (its test id and words) when there is
/// nothing, else an `item-list` of `item`s.
pub fn item_list<T>(
    list: &Load<Vec<T>>,
    testid: &'static str,
    empty: (&'static str, &'static str),
    item: impl Fn(&T) -> Html,
) -> Html {
    match list {
        Load::Loading => html! { <p class="notice">{ "Loading…" }</p> },
        Load::Loaded(Err(e)) => html! { <p class="error" role="alert">{ e.words() }</p> },
        Load::Loaded(Ok(items)) if items.is_empty() => html! {
            <p class="muted" data-testid={empty.0}>{ empty.1 }</p>
        },
        Load::Loaded(Ok(items)) => html! {
            <ul class="item-list" data-testid={testid}>{ for items.iter().map(item) }</ul>
        },
    }
}

/// An item's actions: `others`, then a Delete button that first asks “Delete “name”?” with
/// Delete and Keep. `remove` deletes the item of `key`; the notice says how that went.
pub fn delete_actions<T: 'static, F: 'static, K: Clone + PartialEq + 'static, P>(
    send: &Dispatch<T, F, K>,
    short: &str,
    confirm: &Option<K>,
    (key, name): (K, &str),
    remove: impl Fn(K) -> P + 'static,
    others: Html,
) -> Html
where
    P: Future<Output = Result<(), ApiError>> + 'static,
{
    if confirm.as_ref() != Some(&key) {
        return html! {
            <div class="item-actions">
                { others }
                <button type="button" class="secondary" onclick={send.reform(move |_| ItemsAction::Confirm(Some(key.clone())))}
                        data-testid={format!("{short}-delete")} aria-label={format!("Delete {name}")}>{ "Delete" }</button>
            </div>
        };
    }
    let delete = {
        let (send, name) = (send.clone(), name.to_owned());
        Callback::from(move |_: MouseEvent| {
            send.emit(ItemsAction::Confirm(None));
            let (removed, name) = (remove(key.clone()), name.clone());
            spawn(&send, async move {
                ItemsAction::Done(match removed.await {
                    Ok(()) => format!("Deleted “{name}”."),
                    Err(e) => format!("Could not delete “{name}”: {}", e.words()),
                })
            });
        })
    };
    html! {
        <div class="item-actions">
            <span role="alert">{ format!("Delete “{name}”? ") }</span>
            <button type="button" class="danger" onclick={delete} data-testid={format!("{short}-delete-confirm")}>{ "Delete" }</button>
            <button type="button" class="secondary" onclick={send.reform(|_| ItemsAction::Confirm(None))}>{ "Keep" }</button>
        </div>
    }
}

/// A settings section with a list and an add form (plain structs rather than components: the
/// app is downloaded on phones, and a component costs more code than it saves here).
pub struct Section<'a> {
    /// What an item is called: the section's test id is its plural, the New button says
    /// "New {noun}".
    pub noun: &'static str,
    /// The prefix of the New button's and the notice's test ids.
    pub short: &'static str,
    pub title: &'static str,
    pub intro: &'static str,
    pub notice: Option<&'a str>,
    /// The New button's handler; none: no button (the person may not add, or the form is open).
    pub on_new: Option<Callback<MouseEvent>>,
}

impl Section<'_> {
    /// The section around `body`: the add form, the list and whatever follows.
    pub fn view(self, body: Html) -> Html {
        let Section { noun, short, title, intro, notice, on_new } = self;
        html! {
            <section class="settings-section" aria-labelledby={format!("{noun}s-head")} data-testid={format!("{noun}s")}>
                <div class="toolbar">
                    <h2 id={format!("{noun}s-head")}>{ title }</h2>
                    <span class="spacer"></span>
                    if let Some(onclick) = on_new {
                        <button type="button" {onclick} data-testid={format!("{short}-new")}>{ format!("New {noun}") }</button>
                    }
                </div>
                <p class="muted">{ intro }</p>
                if let Some(n) = notice { <p class="notice ok" role="status" data-testid={format!("{short}-notice")}>{ n }</p> }
                { body }
            </section>
        }
    }
}

/// The add form ([`Items::editor`]).
pub struct Editor<'a> {
    /// As in [`Section`]: the form's test id is `{noun}-editor`, its title "New {noun}".
    noun: &'static str,
    /// The prefix of the problems' and the Save button's test ids.
    short: &'static str,
    problems: Option<&'a [String]>,
    busy: bool,
    onsubmit: Callback<SubmitEvent>,
    oncancel: Callback<MouseEvent>,
}

impl<T: 'static, F: 'static, K: 'static> Items<T, F, K> {
    /// The add form of these items, sent by `onsubmit` (see [`save`]); Cancel closes it.
    pub fn editor(
        &self,
        send: &Dispatch<T, F, K>,
        (noun, short): (&'static str, &'static str),
        onsubmit: Callback<SubmitEvent>,
    ) -> Editor<'_> {
        let (problems, busy, oncancel) =
            (self.problems.as_deref(), self.busy, send.reform(|_| ItemsAction::Form(None)));
        Editor { noun, short, problems, busy, onsubmit, oncancel }
    }
}

impl Editor<'_> {
    /// The form: its `fields`, the problems in words, Save and Cancel.
    pub fn view(self, fields: Html) -> Html {
        let Editor { noun, short, problems, busy, onsubmit, oncancel } = self;
        html! {
            <form class="card wide settings-editor" {onsubmit} data-testid={format!("{noun}-editor")}
                  aria-labelledby={format!("{noun}-editor-head")} novalidate=true autocomplete="off">
                <h3 id={format!("{noun}-editor-head")}>{ format!("New {noun}") }</h3>
                { fields }
                if let Some(problems) = problems {
                    <div class="error" role="alert" data-testid={format!("{short}-errors")}>
                        { for problems.iter().map(|p| html! { <p>{ p }</p> }) }
                    </div>
                }
                <div class="actions">
                    <button type="submit" disabled={busy} data-testid={format!("{short}-save")}>{ "Save" }</button>
                    <button type="button" class="secondary" onclick={oncancel}>{ "Cancel" }</button>
                </div>
            </form>
        }
    }
}
