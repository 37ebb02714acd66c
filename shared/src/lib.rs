//! Typed models of Playdeck's public API: what the bff sends and the SPA (or any client) reads.
//!
//! Serde only and wasm-clean: no I/O, no business logic. Field names are the wire names of the
//! contract (README.md, ARCHITECTURE.md, the OpenAPI document); changing one breaks clients, so extend, don't rename.

pub mod aap;
pub mod credentials;
pub mod engine;
pub mod kb;
pub mod notifiers;
pub mod people;
pub mod playbooks;
pub mod requests;
pub mod schedules;
pub mod stats;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job is in its life, with AWX's names so its users read it at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    New,
    Pending,
    Waiting,
    Running,
    Successful,
    Failed,
    Error,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        JobStatus::New,
        JobStatus::Pending,
        JobStatus::Waiting,
        JobStatus::Running,
        JobStatus::Successful,
        JobStatus::Failed,
        JobStatus::Error,
        JobStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "new",
            JobStatus::Pending => "pending",
            JobStatus::Waiting => "waiting",
            JobStatus::Running => "running",
            JobStatus::Successful => "successful",
            JobStatus::Failed => "failed",
            JobStatus::Error => "error",
            JobStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A finished job: nothing will move its status again by itself.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Successful | JobStatus::Failed | JobStatus::Error | JobStatus::Canceled)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many hosts of a job ended in each state (one state per host, the worst wins:
/// failed, unreachable, changed, ok, skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostCounts {
    pub ok: i64,
    pub changed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub unreachable: i64,
}

/// One job as the grid and the detail page show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Job {
    pub id: i64,
    /// `local` or the name of the controller the job ran on.
    pub source: String,
    /// The job's id at its source (AWX job id, or the local engine's id).
    pub external_id: String,
    pub name: String,
    pub template: Option<String>,
    pub inventory: Option<String>,
    pub project: Option<String>,
    pub launched_by: Option<String>,
    pub limit: Option<String>,
    pub status: JobStatus,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// Seconds from start to finish (or to now, as last computed, while running).
    pub elapsed: Option<f64>,
    pub hosts: HostCounts,
    pub current_play: Option<String>,
    pub current_task: Option<String>,
    /// Plays and tasks started so far (a task counted once per start, as AWX counts them).
    pub plays: i64,
    pub tasks: i64,
    /// Events stored for this job.
    pub event_count: i64,
    /// The cursor of the newest stored event; a client that holds it has everything.
    pub cursor: String,
    /// Why the job ended as it did when its events cannot say (timed out, canceled by whom,
    /// left running by a crash).
    #[serde(default)]
    pub explanation: Option<String>,
    /// When retention deleted this job's raw events (output, per-event detail); its summary,
    /// hosts and history are kept.
    #[serde(default)]
    pub events_expired: Option<DateTime<Utc>>,
    /// The commit of the repository the job ran (git sources), as AWX's `scm_revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm_revision: Option<String>,
    /// The job's failures and the knowledge base entries that explain them (in the job's own
    /// detail, `GET /api/v1/jobs/{id}`, not in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanations: Vec<kb::Explanation>,
}

/// One callback event of a job, in ansible-runner / AWX shape plus Playdeck's cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobEvent {
    pub job_id: i64,
    /// Ansible's own order of events within the job; output is rebuilt in this order.
    pub counter: i64,
    /// Order of arrival at Playdeck; what live delivery resumes from.
    pub cursor: String,
    pub event: String,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub play: Option<String>,
    pub task: Option<String>,
    pub role: Option<String>,
    pub stdout: String,
    pub start_line: i64,
    pub end_line: i64,
    pub failed: bool,
    pub changed: bool,
    pub event_data: Value,
}

/// One host's results within a job: rolling counts while it runs, Ansible's final summary
/// once `playbook_on_stats` arrived (`final_summary`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobHost {
    pub host: String,
    pub status: String,
    pub ok: i64,
    pub changed: i64,
    pub failures: i64,
    pub dark: i64,
    pub skipped: i64,
    pub rescued: i64,
    pub ignored: i64,
    pub last_task: Option<String>,
    pub final_summary: bool,
}

/// One change of a job's status, who or what caused it, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StatusChange {
    pub status: JobStatus,
    pub previous: Option<JobStatus>,
    pub at: DateTime<Utc>,
    /// What moved it: `event playbook_on_stats`, `source aap`, a user's key name, …
    pub by: String,
}

/// A page of a list, in AWX's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Page<T> {
    pub count: i64,
    /// False when `count` is the database's estimate: the jobs list counts exactly when the
    /// planner expects up to 20 000 matching jobs that are cheap to count, and estimates otherwise.
    #[serde(default = "exact")]
    pub count_exact: bool,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

fn exact() -> bool {
    true
}

/// Filters, ordering and paging of `GET /api/v1/jobs`, as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct JobFilter {
    /// One status or several separated by commas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launched_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_after: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_before: Option<DateTime<Utc>>,
    /// Quick search over name, template, inventory, launched_by, limit and external id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// A field name, `-` in front for descending; default `-id` (newest first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    /// Keyset paging: the page that follows this job (an id) in the chosen order. The `next`
    /// link uses it, so following `next` stays as fast on the thousandth page as on the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_after: Option<i64>,
    /// Keyset paging: the page that comes before this job in the chosen order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_before: Option<i64>,
}

/// What every launch, cancel and relaunch answers, whichever engine ran the job: at least the job
/// (the local engine's answer is a `engine::JobRun`, a controller's an `aap::TemplateLaunched` or
/// `aap::CancelRequested`; each adds its own fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAnswer {
    pub job: Job,
}

/// The error shape of every failed request: `{"errors":[{"detail":"…"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    pub errors: Vec<ErrorDetail>,
    /// The request's `x-request-id` (the caller's, or one made up), as the server's log has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorDetail {
    pub detail: String,
}

impl ErrorBody {
    pub fn new(detail: impl Into<String>) -> Self {
        ErrorBody { errors: vec![ErrorDetail { detail: detail.into() }], request_id: None }
    }

    /// All details in one line, for showing to a person.
    pub fn message(&self) -> String {
        self.errors.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>().join("; ")
    }
}

/// What the ingest endpoint is sent: one job's identity and fields, and a batch of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngestBatch {
    pub source: String,
    pub job: IngestJob,
    #[serde(default)]
    pub events: Vec<Value>,
    /// These events stand in for the controller's own copy of the same job, which the sync or
    /// AAP's external logging brings later (the callback plugin inside an AAP execution
    /// environment sends `true`). Each event is stored once: the controller's copy replaces the
    /// plugin's, and a plugin event whose controller copy is already stored is a duplicate. Until
    /// replaced, such an event's `counter` is 1000000000 + the plugin's counter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

/// The job's own fields as its source knows them; absent fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngestJob {
    /// The job's id at its source; a JSON number is accepted too (AWX ids are numbers).
    #[serde(deserialize_with = "string_or_number")]
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Given by a source that knows the job's status better than its events (a controller, the
    /// local engine); from then on the events no longer move the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// When the job started and finished, from a source that knows (a controller); left out,
    /// they are taken from the events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// Why the job ended as it did, in the source's words (AWX's `job_explanation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// The project's commit the job ran (AWX's `scm_revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm_revision: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

/// The ingest endpoint's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngestResult {
    pub job_id: i64,
    pub accepted: i64,
    pub duplicates: i64,
}

/// Which job's events a WebSocket client follows, and from where (`null`: from the start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobCursor {
    pub job_id: i64,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// What a WebSocket client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Adds to what the client follows: every job change (`jobs`) and/or some jobs' events.
    Subscribe {
        #[serde(default)]
        jobs: bool,
        #[serde(default)]
        job_events: Vec<JobCursor>,
    },
    /// Stops following job changes (`jobs`) and/or the events of the listed jobs.
    Unsubscribe {
        #[serde(default)]
        jobs: bool,
        #[serde(default)]
        job_events: Vec<i64>,
    },
}

/// What the server sends over the WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// A job was created or changed; this is its whole current state.
    Job {
        job: Job,
    },
    /// New events of a followed job, in arrival order; `cursor` is where to resume after them.
    Events {
        job_id: i64,
        cursor: String,
        events: Vec<JobEvent>,
    },
    /// The client fell behind: job changes may have been skipped, so reload the job list.
    /// Followed events need nothing: the server resumes them from the client's cursor.
    Resync,
    Error {
        detail: String,
    },
}

/// `GET /api/v1/live/poll`: the feed's messages for one job, for browsers that get neither a
/// WebSocket nor SSE through: its current state, then its next page of events past the cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LivePoll {
    pub messages: Vec<ServerMessage>,
    /// More events are stored past this page: poll again at once.
    pub more: bool,
}

/// `POST /api/v1/session` body: an API key (`{"key"}`) or a user name and password checked
/// against the directory (`{"username", "password"}`); one of the two, not both.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A one-time code from `POST /api/v1/session/handoff` (a framed page signing in with the
    /// session its single sign-on popup opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
}

/// `POST /api/v1/session/handoff`: the one-time code (60 s) another page of this browser signs in with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionHandoff {
    pub code: String,
}

/// Who is signed in (answer of `POST`/`GET /api/v1/session`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionInfo {
    /// The person's user name, or the service account's name.
    pub name: String,
    /// `None`: signed in, but no group of theirs grants access (`access_groups` says which do).
    pub role: Option<Role>,
    /// `oidc`, `ldap`, `proxy`, `service` or `key`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub user_id: Option<i64>,
    /// The groups that grant each role, shown to someone who has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_groups: Option<people::AccessGroups>,
    /// True when `role` holds over some jobs only (role bindings with a scope): admin pages,
    /// which are about everything, are then not theirs.
    #[serde(default)]
    pub scoped: bool,
}

impl SessionInfo {
    /// Whether the caller has at least `role` (admin: over everything).
    pub fn may(&self, role: Role) -> bool {
        self.role.is_some_and(|r| r >= role) && !(role == Role::Admin && self.scoped)
    }
}

/// What an API key may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API key as listed (never the key itself, only its first characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

/// `POST /api/v1/keys` body (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
}

/// The answer to creating a key: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_use_the_contract_shape() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","jobs":true,"job_events":[{"job_id":7,"cursor":null}]}"#,
        )
        .expect("contract example parses");
        assert_eq!(
            m,
            ClientMessage::Subscribe { jobs: true, job_events: vec![JobCursor { job_id: 7, cursor: None }] }
        );
        let s = serde_json::to_string(&ServerMessage::Resync).expect("serializes");
        assert_eq!(s, r#"{"type":"resync"}"#);
    }

    #[test]
    fn ingest_job_accepts_numeric_external_ids() {
        let j: IngestJob = serde_json::from_str(r#"{"external_id": 26}"#).expect("parses");
        assert_eq!(j.external_id, "26");
        assert!(serde_json::from_str::<IngestJob>(r#"{"external_id": [1]}"#).is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert!(JobStatus::Canceled.is_finished() && !JobStatus::Running.is_finished());
    }
}
