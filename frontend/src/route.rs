//! The page's routes and its URL: which page the path names, and the query string as the state of
//! a page (filters, tab, line) so that any view can be bookmarked and shared.
//!
//! A few lines over the History API instead of a router crate: a handful of flat routes do not
//! need one, and the bundle stays smaller.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::UrlSearchParams;
use yew::prelude::*;

/// The SPA's pages (the contract's `/` and `/jobs/{id}`, plus the launch form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Jobs,
    Job(i64),
    Launch,
    Schedules,
    Kb,
    Requests,
    Dashboard,
    Settings,
    Audit,
    NotFound,
}

impl Route {
    pub fn parse(path: &str) -> Route {
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [] => Route::Jobs,
            ["launch"] => Route::Launch,
            ["schedules"] => Route::Schedules,
            ["kb"] => Route::Kb,
            ["requests"] => Route::Requests,
            ["dashboard"] => Route::Dashboard,
            ["settings"] => Route::Settings,
            ["audit"] => Route::Audit,
            ["jobs", id] => id.parse().ok().filter(|id| *id > 0).map_or(Route::NotFound, Route::Job),
            _ => Route::NotFound,
        }
    }
}

/// Where the page is: path and query string (without `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub route: Route,
    pub query: String,
}

impl Location {
    fn current() -> Location {
        let loc = web_sys::window().map(|w| w.location());
        let path = loc.as_ref().and_then(|l| l.pathname().ok()).unwrap_or_default();
        let search = loc.as_ref().and_then(|l| l.search().ok()).unwrap_or_default();
        Location { route: Route::parse(&path), query: search.trim_start_matches('?').to_owned() }
    }

    /// One query parameter, `None` when absent or empty.
    pub fn param(&self, name: &str) -> Option<String> {
        UrlSearchParams::new_with_str(&self.query).ok()?.get(name).filter(|v| !v.is_empty())
    }
}

/// Navigation: the current location and the way to move.
#[derive(Clone)]
pub struct Nav {
    pub location: Location,
    set: Rc<dyn Fn(Location)>,
}

impl PartialEq for Nav {
    fn eq(&self, other: &Self) -> bool {
        self.location == other.location
    }
}

impl Nav {
    /// Goes to `path` (with its own query string), as a new history entry.
    pub fn push(&self, path_and_query: &str) {
        self.go(path_and_query, false);
    }

    /// Changes the URL without a history entry (typing in a filter, paging).
    pub fn replace(&self, path_and_query: &str) {
        self.go(path_and_query, true);
    }

    fn go(&self, target: &str, replace: bool) {
        let Some(window) = web_sys::window() else { return };
        let Ok(history) = window.history() else { return };
        // `?embed=1` is a property of the frame the page sits in, not of one page: keep it.
        let target = keep_embed(target, &self.location.query);
        let result = if replace {
            history.replace_state_with_url(&JsValue::NULL, "", Some(&target))
        } else {
            history.push_state_with_url(&JsValue::NULL, "", Some(&target))
        };
        if result.is_ok() {
            if !replace {
                window.scroll_to_with_x_and_y(0.0, 0.0);
            }
            (self.set)(Location::current());
        }
    }
}

fn keep_embed(target: &str, current_query: &str) -> String {
    let embedded = UrlSearchParams::new_with_str(current_query).ok().and_then(|p| p.get("embed"));
    match embedded {
        Some(v) if v == "1" && !target.contains("embed=") => {
            let sep = if target.contains('?') { '&' } else { '?' };
            format!("{target}{sep}embed=1")
        }
        _ => target.to_owned(),
    }
}

/// Provides [`Nav`] to the whole page and follows the browser's back and forward buttons.
#[hook]
pub fn use_nav_provider() -> Nav {
    let location = use_state_eq(Location::current);
    {
        let location = location.clone();
        use_effect_with((), move |_| {
            let listener = Closure::<dyn Fn()>::new(move || location.set(Location::current()));
            let window = web_sys::window();
            if let Some(w) = &window {
                let _ = w.add_event_listener_with_callback("popstate", listener.as_ref().unchecked_ref());
            }
            move || {
                if let Some(w) = window {
                    let _ =
                        w.remove_event_listener_with_callback("popstate", listener.as_ref().unchecked_ref());
                }
            }
        });
    }
    let setter = location.setter();
    Nav { location: (*location).clone(), set: Rc::new(move |l| setter.set(l)) }
}

/// The navigation the page provides.
#[hook]
pub fn use_nav() -> Nav {
    use_context::<Nav>().unwrap_or_else(|| Nav { location: Location::current(), set: Rc::new(|_| {}) })
}

/// A same-page link: a real `<a href>` (open in a new tab, copy the address) that navigates
/// without reloading when clicked plainly.
#[derive(Properties, PartialEq)]
pub struct LinkProps {
    pub to: String,
    #[prop_or_default]
    pub class: Classes,
    #[prop_or_default]
    pub children: Html,
    #[prop_or_default]
    pub testid: Option<AttrValue>,
    #[prop_or_default]
    pub title: Option<AttrValue>,
}

#[function_component(Link)]
pub fn link(props: &LinkProps) -> Html {
    let nav = use_nav();
    let href = keep_embed(&props.to, &nav.location.query);
    let onclick = {
        let to = props.to.clone();
        Callback::from(move |e: MouseEvent| {
            if e.ctrl_key() || e.meta_key() || e.shift_key() || e.alt_key() || e.button() != 0 {
                return;
            }
            e.prevent_default();
            nav.push(&to);
        })
    };
    html! {
        <a {href} class={props.class.clone()} {onclick} data-testid={props.testid.clone()}
           title={props.title.clone()}>
            { props.children.clone() }
        </a>
    }
}

/// Builds a query string from pairs, leaving out empty values.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let Ok(params) = UrlSearchParams::new() else { return String::new() };
    for (k, v) in pairs {
        if !v.is_empty() {
            params.append(k, &v);
        }
    }
    String::from(params.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages() {
        assert_eq!(Route::parse("/"), Route::Jobs);
        assert_eq!(Route::parse("/jobs/42"), Route::Job(42));
        assert_eq!(Route::parse("/jobs/42/"), Route::Job(42));
        assert_eq!(Route::parse("/jobs/x"), Route::NotFound);
        assert_eq!(Route::parse("/jobs/0"), Route::NotFound);
        assert_eq!(Route::parse("/launch"), Route::Launch);
    }
}
