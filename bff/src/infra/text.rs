//! Text helpers for what Ansible printed.

/// Removes ANSI escape sequences (colours, cursor moves) for the plain-text output.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // OSC: up to BEL or ESC \
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

/// Text made safe inside HTML (elements and quoted attributes).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An ILIKE pattern matching `s` anywhere, the caller's `\`, `%` and `_` taken literally.
pub fn like_contains(s: &str) -> String {
    format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// `%XX` escapes (and `+` for a space when `plus` says so) decoded to bytes.
pub fn percent_decode(s: &str, plus: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The first place a NUL byte hides in a JSON value (`name`, `inputs.password`, `hosts[2]`, or
/// a key), for the edge rule: PostgreSQL's text cannot hold one.
pub fn nul_in_json(v: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, at: &str) -> Option<String> {
        let here = |k: &str| if at.is_empty() { k.to_string() } else { format!("{at}.{k}") };
        match v {
            serde_json::Value::String(s) if s.contains('\0') => {
                Some(if at.is_empty() { "the body".into() } else { at.to_string() })
            }
            serde_json::Value::Array(a) => {
                a.iter().enumerate().find_map(|(i, x)| walk(x, &format!("{at}[{i}]")))
            }
            serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
                if k.contains('\0') {
                    Some(format!("a key of {}", if at.is_empty() { "the body" } else { at }))
                } else {
                    walk(x, &here(k))
                }
            }),
            _ => None,
        }
    }
    walk(v, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours_and_keeps_text() {
        assert_eq!(strip_ansi("\u{1b}[0;32mok: [web-01]\u{1b}[0m"), "ok: [web-01]");
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}x"), "x");
    }
}
