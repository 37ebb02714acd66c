//! API types of the knowledge base of known errors and of failure explanations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a rule looks in a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum KbField {
    /// Message, stderr, stdout and module, each.
    #[default]
    Any,
    Message,
    Stderr,
    Stdout,
    Module,
}

/// How a rule's pattern is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum KbMatch {
    /// Case-insensitive substring.
    #[default]
    Substring,
    /// Regular expression (Rust `regex` syntax; `(?i)` for case-insensitive).
    Regex,
}

/// An entry as written by an operator: the rule and the solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KbEntryInput {
    pub title: String,
    #[serde(default)]
    pub field: KbField,
    #[serde(default)]
    pub kind: KbMatch,
    pub pattern: String,
    /// Only failures of this module (e.g. `ansible.builtin.dnf`, or `dnf`).
    #[serde(default)]
    pub module: Option<String>,
    /// Only failures of tasks whose name contains this.
    #[serde(default)]
    pub task: Option<String>,
    /// What to do, in Markdown.
    #[serde(default)]
    pub solution: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KbEntry {
    pub id: i64,
    #[serde(flatten)]
    pub entry: KbEntryInput,
    /// Shipped with Playdeck (and not edited since).
    pub seeded: bool,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub modified_by: String,
}

/// A knowledge base entry that explains a failure, as the job detail shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KbMatchSummary {
    pub kb_id: i64,
    pub title: String,
    pub solution: String,
    pub tags: Vec<String>,
}

/// One failure of a job (a failed or unreachable task on a host) and what explains it; an empty
/// `matches` means no entry knows this failure yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Explanation {
    pub counter: i64,
    pub event: String,
    pub host: Option<String>,
    pub task: Option<String>,
    pub module: Option<String>,
    /// The error in a line or a few: the task's message, else its stderr.
    pub error: String,
    pub matches: Vec<KbMatchSummary>,
}

/// A failed event that a rule matches, for the "try it" box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KbTryMatch {
    pub job_id: i64,
    pub job_name: String,
    pub counter: i64,
    pub host: Option<String>,
    pub task: Option<String>,
    pub error: String,
    pub created: Option<DateTime<Utc>>,
}
