//! API types of the local engine: playbook runs, their sources, inventories and options, what a
//! launch answers, and webhooks with their deliveries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Job, JobHost};

/// `POST /api/v1/jobs` with a `source`: run a playbook on the local engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    pub source: PlaybookSource,
    /// Hosts to run on; none: only the implicit `localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_vars: Option<Map<String, Value>>,
    #[serde(default)]
    pub options: LaunchOptions,
    /// Answer when the job ends (bounded by its timeout) instead of at once with 202.
    #[serde(default)]
    pub wait: bool,
    /// The job's name in the grid; default the playbook's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Credentials for the hosts, privilege escalation and Ansible Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<crate::credentials::LaunchCredentials>,
}

/// What to run. Paths are relative to the playbook directory (or to the repository's root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlaybookSource {
    Playbook {
        path: String,
    },
    Git {
        repo: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        path: String,
        /// A stored `ssh_key`, `password` or `api_token` credential for the repository.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        git_credential: Option<String>,
    },
    /// A role kept in git, run against the inventory's hosts through a generated playbook.
    Role {
        repo: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// The role's directory in the repository (`.` when the repository is the role).
        #[serde(default = "dot")]
        path: String,
        /// The role's variables (secret-named ones are masked in the record).
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        role_vars: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        git_credential: Option<String>,
    },
    /// A role inside a collection, installed with ansible-galaxy into the job's own directory.
    CollectionRole {
        /// `namespace.name`.
        collection: String,
        role: String,
        /// An exact version or a range such as `>=1.2.0`; default the newest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// A Galaxy or Automation Hub API URL, or a `file://` collection tarball or directory of
        /// tarballs; default Galaxy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        galaxy_server: Option<String>,
        /// A stored `api_token` credential for the server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        galaxy_credential: Option<String>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        role_vars: Map<String, Value>,
    },
}

fn dot() -> String {
    ".".into()
}

/// The formats an inventory URL may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum InventoryFormat {
    Yaml,
    Json,
    Ini,
}

/// Which hosts: given inline, or an inventory file or directory in the inventory directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Inventory {
    Inline {
        #[serde(default)]
        hosts: Vec<String>,
        #[serde(default)]
        groups: BTreeMap<String, Vec<String>>,
        #[serde(default)]
        host_vars: BTreeMap<String, Map<String, Value>>,
        /// Variables for every host.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        vars: Map<String, Value>,
    },
    File {
        path: String,
    },
    /// An inventory file or directory in a git repository.
    Git {
        repo: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        git_credential: Option<String>,
    },
    /// An inventory served over HTTP(S), fetched at launch (private addresses refused unless
    /// allowed, as for webhooks).
    Url {
        url: String,
        format: InventoryFormat,
        /// A stored `api_token` (bearer) or `password` (basic) credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
    },
    /// An inventory plugin's configuration, written for the job (the plugin must be installed).
    Dynamic {
        /// Such as `amazon.aws.aws_ec2` or `ansible.builtin.generator`.
        plugin: String,
        #[serde(default)]
        config: Map<String, Value>,
        /// A stored `environment` credential whose variables the plugin reads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cloud_credential: Option<String>,
    },
}

/// How to run it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LaunchOptions {
    /// Seconds before the run is stopped (SIGTERM, then SIGKILL) and marked failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// 0 to 5 (`-v` … `-vvvvv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<u8>,
    #[serde(default)]
    pub check_mode: bool,
    #[serde(default)]
    pub diff_mode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forks: Option<u32>,
    /// Receives the final job (signed, retried) when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A launched job: what `"wait": true` answers (200) once it ended, and what the 202 answer carries
/// while it is queued or running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobRun {
    pub job: Job,
    /// Per-host results (empty until events arrived).
    pub hosts: Vec<JobHost>,
    /// The tasks that failed, one per host and task.
    pub failed_tasks: Vec<FailedTask>,
}

/// One failed task on one host, with what Ansible said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FailedTask {
    pub host: Option<String>,
    pub play: Option<String>,
    pub task: Option<String>,
    /// `unreachable` or `failed`.
    pub event: String,
    /// The result's `msg` (or stderr), as Ansible reported it.
    pub message: Option<String>,
    pub counter: i64,
}

/// Events a webhook (or a notifier) can be registered for: `job.finished` (any end), one end, or
/// `schedule.failed`: a schedule came due and could not launch (its launch was refused, or its
/// owner may no longer launch). That job is recorded as an `error` job with the reason as its
/// explanation; receivers of `schedule.failed` get it as that event instead of `job.error`.
pub const WEBHOOK_EVENTS: [&str; 6] =
    ["job.finished", "job.successful", "job.failed", "job.error", "job.canceled", "schedule.failed"];

/// A registered webhook (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created: DateTime<Utc>,
    pub created_by: String,
}

/// `POST /api/v1/webhooks` body (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// The HMAC-SHA256 key; none: Playdeck generates one and shows it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Default `["job.finished"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// The answer to registering a webhook: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

/// One webhook delivery of one job's end, with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookDelivery {
    pub id: i64,
    pub job_id: i64,
    /// None for the job's own `callback_url`.
    pub webhook_id: Option<i64>,
    pub url: String,
    pub event: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub state: String,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    pub delivered: Option<DateTime<Utc>>,
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// One try at delivering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What a webhook receives (signed in `X-Playdeck-Signature: sha256=<hex HMAC of the body>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookPayload {
    /// `job.successful`, `job.failed`, `job.error` or `job.canceled`.
    pub event: String,
    pub delivery: i64,
    #[serde(flatten)]
    pub run: JobRun,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_request_shape_parses() {
        let r: LaunchRequest = serde_json::from_value(serde_json::json!({
            "source": {"type": "playbook", "path": "patch.yml"},
            "inventory": {"type": "inline", "hosts": ["10.0.1.10"], "groups": {"web": ["10.0.1.10"]},
                          "host_vars": {"10.0.1.10": {"http_port": 8080}}},
            "extra_vars": {"patch_group": "Group-1"},
            "options": {"timeout": 3600, "tags": ["deploy"], "limit": "web", "verbosity": 2,
                        "check_mode": false, "diff_mode": true, "forks": 10,
                        "callback_url": "https://ci.example.com/webhook"},
            "wait": true
        }))
        .expect("parses");
        assert!(r.wait);
        assert_eq!(r.options.forks, Some(10));
        let typo = serde_json::from_value::<LaunchRequest>(serde_json::json!({
            "source": {"type": "playbook", "path": "x.yml"}, "inventroy": {}
        }));
        assert!(typo.expect_err("unknown field").to_string().contains("inventroy"));
    }
}
