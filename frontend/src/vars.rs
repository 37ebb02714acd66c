//! Extra vars typed in the launch form, checked before they are sent: JSON, or the YAML people
//! write for Ansible (mappings, lists, scalars, block text), its plain scalars read by YAML 1.1's
//! rules as Ansible (PyYAML) reads them, and refused where JSON cannot say the same. A YAML library would double the size
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
    plain(v).map_err(|e| format!("line {no}: {e}"))
}

/// A plain (unquoted) scalar as Ansible reads it: YAML 1.1's rules, as PyYAML resolves them.
/// `yes`/`no`/`on`/`off` are booleans, `0644` octal, `0x1f` hex, `0b101` binary, `1_000` a
/// thousand, `1:30` sexagesimal (90), `1e3` a string (YAML 1.1 floats need a dot). Dates and
/// `.inf`/`.nan` are refused: Ansible would get a date or an infinity that JSON cannot carry.
fn plain(v: &str) -> Result<Value, String> {
    let digits = |s: &str, ok: fn(char) -> bool| !s.is_empty() && s.chars().all(|c| ok(c) || c == '_');
    let number = |s: &str, radix: u32| i64::from_str_radix(&s.replace('_', ""), radix).ok();
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true))
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false))
        }
        _ => {}
    }
    let (negative, unsigned) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let signed = |n: i64| Value::Number(if negative { -n } else { n }.into());
    let int = if let Some(b) = unsigned.strip_prefix("0b") {
        digits(b, |c| c == '0' || c == '1').then(|| number(b, 2))
    } else if let Some(h) = unsigned.strip_prefix("0x") {
        digits(h, |c| c.is_ascii_hexdigit()).then(|| number(h, 16))
    } else if unsigned == "0" {
        Some(Some(0))
    } else if let Some(o) = unsigned.strip_prefix('0').filter(|o| digits(o, |c| ('0'..='7').contains(&c))) {
        Some(number(o, 8))
    } else if unsigned.starts_with(|c: char| ('1'..='9').contains(&c))
        && digits(unsigned, |c| c.is_ascii_digit())
    {
        Some(number(unsigned, 10))
    } else {
        None
    };
    if let Some(n) = int {
        return n
            .map(signed)
            .ok_or_else(|| format!("{v} is too large a number; quote it to keep it as text"));
    }
    if let Some(n) = sexagesimal(unsigned) {
        return Ok(signed(n));
    }
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(v, ".nan" | ".NaN" | ".NAN") {
        return Err(format!("{v} is a float JSON cannot carry; quote it to send it as text"));
    }
    if is_float(unsigned) {
        let f: f64 = v.replace('_', "").parse().map_err(|_| format!("{v} is not a number; quote it"))?;
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{v} is too large a number"));
    }
    if is_timestamp(v) {
        return Err(format!(
            "{v} is a date to Ansible (YAML 1.1) but would be sent as text; quote it (\"{v}\") to mean text"
        ));
    }
    Ok(Value::String(v.to_owned()))
}

/// `[1-9][0-9_]*(:[0-5]?[0-9])+`: base 60, as in `1:30` (90) or `190:20:30`.
fn sexagesimal(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let first = parts.next()?;
    if !first.starts_with(|c: char| ('1'..='9').contains(&c))
        || !first.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let mut n: i64 = first.replace('_', "").parse().ok()?;
    let mut any = false;
    for p in parts {
        if p.is_empty()
            || p.len() > 2
            || !p.chars().all(|c| c.is_ascii_digit())
            || p.parse::<i64>().ok()? > 59
        {
            return None;
        }
        n = n.checked_mul(60)?.checked_add(p.parse().ok()?)?;
        any = true;
    }
    any.then_some(n)
}

/// PyYAML's float: `[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?` or `\.[0-9_]+([eE][-+][0-9]+)?`
/// (sign already taken off); sexagesimal floats are left as text.
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let Some((whole, fraction)) = mantissa.split_once('.') else { return false };
    let digits_ = |t: &str| t.chars().all(|c| c.is_ascii_digit() || c == '_');
    let whole_ok = if whole.is_empty() {
        !fraction.is_empty()
    } else {
        whole.starts_with(|c: char| c.is_ascii_digit()) && digits_(whole)
    };
    let exponent_ok = exponent.is_none_or(|e| {
        e.len() > 1
            && (e.starts_with('+') || e.starts_with('-'))
            && e[1..].chars().all(|c| c.is_ascii_digit())
    });
    whole_ok && digits_(fraction) && exponent_ok
}

/// YAML 1.1's timestamp: `2001-12-14`, or with a time (`2001-12-14t21:59:43.10-05:00`,
/// `2001-12-14 21:59:43.10 -5`).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    if b.len() == 10 && (0..4).all(d) && b[4] == b'-' && d(5) && d(6) && b[7] == b'-' && d(8) && d(9) {
        return true;
    }
    // Year-month-day with one- or two-digit month and day, then T/t or spaces and a time.
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let num =
        |t: &str, lo: usize, hi: usize| (lo..=hi).contains(&t.len()) && t.chars().all(|c| c.is_ascii_digit());
    if !num(y, 4, 4) || !num(m, 1, 2) {
        return false;
    }
    let day_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if !num(&rest[..day_end], 1, 2) {
        return false;
    }
    let time = rest[day_end..].trim_start_matches([' ', '\t']);
    let time = time.strip_prefix(['T', 't']).unwrap_or(time);
    if time.len() == rest[day_end..].len() && !rest[day_end..].starts_with(['T', 't']) {
        return false;
    }
    let mut hms = time.splitn(3, ':');
    let (Some(h), Some(mi), Some(sec)) = (hms.next(), hms.next(), hms.next()) else { return false };
    num(h, 1, 2) && num(mi, 2, 2) && sec.len() >= 2 && sec[..2].chars().all(|c| c.is_ascii_digit())
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
    fn plain_scalars_are_read_as_ansible_reads_yaml_1_1() {
        let v = |text: &str| parse_vars(&format!("x: {text}")).map(|m| m.map(|m| m["x"].clone()));
        for (text, want) in [
            ("0644", json!(420)),
            ("0o644", json!("0o644")),
            ("08", json!("08")),
            ("0x1F", json!(31)),
            ("0b101", json!(5)),
            ("-0x10", json!(-16)),
            ("1_000", json!(1000)),
            ("1:30", json!(90)),
            ("190:20:30", json!(685230)),
            ("yes", json!(true)),
            ("On", json!(true)),
            ("OFF", json!(false)),
            ("y", json!("y")),
            ("n", json!("n")),
            ("1e3", json!("1e3")),
            ("1.5e+3", json!(1500.0)),
            ("1.5", json!(1.5)),
            (".5", json!(0.5)),
            ("-2.", json!(-2.0)),
            ("~", json!(null)),
            ("'0644'", json!("0644")),
            ("\"yes\"", json!("yes")),
            ("web-01", json!("web-01")),
            ("1.2.3", json!("1.2.3")),
        ] {
            assert_eq!(v(text), Ok(Some(want.clone())), "{text} → {want}");
        }
        for (text, says) in [
            ("2024-05-01", "date"),
            ("2001-12-14t21:59:43.10-05:00", "date"),
            ("2001-12-14 21:59:43.10 -5", "date"),
            (".inf", "JSON cannot carry"),
            ("-.inf", "JSON cannot carry"),
            (".nan", "JSON cannot carry"),
            ("99999999999999999999", "too large"),
        ] {
            let e = v(text).expect_err(text);
            assert!(e.contains("line 1") && e.contains(says), "{text}: {e}");
        }
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
