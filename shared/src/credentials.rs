//! API types of credentials: named secrets (SSH keys, passwords, vault passwords, API tokens,
//! HashiCorp Vault connections, environment variables for inventory plugins) that launches refer to
//! by name. The API shows names and kinds only, never the secret material.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a credential holds, and so where a launch may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `private_key` (PEM/OpenSSH), optional `passphrase` and `username`: SSH to hosts, git over SSH.
    SshKey,
    /// `username` and `password`: SSH with a password, git and inventory URLs over HTTPS (basic).
    Password,
    /// `password`, optional `username` (the user to become) and `method` (sudo, su, …).
    BecomePassword,
    /// `password`, optional `vault_id`: decrypts Ansible Vault data.
    VaultPassword,
    /// `token`, optional `username`: inventory URLs (bearer), git over HTTPS, Galaxy servers.
    ApiToken,
    /// `address`, and `token` or `role_id` + `secret_id` (AppRole), optional `namespace` and
    /// `approle_mount`: where `hashicorp_vault` lookups read secrets (KV version 2).
    HashicorpVault,
    /// `variables`: environment variables for an inventory plugin (cloud credentials).
    Environment,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 7] = [
        CredentialKind::SshKey,
        CredentialKind::Password,
        CredentialKind::BecomePassword,
        CredentialKind::VaultPassword,
        CredentialKind::ApiToken,
        CredentialKind::HashicorpVault,
        CredentialKind::Environment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::SshKey => "ssh_key",
            CredentialKind::Password => "password",
            CredentialKind::BecomePassword => "become_password",
            CredentialKind::VaultPassword => "vault_password",
            CredentialKind::ApiToken => "api_token",
            CredentialKind::HashicorpVault => "hashicorp_vault",
            CredentialKind::Environment => "environment",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        CredentialKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The fields of its `inputs`: (required, optional).
    pub fn fields(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            CredentialKind::SshKey => (&["private_key"], &["passphrase", "username"]),
            CredentialKind::Password => (&["username", "password"], &[]),
            CredentialKind::BecomePassword => (&["password"], &["username", "method"]),
            CredentialKind::VaultPassword => (&["password"], &["vault_id"]),
            CredentialKind::ApiToken => (&["token"], &["username"]),
            CredentialKind::HashicorpVault => {
                (&["address"], &["token", "role_id", "secret_id", "namespace", "approle_mount", "ca_cert"])
            }
            CredentialKind::Environment => (&["variables"], &[]),
        }
    }

    /// Whether a field of `inputs` is secret material (kept out of every output); the others
    /// (user names, addresses, ids) are settings.
    pub fn secret_field(field: &str) -> bool {
        !matches!(
            field,
            "username" | "method" | "vault_id" | "address" | "namespace" | "approle_mount" | "role_id"
        )
    }

    /// What a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            CredentialKind::SshKey => "SSH private key",
            CredentialKind::Password => "Username and password",
            CredentialKind::BecomePassword => "Become (sudo) password",
            CredentialKind::VaultPassword => "Ansible Vault password",
            CredentialKind::ApiToken => "API token",
            CredentialKind::HashicorpVault => "HashiCorp Vault",
            CredentialKind::Environment => "Environment variables",
        }
    }
}

/// A stored credential as the API shows it: never its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Credential {
    pub id: i64,
    pub name: String,
    pub kind: CredentialKind,
    pub description: String,
    pub created: DateTime<Utc>,
    pub created_by: String,
    /// When a job last used it.
    pub last_used: Option<DateTime<Utc>>,
    /// The only hosts it is sent to as an inventory URL's, a git repository's or a Galaxy server's
    /// credential (`git.example.com`, `*.example.com`); empty: any.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `POST /api/v1/credentials` (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Letters, digits, `.`, `_` and `-`; unique.
    pub name: String,
    pub kind: CredentialKind,
    #[serde(default)]
    pub description: String,
    /// The kind's fields (see [`CredentialKind`]); encrypted at rest, never shown again.
    pub inputs: Map<String, Value>,
    /// Bind it to these hosts: launches may send it only to an inventory URL, git repository or
    /// Galaxy server on one of them (`git.example.com`, `*.example.com` for any subdomain, an IP
    /// address). Empty: any host. At most 50.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// The credentials a launch uses, by slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LaunchCredentials {
    /// An SSH private key for the hosts (`ssh_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<CredentialRef>,
    /// A username and password for the hosts (`password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<CredentialRef>,
    /// The privilege escalation password (`become_password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_password: Option<CredentialRef>,
    /// The Ansible Vault password (`vault_password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_password: Option<CredentialRef>,
}

/// A stored credential's name, a secret looked up in HashiCorp Vault at launch, or a value given
/// for this launch only (used once, never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum CredentialRef {
    Name(String),
    Lookup(SecretLookup),
}

/// A secret from somewhere else than the credential store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretLookup {
    /// Read at launch from a KV version 2 secret: `vault_path` such as `secret/data/ci/deploy` (or
    /// `secret/ci/deploy`), its field `vault_key`, through the `hashicorp_vault` credential named
    /// `credential` (or the only one there is).
    HashicorpVault {
        vault_path: String,
        vault_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
        /// The remote or become user, for the `ssh` and `password` slots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    },
    /// Given with the launch, used once and not stored.
    Value {
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// For an SSH key that is encrypted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_credentials_parse() {
        let c: LaunchCredentials = serde_json::from_value(serde_json::json!({
            "ssh": "prod-ssh-key",
            "become_password": "prod-become",
            "vault_password": {"type": "hashicorp_vault", "vault_path": "secret/data/ci", "vault_key": "vault_pass"}
        }))
        .expect("parses");
        assert_eq!(c.ssh, Some(CredentialRef::Name("prod-ssh-key".into())));
        assert!(matches!(c.vault_password, Some(CredentialRef::Lookup(SecretLookup::HashicorpVault { .. }))));
        assert!(serde_json::from_value::<LaunchCredentials>(serde_json::json!({"sssh": "x"})).is_err());
    }
}
