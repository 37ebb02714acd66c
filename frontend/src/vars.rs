//! Extra vars typed in the launch form, checked before they are sent: JSON, or the YAML people
//! write for Ansible (mappings, lists, scalars, block text). A YAML library would double the size
//! of the page; this covers block YAML as written by hand and says on which line it went wrong, and
//! flow collections (`[a, b]`, `{"a": 1}`) are read as JSON.

use serde_json::{Map, Number, Value};

/// `Ok(None)`: nothing typed. The vars must be a mapping (Ansible's rule).
pub fn parse_vars(text: &str) -> Result<Option<Value>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "---" || trimmed == "{}" {
        return Ok(None);
    }
    let value = if trimmed.starts_with('{') {
        serde_json::from_str::<Value>(trimmed).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        parse_yaml(text)?
    };
    match value {
        Value::Object(o) if o.is_empty() => Ok(None),
        Value::Object(_) => Ok(Some(value)),
        _ => Err("extra vars must be a mapping of names to values (name: value)".into()),
    }
}

struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let content = strip_comment(raw);
        if content.trim().is_empty() || (lines.is_empty() && content.trim() == "---") {
            continue;
        }
        let indent = content.len() - content.trim_start_matches(' ').len();
        if content[indent..].starts_with('\t') {
            return Err(format!("line {no}: indent with spaces, not tabs"));
        }
        lines.push(Line { no, indent, text: content.trim_end() });
    }
    let mut at = 0;
    let value = block(text, &lines, &mut at, 0)?;
    if let Some(l) = lines.get(at) {
        return Err(format!("line {}: unexpected indentation", l.no));
    }
    Ok(value)
}

/// The next line of a block at `indent`, with its text after the indentation; `None` where the
/// block ends (no more lines, or a line indented less).
fn next_in_block<'l, 'a>(
    lines: &'l [Line<'a>],
    at: usize,
    indent: usize,
) -> Result<Option<(&'l Line<'a>, &'a str)>, String> {
    let Some(l) = lines.get(at) else { return Ok(None) };
    if l.indent < indent {
        return Ok(None);
    }
    if l.indent > indent {
        return Err(format!("line {}: unexpected indentation", l.no));
    }
    Ok(Some((l, &l.text[l.indent..])))
}

/// A mapping or a list whose lines are indented exactly `indent`.
fn block(src: &str, lines: &[Line], at: &mut usize, indent: usize) -> Result<Value, String> {
    let Some(first) = lines.get(*at) else { return Ok(Value::Null) };
    let indent = first.indent.max(indent);
    if first.text[first.indent..].starts_with("- ") || first.text[first.indent..] == *"-" {
        let mut items = Vec::new();
        while let Some((l, text)) = next_in_block(lines, *at, indent)? {
            if !(text.starts_with("- ") || text == "-") {
                // A list at its key's indentation ends at the next key.
                break;
            }
            let rest = &text[1..];
            *at += 1;
            let rest = rest.trim();
            if rest.is_empty() {
                items.push(nested(src, lines, at, indent)?);
            } else if let Some((k, v)) = split_key(rest) {
                // `- name: x` starts a mapping whose other keys line up with `name`.
                let key_indent = indent + 2;
                let mut map = Map::new();
                let first_value = value_after_key(src, lines, at, key_indent, v, l.no)?;
                map.insert(k, first_value);
                if lines.get(*at).is_some_and(|n| n.indent == key_indent) {
                    if let Value::Object(more) = block(src, lines, at, key_indent)? {
                        map.extend(more);
                    }
                }
                items.push(Value::Object(map));
            } else {
                items.push(scalar(rest, l.no)?);
            }
        }
        return Ok(Value::Array(items));
    }
    let mut map = Map::new();
    while let Some((l, text)) = next_in_block(lines, *at, indent)? {
        if text.starts_with("- ") {
            return Err(format!("line {}: a list item where a name: value was expected", l.no));
        }
        let (k, v) = split_key(text).ok_or_else(|| format!("line {}: expected name: value", l.no))?;
        *at += 1;
        let value = value_after_key(src, lines, at, indent, v, l.no)?;
        if map.insert(k.clone(), value).is_some() {
            return Err(format!("line {}: {k:?} is given twice", l.no));
        }
    }
    Ok(Value::Object(map))
}

fn value_after_key(
    src: &str,
    lines: &[Line],
    at: &mut usize,
    indent: usize,
    v: &str,
    no: usize,
) -> Result<Value, String> {
    match v {
        "" => nested(src, lines, at, indent),
        "|" | "|-" | ">" | ">-" => Ok(Value::String(block_text(lines, at, indent, v))),
        v => scalar(v, no),
    }
}

/// What follows a `key:` or `-` with nothing after it: a more indented block, or null.
fn nested(src: &str, lines: &[Line], at: &mut usize, indent: usize) -> Result<Value, String> {
    match lines.get(*at) {
        Some(n) if n.indent > indent => block(src, lines, at, n.indent),
        // A list may sit at the same indentation as its key.
        Some(n) if n.indent == indent && n.text[n.indent..].starts_with("- ") => {
            block(src, lines, at, indent)
        }
        _ => Ok(Value::Null),
    }
}

fn block_text(lines: &[Line], at: &mut usize, indent: usize, style: &str) -> String {
    let mut parts = Vec::new();
    let inner = lines.get(*at).map(|l| l.indent).filter(|i| *i > indent);
    while let (Some(l), Some(inner)) = (lines.get(*at), inner) {
        if l.indent < inner {
            break;
        }
        parts.push(&l.text[inner..]);
        *at += 1;
    }
    let mut s = if style.starts_with('|') { parts.join("\n") } else { parts.join(" ") };
    if !style.ends_with('-') {
        s.push('\n');
    }
    s
}

fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(stripped) = text.strip_prefix('"') {
        let end = stripped.find('"')?;
        (stripped[..end].to_owned(), stripped[end + 1..].strip_prefix(':')?)
    } else if let Some(stripped) = text.strip_prefix('\'') {
        let end = stripped.find('\'')?;
        (stripped[..end].to_owned(), stripped[end + 1..].strip_prefix(':')?)
    } else {
        let i = text.find(": ").or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        (text[..i].trim().to_owned(), &text[i + 1..])
    };
    if key.is_empty() || !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((key, rest.trim()))
}

fn scalar(v: &str, no: usize) -> Result<Value, String> {
    let v = v.trim();
    if v.starts_with('[') || v.starts_with('{') {
        return serde_json::from_str(v).map_err(|e| {
            format!("line {no}: write [lists] and {{maps}} inline as JSON ({e}), or as indented YAML")
        });
    }
    if let Some(s) = v.strip_prefix('"') {
        return serde_json::from_str::<String>(v)
            .map(Value::String)
            .map_err(|_| format!("line {no}: the quote opened here is not closed: \"{s}"));
    }
    if let Some(s) = v.strip_prefix('\'') {
        return s
            .strip_suffix('\'')
            .map(|s| Value::String(s.replace("''", "'")))
            .ok_or_else(|| format!("line {no}: the quote opened here is not closed"));
    }
    Ok(match v {
        "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "on" | "On" => Value::Bool(true),
        "false" | "False" | "FALSE" | "no" | "No" | "off" | "Off" => Value::Bool(false),
        _ => {
            if let Ok(n) = v.parse::<i64>() {
                Value::Number(n.into())
            } else if let Some(n) = v.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(Number::from_f64)
            {
                Value::Number(n)
            } else {
                Value::String(v.to_owned())
            }
        }
    })
}

/// The line without a `# comment` (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev == ' ' || prev == '\t' || i == 0 => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_block_yaml_become_the_same_mapping() {
        let yaml = "---\n# patch vars\npatch_group: Group-1\nreboot: no\nretries: 3\nratio: 0.5\nhosts:\n  - web-01\n  - 'web-02'\nnested:\n  a: \"x # not a comment\"\n  b: [1, 2]\nusers:\n- name: ann\n  uid: 7\nmotd: |\n  hello\n  world\nempty:\n";
        let want = json!({"patch_group": "Group-1", "reboot": false, "retries": 3, "ratio": 0.5,
            "hosts": ["web-01", "web-02"], "nested": {"a": "x # not a comment", "b": [1, 2]},
            "users": [{"name": "ann", "uid": 7}], "motd": "hello\nworld\n", "empty": null});
        assert_eq!(parse_vars(yaml), Ok(Some(want)));
        assert_eq!(parse_vars(r#"{"a": 1}"#), Ok(Some(json!({"a": 1}))));
        assert_eq!(parse_vars("  \n"), Ok(None));
    }

    fn err(text: &str) -> String {
        parse_vars(text).err().unwrap_or_default()
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        assert!(err("a: 1\n  b: 2").contains("line 2"));
        assert!(err("a: 1\n\tb: 2").contains("tabs"));
        assert!(err("a: \"open").contains("line 1"));
        assert!(err("just text").contains("expected name: value"));
        assert!(err("- a\n- b").contains("mapping"));
        assert!(err("{\"a\": }").contains("JSON"));
        assert!(err("a: 1\na: 2").contains("twice"));
    }
}
