//! The local engine's playbooks and inventories as the launch form lists them
//! (`GET /api/v1/playbooks`, `GET /api/v1/inventories`), a local playbook's survey with its
//! choices resolved (`POST /api/v1/playbooks/survey`) and the hosts a launch would touch
//! (`POST /api/v1/playbooks/hosts`).
//!
//! A local playbook's survey is a file beside it, `<playbook>.survey.yml`, in AWX's `survey_spec`
//! shape ([`crate::aap::Survey`]); a question may take its choices from the chosen inventory or
//! from a URL ([`ChoicesFrom`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aap::{Survey, SurveyQuestion};

/// Where a survey question's choices come from: `inventory_hosts` or `inventory_groups` of the
/// chosen inventory (within `group`, matching `pattern`), or `url`, which answers a JSON list.
/// `group`, `pattern` and `url` may name an earlier question's answer as `{{ variable }}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChoicesFrom {
    /// `inventory_hosts`, `inventory_groups` or `url`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A name pattern (`web-*`, `db-0?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A stored credential (API token or password) sent to `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// When the choices cannot be had, any answer is taken (else the question cannot be answered).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_text: bool,
}

/// One play of a playbook: its name and host pattern as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Play {
    pub name: String,
    pub hosts: String,
}

/// One of a play's `vars_prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VarPrompt {
    pub name: String,
    pub prompt: String,
    pub private: bool,
    pub default: Option<Value>,
}

/// A playbook of `PLAYDECK_PLAYBOOK_DIR`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Playbook {
    /// Its path in the directory, as `source.path` names it.
    pub path: String,
    pub plays: Vec<Play>,
    pub vars_prompt: Vec<VarPrompt>,
    /// Its survey file's questions, or its `vars_prompt` as simple questions; none when it has
    /// neither or the survey is invalid.
    pub survey: Option<Survey>,
    /// `survey invalid: <reason>`: the file does not parse or breaks the spec (the playbook can
    /// still be launched with raw extra vars).
    pub survey_error: Option<String>,
    /// Why the playbook itself could not be read (it is still listed).
    pub error: Option<String>,
}

/// A group of an inventory, as `ansible-inventory --list` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryGroup {
    pub name: String,
    /// Its direct hosts.
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    /// Every host in it or its children.
    pub host_count: usize,
}

/// An inventory of `PLAYDECK_INVENTORY_DIR` (`GET /api/v1/inventories`: `groups` without their
/// host lists; `GET /api/v1/inventories/{name}/hosts`: everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryFile {
    /// Its path in the directory, as `inventory.path` names it.
    pub name: String,
    pub host_count: usize,
    pub groups: Vec<InventoryGroup>,
    /// Every host, sorted.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// What `ansible-inventory` said when it could not read the file.
    pub error: Option<String>,
}

/// `POST /api/v1/playbooks/survey`: a local playbook's survey for a launch on `inventory`, given
/// the answers so far (a question whose choices depend on an earlier answer is resolved with it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SurveyRequest {
    pub path: String,
    #[serde(default)]
    pub inventory: Option<String>,
    #[serde(default)]
    pub answers: Map<String, Value>,
}

/// A survey question with its choices resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResolvedQuestion {
    #[serde(flatten)]
    pub question: SurveyQuestion,
    /// Why its choices could not be had (it takes any answer only when `choices_from.free_text`).
    pub choices_error: Option<String>,
    /// The earlier questions whose answers its choices depend on.
    pub depends_on: Vec<String>,
}

/// The answer to `POST /api/v1/playbooks/survey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResolvedSurvey {
    pub path: String,
    pub questions: Vec<ResolvedQuestion>,
}

/// `POST /api/v1/playbooks/hosts`: what `ansible-playbook --list-hosts` says a launch would touch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostsRequest {
    pub path: String,
    /// An inventory file, or `hosts` (an inline inventory).
    #[serde(default)]
    pub inventory: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub extra_vars: Map<String, Value>,
}

/// The hosts each play would run on, and all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostCount {
    pub count: usize,
    pub hosts: Vec<String>,
    pub plays: Vec<PlayHosts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PlayHosts {
    pub name: String,
    pub pattern: String,
    pub hosts: Vec<String>,
}
