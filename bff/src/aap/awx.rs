//! The parts of AWX API v2 answers that Playdeck reads, and how a controller's job maps onto a
//! Playdeck job. Every field is optional or defaulted: controllers of different versions leave
//! different ones out, and a missing field must not stop the sync.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::aap::{LaunchPrompts, Survey, Template};
use shared::{IngestJob, JobStatus};

/// A related object as `summary_fields` names it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Named {
    pub id: Option<i64>,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct User {
    pub username: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobSummary {
    pub job_template: Option<Named>,
    pub unified_job_template: Option<Named>,
    pub inventory: Option<Named>,
    pub project: Option<Named>,
    pub created_by: Option<User>,
}

/// `launched_by`: a user, a schedule, a workflow… (`{}` when AWX cannot say).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LaunchedBy {
    pub name: Option<String>,
}

/// A job, from `/jobs/` (list) or `/jobs/{id}/` (detail; only it has `event_processing_finished`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Job {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub failed: bool,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub modified: Option<DateTime<Utc>>,
    pub limit: Option<String>,
    pub job_explanation: Option<String>,
    pub scm_revision: Option<String>,
    pub event_processing_finished: Option<bool>,
    pub launched_by: Option<LaunchedBy>,
    pub summary_fields: JobSummary,
}

const MAX_TEXT: usize = 1000;

fn text(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.chars().take(MAX_TEXT).collect())
}

impl Job {
    pub fn status(&self) -> Option<JobStatus> {
        JobStatus::parse(&self.status)
    }

    /// Finished at the controller: nothing will change its status any more.
    pub fn is_finished(&self) -> bool {
        self.status().is_some_and(JobStatus::is_finished)
    }

    /// What the ingest path is told about the job: the controller is the authority on its status,
    /// times and names, so they are given explicitly.
    pub fn to_ingest(&self) -> IngestJob {
        let s = &self.summary_fields;
        let named = |n: &Option<Named>| n.as_ref().and_then(|n| text(&n.name));
        IngestJob {
            external_id: self.id.to_string(),
            name: text(&self.name),
            template: named(&s.job_template).or_else(|| named(&s.unified_job_template)),
            inventory: named(&s.inventory),
            project: named(&s.project),
            launched_by: self
                .launched_by
                .as_ref()
                .and_then(|l| l.name.as_deref().and_then(text))
                .or_else(|| s.created_by.as_ref().and_then(|u| text(&u.username))),
            limit: self.limit.as_deref().and_then(text),
            status: self.status(),
            started: self.started,
            finished: if self.is_finished() { self.finished } else { None },
            explanation: self.job_explanation.as_deref().and_then(text),
            scm_revision: self.scm_revision.as_deref().and_then(text),
        }
    }
}

/// One row of `/jobs/{id}/job_host_summaries/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HostSummary {
    pub host_name: String,
    pub ok: i64,
    pub changed: i64,
    pub dark: i64,
    pub failures: i64,
    pub processed: i64,
    pub skipped: i64,
    pub rescued: i64,
    pub ignored: i64,
}

/// Puts the controller's host summaries into a `playbook_on_stats` event's data, in Ansible's
/// own shape (`{"ok": {"web-01": 3}, …}`), so the ingest path's final per-host summary is the
/// controller's even where the event's own data was cut short.
pub fn merge_host_summaries(stats: &mut Value, summaries: &[HostSummary]) {
    if summaries.is_empty() {
        return;
    }
    let Some(obj) = stats.as_object_mut() else { return };
    let data = obj.entry("event_data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    let Some(data) = data.as_object_mut() else { return };
    type Pick = fn(&HostSummary) -> i64;
    let fields: [(&str, Pick); 8] = [
        ("ok", |h| h.ok),
        ("changed", |h| h.changed),
        ("dark", |h| h.dark),
        ("failures", |h| h.failures),
        ("processed", |h| h.processed),
        ("skipped", |h| h.skipped),
        ("rescued", |h| h.rescued),
        ("ignored", |h| h.ignored),
    ];
    for (key, pick) in fields {
        let map: Map<String, Value> = summaries
            .iter()
            .filter(|h| !h.host_name.is_empty() && (pick(h) > 0 || key == "processed"))
            .map(|h| (h.host_name.clone(), Value::from(pick(h))))
            .collect();
        data.insert(key.to_string(), Value::Object(map));
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TemplateSummary {
    pub inventory: Option<Named>,
    pub project: Option<Named>,
}

/// A row of `/job_templates/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobTemplate {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub job_type: Option<String>,
    pub playbook: Option<String>,
    pub survey_enabled: bool,
    pub summary_fields: TemplateSummary,
    #[serde(flatten)]
    pub prompts: LaunchPrompts,
}

impl JobTemplate {
    pub fn into_template(self, controller: &str, survey: Option<Survey>) -> Template {
        Template {
            controller: controller.to_string(),
            id: self.id,
            name: self.name,
            description: self.description,
            job_type: self.job_type,
            playbook: self.playbook,
            project: self.summary_fields.project.map(|n| n.name),
            inventory: self.summary_fields.inventory.map(|n| n.name),
            prompts: self.prompts,
            survey_enabled: self.survey_enabled,
            survey,
        }
    }
}

/// The counter of an event as the controller sent it.
pub fn counter(event: &Value) -> Option<i64> {
    event.get("counter").and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_job_maps_to_playdeck_fields() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "id": 26, "name": "Demo Job Template", "status": "running", "failed": false,
            "started": "2023-06-06T18:22:42.907521Z", "finished": "2023-06-06T18:23:02.484722Z",
            "limit": "", "job_explanation": "",
            "launched_by": {"id": 1, "name": "admin", "type": "user", "url": "/api/v2/users/1/"},
            "summary_fields": {"job_template": {"id": 7, "name": "Demo Job Template"},
                               "inventory": {"id": 1, "name": "Demo Inventory", "kind": ""},
                               "project": {"id": 6, "name": "Demo Project"}}
        }))
        .expect("parses");
        let i = job.to_ingest();
        assert_eq!(i.external_id, "26");
        assert_eq!(i.template.as_deref(), Some("Demo Job Template"));
        assert_eq!(i.inventory.as_deref(), Some("Demo Inventory"));
        assert_eq!(i.launched_by.as_deref(), Some("admin"));
        assert_eq!(i.status, Some(JobStatus::Running));
        assert_eq!(i.limit, None);
        assert_eq!(i.finished, None, "a running job has no finish time yet, whatever AWX shows");
        // A scheduled job's launched_by may be empty; nothing breaks.
        let job: Job =
            serde_json::from_value(serde_json::json!({"id": 3, "launched_by": {}})).expect("parses");
        assert_eq!(job.to_ingest().launched_by, None);
    }

    #[test]
    fn host_summaries_become_the_stats_events_per_host_maps() {
        let mut stats = serde_json::json!({"counter": 9, "event": "playbook_on_stats",
                                           "event_data": {"playbook": "site.yml", "ok": {}}});
        let summaries = vec![
            HostSummary { host_name: "web-01".into(), ok: 3, changed: 1, processed: 1, ..Default::default() },
            HostSummary {
                host_name: "web-02".into(),
                ok: 1,
                failures: 1,
                processed: 1,
                ..Default::default()
            },
        ];
        merge_host_summaries(&mut stats, &summaries);
        let d = &stats["event_data"];
        assert_eq!(d["ok"], serde_json::json!({"web-01": 3, "web-02": 1}));
        assert_eq!(d["changed"], serde_json::json!({"web-01": 1}));
        assert_eq!(d["failures"], serde_json::json!({"web-02": 1}));
        assert_eq!(d["processed"], serde_json::json!({"web-01": 1, "web-02": 1}));
        assert_eq!(d["dark"], serde_json::json!({}));
        assert_eq!(d["playbook"], "site.yml", "the rest of the event is kept");
        // No summaries (not processed yet): the event stays as the controller sent it.
        let before = stats.clone();
        merge_host_summaries(&mut stats, &[]);
        assert_eq!(stats, before);
    }
}
