//! The dashboard's figures (`GET /api/v1/stats?window=24h|7d|30d`).

use serde::{Deserialize, Serialize};

use crate::Job;

/// Durations of finished jobs, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Durations {
    pub median: Option<f64>,
    pub p95: Option<f64>,
}

/// One template's figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TemplateStats {
    /// The template (or, for a local run, the job's name when it has no template).
    pub template: String,
    pub jobs: i64,
    pub successful: i64,
    pub failed: i64,
    /// Successful of finished (successful, failed, error); `None` when none finished.
    pub success_rate: Option<f64>,
    pub durations: Durations,
    /// The knowledge base entry that explains this template's failures most often.
    pub top_failure: Option<TopFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TopFailure {
    pub kb_id: i64,
    pub title: String,
    /// Failed events it explained in the window.
    pub count: i64,
}

/// Jobs started in one bucket of the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TrendPoint {
    pub start: chrono::DateTime<chrono::Utc>,
    pub successful: i64,
    pub failed: i64,
    /// Running, canceled, error, waiting…
    pub other: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Stats {
    /// `24h`, `7d` or `30d`: jobs created within it.
    pub window: String,
    pub jobs: i64,
    /// Jobs per status (every status present, zeros included).
    pub by_status: std::collections::BTreeMap<String, i64>,
    pub success_rate: Option<f64>,
    pub durations: Durations,
    pub templates: Vec<TemplateStats>,
    /// Hourly buckets for 24h, daily otherwise, oldest first, empty buckets included.
    pub trend: Vec<TrendPoint>,
    /// Jobs running now (whatever the window).
    pub running: Vec<Job>,
    /// Templates with the most failed jobs in the window, most first.
    pub failing_templates: Vec<TemplateStats>,
}
