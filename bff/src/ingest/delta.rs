//! What a batch of events says, before it is written: per host, the counts it adds (or Ansible's
//! final summary), and about the job, the statuses it moves through, its times and its current
//! play and task. Pure functions of the events, tested without a database.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::JobStatus;

use crate::store::events::Event;

/// Per-host changes a batch brings: rolling increments, or Ansible's final summary.
#[derive(Debug, Default, Clone)]
pub(super) struct HostDelta {
    pub(super) ok: i32,
    pub(super) changed: i32,
    pub(super) failures: i32,
    pub(super) dark: i32,
    pub(super) skipped: i32,
    pub(super) rescued: i32,
    pub(super) ignored: i32,
    pub(super) last_task: Option<String>,
    pub(super) last_counter: i64,
    pub(super) is_final: bool,
}

pub(super) fn host_deltas(events: &[&Event]) -> BTreeMap<String, HostDelta> {
    let mut hosts: BTreeMap<String, HostDelta> = BTreeMap::new();
    for ev in events {
        if ev.event == "playbook_on_stats" {
            let Some(data) = ev.event_data.as_object() else { continue };
            let stat = |key: &str, host: &str| -> i32 {
                data.get(key).and_then(|m| m.get(host)).and_then(Value::as_i64).unwrap_or(0) as i32
            };
            let mut names: HashSet<String> = HashSet::new();
            for key in ["ok", "changed", "dark", "failures", "skipped", "rescued", "ignored", "processed"] {
                if let Some(m) = data.get(key).and_then(Value::as_object) {
                    names.extend(m.keys().cloned());
                }
            }
            for name in names {
                let h = hosts.entry(name.clone()).or_default();
                h.ok = stat("ok", &name);
                h.changed = stat("changed", &name);
                h.dark = stat("dark", &name);
                h.failures = stat("failures", &name);
                h.skipped = stat("skipped", &name);
                h.rescued = stat("rescued", &name);
                h.ignored = stat("ignored", &name);
                h.is_final = true;
            }
            continue;
        }
        let Some(host) = &ev.host else { continue };
        let counts = matches!(
            ev.event.as_str(),
            "runner_on_ok" | "runner_on_failed" | "runner_on_skipped" | "runner_on_unreachable"
        );
        let h = hosts.entry(host.clone()).or_default();
        if ev.counter > h.last_counter && ev.task.is_some() {
            h.last_counter = ev.counter;
            h.last_task = ev.task.clone();
        }
        if !counts || h.is_final {
            continue;
        }
        match ev.event.as_str() {
            "runner_on_ok" => {
                h.ok += 1;
                h.changed += ev.changed as i32;
            }
            "runner_on_failed" if ev.ignore_errors => {
                h.ok += 1;
                h.ignored += 1;
            }
            "runner_on_failed" => h.failures += 1,
            "runner_on_skipped" => h.skipped += 1,
            "runner_on_unreachable" => h.dark += 1,
            _ => {}
        }
    }
    hosts
}

/// What the events of a batch say about the job.
#[derive(Debug, Default)]
pub(super) struct JobDelta {
    /// Each status the events move the job through, with the event that did it.
    pub(super) statuses: Vec<(JobStatus, String)>,
    pub(super) earliest: Option<DateTime<Utc>>,
    pub(super) finished: Option<DateTime<Utc>>,
    pub(super) current: Option<(i64, Option<String>, Option<String>)>,
    pub(super) plays: i32,
    pub(super) tasks: i32,
}

pub(super) fn job_delta(events: &[&Event], current: JobStatus, explicit: bool) -> JobDelta {
    let mut d = JobDelta::default();
    let mut status = current;
    for ev in events {
        if let Some(t) = ev.created {
            d.earliest = Some(d.earliest.map_or(t, |e| e.min(t)));
        }
        match ev.event.as_str() {
            "playbook_on_play_start" => {
                d.plays += 1;
                d.current = Some((ev.counter, ev.play.clone(), None));
            }
            "playbook_on_task_start" | "playbook_on_handler_task_start" => {
                d.tasks += 1;
                d.current = Some((ev.counter, ev.play.clone(), ev.task.clone()));
            }
            "playbook_on_stats" => {
                d.finished = ev.created.or_else(|| Some(Utc::now()));
            }
            _ => {}
        }
        if explicit {
            continue;
        }
        // Statuses only move forward: a late playbook_on_start never reopens a finished job.
        if ev.event == "playbook_on_stats" && !status.is_finished() {
            let data = ev.event_data.as_object();
            let any = |key: &str| {
                data.and_then(|d| d.get(key))
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.values().any(|v| v.as_i64().unwrap_or(0) > 0))
            };
            status = if any("failures") || any("dark") { JobStatus::Failed } else { JobStatus::Successful };
            d.statuses.push((status, format!("event {}", ev.event)));
        } else if matches!(status, JobStatus::New | JobStatus::Pending | JobStatus::Waiting)
            && ev.event != "playbook_on_stats"
        {
            status = JobStatus::Running;
            d.statuses.push((status, format!("event {}", ev.event)));
        }
    }
    d
}
