//! One job's events as the job page holds them: in Ansible's order (by counter), whatever order
//! they arrive in, each kept once, with the output split into lines and an index from line number
//! to event, so a window of a 100k-line output is found by binary search.
//!
//! Events come from two places that overlap: the read API (brief pages, oldest first) and the live
//! feed (arrival order). Keying by counter makes the overlap harmless.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use chrono::{DateTime, Utc};
use shared::JobEvent;

use crate::ansi::{self, Style};

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// As sent, with its escape sequences.
    pub text: Box<str>,
    /// Without them (for search); `None` when the same as `text`.
    plain: Option<Box<str>>,
    /// The style in force where the line starts.
    pub style: Style,
}

impl Line {
    pub fn plain(&self) -> &str {
        self.plain.as_deref().unwrap_or(&self.text)
    }
}

/// What the page keeps of an event: enough for the output, the timeline and the counters. The
/// whole event (its `event_data`) is fetched when someone opens it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub counter: i64,
    pub event: Rc<str>,
    pub created: Option<DateTime<Utc>>,
    pub host: Option<Rc<str>>,
    pub play: Option<Rc<str>>,
    pub task: Option<Rc<str>>,
    pub uuid: Option<Rc<str>>,
    pub parent_uuid: Option<Rc<str>>,
    pub failed: bool,
    pub changed: bool,
    /// When the task ran on the host, from `event_data` (runner events).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub lines: Vec<Line>,
}

#[derive(Debug, Default)]
pub struct JobEvents {
    pub events: BTreeMap<i64, Ev>,
    /// `(first line, counter)` of every event with output, in counter order.
    index: Vec<(usize, i64)>,
    total_lines: usize,
    /// Host, play and task names are repeated thousands of times: one copy each.
    names: HashSet<Rc<str>>,
    /// Grows with every change, so views know when to look again.
    pub version: u64,
}

impl JobEvents {
    pub fn line_count(&self) -> usize {
        self.total_lines
    }

    /// Adds events not seen before; answers how many were new.
    pub fn add(&mut self, events: Vec<JobEvent>) -> usize {
        let mut fresh: Vec<JobEvent> =
            events.into_iter().filter(|e| !self.events.contains_key(&e.counter)).collect();
        if fresh.is_empty() {
            return 0;
        }
        fresh.sort_by_key(|e| e.counter);
        fresh.dedup_by_key(|e| e.counter);
        let appends = self.events.last_key_value().is_none_or(|(last, _)| fresh[0].counter > *last);
        let n = fresh.len();
        for e in fresh {
            let ev = self.compact(e);
            if appends && !ev.lines.is_empty() {
                self.index.push((self.total_lines, ev.counter));
                self.total_lines += ev.lines.len();
            }
            self.events.insert(ev.counter, ev);
        }
        if !appends {
            self.reindex();
        }
        self.version += 1;
        n
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.total_lines = 0;
        for ev in self.events.values().filter(|e| !e.lines.is_empty()) {
            self.index.push((self.total_lines, ev.counter));
            self.total_lines += ev.lines.len();
        }
    }

    fn name(&mut self, s: Option<String>) -> Option<Rc<str>> {
        let s = s?;
        if let Some(existing) = self.names.get(s.as_str()) {
            return Some(existing.clone());
        }
        let rc: Rc<str> = Rc::from(s);
        self.names.insert(rc.clone());
        Some(rc)
    }

    fn compact(&mut self, e: JobEvent) -> Ev {
        let time = |key: &str| e.event_data.get(key).and_then(|v| v.as_str()).and_then(parse_time);
        let (start, end) = (time("start"), time("end"));
        Ev {
            counter: e.counter,
            event: self.name(Some(e.event)).unwrap_or_else(|| Rc::from("")),
            created: e.created,
            host: self.name(e.host),
            play: self.name(e.play),
            task: self.name(e.task),
            uuid: e.uuid.map(Rc::from),
            parent_uuid: self.name(e.parent_uuid),
            failed: e.failed,
            changed: e.changed,
            start,
            end,
            lines: split_lines(&e.stdout),
        }
    }

    /// The event that printed line `n` (0-based) and the line's place in it.
    pub fn locate(&self, n: usize) -> Option<(&Ev, usize)> {
        if n >= self.total_lines {
            return None;
        }
        let i = self.index.partition_point(|(first, _)| *first <= n).checked_sub(1)?;
        let (first, counter) = self.index[i];
        let ev = self.events.get(&counter)?;
        Some((ev, n - first))
    }

    pub fn line(&self, n: usize) -> Option<(&Line, i64)> {
        self.locate(n).and_then(|(ev, k)| ev.lines.get(k).map(|l| (l, ev.counter)))
    }

    /// The first line of an event, if it printed any.
    #[cfg(test)]
    pub fn first_line_of(&self, counter: i64) -> Option<usize> {
        let i = self.index.binary_search_by_key(&counter, |(_, c)| *c).ok()?;
        Some(self.index[i].0)
    }

    /// Every line, in order, with its number.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &Line)> {
        self.index.iter().flat_map(move |(first, counter)| {
            self.events
                .get(counter)
                .into_iter()
                .flat_map(move |ev| ev.lines.iter().enumerate().map(move |(k, l)| (first + k, l)))
        })
    }

    /// Lines whose text contains `needle` (case-insensitive), with each occurrence's byte offset
    /// in the plain text.
    pub fn search(&self, needle: &str) -> Vec<(usize, usize)> {
        let needle = needle.to_lowercase();
        if needle.is_empty() {
            return Vec::new();
        }
        let mut hits = Vec::new();
        for (n, line) in self.lines() {
            let plain = line.plain();
            // Most lines are ASCII: lowercase only those that could match.
            if plain.is_ascii() && needle.is_ascii() {
                let hay = plain.as_bytes();
                let nb = needle.as_bytes();
                if hay.len() < nb.len() {
                    continue;
                }
                let mut i = 0;
                while i + nb.len() <= hay.len() {
                    if hay[i..i + nb.len()].eq_ignore_ascii_case(nb) {
                        hits.push((n, i));
                        i += nb.len();
                    } else {
                        i += 1;
                    }
                }
            } else {
                for (i, _) in find_all_ci(plain, &needle) {
                    hits.push((n, i));
                }
            }
        }
        hits
    }
}

/// Case-insensitive occurrences for non-ASCII text: offsets into `hay` where a match starts, and
/// its length there.
pub fn find_all_ci(hay: &str, needle_lower: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if needle_lower.is_empty() {
        return out;
    }
    let starts: Vec<usize> = hay.char_indices().map(|(i, _)| i).collect();
    let mut k = 0;
    while k < starts.len() {
        let i = starts[k];
        let mut matched = None;
        let mut acc = String::new();
        for (j, c) in hay[i..].char_indices() {
            acc.extend(c.to_lowercase());
            if acc.len() >= needle_lower.len() {
                if acc == needle_lower {
                    matched = Some(j + c.len_utf8());
                }
                break;
            }
            if !needle_lower.starts_with(&acc) {
                break;
            }
        }
        match matched {
            Some(len) => {
                out.push((i, len));
                while k < starts.len() && starts[k] < i + len {
                    k += 1;
                }
            }
            None => k += 1,
        }
    }
    out
}

/// An event's output as the bff's `/stdout` has it: its stdout and a line break, split in lines,
/// each line's style carried over from the one before.
fn split_lines(stdout: &str) -> Vec<Line> {
    if stdout.is_empty() {
        return Vec::new();
    }
    let mut style = Style::default();
    stdout
        .split('\n')
        .map(|raw| {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let plain = raw.contains(['\u{1b}', '\r']).then(|| ansi::strip(raw).into_boxed_str());
            let line = Line { text: raw.into(), plain, style };
            style = ansi::end_style(raw, style);
            line
        })
        .collect()
}

/// RFC 3339, or ansible-runner's naive ISO time (UTC without an offset). Read without chrono's
/// format-string parser, which would add to every page load.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    DateTime::parse_from_rfc3339(&format!("{s}Z")).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(counter: i64, stdout: &str) -> JobEvent {
        JobEvent {
            job_id: 1,
            counter,
            cursor: counter.to_string(),
            event: "runner_on_ok".into(),
            uuid: None,
            parent_uuid: None,
            created: None,
            host: Some("h".into()),
            play: None,
            task: None,
            role: None,
            stdout: stdout.into(),
            start_line: 0,
            end_line: 0,
            failed: false,
            changed: false,
            event_data: json!({"start": "2026-01-01T00:00:00.5", "end": "2026-01-01T00:00:01Z"}),
        }
    }

    fn text(s: &JobEvents) -> Vec<String> {
        s.lines().map(|(_, l)| l.plain().to_owned()).collect()
    }

    #[test]
    fn events_in_any_order_give_lines_in_counter_order_once() {
        let mut s = JobEvents::default();
        assert_eq!(s.add(vec![ev(3, "c1\nc2"), ev(1, "a")]), 2);
        assert_eq!(s.add(vec![ev(2, "\u{1b}[0;32mb\u{1b}[0m"), ev(3, "dup")]), 1);
        assert_eq!(s.add(vec![ev(5, ""), ev(6, "f\r")]), 2);
        assert_eq!(text(&s), ["a", "b", "c1", "c2", "f"]);
        assert_eq!(s.line_count(), 5);
        assert_eq!(s.line(3).map(|(l, c)| (l.plain().to_owned(), c)), Some(("c2".into(), 3)));
        assert_eq!(s.first_line_of(6), Some(4));
        assert_eq!(s.first_line_of(5), None);
        assert!(s.line(5).is_none());
        assert!(s.events[&1].start.is_some() && s.events[&1].end.is_some());
    }

    #[test]
    fn search_finds_every_occurrence_case_insensitively() {
        let mut s = JobEvents::default();
        s.add(vec![ev(1, "OK ok\nnothing"), ev(2, "\u{1b}[0;32mok: [Höst]\u{1b}[0m")]);
        assert_eq!(s.search("ok"), [(0, 0), (0, 3), (2, 0)]);
        assert_eq!(s.search("HÖST"), [(2, 5)]);
        assert!(s.search("").is_empty());
    }
}
