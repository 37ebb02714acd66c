//! The job's output as a terminal: ANSI colours, line numbers that open the line's event, search
//! with next/previous, and follow mode. Only the lines in view (and a margin) are in the DOM, so a
//! 100k-line output scrolls as smoothly as a short one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use web_sys::{Element, HtmlInputElement};
use yew::prelude::*;

use crate::ansi::{self, Style};
use crate::store::{find_all_ci, JobEvents};

/// Height of one line in pixels; the CSS gives `.out .line` the same.
pub const LINE_PX: f64 = 20.0;
/// Lines rendered above and below the visible ones, so fast scrolling shows no blank.
const MARGIN: usize = 40;

/// The page's events, shared with its views; equal when they are the same store.
#[derive(Clone, Default)]
pub struct Shared(pub Rc<RefCell<JobEvents>>);

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Properties, PartialEq)]
pub struct OutputProps {
    pub job_id: i64,
    pub store: Shared,
    /// Changes whenever the store does.
    pub version: u64,
    /// The job still runs: the view starts at the end and follows it.
    pub live: bool,
    /// The selected line (0-based), from the URL.
    pub selected: Option<usize>,
    pub on_select: Callback<usize>,
}

#[function_component(Output)]
pub fn output(props: &OutputProps) -> Html {
    let view = use_node_ref();
    let search_input = use_node_ref();
    let scroll_top = use_state_eq(|| 0.0f64);
    let height = use_state_eq(|| 600.0f64);
    let follow = use_state_eq(|| props.live);
    // Lines there were when following stopped, to say how many came since.
    let lines_at_stop = use_state_eq(|| 0usize);
    let query = use_state_eq(String::new);
    let current = use_state_eq(|| 0usize);
    // A scroll the page made itself (following, jumping to a match): not the person scrolling.
    let programmatic = use_mut_ref(|| Cell::new(false));
    // Where to scroll after the next render.
    let jump_to = use_mut_ref(|| None::<usize>);

    let store = props.store.0.borrow();
    let total = store.line_count();
    let matches = {
        let store = props.store.clone();
        use_memo(((*query).clone(), props.version), move |(q, _)| store.0.borrow().search(q))
    };

    // Jump to a line selected from outside (a link with ?line=, a host's event) once it exists.
    {
        let jump_to = jump_to.clone();
        let follow = follow.clone();
        let exists = props.selected.is_some_and(|n| n < total);
        let rerender = use_force_update();
        use_effect_with((props.selected, exists), move |(selected, exists)| {
            if let (Some(n), true) = (selected, exists) {
                follow.set(false);
                *jump_to.borrow_mut() = Some(*n);
                rerender.force_update();
            }
        });
    }

    // After each render: follow the end, or scroll to a wanted line; and keep the height current.
    {
        let view = view.clone();
        let follow = *follow;
        let height = height.clone();
        let scroll_top = scroll_top.clone();
        let jump_to = jump_to.clone();
        let programmatic = programmatic.clone();
        use_effect(move || {
            if let Some(el) = view.cast::<Element>() {
                height.set(el.client_height() as f64);
                let target = if let Some(n) = jump_to.borrow_mut().take() {
                    // A line already in view stays where it is; another one comes to the middle.
                    let (line_top, top, h) =
                        ((n as f64) * LINE_PX, el.scroll_top() as f64, el.client_height() as f64);
                    let in_view = line_top >= top && line_top + LINE_PX <= top + h;
                    (!in_view).then(|| (line_top - h / 2.0 + LINE_PX).max(0.0) as i32)
                } else if follow {
                    let bottom = el.scroll_height() - el.client_height();
                    (el.scroll_top() < bottom).then_some(bottom)
                } else {
                    None
                };
                if let Some(top) = target {
                    if top != el.scroll_top() {
                        programmatic.borrow().set(true);
                        el.set_scroll_top(top);
                    }
                    scroll_top.set(el.scroll_top() as f64);
                }
            }
        });
    }

    let onscroll = {
        let scroll_top = scroll_top.clone();
        let height = height.clone();
        let follow = follow.clone();
        let lines_at_stop = lines_at_stop.clone();
        let programmatic = programmatic.clone();
        let live = props.live;
        Callback::from(move |e: Event| {
            let Some(el) = e.target_dyn_into::<Element>() else { return };
            let top = el.scroll_top() as f64;
            scroll_top.set(top);
            height.set(el.client_height() as f64);
            let by_page = programmatic.borrow().replace(false);
            let at_bottom = top + el.client_height() as f64 >= el.scroll_height() as f64 - LINE_PX / 2.0;
            if by_page {
                return;
            }
            if *follow && !at_bottom {
                follow.set(false);
                lines_at_stop.set(total);
            } else if !*follow && at_bottom && live {
                // Scrolling back down to the end asks to follow again.
                follow.set(true);
            }
        })
    };

    let resume = {
        let follow = follow.clone();
        Callback::from(move |_: MouseEvent| follow.set(true))
    };

    // A jump must render even when nothing else changed, so that the effect above scrolls.
    let rerender = use_force_update();
    let go_to_match = {
        let current = current.clone();
        let follow = follow.clone();
        let jump_to = jump_to.clone();
        let matches = matches.clone();
        Rc::new(move |i: usize| {
            if let Some((line, _)) = matches.get(i) {
                current.set(i);
                follow.set(false);
                *jump_to.borrow_mut() = Some(*line);
                rerender.force_update();
            }
        })
    };
    let step = {
        let go = go_to_match.clone();
        let current = *current;
        let n = matches.len();
        Rc::new(move |forward: bool| {
            if n == 0 {
                return;
            }
            let next = if forward { (current + 1) % n } else { (current + n - 1) % n };
            go(next);
        })
    };
    let oninput = {
        let query = query.clone();
        let current = current.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                query.set(input.value());
                current.set(0);
            }
        })
    };
    // The first match is shown as soon as there are matches for a new query.
    {
        let go = go_to_match.clone();
        use_effect_with(((*query).clone(), matches.is_empty()), move |(q, empty)| {
            if !q.is_empty() && !empty {
                go(0);
            }
        });
    }
    let onkeydown_search = {
        let step = step.clone();
        let query = query.clone();
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Enter" => {
                e.prevent_default();
                step(!e.shift_key());
            }
            "Escape" => {
                if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                    input.set_value("");
                }
                query.set(String::new());
            }
            _ => {}
        })
    };
    let prev = {
        let step = step.clone();
        Callback::from(move |_: MouseEvent| step(false))
    };
    let next = {
        let step = step.clone();
        Callback::from(move |_: MouseEvent| step(true))
    };
    // Ctrl/Cmd+F in the output searches all of it, not only the lines in the DOM.
    let onkeydown_view = {
        let search_input = search_input.clone();
        Callback::from(move |e: KeyboardEvent| {
            if (e.ctrl_key() || e.meta_key()) && e.key().eq_ignore_ascii_case("f") {
                if let Some(input) = search_input.cast::<HtmlInputElement>() {
                    e.prevent_default();
                    let _ = input.focus();
                    input.select();
                }
            }
        })
    };

    let first = ((*scroll_top / LINE_PX) as usize).saturating_sub(MARGIN);
    let shown = ((*height / LINE_PX).ceil() as usize) + 2 * MARGIN;
    let last = (first + shown).min(total);
    let needle = query.to_lowercase();
    let current_hit = matches.get(*current).copied();
    let lines: Html = (first..last)
        .filter_map(|n| store.line(n).map(|(line, counter)| (n, line, counter)))
        .map(|(n, line, counter)| {
            let on_select = props.on_select.clone();
            let onclick = Callback::from(move |e: MouseEvent| {
                if e.ctrl_key() || e.meta_key() || e.shift_key() {
                    return;
                }
                e.prevent_default();
                on_select.emit(n);
            });
            let hits: Vec<(usize, usize, bool)> = if needle.is_empty() {
                Vec::new()
            } else {
                highlights(line.plain(), &needle)
                    .into_iter()
                    .map(|(s, len)| (s, s + len, current_hit == Some((n, s))))
                    .collect()
            };
            let selected = props.selected == Some(n);
            html! {
                <div key={n} class={classes!("line", selected.then_some("sel"))} data-line={(n + 1).to_string()}>
                    <a class="ln" href={format!("/jobs/{}?line={}", props.job_id, n + 1)} {onclick}
                       title={format!("Line {} — open event {counter}", n + 1)} tabindex="-1">{ n + 1 }</a>
                    <span class="tx">{ render_line(&line.text, line.style, &hits) }</span>
                </div>
            }
        })
        .collect();
    let new_lines = total.saturating_sub(*lines_at_stop);
    // The keyboard's way to a line's event (line numbers stay out of the tab order: there are
    // thousands).
    let open_match = |line: usize| {
        let on_select = props.on_select.clone();
        Callback::from(move |_: MouseEvent| on_select.emit(line))
    };
    let count = if query.is_empty() {
        String::new()
    } else if matches.is_empty() {
        "no match".into()
    } else {
        format!("{} of {}", *current + 1, matches.len())
    };

    html! {
        <section class="output" aria-label="Output">
            <div class="out-tools">
                <label class="visually-hidden" for="out-search">{ "Search the output" }</label>
                <input id="out-search" ref={search_input} type="search" placeholder="Search output"
                       autocomplete="off" spellcheck="false" oninput={oninput} onkeydown={onkeydown_search}
                       data-testid="out-search" />
                <span class="hits" aria-live="polite" data-testid="out-hits">{ count }</span>
                <button type="button" class="secondary icon" onclick={prev} disabled={matches.is_empty()}
                        aria-label="Previous match" title="Previous match (Shift+Enter)" data-testid="out-prev">{ "↑" }</button>
                <button type="button" class="secondary icon" onclick={next} disabled={matches.is_empty()}
                        aria-label="Next match" title="Next match (Enter)" data-testid="out-next">{ "↓" }</button>
                if let Some((line, _)) = current_hit {
                    <button type="button" class="secondary icon" onclick={open_match(line)}
                            title="Open the event of this match's line" data-testid="out-open">{ "Open event" }</button>
                }
                <span class="spacer"></span>
                <span class="muted" data-testid="out-lines">{ format!("{total} lines") }</span>
                if props.live {
                    if *follow {
                        <span class="follow on" data-testid="follow" data-state="on">{ "Following" }</span>
                    } else {
                        <button type="button" class="follow" onclick={resume} data-testid="follow" data-state="off">
                            { if new_lines > 0 { format!("Follow ({new_lines} new)") } else { "Follow".to_string() } }
                        </button>
                    }
                }
            </div>
            <div class="out" ref={view} {onscroll} onkeydown={onkeydown_view} tabindex="0" role="region"
                 aria-label="Job output" data-testid="output">
                <div class="out-inner" style={format!("height:{}px", (total as f64) * LINE_PX)}>
                    <div class="out-window" style={format!("transform:translateY({}px)", (first as f64) * LINE_PX)}>
                        { lines }
                    </div>
                </div>
                if total == 0 {
                    <p class="out-empty">{ "No output yet." }</p>
                }
            </div>
        </section>
    }
}

/// Occurrences of `needle_lower` in a line's plain text: (offset, length).
fn highlights(plain: &str, needle_lower: &str) -> Vec<(usize, usize)> {
    if plain.is_ascii() && needle_lower.is_ascii() {
        let (hay, nb) = (plain.as_bytes(), needle_lower.as_bytes());
        let mut out = Vec::new();
        let mut i = 0;
        while i + nb.len() <= hay.len() {
            if hay[i..i + nb.len()].eq_ignore_ascii_case(nb) {
                out.push((i, nb.len()));
                i += nb.len();
            } else {
                i += 1;
            }
        }
        out
    } else {
        find_all_ci(plain, needle_lower)
    }
}

/// A line's styled runs, with search hits marked (`hits` are plain-text byte ranges).
pub fn render_line(text: &str, style: Style, hits: &[(usize, usize, bool)]) -> Html {
    let (runs, _) = ansi::parse(text, style);
    let mut out: Vec<Html> = Vec::new();
    let mut at = 0usize;
    for (style, run) in runs {
        let (class, inline) = style.css();
        let end = at + run.len();
        // Cut the run where hits begin and end.
        let mut cuts = vec![0, run.len()];
        for (s, e, _) in hits {
            for p in [*s, *e] {
                if p > at && p < end && run.is_char_boundary(p - at) {
                    cuts.push(p - at);
                }
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        for w in cuts.windows(2) {
            let piece = &run[w[0]..w[1]];
            let abs = at + w[0];
            let hit = hits.iter().find(|(s, e, _)| abs >= *s && abs < *e);
            let span = if class.is_empty() && inline.is_empty() {
                html! { { piece } }
            } else {
                html! { <span class={class.clone()} style={(!inline.is_empty()).then(|| inline.clone())}>{ piece }</span> }
            };
            out.push(match hit {
                Some((_, _, true)) => html! { <mark class="cur">{ span }</mark> },
                Some(_) => html! { <mark>{ span }</mark> },
                None => span,
            });
        }
        at = end;
    }
    out.into_iter().collect()
}
