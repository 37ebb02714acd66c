//! Reading one setting from the environment: unset and blank are the same, numbers are positive.
//! Every setting is read through `var`, so a test can give the settings from a table instead of
//! the process's environment (`with_lookup`) and see which names were read.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// Settings given by `with_lookup`, and the names read while it runs.
struct Lookup {
    values: HashMap<String, String>,
    read: BTreeSet<String>,
}

thread_local! {
    static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

/// The variable's value, or `None` when it is unset or blank.
pub fn var(name: &str) -> Option<String> {
    let given = LOOKUP.with(|l| {
        l.borrow_mut().as_mut().map(|l| {
            l.read.insert(name.to_string());
            l.values.get(name).cloned()
        })
    });
    match given {
        Some(v) => v,
        None => std::env::var(name).ok(),
    }
    .filter(|v| !v.trim().is_empty())
}

/// Runs `f` with the settings taken from `values` instead of the environment (on this thread);
/// answers what `f` answered and every setting's name it read.
pub fn with_lookup<T>(values: &[(&str, &str)], f: impl FnOnce() -> T) -> (T, BTreeSet<String>) {
    let values = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let previous = LOOKUP.with(|l| l.borrow_mut().replace(Lookup { values, read: BTreeSet::new() }));
    let out = f();
    let read = LOOKUP
        .with(|l| std::mem::replace(&mut *l.borrow_mut(), previous))
        .map(|l| l.read)
        .unwrap_or_default();
    (out, read)
}

/// A positive whole number, `default` when unset; anything else is an error naming the variable.
pub fn positive(name: &str, default: u64) -> Result<u64, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} must be a positive integer, got {v:?}")),
    }
}

/// Whether a switch is on (`1`, `true` or `yes`).
pub fn flag(name: &str) -> bool {
    var(name).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}
