//! Reading one setting from the environment: unset and blank are the same, numbers are positive.

/// The variable's value, or `None` when it is unset or blank.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
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
