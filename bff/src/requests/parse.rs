//! The request parser: plain words in, an interpretation out. Deterministic (no model, no external
//! service): words are matched against the catalog's phrases, its slot patterns and the action's
//! inventory, and anything that cannot be matched safely is asked about or refused.
//!
//! What reaches a launch comes only from the catalog and the inventory (host and group names as the
//! inventory spells them, pattern values in a narrow character set), never the operator's text, so
//! a request cannot smuggle a Jinja expression, a limit pattern or a shell word into a job.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use shared::requests::{Missing, Refusal, RequestStatus, Understood, UnknownName};

use super::catalog::{Action, Catalog, Inventory, Run, RunOption, SlotKind, Target};

/// One word of a message: lowercase for matching, as typed for showing, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub word: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// The character right before it (`!` in Ansible's `!web-02`, `&` in `:&webservers`).
    pub before: Option<char>,
}

/// Splits on anything but letters, digits, `-`, `_`, `.` (and an apostrophe inside a word), and
/// trims `.`, `-` and `_` from the ends, so "web-01." and "web-01," are the host web-01.
pub fn tokens(s: &str) -> Vec<Token> {
    let is_word = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_word(chars[i].1) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() {
            let c = chars[j].1;
            let apostrophe = matches!(c, '\'' | '’')
                && j > i
                && chars[j - 1].1.is_alphabetic()
                && chars.get(j + 1).is_some_and(|n| n.1.is_alphabetic());
            if is_word(c) || apostrophe {
                j += 1;
            } else {
                break;
            }
        }
        let (mut a, mut b) = (i, j);
        while a < b && matches!(chars[a].1, '.' | '-' | '_') {
            a += 1;
        }
        while b > a && matches!(chars[b - 1].1, '.' | '-' | '_') {
            b -= 1;
        }
        if a < b {
            let start = chars[a].0;
            let end = chars.get(b).map_or(s.len(), |c| c.0);
            let text = s[start..end].to_string();
            let before = a.checked_sub(1).map(|k| chars[k].1);
            out.push(Token { word: text.to_lowercase().replace('’', "'"), text, start, end, before });
        }
        i = j;
    }
    out
}

/// Words that carry no meaning for the request ("please patch the …"; the host markers too).
const FILLER: &[&str] = &[
    "please", "pls", "plz", "kindly", "can", "could", "would", "will", "you", "i", "i'd", "i'm", "we", "me",
    "us", "my", "our", "want", "wanna", "need", "needs", "like", "to", "let", "let's", "lets", "just", "now",
    "then", "also", "too", "the", "a", "an", "this", "that", "these", "those", "it", "its", "it's", "them",
    "they", "in", "at", "with", "using", "use", "via", "by", "for", "from", "and", "or", "of", "run",
    "execute", "launch", "start", "do", "go", "playbook", "job", "mode", "thanks", "thank", "ok", "okay",
    "hi", "hey", "asap", "right", "away", "group", "groups", "is", "are", "be", "should", "must", "ahead",
    "yes", "e.g", "i.e", "etc", "but", "other", "than", "apart", "as", "well", "both", "either", "each",
    "one", "only", "again", "instead", "actually", "sorry", "so", "if", "possible", "quickly", "some",
    "there", "here", "up", "same", "what", "which", "answer", "think",
];

/// Words that say nothing of their own: the fillers, and the host markers.
fn is_filler(w: &str) -> bool {
    FILLER.contains(&w) || HOST_MARKERS.contains(&w)
}

/// After these, an unknown word is taken as a host name ("retire vm foo" means a host foo).
const HOST_MARKERS: &[&str] = &[
    "server",
    "servers",
    "host",
    "hosts",
    "machine",
    "machines",
    "node",
    "nodes",
    "vm",
    "vms",
    "box",
    "boxes",
    "instance",
    "instances",
    "on",
    "named",
    "called",
];

/// Words of time that are never host names, even after "on" ("patch web-01 on tuesday").
const TIME_WORDS: &[&str] = &[
    "today",
    "tomorrow",
    "tonight",
    "later",
    "morning",
    "afternoon",
    "evening",
    "night",
    "weekend",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// "All hosts".
const ALL_WORDS: &[&str] = &["all", "every", "everything", "everywhere", "entire", "whole"];

/// The hosts after these are left out ("webservers except web-02").
const HOST_NEGATIONS: &[&str] =
    &["except", "excluding", "exclude", "not", "without", "skip", "skipping", "minus"];

/// An option phrase after these is turned off ("not in check mode", "no dry run").
const OPTION_NEGATIONS: &[&str] = &["no", "not", "without", "don't", "dont", "never", "skip"];
const OPTION_GAP: &[&str] = &["in", "a", "use", "using", "run", "with"];

/// The most words of one message that are checked against the inventory for closest matches.
const MAX_UNKNOWN: usize = 20;

/// What Playdeck makes of a conversation (stored as is with the request).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interpretation {
    pub status: RequestStatus,
    pub understood: Understood,
    pub missing: Vec<Missing>,
    pub refused: Option<Refusal>,
    /// The launch body, when ready.
    pub would_run: Option<Value>,
    /// Playdeck's answer in a sentence or three.
    pub answer: String,
}

/// Host and group names one message gave.
#[derive(Debug, Clone, Default)]
struct Hosts {
    included: Vec<String>,
    excluded: Vec<String>,
    /// Names not in the inventory, and whether they were to be left out.
    unknown: Vec<(String, bool)>,
    all: bool,
    /// Ansible's `&` (intersection) was used, which the request box does not take.
    intersection: bool,
}

/// What one message says, for a known action.
#[derive(Debug, Default)]
struct Said {
    hosts: Option<Hosts>,
    values: BTreeMap<String, Vec<String>>,
    options: BTreeMap<RunOption, bool>,
    ignored: Vec<String>,
}

/// Interprets the operator's messages in order; a later message adds to or corrects the earlier
/// ones (it names the action, the hosts, a value that was missing or wrong).
pub fn interpret(catalog: &Catalog, messages: &[&str]) -> Interpretation {
    let toks: Vec<Vec<Token>> = messages.iter().map(|m| tokens(m)).collect();
    let mut action: Option<&Action> = None;
    let mut candidates: Vec<&Action> = Vec::new();
    for t in &toks {
        let found: Vec<&Action> =
            catalog.actions.iter().filter(|a| a.phrases.iter().any(|p| !find(t, p).is_empty())).collect();
        match found.len() {
            0 => {}
            1 => {
                action = Some(found[0]);
                candidates.clear();
            }
            _ => {
                action = None;
                candidates = found;
            }
        }
    }
    let Some(action) = action else {
        return no_action(catalog, &toks, &candidates);
    };
    let mut said = Said::default();
    for (m, t) in messages.iter().zip(&toks) {
        let now = read_message(action, m, t);
        if now.hosts.is_some() {
            said.hosts = now.hosts;
        }
        for (slot, values) in now.values {
            said.values.insert(slot, values);
        }
        said.options.extend(now.options);
        for w in now.ignored {
            if !said.ignored.contains(&w) {
                said.ignored.push(w);
            }
        }
    }
    decide(action, said)
}

/// Where a phrase occurs in a message: the token ranges.
fn find(toks: &[Token], phrase: &[String]) -> Vec<(usize, usize)> {
    if phrase.is_empty() || toks.len() < phrase.len() {
        return Vec::new();
    }
    (0..=toks.len() - phrase.len())
        .filter(|&i| phrase.iter().enumerate().all(|(k, w)| toks[i + k].word == *w))
        .map(|i| (i, i + phrase.len()))
        .collect()
}

fn no_action(catalog: &Catalog, toks: &[Vec<Token>], candidates: &[&Action]) -> Interpretation {
    let (question, choices) = if candidates.is_empty() {
        let can: Vec<String> = catalog
            .actions
            .iter()
            .map(|a| {
                if a.description.is_empty() {
                    a.name.clone()
                } else {
                    format!("{} ({})", a.name, a.description)
                }
            })
            .collect();
        let mut q = format!("I can {}. Which should I do?", or_list(&can));
        // A misspelt action word gets a hint ("ptach" → patch).
        let hints: Vec<String> = catalog
            .actions
            .iter()
            .filter(|a| {
                toks.iter().flatten().any(|t| {
                    a.phrases.iter().filter(|p| p.len() == 1).any(|p| {
                        let d = distance(&t.word, &p[0]);
                        t.word.chars().count() >= 4 && d > 0 && d <= if p[0].len() >= 7 { 2 } else { 1 }
                    })
                })
            })
            .map(|a| a.name.clone())
            .collect();
        if !hints.is_empty() {
            q = format!("Did you mean {}? {q}", or_list(&hints));
        }
        (q, catalog.actions.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
    } else {
        let names: Vec<String> = candidates.iter().map(|a| a.name.clone()).collect();
        (format!("Do you want to {}? I do one action per request.", or_list(&names)), names)
    };
    let missing = vec![Missing { slot: "action".into(), question: question.clone(), choices }];
    Interpretation {
        status: RequestStatus::NeedsInput,
        understood: Understood::default(),
        missing,
        refused: None,
        would_run: None,
        answer: question,
    }
}

/// Reads one message for `action`: its phrase, options, pattern values, then host names.
fn read_message(action: &Action, text: &str, toks: &[Token]) -> Said {
    let mut said = Said::default();
    let mut used = vec![false; toks.len()];
    for p in &action.phrases {
        for (a, b) in find(toks, p) {
            used[a..b].iter_mut().for_each(|u| *u = true);
        }
    }
    for rule in &action.options {
        for p in &rule.phrases {
            for (a, b) in find(toks, p) {
                if used[a..b].iter().any(|u| *u) {
                    continue;
                }
                used[a..b].iter_mut().for_each(|u| *u = true);
                let mut on = true;
                let mut k = a;
                for _ in 0..3 {
                    if k == 0 {
                        break;
                    }
                    k -= 1;
                    let w = toks[k].word.as_str();
                    if OPTION_NEGATIONS.contains(&w) {
                        on = false;
                        used[k] = true;
                        break;
                    }
                    if !OPTION_GAP.contains(&w) {
                        break;
                    }
                }
                said.options.insert(rule.option, on);
            }
        }
    }
    for slot in &action.slots {
        let SlotKind::Pattern { regex, value } = &slot.kind else { continue };
        let mut values: Vec<String> = Vec::new();
        for caps in regex.captures_iter(text) {
            let Some(m) = caps.get(0) else { continue };
            let over: Vec<usize> =
                (0..toks.len()).filter(|&i| toks[i].start < m.end() && toks[i].end > m.start()).collect();
            if over.is_empty() || over.iter().any(|&i| used[i]) {
                continue;
            }
            over.iter().for_each(|&i| used[i] = true);
            let mut v = String::new();
            caps.expand(value, &mut v);
            if !values.contains(&v) {
                values.push(v);
            }
        }
        if !values.is_empty() {
            said.values.insert(slot.name.clone(), values);
        }
    }
    let inventory_slot = action.slots.iter().find(|s| matches!(s.kind, SlotKind::Inventory { .. }));
    let mut hosts = Hosts::default();
    let mut mentioned = false;
    let mut negated = false;
    let mut after_marker = false;
    for (i, t) in toks.iter().enumerate() {
        if used[i] {
            after_marker = false;
            continue;
        }
        let w = t.word.as_str();
        if let (Some(_), Some(inv)) = (inventory_slot, &action.inventory) {
            if HOST_NEGATIONS.contains(&w) {
                negated = true;
                continue;
            }
            // Ansible's pattern syntax typed as is: `!web-02` leaves a host out; `&` is refused
            // rather than widened into a union.
            let left_out = negated || t.before == Some('!');
            if t.before == Some('&') {
                hosts.intersection = true;
                mentioned = true;
            }
            if ALL_WORDS.contains(&w) {
                if !left_out {
                    hosts.all = true;
                    mentioned = true;
                }
                continue;
            }
            if let Some(name) = known(inv, &t.text) {
                mentioned = true;
                let list = if left_out { &mut hosts.excluded } else { &mut hosts.included };
                if !list.contains(&name) {
                    list.push(name);
                }
                after_marker = false;
                continue;
            }
            if is_filler(w) {
                after_marker = HOST_MARKERS.contains(&w);
                continue;
            }
            let numeric = w.chars().all(|c| c.is_ascii_digit());
            let shaped = host_shaped(&t.text) && !numeric;
            if !TIME_WORDS.contains(&w)
                && (shaped || (after_marker && !numeric) || near(inv, w))
                && hosts.unknown.len() < MAX_UNKNOWN
            {
                mentioned = true;
                if !hosts.unknown.iter().any(|(n, _)| *n == t.text) {
                    hosts.unknown.push((t.text.clone(), left_out));
                }
                after_marker = false;
                continue;
            }
        } else if is_filler(w) {
            continue;
        }
        after_marker = false;
        if !said.ignored.contains(&t.text) {
            said.ignored.push(t.text.clone());
        }
    }
    if mentioned {
        said.hosts = Some(hosts);
    }
    said
}

/// The inventory's own spelling of a host or group name (exact, else the one case-insensitive match).
fn known(inv: &Inventory, name: &str) -> Option<String> {
    if inv.hosts.contains(name) || inv.groups.contains_key(name) {
        return Some(name.to_string());
    }
    let lower = name.to_lowercase();
    let mut found = inv.hosts.iter().chain(inv.groups.keys()).filter(|n| n.to_lowercase() == lower);
    match (found.next(), found.next()) {
        (Some(n), None) => Some(n.clone()),
        _ => None,
    }
}

/// Looks like a host name rather than a word: `web-01`, `db07`, `app.example.com`.
fn host_shaped(s: &str) -> bool {
    s.len() <= 253
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && s.chars().any(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
}

/// A plain word that is a near miss of an inventory name ("webserver" for webservers).
fn near(inv: &Inventory, w: &str) -> bool {
    let n = w.chars().count();
    if !(4..=64).contains(&n) {
        return false;
    }
    let limit = if n >= 6 { 2 } else { 1 };
    inv.hosts.iter().chain(inv.groups.keys()).any(|k| distance(w, &k.to_lowercase()) <= limit)
}

/// The closest inventory names to an unknown one, nearest first (at most three).
pub fn suggestions(inv: &Inventory, name: &str) -> Vec<String> {
    let lower: String = name.to_lowercase().chars().take(64).collect();
    let limit = (lower.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = inv
        .hosts
        .iter()
        .chain(inv.groups.keys().filter(|g| *g != "ungrouped"))
        .map(|k| (distance(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, k)| k.clone()).collect()
}

/// Edit distance over characters, a swap of two neighbours counting as one edit ("ptach" is one
/// edit from "patch"): the optimal string alignment distance.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// A value that may go into extra_vars: no spaces, quotes, braces or shell characters.
fn safe_value(v: &str) -> bool {
    let mut chars = v.chars();
    (1..=100).contains(&v.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '+' | '-'))
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Checks what was said against the action's slots and decides: ready, needs input, or refused.
fn decide(action: &Action, said: Said) -> Interpretation {
    let mut missing: Vec<Missing> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut suggested: Vec<String> = Vec::new();
    let mut unknown_names: Vec<UnknownName> = Vec::new();
    let mut understood = Understood { action: Some(action.name.clone()), ..Default::default() };
    let mut limit: Option<String> = None;
    let mut vars = Map::new();
    let suggest = |list: &mut Vec<String>, s: &[String]| {
        for x in s {
            if !list.contains(x) {
                list.push(x.clone());
            }
        }
    };
    for slot in &action.slots {
        match &slot.kind {
            SlotKind::Inventory { groups, multiple, allow_all } => {
                let Some(inv) = &action.inventory else { continue };
                let hosts = said.hosts.clone().unwrap_or_default();
                for (name, _) in &hosts.unknown {
                    let s = suggestions(inv, name);
                    suggest(&mut suggested, &s);
                    unknown_names.push(UnknownName { name: name.clone(), suggestions: s });
                }
                if !unknown_names.is_empty() {
                    let names: Vec<String> = unknown_names.iter().map(|u| u.name.clone()).collect();
                    let mut r = format!(
                        "{} {} not in the inventory {}.",
                        or_list(&names),
                        if names.len() == 1 { "is" } else { "are" },
                        inv.name
                    );
                    if suggested.is_empty() {
                        let some: Vec<String> = inv.hosts.iter().take(8).cloned().collect();
                        r.push_str(&format!(
                            " It has {}{}.",
                            some.join(", "),
                            if inv.hosts.len() > 8 { ", …" } else { "" }
                        ));
                    }
                    reasons.push(r);
                }
                if hosts.intersection {
                    reasons.push(
                        "I do not combine hosts with & (an intersection); name the hosts or groups one by one."
                            .into(),
                    );
                }
                let mut included = hosts.included.clone();
                if included.is_empty() && hosts.all {
                    if *allow_all {
                        included.push("all".into());
                    } else {
                        reasons.push(format!(
                            "{} runs on hosts named one by one, not on all of them.",
                            action.name
                        ));
                    }
                }
                if !groups {
                    for g in included.iter().chain(&hosts.excluded).filter(|n| inv.is_group(n)) {
                        let members: Vec<String> = inv.members(g).into_iter().collect();
                        reasons.push(format!(
                            "{g} is a group ({}); {} takes a host by its name.",
                            if members.is_empty() { "empty".to_string() } else { members.join(", ") },
                            action.name
                        ));
                        suggest(&mut suggested, &members);
                    }
                }
                if !multiple && !hosts.excluded.is_empty() {
                    reasons.push(format!(
                        "{} runs on one host, so there is nothing to leave out ({}).",
                        action.name,
                        hosts.excluded.join(", ")
                    ));
                }
                if !multiple && included.len() > 1 {
                    missing.push(Missing {
                        slot: slot.name.clone(),
                        question: format!(
                            "{} takes one host at a time: which one, {}?",
                            action.name,
                            or_list(&included)
                        ),
                        choices: included.clone(),
                    });
                } else if included.is_empty() {
                    // An unknown name is refused with suggestions; asking again would say it twice.
                    if slot.required && hosts.unknown.is_empty() {
                        missing.push(Missing {
                            slot: slot.name.clone(),
                            question: slot.question.clone(),
                            choices: vec![],
                        });
                    }
                } else {
                    let value = if *multiple { included.join(",") } else { included[0].clone() };
                    let mut pattern = included.clone();
                    pattern.extend(hosts.excluded.iter().map(|e| format!("!{e}")));
                    for t in &slot.to {
                        match t {
                            Target::Limit => limit = Some(pattern.join(",")),
                            Target::ExtraVar(v) => {
                                vars.insert(v.clone(), Value::String(value.clone()));
                            }
                        }
                    }
                }
                understood.hosts = included;
                understood.excluded = hosts.excluded.clone();
            }
            SlotKind::Pattern { .. } => {
                let values = said.values.get(&slot.name).cloned().unwrap_or_default();
                match values.as_slice() {
                    [] => {
                        if slot.required {
                            missing.push(Missing {
                                slot: slot.name.clone(),
                                question: slot.question.clone(),
                                choices: vec![],
                            });
                        }
                    }
                    [v] if !safe_value(v) => {
                        reasons.push(format!("{v:?} cannot be used as {}.", slot.name.replace('_', " ")));
                    }
                    [v] => {
                        for t in &slot.to {
                            if let Target::ExtraVar(name) = t {
                                vars.insert(name.clone(), Value::String(v.clone()));
                            }
                        }
                    }
                    several => missing.push(Missing {
                        slot: slot.name.clone(),
                        question: format!("Which {}: {}?", slot.name.replace('_', " "), or_list(several)),
                        choices: several.to_vec(),
                    }),
                }
            }
        }
    }
    understood.variables = vars.clone();
    for (opt, on) in &said.options {
        if *on {
            understood.options.insert(opt.as_str().into(), Value::Bool(true));
        }
    }
    understood.ignored = said.ignored;
    let refused = (!reasons.is_empty()).then(|| Refusal {
        reason: reasons.join(" "),
        suggestions: suggested,
        unknown: unknown_names,
    });
    let status = if refused.is_some() {
        RequestStatus::Refused
    } else if !missing.is_empty() {
        RequestStatus::NeedsInput
    } else {
        RequestStatus::Ready
    };
    let would_run =
        (status == RequestStatus::Ready).then(|| launch_body(action, limit.as_deref(), &vars, &said.options));
    let answer = answer(action, status, &understood, &missing, refused.as_ref(), limit.as_deref());
    Interpretation { status, understood, missing, refused, would_run, answer }
}

/// Exactly what `POST /api/v1/jobs` gets.
fn launch_body(
    action: &Action,
    limit: Option<&str>,
    vars: &Map<String, Value>,
    options: &BTreeMap<RunOption, bool>,
) -> Value {
    let on = |o: RunOption| options.get(&o).copied().unwrap_or(false);
    match &action.run {
        Run::Playbook { path, inventory } => {
            let mut body = Map::new();
            body.insert("source".into(), json!({"type": "playbook", "path": path}));
            if let Some(inv) = inventory {
                body.insert("inventory".into(), json!({"type": "file", "path": inv}));
            }
            if !vars.is_empty() {
                body.insert("extra_vars".into(), Value::Object(vars.clone()));
            }
            let mut opts = Map::new();
            if let Some(l) = limit {
                opts.insert("limit".into(), l.into());
            }
            for o in [RunOption::CheckMode, RunOption::DiffMode] {
                if on(o) {
                    opts.insert(o.as_str().into(), true.into());
                }
            }
            if !opts.is_empty() {
                body.insert("options".into(), Value::Object(opts));
            }
            body.insert("wait".into(), false.into());
            Value::Object(body)
        }
        Run::Template { name, controller } => {
            let mut body = Map::new();
            body.insert("template".into(), name.clone().into());
            if let Some(c) = controller {
                body.insert("controller".into(), c.clone().into());
            }
            if !vars.is_empty() {
                body.insert("extra_vars".into(), Value::Object(vars.clone()));
            }
            if let Some(l) = limit {
                body.insert("limit".into(), l.into());
            }
            if on(RunOption::CheckMode) {
                body.insert("job_type".into(), "check".into());
            }
            if on(RunOption::DiffMode) {
                body.insert("diff_mode".into(), true.into());
            }
            body.insert("wait".into(), false.into());
            Value::Object(body)
        }
    }
}

fn answer(
    action: &Action,
    status: RequestStatus,
    understood: &Understood,
    missing: &[Missing],
    refused: Option<&Refusal>,
    limit: Option<&str>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(r) = refused {
        parts.push(format!("I can't run this: {}", r.reason));
        if !r.suggestions.is_empty() {
            parts.push(format!("Did you mean {}?", or_list(&r.suggestions)));
        }
    }
    parts.extend(missing.iter().map(|m| m.question.clone()));
    if status == RequestStatus::Ready {
        let what = match &action.run {
            Run::Playbook { path, inventory: Some(inv) } => format!("playbook {path} (inventory {inv})"),
            Run::Playbook { path, inventory: None } => format!("playbook {path}"),
            Run::Template { name, .. } => format!("template {name:?}"),
        };
        let on = match limit {
            Some(l) => format!(" on {l}"),
            None => String::new(),
        };
        let vars: Vec<String> = understood
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        let with = if vars.is_empty() { String::new() } else { format!(" with {}", vars.join(", ")) };
        let modes: Vec<&str> = understood
            .options
            .keys()
            .map(|k| if k == "check_mode" { "in check mode (nothing is changed)" } else { "showing diffs" })
            .collect();
        let modes = if modes.is_empty() { String::new() } else { format!(", {}", modes.join(", ")) };
        parts.push(format!("I would run {what}{on}{with}{modes}. Confirm to launch it."));
    }
    if !understood.ignored.is_empty() {
        parts.push(format!("I did not use: {}.", understood.ignored.join(", ")));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = "\
[webservers]
web-01
web-02
[databases]
db-01
[prod:children]
webservers
databases
";

    /// The shipped catalog's shape, with a template action beside it.
    const CATALOG: &str = r#"{
      "options": [
        {"option": "check_mode", "phrases": ["check mode", "check-mode", "dry run", "dry-run", "dryrun", "simulate"]},
        {"option": "diff_mode", "phrases": ["diff mode", "with diff", "show diffs", "show the diff"]}
      ],
      "actions": [
        {"name": "patch", "description": "patch servers with a patch group",
         "phrases": ["patch", "patching", "apply patches", "install updates", "update"],
         "run": {"playbook": "patch.yml", "inventory": "hosts.ini"},
         "slots": [
           {"name": "hosts", "from": "inventory", "to": ["limit"], "required": true, "allow_all": true,
            "question": "Which servers or groups should I patch?"},
           {"name": "patch_group", "pattern": "\\bgroup[\\s_-]*0*(\\d{1,3})\\b", "value": "Group-$1",
            "to": ["extra_vars.patch_group"], "required": true,
            "question": "Which patch group should I apply (Group-1, Group-2, …)?"}
         ]},
        {"name": "retire", "description": "retire a virtual machine",
         "phrases": ["retire", "decommission", "decom"],
         "run": {"playbook": "retire-vm.yml", "inventory": "hosts.ini"},
         "slots": [
           {"name": "vm", "from": "inventory", "accept": "hosts", "multiple": false,
            "to": ["limit", "extra_vars.vm_name"], "required": true, "question": "Which VM should I retire?"}
         ]},
        {"name": "hello", "description": "run the hello playbook",
         "phrases": ["hello", "say hello"],
         "run": {"playbook": "hello.yml", "inventory": "hosts.ini"},
         "slots": [{"name": "hosts", "from": "inventory", "to": ["limit"]}]},
        {"name": "restart", "description": "restart a service through AAP",
         "phrases": ["restart"],
         "run": {"template": "Restart service", "controller": "aap", "known_hosts": "hosts.ini"},
         "slots": [
           {"name": "hosts", "from": "inventory", "to": ["limit"], "required": true},
           {"name": "service", "pattern": "\\b(nginx|httpd|postgresql)\\b", "value": "$1",
            "to": ["extra_vars.service"], "required": true, "question": "Which service?"}
         ]}
      ]
    }"#;

    fn catalog() -> Catalog {
        Catalog::parse(CATALOG, |name| Inventory::parse(name, INVENTORY)).expect("the test catalog is valid")
    }

    fn run(messages: &[&str]) -> Interpretation {
        interpret(&catalog(), messages)
    }

    #[test]
    fn tokens_keep_host_names_whole() {
        let words: Vec<String> =
            tokens("Patch server web-01, web-02. (Group-1); don't!").into_iter().map(|t| t.word).collect();
        assert_eq!(words, ["patch", "server", "web-01", "web-02", "group-1", "don't"]);
        let t = &tokens("  Web-01.")[0];
        assert_eq!((t.text.as_str(), t.start, t.end), ("Web-01", 2, 8));
        assert!(tokens("--- ... ;;").is_empty());
    }

    /// The table of phrasings that are understood and ready: the text, then the launch body.
    #[test]
    fn valid_requests_become_exactly_this_launch() {
        let patch = |limit: &str, group: &str| {
            json!({"source": {"type": "playbook", "path": "patch.yml"},
                   "inventory": {"type": "file", "path": "hosts.ini"},
                   "extra_vars": {"patch_group": group}, "options": {"limit": limit}, "wait": false})
        };
        let cases: Vec<(&str, Value)> = vec![
            ("Patch server web-01 with Group-1", patch("web-01", "Group-1")),
            ("patch web-01 group 1", patch("web-01", "Group-1")),
            ("PATCH WEB-01 WITH GROUP-1", patch("web-01", "Group-1")),
            ("please patch web-01 and web-02 using group 2", patch("web-01,web-02", "Group-2")),
            (
                "Could you apply patches to the webservers with patch group 3, thanks!",
                patch("webservers", "Group-3"),
            ),
            ("patch group_1 on db-01", patch("db-01", "Group-1")),
            ("Patch web-01, web-02 and db-01 (Group-01)", patch("web-01,web-02,db-01", "Group-1")),
            ("install updates on prod except web-02 with group 2", patch("prod,!web-02", "Group-2")),
            ("patch all servers with group 1", patch("all", "Group-1")),
            ("patch webservers but not web-01, group 2", patch("webservers,!web-01", "Group-2")),
            ("update db-01 group2", patch("db-01", "Group-2")),
            (
                "retire vm web-02",
                json!({"source": {"type": "playbook", "path": "retire-vm.yml"},
                       "inventory": {"type": "file", "path": "hosts.ini"},
                       "extra_vars": {"vm_name": "web-02"}, "options": {"limit": "web-02"}, "wait": false}),
            ),
            (
                "Decommission the server db-01 please",
                json!({"source": {"type": "playbook", "path": "retire-vm.yml"},
                       "inventory": {"type": "file", "path": "hosts.ini"},
                       "extra_vars": {"vm_name": "db-01"}, "options": {"limit": "db-01"}, "wait": false}),
            ),
            (
                "run hello on webservers in check mode",
                json!({"source": {"type": "playbook", "path": "hello.yml"},
                       "inventory": {"type": "file", "path": "hosts.ini"},
                       "options": {"limit": "webservers", "check_mode": true}, "wait": false}),
            ),
            (
                "say hello",
                json!({"source": {"type": "playbook", "path": "hello.yml"},
                       "inventory": {"type": "file", "path": "hosts.ini"}, "wait": false}),
            ),
            (
                "hello on Web-01 dry-run with diff",
                json!({"source": {"type": "playbook", "path": "hello.yml"},
                       "inventory": {"type": "file", "path": "hosts.ini"},
                       "options": {"limit": "web-01", "check_mode": true, "diff_mode": true}, "wait": false}),
            ),
            ("patch web-01 with group 1, not in check mode", patch("web-01", "Group-1")),
            (
                "restart nginx on webservers in check mode",
                json!({"template": "Restart service", "controller": "aap", "extra_vars": {"service": "nginx"},
                       "limit": "webservers", "job_type": "check", "wait": false}),
            ),
        ];
        for (text, body) in cases {
            let i = run(&[text]);
            assert_eq!(i.status, RequestStatus::Ready, "{text}: {i:?}");
            assert_eq!(i.would_run.as_ref(), Some(&body), "{text}");
            assert!(i.missing.is_empty() && i.refused.is_none(), "{text}");
            assert!(i.answer.contains("Confirm"), "{text}: {}", i.answer);
        }
    }

    #[test]
    fn what_was_understood_is_spelled_out() {
        let i = run(&["Patch server web-01 with Group-1 in check mode tomorrow"]);
        assert_eq!(i.understood.action.as_deref(), Some("patch"));
        assert_eq!(i.understood.hosts, ["web-01"]);
        assert_eq!(Value::Object(i.understood.variables.clone()), json!({"patch_group": "Group-1"}));
        assert_eq!(Value::Object(i.understood.options.clone()), json!({"check_mode": true}));
        assert_eq!(i.understood.ignored, ["tomorrow"], "words that were not used are shown");
        assert!(
            i.answer.contains("patch.yml") && i.answer.contains("web-01") && i.answer.contains("Group-1")
        );
        assert!(i.answer.contains("check mode") && i.answer.contains("tomorrow"), "{}", i.answer);
    }

    /// Missing parts: the request waits and asks, and nothing would run.
    #[test]
    fn missing_parts_are_asked_for() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("patch web-01", vec!["patch_group"]),
            ("patch with group 1", vec!["hosts"]),
            ("patch", vec!["hosts", "patch_group"]),
            ("patch the servers", vec!["hosts", "patch_group"]),
            ("retire a vm", vec!["vm"]),
            ("retire web-01 and web-02", vec!["vm"]),
            ("patch web-01 with group 1 or group 2", vec!["patch_group"]),
            ("restart web-01", vec!["service"]),
            ("patch except web-01 with group 1", vec!["hosts"]),
        ];
        for (text, slots) in cases {
            let i = run(&[text]);
            assert_eq!(i.status, RequestStatus::NeedsInput, "{text}: {i:?}");
            let got: Vec<&str> = i.missing.iter().map(|m| m.slot.as_str()).collect();
            assert_eq!(got, slots, "{text}");
            assert!(i.would_run.is_none(), "{text}");
            for m in &i.missing {
                assert!(i.answer.contains(&m.question), "{text}: the answer asks {}", m.question);
            }
        }
        let i = run(&["retire web-01 and web-02"]);
        assert_eq!(i.missing[0].choices, ["web-01", "web-02"]);
        assert!(i.missing[0].question.contains("one host at a time"));
        let i = run(&["patch web-01 with group 1 or group 2"]);
        assert_eq!(i.missing[0].choices, ["Group-1", "Group-2"]);
    }

    /// Unknown hosts and groups are refused with the closest names of the inventory.
    #[test]
    fn unknown_hosts_are_refused_with_the_closest_matches() {
        let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
            ("retire vm db-07", vec!["db-07"], vec!["db-01"]),
            ("patch web-1 with group 1", vec!["web-1"], vec!["web-01", "web-02"]),
            ("patch webserver with group 1", vec!["webserver"], vec!["webservers"]),
            ("run hello on web-03", vec!["web-03"], vec!["web-01", "web-02"]),
            ("retire server mailhost", vec!["mailhost"], vec![]),
            ("patch web-01 and app-9.example.com with group 2", vec!["app-9.example.com"], vec![]),
            ("patch webservers except web-09 with group 1", vec!["web-09"], vec!["web-01", "web-02"]),
        ];
        for (text, unknown, suggestions) in cases {
            let i = run(&[text]);
            assert_eq!(i.status, RequestStatus::Refused, "{text}: {i:?}");
            let r = i.refused.as_ref().expect("refusal");
            let names: Vec<&str> = r.unknown.iter().map(|u| u.name.as_str()).collect();
            assert_eq!(names, unknown, "{text}");
            assert_eq!(r.suggestions, suggestions, "{text}");
            assert!(r.reason.contains("not in the inventory hosts.ini"), "{text}: {}", r.reason);
            assert!(i.would_run.is_none());
        }
        let i = run(&["retire server mailhost"]);
        assert!(i.refused.expect("refused").reason.contains("It has db-01, web-01, web-02"));
    }

    #[test]
    fn a_host_action_refuses_groups_and_all() {
        let i = run(&["retire webservers"]);
        assert_eq!(i.status, RequestStatus::Refused);
        let r = i.refused.expect("refused");
        assert!(r.reason.contains("webservers is a group (web-01, web-02)"), "{}", r.reason);
        assert_eq!(r.suggestions, ["web-01", "web-02"]);
        let i = run(&["retire all vms"]);
        assert_eq!(i.status, RequestStatus::Refused, "{i:?}");
        let i = run(&["retire web-01 except web-02"]);
        assert_eq!(i.status, RequestStatus::Refused, "{i:?}");
    }

    #[test]
    fn ambiguous_requests_ask_which_action() {
        for text in ["patch and retire db-01", "retire or patch web-01 with group 1"] {
            let i = run(&[text]);
            assert_eq!(i.status, RequestStatus::NeedsInput, "{text}");
            assert_eq!(i.missing.len(), 1);
            assert_eq!(i.missing[0].slot, "action");
            assert_eq!(i.missing[0].choices, ["patch", "retire"], "{text}");
            assert!(i.missing[0].question.contains("patch or retire"), "{}", i.missing[0].question);
            assert!(i.would_run.is_none());
        }
    }

    #[test]
    fn no_action_says_what_playdeck_can_do() {
        for text in ["reboot web-01", "what can you do?", "web-01", "💥"] {
            let i = run(&[text]);
            assert_eq!(i.status, RequestStatus::NeedsInput, "{text}");
            let q = &i.missing[0].question;
            assert!(q.contains("patch (patch servers with a patch group)") && q.contains("retire"), "{q}");
            assert_eq!(i.missing[0].choices, ["patch", "retire", "hello", "restart"]);
        }
        let i = run(&["ptach web-01 with group 1"]);
        assert!(i.missing[0].question.starts_with("Did you mean patch?"), "{}", i.missing[0].question);
    }

    /// Replies complete or correct what was said before.
    #[test]
    fn replies_fill_in_and_correct() {
        let i = run(&["patch web-01", "group 2"]);
        assert_eq!(i.status, RequestStatus::Ready, "{i:?}");
        assert_eq!(i.would_run.expect("body")["extra_vars"], json!({"patch_group": "Group-2"}));

        let i = run(&["retire vm db-07", "db-01"]);
        assert_eq!(i.status, RequestStatus::Ready, "the corrected host replaces the unknown one: {i:?}");
        assert_eq!(i.would_run.expect("body")["options"]["limit"], "db-01");

        let i = run(&["patch and retire db-01", "retire"]);
        assert_eq!(i.status, RequestStatus::Ready, "{i:?}");
        assert_eq!(i.understood.action.as_deref(), Some("retire"));
        assert_eq!(i.understood.hosts, ["db-01"], "hosts named before the action was clear are kept");

        let i = run(&["reboot web-01", "I meant patch it with group 1"]);
        assert_eq!(i.status, RequestStatus::Ready, "{i:?}");
        assert_eq!(i.would_run.expect("body")["options"]["limit"], "web-01");

        let i = run(&["patch web-01 with group 1", "in check mode"]);
        assert_eq!(i.would_run.expect("body")["options"], json!({"limit": "web-01", "check_mode": true}));
        let i = run(&["patch web-01 with group 1 in check mode", "no dry run"]);
        assert_eq!(i.would_run.expect("body")["options"], json!({"limit": "web-01"}));

        let i = run(&["patch web-01 with group 1", "actually web-02"]);
        assert_eq!(i.would_run.expect("body")["options"]["limit"], "web-02");
        let i = run(&["patch web-01", "yes please"]);
        assert_eq!(i.status, RequestStatus::NeedsInput, "a reply with nothing new changes nothing");
    }

    /// Whatever the text holds, the launch body holds only catalog and inventory values.
    #[test]
    fn hostile_text_never_reaches_the_launch() {
        let texts = [
            "patch web-01 with group 1 {{ lookup('pipe', 'id') }}",
            "patch web-01;rm -rf / with group 1",
            "patch web-01 with group 1'; drop table jobs; --",
            "patch web-01 with group 1 <script>alert(1)</script>",
            "patch web-01 with group 1 $(reboot) `id`",
            "patch web-01 with group 1 \u{0}\u{7}\u{1b}",
        ];
        for text in texts {
            let i = run(&[text]);
            assert_eq!(i.status, RequestStatus::Ready, "{text}: {i:?}");
            let body = i.would_run.as_ref().map(|b| b.to_string()).unwrap_or_default();
            for bad in ["{{", "lookup", ";", "rm", "drop", "<", "$(", "`", "\\u"] {
                assert!(!body.contains(bad), "{text}: the launch body carries {bad:?}: {body}");
            }
            assert_eq!(i.would_run.expect("body")["options"]["limit"], "web-01", "{text}");
        }
        let i = run(&["patch web-01;rm -rf / with group 1"]);
        assert_eq!(i.understood.ignored, ["rm", "rf"], "the words are shown as not used");
        // Ansible's own pattern syntax: `!` leaves a host out, `&` is refused rather than widened.
        let i = run(&["patch webservers,!web-02 with group 1"]);
        assert_eq!(i.would_run.expect("body")["options"]["limit"], "webservers,!web-02");
        let i = run(&["patch web-01:&webservers with group 1"]);
        assert_eq!(i.status, RequestStatus::Refused, "{i:?}");
        assert!(i.refused.expect("refused").reason.contains("&"));
        assert!(run(&["run hello on all hosts"]).refused.is_some(), "hello does not allow all");
    }

    #[test]
    fn a_pattern_value_outside_the_safe_characters_is_refused() {
        let catalog = Catalog::parse(
            r#"{"actions": [{"name": "echo", "phrases": ["echo"], "run": {"playbook": "e.yml"},
               "slots": [{"name": "msg", "pattern": "say (.+)$", "value": "$1", "to": ["extra_vars.msg"]}]}]}"#,
            |_| Ok(Inventory::default()),
        )
        .expect("valid");
        let i = interpret(&catalog, &["echo say {{ lookup('pipe','id') }}"]);
        assert_eq!(i.status, RequestStatus::Refused, "{i:?}");
        assert!(i.would_run.is_none());
        let i = interpret(&catalog, &["echo say hello-1"]);
        assert_eq!(i.would_run.expect("ready")["extra_vars"]["msg"], "hello-1");
    }

    #[test]
    fn suggestions_are_nearest_first() {
        let inv = Inventory::parse("h.ini", INVENTORY).expect("inventory");
        assert_eq!(suggestions(&inv, "db-07"), ["db-01"]);
        assert_eq!(suggestions(&inv, "WEB-1"), ["web-01", "web-02"]);
        assert_eq!(suggestions(&inv, "database"), ["databases"]);
        assert!(suggestions(&inv, "zzzzzzzz").is_empty());
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn the_shipped_catalog_is_valid() {
        let text = include_str!("../../../examples/catalog.json");
        let demo = "all:\n  children:\n    webservers:\n      hosts: {web-01: , web-02: }\n    databases:\n      hosts: {db-01: }\n";
        let catalog = Catalog::parse(text, |name| {
            assert_eq!(name, "demo.yml", "the demo inventory");
            Inventory::parse(name, demo)
        })
        .expect("examples/catalog.json is a valid catalog");
        let names: Vec<&str> = catalog.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["patch", "retire", "hello"]);
        let i = interpret(&catalog, &["Patch server web-01 with Group-1"]);
        let body = i.would_run.expect("ready");
        assert_eq!(body["source"], json!({"type": "playbook", "path": "patch.yml"}));
        assert_eq!(body["extra_vars"], json!({"patch_group": "Group-1"}));
        assert_eq!(body["options"]["limit"], "web-01");
        let i = interpret(&catalog, &["retire vm web-02"]);
        assert_eq!(i.would_run.expect("ready")["extra_vars"], json!({"vm_name": "web-02"}));
        let i = interpret(&catalog, &["run hello on webservers in check mode"]);
        assert_eq!(
            i.would_run.expect("ready")["options"],
            json!({"limit": "webservers", "check_mode": true})
        );
        assert!(!catalog.action("patch").expect("patch").phases.is_empty());
    }
}
