//! People and service accounts, their tokens and sessions, and how one signs in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Role;

/// The groups that grant each role (`PLAYDECK_ADMIN_GROUPS`, `_OPERATOR_GROUPS`, `_VIEWER_GROUPS`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AccessGroups {
    pub admin: Vec<String>,
    pub operator: Vec<String>,
    pub viewer: Vec<String>,
}

/// `GET /api/v1/session/options`: what the sign-in page offers (no sign-in needed).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SignInOptions {
    /// The API key form.
    pub key: bool,
    /// The user name and password form (LDAP / Active Directory).
    pub password: bool,
    /// "Sign in with <name>" (OpenID Connect); `None` when not configured.
    pub oidc: Option<String>,
}

/// One of a person's browser sessions (`GET /api/v1/session/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UserSession {
    pub id: i64,
    /// How it was opened: `oidc`, `ldap` or `key`.
    pub method: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The absolute end (`PLAYDECK_SESSION_HOURS` after sign-in).
    pub expires: DateTime<Utc>,
    /// When it ends if unused (`PLAYDECK_SESSION_IDLE_MINUTES` after `last_seen`).
    pub idle_expires: DateTime<Utc>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request came with.
    pub current: bool,
}

/// A person or service account (`GET /api/v1/users`, admins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct User {
    pub id: i64,
    /// `oidc`, `ldap`, `proxy` or `service`.
    pub kind: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// The OpenID provider (issuer) for `oidc`; the entry's DN is the `subject` for `ldap`.
    pub issuer: String,
    pub subject: String,
    pub groups: Vec<String>,
    /// What they may do now (a person: from their groups; a service account: as set).
    pub role: Option<Role>,
    pub created: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
    pub disabled: Option<DateTime<Utc>>,
    /// Active tokens.
    pub tokens: i64,
}

/// `POST /api/v1/users`: a service account (no sign-in; tokens only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewServiceAccount {
    pub name: String,
    pub role: Role,
}

/// `PATCH /api/v1/users/{id}`: disable or enable anyone; a service account's role.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// A personal or service account token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Token {
    pub id: i64,
    pub name: String,
    /// The most it grants; the owner's own role caps it at each use.
    pub role: Role,
    pub prefix: String,
    pub user_id: Option<i64>,
    pub owner: String,
    pub created: DateTime<Utc>,
    pub created_by: Option<String>,
    pub last_used: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Days until it expires (1 to 366; default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_days: Option<u32>,
    /// At most the owner's role; default: the owner's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Admins: a service account's id, to make a token for it; default: the caller's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
}

/// The answer to creating a token: the only time the token itself is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}

/// `DELETE /api/v1/session` after an OpenID Connect sign-in: the provider's logout page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SignedOut {
    pub logout_url: Option<String>,
}

/// A role binding: a user or a group holds a role over a scope (the jobs of some sources,
/// templates and inventories; every list left empty: everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RoleBinding {
    /// Set for bindings made on the Settings page (they can be deleted there).
    pub id: Option<i64>,
    /// `settings`, `<file> line N` (PLAYDECK_ACCESS_CONFIG), or the group setting it comes from.
    pub origin: String,
    /// One of `user` and `group`.
    pub user: Option<String>,
    pub group: Option<String>,
    pub role: Role,
    /// `local`, or controllers' names.
    pub sources: Vec<String>,
    /// Template names or playbook paths; `*` and `?` are wildcards.
    pub templates: Vec<String>,
    /// Inventory names; `*` and `?` are wildcards.
    pub inventories: Vec<String>,
    /// The stored credentials its launches may use (empty: every one).
    #[serde(default)]
    pub credentials: Vec<String>,
}

/// `POST /api/v1/bindings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRoleBinding {
    /// A user name, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// a group (as the directory or provider names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
}
