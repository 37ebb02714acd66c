//! API types of the AAP/AWX connector: controllers, templates, template launches.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Job;

/// One configured AAP/AWX controller and how its sync is doing (`GET /api/v1/controllers`, and the
/// `controllers` detail of `/readyz`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Controller {
    /// The name jobs from it carry as their `source`.
    pub name: String,
    pub url: String,
    /// `/api/v2` or `/api/controller/v2`: configured, or detected on first contact (`null` until then).
    pub api_prefix: Option<String>,
    /// `starting`, `ok`, `standby` (another replica syncs it), `unreachable`, `unauthorized`,
    /// `forbidden` or `error`.
    pub status: String,
    pub healthy: bool,
    /// What went wrong, in words, while unhealthy.
    pub detail: Option<String>,
    /// End of the last sync round that succeeded.
    pub last_sync: Option<DateTime<Utc>>,
    /// Since when it has been failing (`null` while healthy).
    pub failing_since: Option<DateTime<Utc>>,
    /// Jobs whose status or events are still being followed.
    pub active_jobs: i64,
}

/// The prompts a job template accepts at launch, under AWX's own names. A launch that sets a
/// field whose prompt is off is not refused by the controller: the field is ignored and listed in
/// the answer's `ignored_fields`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct LaunchPrompts {
    pub ask_variables_on_launch: bool,
    pub ask_limit_on_launch: bool,
    pub ask_tags_on_launch: bool,
    pub ask_skip_tags_on_launch: bool,
    pub ask_inventory_on_launch: bool,
    pub ask_verbosity_on_launch: bool,
    pub ask_diff_mode_on_launch: bool,
    pub ask_job_type_on_launch: bool,
    pub ask_credential_on_launch: bool,
    pub ask_scm_branch_on_launch: bool,
    pub ask_execution_environment_on_launch: bool,
    pub ask_labels_on_launch: bool,
    pub ask_forks_on_launch: bool,
    pub ask_job_slice_count_on_launch: bool,
    pub ask_timeout_on_launch: bool,
    pub ask_instance_groups_on_launch: bool,
}

/// A job template of a controller (`GET /api/v1/templates`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Template {
    /// The controller it lives on.
    pub controller: String,
    /// Its id on that controller.
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub job_type: Option<String>,
    pub playbook: Option<String>,
    pub project: Option<String>,
    pub inventory: Option<String>,
    #[serde(flatten)]
    pub prompts: LaunchPrompts,
    pub survey_enabled: bool,
    /// The survey's questions, when it has one enabled.
    pub survey: Option<Survey>,
}

/// A template's survey, as AWX's `survey_spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Survey {
    pub name: String,
    pub description: String,
    pub spec: Vec<SurveyQuestion>,
}

/// One survey question; its answer goes into `extra_vars` under `variable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct SurveyQuestion {
    pub question_name: String,
    pub question_description: String,
    pub variable: String,
    /// `text`, `textarea`, `password`, `integer`, `float`, `multiplechoice`, `multiselect`.
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    pub default: Value,
    /// Newline-separated text or a list, as the controller has it.
    pub choices: Value,
    pub min: Value,
    pub max: Value,
    /// Playdeck's own (local playbooks' surveys): where the choices come from when they are not
    /// listed. Resolved by `POST /api/v1/playbooks/survey` into `choices`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices_from: Option<crate::playbooks::ChoicesFrom>,
}

/// `GET /api/v1/templates`: the usual list shape, plus the controllers that could not be asked
/// (their templates are missing from `results`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TemplatePage {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<Template>,
    #[serde(default)]
    pub errors: Vec<ControllerError>,
}

/// One of a controller's own schedules of its templates (`GET /api/v1/controllers/schedules`):
/// shown read-only, as the controller computes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ControllerSchedule {
    pub controller: String,
    /// Its id on the controller.
    pub id: i64,
    pub name: String,
    /// The template it launches, and its kind there (`job`, `workflow_job`).
    pub template: String,
    pub template_id: i64,
    pub kind: String,
    /// The iCalendar rule as the controller keeps it (`DTSTART;TZID=…:… RRULE:FREQ=…`).
    pub rrule: String,
    pub time_zone: Option<String>,
    pub enabled: bool,
    /// As the controller computed it; `None` when disabled or past its end.
    pub next_run: Option<DateTime<Utc>>,
}

/// The controllers' schedules, and the controllers that did not answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ControllerSchedules {
    pub count: i64,
    pub results: Vec<ControllerSchedule>,
    #[serde(default)]
    pub errors: Vec<ControllerError>,
}

/// A controller that failed to answer, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ControllerError {
    pub controller: String,
    pub detail: String,
}

/// A template, by its id on the controller or by its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum IdOrName {
    Id(i64),
    Name(String),
}

/// `POST /api/v1/jobs` with a `template`: launch a job template on a controller. Every field but
/// `template` is optional and only sent when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateLaunch {
    pub template: IdOrName,
    /// Which controller; may be left out when only one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// An object, or YAML/JSON text, as AWX takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_vars: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_tags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_tags: Option<String>,
    /// The inventory's id on the controller, or its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<IdOrName>,
    /// 0 (normal) to 5 (WinRM debug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_mode: Option<bool>,
    /// `run` or `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// Answer once the job has finished instead of at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// The answer to a template launch or a relaunch (201): the Playdeck job, already there and
/// followed live, and what the controller did not take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TemplateLaunched {
    pub job: Job,
    pub controller: String,
    /// The job's id on the controller.
    pub external_id: String,
    /// Fields the template does not prompt for, which the controller ignored (not refused), with
    /// the values that were sent: `{"limit": "web", …}`. Empty when everything was taken.
    pub ignored_fields: Value,
}

/// The answer to a cancel that the controller accepted (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CancelRequested {
    pub job: Job,
    pub detail: String,
}
