//! API types of the request box: a request in plain words ("Patch server web-01 with Group-1"),
//! what Playdeck understood of it, what it would run, the conversation, and the job it launched
//! with its progress in phases.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Job, JobStatus};

/// `POST /api/v1/requests` and `POST /api/v1/requests/{id}/reply` body: what the operator typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestText {
    pub text: String,
    /// The person's IANA zone, for "tonight at 22:00" (the page sends the browser's); default
    /// `PLAYDECK_TIME_ZONE`, else UTC. Read with the first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Where a request is: waiting for an answer, refused (an unknown host, a value that is not
/// allowed), ready to confirm, being launched, or launched as a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    NeedsInput,
    Refused,
    Ready,
    Launching,
    Launched,
    /// Confirmed with a time ("tonight at 22:00"): a one-time schedule runs it then.
    Scheduled,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::NeedsInput => "needs_input",
            RequestStatus::Refused => "refused",
            RequestStatus::Ready => "ready",
            RequestStatus::Launching => "launching",
            RequestStatus::Launched => "launched",
            RequestStatus::Scheduled => "scheduled",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        [
            RequestStatus::NeedsInput,
            RequestStatus::Refused,
            RequestStatus::Ready,
            RequestStatus::Launching,
            RequestStatus::Launched,
            RequestStatus::Scheduled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What Playdeck took from the words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Understood {
    /// The catalog action (`patch`, `retire`, `hello`), once it is clear which one.
    pub action: Option<String>,
    /// The hosts and groups to run on, as the inventory spells them.
    pub hosts: Vec<String>,
    /// Hosts and groups to leave out ("except web-02").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
    /// Extra variables for the playbook or template (`{"patch_group": "Group-1"}`).
    pub variables: Map<String, Value>,
    /// Execution options asked for in words (`{"check_mode": true}`).
    pub options: Map<String, Value>,
    /// Words that meant nothing to Playdeck, so the operator sees what was not taken into account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// When it should run, if the operator said ("tonight at 22:00"): a local date-time in
    /// `time_zone`; confirming makes a one-time schedule instead of launching now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Something Playdeck needs before it can run the request, and the question it asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Missing {
    /// `action`, or the catalog slot's name (`hosts`, `patch_group`, `vm`).
    pub slot: String,
    pub question: String,
    /// The possible answers when there are few (the actions that matched, the hosts named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// Why Playdeck will not run the request as it stands, and the closest valid names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Refusal {
    pub reason: String,
    pub suggestions: Vec<String>,
    /// Each name that is not in the inventory with its own closest matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<UnknownName>,
}

/// A host or group name that is not in the action's inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UnknownName {
    pub name: String,
    pub suggestions: Vec<String>,
}

/// One turn of the conversation: the operator's words or Playdeck's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Message {
    pub at: DateTime<Utc>,
    /// `operator` or `playdeck`.
    pub author: String,
    /// The API key's name for the operator; `playdeck` for answers.
    pub by: String,
    pub text: String,
}

/// A request in full: the interpretation, the conversation, and the job once launched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Request {
    pub id: i64,
    /// The first message, as typed.
    pub text: String,
    pub status: RequestStatus,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub modified: DateTime<Utc>,
    pub understood: Understood,
    pub missing: Vec<Missing>,
    pub refused: Option<Refusal>,
    /// Exactly the body `POST /api/v1/jobs` would get on confirm; present when `ready` (and kept
    /// once launched).
    pub would_run: Option<Value>,
    pub conversation: Vec<Message>,
    pub confirmed: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
    pub job_id: Option<i64>,
    /// The one-time schedule a request confirmed with a time became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<i64>,
    /// The job as `GET /api/v1/jobs/{id}` shows it, with its failure explanations.
    pub job: Option<Job>,
    /// The job's progress in the action's phases; present once launched.
    pub progress: Option<Progress>,
}

/// A row of `GET /api/v1/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequestSummary {
    pub id: i64,
    pub text: String,
    pub status: RequestStatus,
    pub action: Option<String>,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub modified: DateTime<Utc>,
    pub job_id: Option<i64>,
    pub job_status: Option<JobStatus>,
}

/// A launched request's progress: the action's phases as the job's plays and tasks reach them,
/// then the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Progress {
    pub phases: Vec<Phase>,
    /// What the job is doing now (`play › task`) while it runs.
    pub current: Option<String>,
    /// Once the job has finished.
    pub result: Option<Outcome>,
}

/// One phase ("Pre-checks started", "Patching in progress", "Patching completed").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Phase {
    pub name: String,
    /// `pending`, `active` (the latest phase reached while the job runs), `done`, or `skipped`
    /// (the job ended without reaching it).
    pub state: String,
    /// When the job reached it.
    pub at: Option<DateTime<Utc>>,
}

/// How the job ended, in a sentence (the first failure and the knowledge base entry that explains
/// it); the job's `explanations` list every failure with its matching entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Outcome {
    pub status: JobStatus,
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_their_wire_names() {
        for s in ["needs_input", "refused", "ready", "launching", "launched"] {
            let st = RequestStatus::parse(s).expect("known status");
            assert_eq!(serde_json::to_value(st).expect("serializes"), Value::String(s.into()));
        }
        assert_eq!(RequestStatus::parse("done"), None);
    }

    #[test]
    fn request_text_refuses_unknown_fields() {
        assert!(serde_json::from_str::<RequestText>(r#"{"text":"patch web-01","x":1}"#).is_err());
    }
}
