//! API types of notifiers: people told when a job ends, by mail (SMTP) or in a chat channel
//! (Slack, Mattermost or Teams incoming webhook), with the job's status, its failing hosts and the
//! knowledge base's explanation. The API never returns a notifier's secrets (the SMTP password, the
//! chat URL, which carries the channel's token).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a notifier reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    Mail,
    Chat,
}

impl NotifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Mail => "mail",
            NotifierKind::Chat => "chat",
        }
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS (port 587); a server that does not offer it is an error.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption at all: only for a relay on the same host or network.
    None,
}

/// How Playdeck signs in to the mail server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailAuth {
    /// AUTH PLAIN or LOGIN with `username` and `password`.
    #[default]
    Password,
    /// XOAUTH2 (Microsoft 365, Gmail): `username` is the mailbox, the access token comes from
    /// `oauth.token_url`, with the client secret in `password`.
    Xoauth2,
}

/// Where XOAUTH2's access tokens come from (RFC 6749's token endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MailOAuthInput {
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`, `https://oauth2.googleapis.com/token`.
    pub token_url: String,
    pub client_id: String,
    /// `https://outlook.office365.com/.default` (Microsoft 365), `https://mail.google.com/` (Gmail).
    #[serde(default)]
    pub scope: Option<String>,
    /// With one, tokens are got by the refresh-token grant (Gmail); without, by client
    /// credentials (Microsoft 365 with an app registration). A secret: sealed, never shown.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// XOAUTH2's settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MailOAuth {
    pub token_url: String,
    pub client_id: String,
    pub scope: Option<String>,
    /// `refresh_token` or `client_credentials`.
    pub grant: String,
}

/// Which chat's incoming-webhook format to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChatStyle {
    /// `{"text": …}` in Slack's mrkdwn.
    #[default]
    Slack,
    /// `{"text": …}` in Markdown.
    Mattermost,
    /// A Microsoft Teams MessageCard.
    Teams,
}

fn default_port() -> u16 {
    587
}

/// A mail notifier's settings as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MailInput {
    /// The SMTP server (usually an internal relay).
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: MailTls,
    /// With `password`: AUTH PLAIN (or LOGIN). Sent only over TLS, unless `tls` is `none`.
    #[serde(default)]
    pub username: Option<String>,
    /// The password, or with `auth: xoauth2` the OAuth client's secret.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub auth: MailAuth,
    /// With `auth: xoauth2`: where access tokens come from.
    #[serde(default)]
    pub oauth: Option<MailOAuthInput>,
    /// The sender address (`alerts@example.com`).
    pub from: String,
    /// The recipients' addresses.
    pub to: Vec<String>,
    /// Put before every subject (`[prod]`).
    #[serde(default)]
    pub subject_prefix: Option<String>,
}

/// A chat notifier's settings as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatInput {
    /// The channel's incoming-webhook URL (a secret: it carries the channel's token).
    pub url: String,
    #[serde(default)]
    pub style: ChatStyle,
}

/// The settings of either kind (for the API description; the server reads `config` by `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum NotifierInput {
    Mail(MailInput),
    Chat(ChatInput),
}

/// `POST /api/v1/notifiers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewNotifier {
    /// Unique; how operators tell notifiers apart.
    pub name: String,
    pub kind: NotifierKind,
    /// Which ends to tell (`job.finished`, `job.successful`, `job.failed`, `job.error`,
    /// `job.canceled`); empty: `job.failed` and `job.error`.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only jobs of these templates (a local job's playbook path such as `patch.yml`, an AAP job's
    /// template name); empty: every job.
    #[serde(default)]
    pub templates: Vec<String>,
    /// A [`MailInput`] for `mail`, a [`ChatInput`] for `chat` (read by `kind`, so a mistake is
    /// named precisely).
    #[cfg_attr(feature = "schema", schemars(with = "NotifierInput"))]
    pub config: serde_json::Value,
}

/// A mail notifier's settings as the API shows them: no password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MailConfig {
    pub host: String,
    pub port: u16,
    pub tls: MailTls,
    pub username: Option<String>,
    /// Whether a password (or client secret) is stored (it is never shown).
    pub has_password: bool,
    #[serde(default)]
    pub auth: MailAuth,
    #[serde(default)]
    pub oauth: Option<MailOAuth>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: Option<String>,
}

/// A chat notifier's settings as the API shows them: the URL's host only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChatConfig {
    pub style: ChatStyle,
    /// The host of the webhook URL (the rest of it is a secret).
    pub host: String,
}

/// A notifier's public settings, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum NotifierConfig {
    Mail(MailConfig),
    Chat(ChatConfig),
}

/// A stored notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Notifier {
    pub id: i64,
    pub name: String,
    pub kind: NotifierKind,
    pub events: Vec<String>,
    /// Empty: every job.
    pub templates: Vec<String>,
    pub config: NotifierConfig,
    pub active: bool,
    pub created: DateTime<Utc>,
    pub created_by: String,
}

/// The answer of `POST /api/v1/notifiers/{id}/test`: whether a test message went out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NotifierTest {
    pub delivered: bool,
    /// What went wrong (the server's reply, a refused address, a timeout).
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// `PATCH /api/v1/notifiers/{id}`: what to change; what is left out stays. The name and the kind
/// never change (delete and add instead).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NotifierPatch {
    /// False: no messages are queued for it until it is turned on again (pending ones still go).
    #[serde(default)]
    pub active: Option<bool>,
    /// As when adding; an empty list means `job.failed` and `job.error`.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// As when adding; an empty list means every job.
    #[serde(default)]
    pub templates: Option<Vec<String>>,
    /// The whole settings of the notifier's kind, replacing the stored ones. A mail notifier's
    /// stored password is kept when `username` is given without `password`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<NotifierInput>"))]
    pub config: Option<serde_json::Value>,
}

/// One try at sending a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NotifierAttempt {
    pub attempt: i64,
    pub at: DateTime<Utc>,
    /// The SMTP reply code or the chat's HTTP status that ended the attempt, if any.
    pub code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// One notification of a job's end through one notifier, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NotifierDelivery {
    pub id: i64,
    pub job_id: i64,
    /// None once the notifier was deleted.
    pub notifier_id: Option<i64>,
    pub notifier_name: Option<String>,
    /// `job.successful`, `job.failed`, `job.error` or `job.canceled`.
    pub event: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub state: String,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    pub delivered: Option<DateTime<Utc>>,
    pub attempt_log: Vec<NotifierAttempt>,
}
