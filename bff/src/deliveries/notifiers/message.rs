//! What a notification says: the job, how it ended, the hosts that failed and why, and what the
//! knowledge base advises; written once as a [`Report`] and rendered as plain text (mail) or as a
//! chat's payload. Only the job's record goes in (its extra_vars are masked there); bounded, so a
//! run with thousands of failures still makes a readable message.

use serde_json::{json, Value};
use shared::engine::JobRun;
use shared::kb::Explanation;
use shared::notifiers::ChatStyle;
use shared::JobStatus;

/// Most failing hosts, failed tasks and knowledge base entries listed; the rest are counted.
const MAX_HOSTS: usize = 20;
const MAX_TASKS: usize = 10;
const MAX_ENTRIES: usize = 5;
/// Longest error message and solution quoted (characters).
const MAX_ERROR: usize = 300;
const MAX_SOLUTION: usize = 1200;

/// One entry of a section: an optional lead (bold in chats) and its text.
struct Item {
    lead: Option<String>,
    text: String,
}

/// A notification, before it is rendered.
pub struct Report {
    /// One line: "Job 42 "patch web" failed".
    pub title: String,
    status: Option<JobStatus>,
    facts: Vec<(&'static str, String)>,
    sections: Vec<(&'static str, Vec<Item>)>,
    link: Option<String>,
}

/// At most `max` characters (trimmed), with an ellipsis when cut.
pub(super) fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

/// One line: line breaks and other control characters become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn elapsed(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn more(items: &mut Vec<Item>, total: usize, shown: usize, what: &str) {
    if total > shown {
        items.push(Item { lead: None, text: format!("… and {} more {what}", total - shown) });
    }
}

impl Report {
    /// The report of a finished job. `public_url`: where Playdeck's pages are, for a link.
    pub fn of_job(run: &JobRun, explanations: &[Explanation], public_url: Option<&str>) -> Report {
        let job = &run.job;
        let title = format!("Job {} \"{}\" {}", job.id, clip(&one_line(&job.name), 120), job.status);
        let mut facts: Vec<(&'static str, String)> =
            vec![("Status", job.status.to_string()), ("Source", job.source.clone())];
        let optional = [
            ("Template", &job.template),
            ("Inventory", &job.inventory),
            ("Launched by", &job.launched_by),
            ("Limit", &job.limit),
        ];
        for (name, value) in optional {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                facts.push((name, clip(&one_line(v), 200)));
            }
        }
        if let Some(e) = job.elapsed {
            facts.push(("Elapsed", elapsed(e)));
        }
        let h = &job.hosts;
        facts.push((
            "Hosts",
            format!("{} ok, {} changed, {} failed, {} unreachable", h.ok, h.changed, h.failed, h.unreachable),
        ));
        if let Some(note) = &job.explanation {
            facts.push(("Note", clip(&one_line(note), 300)));
        }

        let mut sections = Vec::new();
        let failing: Vec<_> = run.hosts.iter().filter(|h| h.failures > 0 || h.dark > 0).collect();
        if !failing.is_empty() {
            let mut items: Vec<Item> = failing
                .iter()
                .take(MAX_HOSTS)
                .map(|h| {
                    let mut what = Vec::new();
                    if h.failures > 0 {
                        what.push(format!("{} failed", h.failures));
                    }
                    if h.dark > 0 {
                        what.push("unreachable".to_string());
                    }
                    Item { lead: Some(one_line(&h.host)), text: what.join(", ") }
                })
                .collect();
            more(&mut items, failing.len(), MAX_HOSTS, "hosts");
            sections.push(("Failing hosts", items));
        }
        if !run.failed_tasks.is_empty() {
            let mut items: Vec<Item> = run
                .failed_tasks
                .iter()
                .take(MAX_TASKS)
                .map(|t| Item {
                    lead: Some(format!(
                        "{} · {}",
                        one_line(t.host.as_deref().unwrap_or("?")),
                        clip(&one_line(t.task.as_deref().unwrap_or("a task")), 120)
                    )),
                    text: match &t.message {
                        Some(m) => clip(&one_line(m), MAX_ERROR),
                        None => t.event.clone(),
                    },
                })
                .collect();
            more(&mut items, run.failed_tasks.len(), MAX_TASKS, "failed tasks");
            sections.push(("Failed tasks", items));
        }
        // Each entry once, with where it applies.
        let mut entries: Vec<(i64, String, String, Vec<String>)> = Vec::new();
        let mut unexplained = 0;
        for e in explanations {
            let at = format!(
                "{} · {}",
                one_line(e.host.as_deref().unwrap_or("?")),
                clip(&one_line(e.task.as_deref().unwrap_or("a task")), 80)
            );
            if e.matches.is_empty() {
                unexplained += 1;
            }
            for m in &e.matches {
                match entries.iter_mut().find(|x| x.0 == m.kb_id) {
                    Some(x) => x.3.push(at.clone()),
                    None => entries.push((m.kb_id, m.title.clone(), m.solution.clone(), vec![at.clone()])),
                }
            }
        }
        if !entries.is_empty() || unexplained > 0 {
            let mut items: Vec<Item> = entries
                .iter()
                .take(MAX_ENTRIES)
                .map(|(_, title, solution, at)| {
                    let mut at = at.clone();
                    at.dedup();
                    let place = if at.len() > 3 {
                        format!("{} and {} more", at[..3].join(", "), at.len() - 3)
                    } else {
                        at.join(", ")
                    };
                    Item {
                        lead: Some(format!("{} ({place})", one_line(title))),
                        text: clip(solution, MAX_SOLUTION),
                    }
                })
                .collect();
            more(&mut items, entries.len(), MAX_ENTRIES, "entries");
            if unexplained > 0 {
                items.push(Item {
                    lead: None,
                    text: format!(
                        "{unexplained} {} no entry explains yet.",
                        if unexplained == 1 { "failure" } else { "failures" }
                    ),
                });
            }
            sections.push(("What the knowledge base says", items));
        }
        let link = public_url.map(|u| format!("{}/jobs/{}", u.trim_end_matches('/'), job.id));
        Report { title, status: Some(job.status), facts, sections, link }
    }

    /// The message `POST /api/v1/notifiers/{id}/test` sends.
    pub fn test(notifier: &str, public_url: Option<&str>) -> Report {
        Report {
            title: format!("Test message from Playdeck's notifier \"{}\"", one_line(notifier)),
            status: None,
            facts: vec![(
                "Note",
                "This notifier works: jobs that end as it asks will be reported here.".to_string(),
            )],
            sections: Vec::new(),
            link: public_url.map(|u| u.trim_end_matches('/').to_string()),
        }
    }

    /// The mail subject (one line).
    pub fn subject(&self, prefix: Option<&str>) -> String {
        match prefix.filter(|p| !p.is_empty()) {
            Some(p) => format!("{} {}", one_line(p), self.title),
            None => self.title.clone(),
        }
    }

    /// The mail body.
    pub fn plain(&self) -> String {
        let mut out = format!("{}.\n\n", self.title);
        let width = self.facts.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 2;
        for (name, value) in &self.facts {
            out.push_str(&format!("{:width$}{value}\n", format!("{name}:")));
        }
        if let Some(link) = &self.link {
            out.push_str(&format!("{:width$}{link}\n", "Open:"));
        }
        for (heading, items) in &self.sections {
            out.push_str(&format!("\n{heading}\n"));
            for item in items {
                match &item.lead {
                    Some(lead) if item.text.contains('\n') || item.text.len() > 80 => {
                        out.push_str(&format!("- {lead}\n"));
                        for line in item.text.replace("**", "").lines() {
                            out.push_str(&format!("    {line}\n"));
                        }
                    }
                    Some(lead) => out.push_str(&format!("- {lead}: {}\n", item.text.replace("**", ""))),
                    None => out.push_str(&format!("  {}\n", item.text)),
                }
            }
        }
        out.push_str("\n-- \nSent by Playdeck when a job ends; an administrator can change this under /api/v1/notifiers.\n");
        out
    }

    fn color(&self) -> &'static str {
        match self.status {
            Some(JobStatus::Successful) => "2EB67D",
            Some(JobStatus::Failed) | Some(JobStatus::Error) => "D93F0B",
            Some(JobStatus::Canceled) => "A0A0A0",
            _ => "0076D7",
        }
    }

    /// The chat's incoming-webhook payload.
    pub fn chat(&self, style: ChatStyle) -> Value {
        match style {
            ChatStyle::Slack => json!({ "text": self.markdown(true) }),
            ChatStyle::Mattermost => json!({ "text": self.markdown(false) }),
            ChatStyle::Teams => self.message_card(),
        }
    }

    /// Slack's mrkdwn (`slack`: `*bold*`, `<url|label>`, `&<>` escaped) or Markdown.
    fn markdown(&self, slack: bool) -> String {
        let esc = |s: &str| {
            if slack {
                s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
            } else {
                s.to_string()
            }
        };
        let bold = |s: &str| if slack { format!("*{}*", esc(s)) } else { format!("**{s}**") };
        let text = |s: &str| if slack { esc(s).replace("**", "*") } else { s.to_string() };
        let mut out = bold(&self.title);
        if let Some(link) = &self.link {
            out.push_str(&if slack {
                format!(" (<{link}|open in Playdeck>)")
            } else {
                format!(" ([open in Playdeck]({link}))")
            });
        }
        out.push('\n');
        let facts: Vec<String> =
            self.facts.iter().map(|(n, v)| format!("{} {}", bold(&format!("{n}:")), esc(v))).collect();
        out.push_str(&facts.join(" · "));
        out.push('\n');
        for (heading, items) in &self.sections {
            out.push_str(&format!("\n{}\n", bold(heading)));
            for item in items {
                match &item.lead {
                    Some(lead) => {
                        out.push_str(&format!("• {}: {}\n", bold(lead), text(&item.text).replace('\n', " ")))
                    }
                    None => out.push_str(&format!("• {}\n", text(&item.text))),
                }
            }
        }
        out
    }

    /// A Microsoft Teams (Office 365 connector) MessageCard.
    fn message_card(&self) -> Value {
        let mut sections = vec![json!({
            "facts": self.facts.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        })];
        for (heading, items) in &self.sections {
            let lines: Vec<String> = items
                .iter()
                .map(|i| match &i.lead {
                    Some(lead) => format!("- **{lead}**: {}", i.text.replace('\n', " ")),
                    None => format!("- {}", i.text),
                })
                .collect();
            sections.push(json!({ "title": heading, "text": lines.join("\n\n") }));
        }
        let mut card = json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": self.title,
            "themeColor": self.color(),
            "title": self.title,
            "sections": sections,
        });
        if let Some(link) = &self.link {
            card["potentialAction"] = json!([{
                "@type": "OpenUri",
                "name": "Open in Playdeck",
                "targets": [{"os": "default", "uri": link}],
            }]);
        }
        card
    }
}
