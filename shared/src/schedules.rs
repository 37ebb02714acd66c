//! Schedules: a launch (`POST /api/v1/jobs` body) fired by cron in a time zone, or once.
//!
//! Local date-times (`at`, an exclusion's `from`/`to`) are in the schedule's `time_zone` and
//! carry no offset; every time Playdeck answers carries its offset.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A time when a schedule does not fire: `{"from", "to"}`, a stretch of local time in the
/// schedule's zone (`2026-12-24T00:00:00`), or `{"weekly": ["sat", "sun"]}`, whole days of every
/// week there. (One struct rather than an untagged enum: the web app's bundle stays smaller.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<Vec<String>>,
}

/// The timing of a schedule: what `POST /api/v1/schedules/preview` takes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Timing {
    /// Five fields (minute hour day month weekday), an optional sixth in front for seconds, or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// One time only: a local date-time in `time_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// An IANA zone (`Europe/Berlin`); default `PLAYDECK_TIME_ZONE`, else UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
}

/// `POST /api/v1/schedules/preview`: a timing and how many runs to show.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PreviewRequest {
    #[serde(flatten)]
    pub timing: Timing,
    /// 1 to 100; default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// The next run times, with their offsets in the schedule's zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Preview {
    pub time_zone: String,
    pub runs: Vec<DateTime<FixedOffset>>,
}

/// `POST /api/v1/schedules` (and `PATCH`, where every field is optional).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusions: Option<Vec<Exclusion>>,
    /// When this schedule's previous run is still going: `skip` (default), `queue` (wait for
    /// it; at most one run waits) or `run` (launch anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// After downtime: `once` (default: the latest missed run, once) or `skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A `POST /api/v1/jobs` body (`wait` is not allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Value>,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub cron: Option<String>,
    pub at: Option<String>,
    pub time_zone: String,
    pub exclusions: Vec<Exclusion>,
    pub overlap: String,
    pub catch_up: String,
    pub enabled: bool,
    pub launch: Value,
    /// What it runs, for lists: the playbook or the controller's template.
    pub target: String,
    /// `local`, or the controller's name.
    pub source: String,
    pub created_by: String,
    pub created: DateTime<FixedOffset>,
    pub modified: DateTime<FixedOffset>,
    /// `None` when paused or when a one-time schedule has fired.
    pub next_run: Option<DateTime<FixedOffset>>,
    pub last_run: Option<ScheduleRun>,
}

/// One time a schedule came due: the job it launched, or why it did not launch one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ScheduleRun {
    pub id: i64,
    pub schedule_id: i64,
    pub scheduled_for: DateTime<FixedOffset>,
    /// `launching`, `waiting` (for the previous run, `overlap: queue`), `fired`, `skipped` or
    /// `failed` (the launch was refused).
    pub state: String,
    pub job_id: Option<i64>,
    /// The launched job's status, when there is one.
    pub job_status: Option<String>,
    pub reason: Option<String>,
    pub created: DateTime<FixedOffset>,
}
