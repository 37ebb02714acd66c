//! A local playbook's survey: read from `<playbook>.survey.yml` (AWX's `survey_spec` shape) or
//! made from its `vars_prompt`, checked as a spec, and the answers of a launch checked against it
//! as AWX checks them (type, length or value bounds, choices, required), defaults filled in.
//! Pure: the choices that come from an inventory or a URL are resolved by the caller.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use shared::aap::{Survey, SurveyQuestion};
use shared::playbooks::{ChoicesFrom, VarPrompt};

const KINDS: [&str; 7] =
    ["text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"];

fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 100
}

/// The `{{ variable }}`s a text names, in order.
pub fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim().to_owned();
        if !out.contains(&name) {
            out.push(name);
        }
        rest = &after[end + 2..];
    }
    out
}

/// `text` with each `{{ variable }}` replaced by `value(variable)` (`None`: that variable is not
/// answered yet, and is named).
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        out.push_str(&value(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A question's listed choices (newline-separated text or a list).
pub fn listed_choices(q: &SurveyQuestion) -> Vec<String> {
    match &q.choices {
        Value::String(s) => s.lines().map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect(),
        Value::Array(a) => a.iter().filter_map(scalar_text).collect(),
        _ => Vec::new(),
    }
}

/// A string, number or boolean as text.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The name a question is shown by in messages: “Patch group” (`patch_group`).
pub fn named(q: &SurveyQuestion) -> String {
    if q.question_name.is_empty() || q.question_name == q.variable {
        format!("survey question `{}`", q.variable)
    } else {
        format!("survey question “{}” (`{}`)", q.question_name, q.variable)
    }
}

/// Reads a survey file and checks it as a spec; the error is the reason shown as
/// "survey invalid: <reason>".
pub fn parse(text: &str) -> Result<Survey, String> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| format!("it is not YAML: {e}"))?;
    if !value.is_object() {
        return Err("it is not a mapping with `spec`, the questions (AWX's survey_spec)".into());
    }
    if !value.get("spec").is_some_and(Value::is_array) {
        return Err("`spec` (the list of questions) is missing".into());
    }
    let mut value = value;
    // AWX keeps `min`/`max` as "" when unset and accepts numbers written as text.
    for q in value["spec"].as_array_mut().into_iter().flatten() {
        for bound in ["min", "max"] {
            if let Some(text) = q.get(bound).and_then(Value::as_str).map(str::trim) {
                let parsed = if text.is_empty() {
                    Some(Value::Null)
                } else {
                    text.parse::<f64>().ok().map(Value::from)
                };
                if let Some(v) = parsed {
                    q[bound] = v;
                }
            }
        }
    }
    let mut survey: Survey =
        serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    for q in &mut survey.spec {
        if q.kind.is_empty() {
            q.kind = "text".into();
        }
        if q.question_name.is_empty() {
            q.question_name = q.variable.clone();
        }
    }
    check(&survey)?;
    Ok(survey)
}

/// What makes a spec one that can be answered.
pub fn check(survey: &Survey) -> Result<(), String> {
    if survey.spec.is_empty() {
        return Err("`spec` has no questions".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, q) in survey.spec.iter().enumerate() {
        let at = format!(
            "question {} ({})",
            i + 1,
            if q.variable.is_empty() { "no variable" } else { &q.variable }
        );
        if !identifier(&q.variable) {
            return Err(format!("{at}: `variable` {:?} is not a variable name", q.variable));
        }
        if seen.contains(&q.variable.as_str()) {
            return Err(format!("{at}: `variable` {} is asked twice", q.variable));
        }
        if !KINDS.contains(&q.kind.as_str()) {
            return Err(format!("{at}: `type` {:?} is not one of {}", q.kind, KINDS.join(", ")));
        }
        for (name, bound) in [("min", &q.min), ("max", &q.max)] {
            if !(bound.is_null() || bound.is_number()) {
                return Err(format!("{at}: `{name}` is not a number"));
            }
        }
        if let (Some(min), Some(max)) = (q.min.as_f64(), q.max.as_f64()) {
            if min > max {
                return Err(format!("{at}: `min` {min} is above `max` {max}"));
            }
        }
        let choosing = matches!(q.kind.as_str(), "multiplechoice" | "multiselect");
        let listed = listed_choices(q);
        match (&q.choices_from, choosing) {
            (Some(_), false) => {
                return Err(format!("{at}: `choices_from` is for multiplechoice and multiselect questions"))
            }
            (Some(_), true) if !listed.is_empty() => {
                return Err(format!("{at}: give `choices` or `choices_from`, not both"))
            }
            (Some(from), true) => {
                check_from(from, &seen).map_err(|e| format!("{at}: `choices_from`: {e}"))?
            }
            (None, true) if listed.is_empty() => {
                return Err(format!("{at}: a {} question needs `choices` or `choices_from`", q.kind))
            }
            _ => {}
        }
        if !q.default.is_null() && q.default != Value::String(String::new()) {
            let choices = (!listed.is_empty()).then_some(listed.as_slice());
            typed(q, &default_of(q), choices).map_err(|e| format!("{at}: the default {e}"))?;
        }
        seen.push(&q.variable);
    }
    Ok(())
}

fn check_from(from: &ChoicesFrom, earlier: &[&str]) -> Result<(), String> {
    match from.source.as_str() {
        "inventory_hosts" | "inventory_groups" => {
            if from.url.is_some() || from.credential.is_some() {
                return Err("`url` and `credential` are for `source: url`".into());
            }
        }
        "url" => {
            let url = from.url.as_deref().unwrap_or_default();
            if url.is_empty() {
                return Err("`source: url` needs `url`".into());
            }
            if from.group.is_some() || from.pattern.is_some() {
                return Err("`group` and `pattern` are for the inventory's hosts and groups".into());
            }
            let probe = fill(url, |_| Some("x".into())).unwrap_or_default();
            let parsed =
                reqwest::Url::parse(&probe).map_err(|e| format!("`url` {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("`url` {url:?} is not an http(s) URL"));
            }
        }
        other => {
            return Err(format!("`source` {other:?} is not inventory_hosts, inventory_groups or url"));
        }
    }
    for text in [&from.group, &from.pattern, &from.url].into_iter().flatten() {
        for r in references(text) {
            if !earlier.contains(&r.as_str()) {
                return Err(format!("{{{{ {r} }}}} is not an earlier question's variable"));
            }
        }
    }
    Ok(())
}

/// A question's default as an answer would give it (a multiselect's newline-separated text is a
/// list; `integer` "3" is 3).
pub fn default_of(q: &SurveyQuestion) -> Value {
    match (&q.default, q.kind.as_str()) {
        (Value::String(s), "multiselect") => Value::Array(
            s.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| Value::String(l.into())).collect(),
        ),
        (Value::String(s), "integer") => {
            s.trim().parse::<i64>().map(Value::from).unwrap_or(q.default.clone())
        }
        (Value::String(s), "float") => s.trim().parse::<f64>().map(Value::from).unwrap_or(q.default.clone()),
        (other, _) => other.clone(),
    }
}

/// Whether an answer is right for a question: its type, bounds and choices (`choices` none:
/// any answer of the right type).
fn typed(q: &SurveyQuestion, v: &Value, choices: Option<&[String]>) -> Result<(), String> {
    let (min, max) = (q.min.as_f64(), q.max.as_f64());
    let bounds = |x: f64, what: &str| -> Result<(), String> {
        if let Some(m) = min.filter(|m| x < *m) {
            return Err(format!("{what} at least {m}"));
        }
        if let Some(m) = max.filter(|m| x > *m) {
            return Err(format!("{what} at most {m}"));
        }
        Ok(())
    };
    let one_of = |s: &str| -> Result<(), String> {
        match choices {
            Some(c) if !c.iter().any(|x| x == s) => {
                Err(format!("{s:?} is not one of the choices ({})", shown(c)))
            }
            _ => Ok(()),
        }
    };
    match q.kind.as_str() {
        "integer" => {
            let n = v
                .as_i64()
                .filter(|_| v.is_i64() || v.is_u64())
                .ok_or_else(|| format!("{v} is not a whole number"))?;
            bounds(n as f64, "must be")
        }
        "float" => {
            let n = v.as_f64().ok_or_else(|| format!("{v} is not a number"))?;
            bounds(n, "must be")
        }
        "multiselect" => {
            let items = v.as_array().ok_or_else(|| format!("{v} is not a list of choices"))?;
            for item in items {
                let s = item.as_str().ok_or_else(|| format!("{item} is not a text"))?;
                one_of(s)?;
            }
            Ok(())
        }
        "multiplechoice" => {
            let s = v.as_str().ok_or_else(|| format!("{v} is not a text"))?;
            one_of(s)
        }
        "password" => {
            // Never the answer itself in a message: it is a secret.
            let s = v.as_str().ok_or("the answer is not a text")?;
            bounds(s.chars().count() as f64, "must be a text of length")
                .map_err(|e| format!("{e} ({} now)", s.chars().count()))
        }
        _ => {
            // A number or yes/no where a text is asked is taken as its text (extra vars typed as
            // YAML, a vars_prompt's default).
            let s = scalar_text(v).ok_or_else(|| format!("{v} is not a text"))?;
            bounds(s.chars().count() as f64, "must be a text of length")
                .map_err(|e| format!("{e} ({} now)", s.chars().count()))
        }
    }
}

fn shown(choices: &[String]) -> String {
    let mut s: Vec<&str> = choices.iter().take(10).map(String::as_str).collect();
    if choices.len() > 10 {
        s.push("…");
    }
    s.join(", ")
}

/// What a password question's default is shown as (AWX's word): the real one stays on the server,
/// and an answer of exactly this takes it.
pub const ENCRYPTED: &str = "$encrypted$";

/// The survey as it is shown: password defaults replaced by [`ENCRYPTED`].
pub fn as_shown(mut survey: Survey) -> Survey {
    for q in &mut survey.spec {
        if q.kind == "password" && !(q.default.is_null() || q.default == Value::String(String::new())) {
            q.default = Value::String(ENCRYPTED.into());
        }
    }
    survey
}

/// What a question's choices came to: the list, or why there is none.
pub type Choices = Result<Vec<String>, String>;

/// Checks a launch's extra vars against the survey, as the controller checks a template's: each
/// question's answer has its type, bounds and one of its choices (those of `resolved` for the
/// questions whose choices come from somewhere); a question not answered takes its default, and a
/// required one without either is refused. Answers the password questions' variables (masked in
/// what is recorded).
pub fn check_answers(
    survey: &Survey,
    resolved: &BTreeMap<String, Choices>,
    vars: &mut Map<String, Value>,
) -> Result<Vec<String>, String> {
    let mut passwords = Vec::new();
    for q in &survey.spec {
        let given = vars.get(&q.variable).filter(|v| {
            !v.is_null()
                && **v != Value::String(String::new())
                && !(q.kind == "password" && v.as_str() == Some(ENCRYPTED))
        });
        let value = match given {
            Some(v) => v.clone(),
            None => {
                let d = default_of(q);
                let empty = d.is_null()
                    || d == Value::String(String::new())
                    || d.as_array().is_some_and(|a| a.is_empty());
                if empty {
                    if q.required {
                        return Err(format!("{} needs an answer", named(q)));
                    }
                    vars.remove(&q.variable);
                    continue;
                }
                vars.insert(q.variable.clone(), d.clone());
                d
            }
        };
        let choices = match (&q.choices_from, resolved.get(&q.variable)) {
            (None, _) => Some(listed_choices(q)).filter(|c| !c.is_empty()),
            (Some(_), Some(Ok(list))) => Some(list.clone()),
            (Some(from), Some(Err(_))) if from.free_text => None,
            (Some(_), Some(Err(e))) => {
                return Err(format!("{}: its choices could not be had ({e})", named(q)))
            }
            (Some(_), None) => return Err(format!("{}: its choices were not resolved", named(q))),
        };
        let checked = match (q.kind.as_str(), &choices, &q.choices_from) {
            // Free text where the choices could not be had: any text (a list for multiselect).
            ("multiselect", None, Some(_)) => value
                .as_array()
                .filter(|a| a.iter().all(Value::is_string))
                .map(|_| ())
                .ok_or_else(|| format!("{value} is not a list of texts")),
            ("multiplechoice", None, Some(_)) => {
                value.as_str().map(|_| ()).ok_or_else(|| format!("{value} is not a text"))
            }
            _ => typed(q, &value, choices.as_deref()),
        };
        checked.map_err(|e| format!("{}: {e}", named(q)))?;
        if q.kind == "password" {
            passwords.push(q.variable.clone());
        }
    }
    Ok(passwords)
}

/// `vars_prompt` as simple questions: a prompt with a default is optional, a private one is a
/// password.
pub fn from_prompts(prompts: &[VarPrompt]) -> Option<Survey> {
    let spec: Vec<SurveyQuestion> = prompts
        .iter()
        .filter(|p| identifier(&p.name))
        .map(|p| SurveyQuestion {
            question_name: if p.prompt.is_empty() { p.name.clone() } else { p.prompt.clone() },
            variable: p.name.clone(),
            kind: if p.private { "password" } else { "text" }.into(),
            required: p.default.is_none(),
            default: p.default.as_ref().and_then(scalar_text).map_or(Value::Null, Value::String),
            ..SurveyQuestion::default()
        })
        .collect();
    (!spec.is_empty()).then(|| Survey { name: String::new(), description: "from vars_prompt".into(), spec })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATCH: &str = r#"
name: Patch
spec:
  - question_name: Patch group
    variable: patch_group
    type: multiplechoice
    choices: [Group-1, Group-2]
    required: true
  - question_name: Hosts
    variable: patch_hosts
    type: multiselect
    choices_from: {source: inventory_hosts, group: webservers}
  - question_name: Reboot
    variable: reboot
    type: multiplechoice
    choices: "yes\nno"
    default: "yes"
    required: true
  - question_name: Retries
    variable: retries
    type: integer
    min: 0
    max: 5
    default: "2"
  - question_name: Note
    variable: note
    type: text
    max: 10
"#;

    fn resolved() -> BTreeMap<String, Choices> {
        BTreeMap::from([("patch_hosts".to_string(), Ok(vec!["web-01".to_string(), "web-02".to_string()]))])
    }

    #[test]
    fn answers_are_checked_as_the_controller_checks_them_and_defaults_filled_in() {
        let s = parse(PATCH).expect("a valid survey");
        let mut vars = json!({"patch_group": "Group-1", "patch_hosts": ["web-01"]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(check_answers(&s, &resolved(), &mut vars), Ok(vec![]));
        assert_eq!(
            Value::Object(vars),
            json!({"patch_group": "Group-1", "patch_hosts": ["web-01"], "reboot": "yes", "retries": 2})
        );
        for (vars, said) in [
            (json!({}), "survey question “Patch group” (`patch_group`) needs an answer"),
            (json!({"patch_group": "Group-9"}), "survey question “Patch group” (`patch_group`): \"Group-9\" is not one of the choices (Group-1, Group-2)"),
            (json!({"patch_group": "Group-1", "patch_hosts": ["db-01"]}), "survey question “Hosts” (`patch_hosts`): \"db-01\" is not one of the choices (web-01, web-02)"),
            (json!({"patch_group": "Group-1", "patch_hosts": "web-01"}), "survey question “Hosts” (`patch_hosts`): \"web-01\" is not a list of choices"),
            (json!({"patch_group": "Group-1", "retries": 9}), "survey question “Retries” (`retries`): must be at most 5"),
            (json!({"patch_group": "Group-1", "retries": "2"}), "survey question “Retries” (`retries`): \"2\" is not a whole number"),
            (json!({"patch_group": "Group-1", "note": "far too long a note"}), "survey question “Note” (`note`): must be a text of length at most 10 (19 now)"),
        ] {
            let mut vars = vars.as_object().cloned().unwrap_or_default();
            assert_eq!(check_answers(&s, &resolved(), &mut vars), Err(said.to_string()));
        }
        let failed = BTreeMap::from([("patch_hosts".to_string(), Err("no inventory".to_string()))]);
        let mut vars =
            json!({"patch_group": "Group-1", "patch_hosts": ["x"]}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            check_answers(&s, &failed, &mut vars),
            Err("survey question “Hosts” (`patch_hosts`): its choices could not be had (no inventory)".into())
        );
    }

    #[test]
    fn a_spec_that_cannot_be_answered_says_why() {
        for (text, said) in [
            ("- a\n- b", "it is not a mapping with `spec`, the questions (AWX's survey_spec)"),
            ("name: x", "`spec` (the list of questions) is missing"),
            ("spec: [{variable: 'a b'}]", "question 1 (a b): `variable` \"a b\" is not a variable name"),
            ("spec: [{variable: a}, {variable: a}]", "question 2 (a): `variable` a is asked twice"),
            ("spec: [{variable: a, type: choice}]", "question 1 (a): `type` \"choice\" is not one of text, textarea, password, integer, float, multiplechoice, multiselect"),
            ("spec: [{variable: a, type: multiplechoice}]", "question 1 (a): a multiplechoice question needs `choices` or `choices_from`"),
            ("spec: [{variable: a, type: multiplechoice, choices: [x], default: y}]", "question 1 (a): the default \"y\" is not one of the choices (x)"),
            ("spec: [{variable: a, type: multiselect, choices_from: {source: inventory_hosts, group: '{{ b }}'}}, {variable: b}]", "question 1 (a): `choices_from`: {{ b }} is not an earlier question's variable"),
            ("spec: [{variable: a, type: multiselect, choices_from: {source: ldap}}]", "question 1 (a): `choices_from`: `source` \"ldap\" is not inventory_hosts, inventory_groups or url"),
            ("spec: [{variable: a, type: integer, min: 5, max: 1}]", "question 1 (a): `min` 5 is above `max` 1"),
            ("spec: [{variable: a, required: maybe}]", "spec[0].required: invalid type: string \"maybe\", expected a boolean"),
        ] {
            assert_eq!(parse(text), Err(said.to_string()), "{text}");
        }
    }

    #[test]
    fn awx_exports_password_defaults_and_prompt_defaults_are_taken_as_awx_and_ansible_take_them() {
        let s = parse("spec: [{variable: pw, type: password, default: s3cret-default, min: '', max: '20'}, {variable: n, type: text}]")
            .expect("AWX's empty and textual bounds");
        assert_eq!((s.spec[0].min.clone(), s.spec[0].max.as_f64()), (Value::Null, Some(20.0)));
        let shown = as_shown(s.clone());
        assert_eq!(shown.spec[0].default, json!(ENCRYPTED));
        let mut vars = json!({"pw": ENCRYPTED, "n": 3}).as_object().cloned().unwrap_or_default();
        assert_eq!(check_answers(&s, &BTreeMap::new(), &mut vars), Ok(vec!["pw".to_string()]));
        assert_eq!(vars["pw"], "s3cret-default", "the answer $encrypted$ takes the default");
        let mut vars = json!({"pw": 12345}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            check_answers(&s, &BTreeMap::new(), &mut vars),
            Err("survey question `pw`: the answer is not a text".into())
        );
        let s = from_prompts(&[VarPrompt {
            name: "retries".into(),
            prompt: String::new(),
            private: false,
            default: Some(json!(3)),
        }])
        .expect("questions");
        let mut vars = Map::new();
        assert_eq!(check_answers(&s, &BTreeMap::new(), &mut vars), Ok(vec![]));
        assert_eq!(vars["retries"], "3");
    }

    #[test]
    fn templates_name_earlier_answers() {
        assert_eq!(references("{{ env }}-{{app}} {{ env }}"), ["env", "app"]);
        assert_eq!(fill("g-{{ env }}", |v| (v == "env").then(|| "prod".into())), Ok("g-prod".into()));
        assert_eq!(fill("g-{{ other }}", |_| None), Err("other".into()));
    }

    #[test]
    fn vars_prompt_becomes_simple_questions() {
        let s = from_prompts(&[
            VarPrompt {
                name: "user".into(),
                prompt: "Who?".into(),
                private: false,
                default: Some(json!("me")),
            },
            VarPrompt { name: "pw".into(), prompt: String::new(), private: true, default: None },
        ])
        .expect("questions");
        assert_eq!(s.spec[0].kind, "text");
        assert!(!s.spec[0].required);
        assert_eq!(
            (s.spec[1].kind.as_str(), s.spec[1].required, s.spec[1].question_name.as_str()),
            ("password", true, "pw")
        );
        let mut vars = json!({"pw": "hunter22"}).as_object().cloned().unwrap_or_default();
        assert_eq!(check_answers(&s, &BTreeMap::new(), &mut vars), Ok(vec!["pw".to_string()]));
    }
}
