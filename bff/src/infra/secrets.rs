//! Secrets: the one masking rule and what a masked value reads as, random tokens and their
//! hashes, constant-time comparison, files only their owner can read, the `Secret` wrapper that
//! `Debug` never prints, and the sealer that encrypts credentials at rest (AES-256-GCM).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::infra::error::AppError;

/// What a masked value reads as.
pub const MASK: &str = "********";

/// Whether a key or variable name says it holds a secret: passwords, secrets, tokens, credentials,
/// private and API keys, and any name with a word `key`, `pass`, `pwd` or `auth` in it. One rule
/// for event payloads, launch records and job files alike: masking more is the safe direction.
pub fn is_secret_key(name: &str) -> bool {
    // This runs for every key of every event ingested, and almost every key is no secret: a name
    // without any of the stems every rule below needs is answered in one pass over its bytes.
    if !has_secret_stem(name.as_bytes()) {
        return false;
    }
    // Lowercased only when needed.
    let lower;
    let n = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = name.to_ascii_lowercase();
        lower.as_str()
    } else {
        name
    };
    SECRET_PARTS.iter().any(|p| n.contains(p))
        || n.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| SECRET_WORDS.contains(&w))
}

/// What a secret name contains anywhere (`is_secret_key`).
const SECRET_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private_key",
    "privatekey",
    "api_key",
    "apikey",
    "access_key",
];

/// What a secret name has as a word of its own (`is_secret_key`).
const SECRET_WORDS: &[&str] = &["key", "pass", "pwd", "auth"];

/// Whether `name` holds, in any case, one of the stems each of `is_secret_key`'s parts and words
/// contains: `pass`, `secret`, `token`, `credential`, `key`, `pwd`, `auth`.
fn has_secret_stem(name: &[u8]) -> bool {
    let at =
        |i: usize, stem: &[u8]| name.get(i..i + stem.len()).is_some_and(|s| s.eq_ignore_ascii_case(stem));
    (0..name.len()).any(|i| match name[i] | 0x20 {
        b'p' => at(i, b"pass") || at(i, b"pwd"),
        b's' => at(i, b"secret"),
        b't' => at(i, b"token"),
        b'c' => at(i, b"credential"),
        b'k' => at(i, b"key"),
        b'a' => at(i, b"auth"),
        _ => false,
    })
}

/// Replaces secret values in a JSON document, recursively: values under secret-looking keys, and
/// the whole result of a task that ran with `no_log` (Ansible marks it `_ansible_no_log`).
pub fn mask_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("_ansible_no_log").and_then(Value::as_bool) == Some(true) {
                for (k, val) in map.iter_mut() {
                    if !k.starts_with("_ansible") && k != "changed" && k != "failed" && k != "skipped" {
                        *val = Value::String(MASK.into());
                    }
                }
                return;
            }
            for (k, val) in map.iter_mut() {
                if is_secret_key(k)
                    && !matches!(val, Value::Null | Value::Bool(_))
                    && !val.is_object()
                    && !val.is_array()
                {
                    *val = Value::String(MASK.into());
                } else {
                    mask_secrets(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// A copy with the values of secret-named keys (at any depth) replaced by [`MASK`].
pub fn masked_copy(v: &Value, masked_any: &mut bool) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, val)| {
                    if is_secret_key(k) && !val.is_null() {
                        *masked_any = true;
                        (k.clone(), Value::String(MASK.into()))
                    } else {
                        (k.clone(), masked_copy(val, masked_any))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| masked_copy(x, masked_any)).collect()),
        other => other.clone(),
    }
}

/// Random bytes from the operating system (ring's `SystemRandom`, the one source of randomness).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // getrandom does not fail on Linux once the pool is initialized; a failure is not survivable.
    SystemRandom::new().fill(&mut bytes).expect("the operating system's random source");
    bytes
}

/// A random secret: `prefix` then 64 hex digits.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(random_bytes::<32>()))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file only its owner can read (mode 0600 from the start, never wider).
pub fn write_private(path: &Path, content: &str) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A secret value; `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const VERSION: u8 = 1;

/// Seals and opens secrets with the credential key.
pub struct Sealer {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.id).finish_non_exhaustive()
    }
}

impl Sealer {
    /// From 32 bytes of key.
    pub fn new(raw: &[u8; 32]) -> Sealer {
        let id = hex::encode(&Sha256::digest(raw)[..6]);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("a 32-byte AES-256 key"));
        Sealer { key, id }
    }

    /// The configured key (`PLAYDECK_CREDENTIAL_KEY`), or the one generated into the data
    /// directory (made on first start). `shared_database`: other replicas may need the same key.
    pub fn load(
        configured: Option<&Secret>,
        data_dir: &Path,
        shared_database: bool,
    ) -> Result<Sealer, String> {
        if let Some(k) = configured {
            return parse_key(k.expose())
                .map(|raw| Sealer::new(&raw))
                .map_err(|e| format!("PLAYDECK_CREDENTIAL_KEY {e}"));
        }
        let path = data_dir.join("credential.key");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return parse_key(text.trim())
                .map(|raw| Sealer::new(&raw))
                .map_err(|e| format!("{}: the credential key {e}", path.display()));
        }
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let mut raw = [0u8; 32];
        SystemRandom::new().fill(&mut raw).map_err(|_| "no randomness for the credential key".to_string())?;
        write_private(&path, &hex::encode(raw))?;
        if shared_database {
            tracing::warn!(
                path = %path.display(),
                "generated a credential key in the data directory; with a shared database every replica \
                 needs the same key: set PLAYDECK_CREDENTIAL_KEY"
            );
        }
        Ok(Sealer::new(&raw))
    }

    /// The id stored beside what this key sealed.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// `purpose` is bound to the ciphertext: a value sealed for one purpose does not open for another.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<Vec<u8>, AppError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| AppError::Internal("no randomness".into()))?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose), &mut buf)
            .map_err(|_| AppError::Internal("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + 6 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&hex::decode(&self.id).unwrap_or_default());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, AppError> {
        if sealed.len() < 1 + 6 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(AppError::Internal(format!("a sealed {purpose} is damaged")));
        }
        let id = hex::encode(&sealed[1..7]);
        if id != self.id {
            return Err(AppError::Unprocessable(format!(
                "the {purpose} was sealed with credential key {id}, but this server's key is {}: \
                 set PLAYDECK_CREDENTIAL_KEY to the key it was made with",
                self.id
            )));
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[7..7 + NONCE_LEN])
            .map_err(|_| AppError::Internal("bad nonce".into()))?;
        let mut buf = sealed[7 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose), &mut buf)
            .map_err(|_| AppError::Internal(format!("a sealed {purpose} does not open (damaged)")))?;
        Ok(plain.to_vec())
    }

    /// A JSON value sealed into a JSON value (`{"sealed": base64}`), for jsonb columns.
    pub fn seal_json(&self, purpose: &str, v: &Value) -> Result<Value, AppError> {
        let bytes = self.seal(purpose, v.to_string().as_bytes())?;
        Ok(serde_json::json!({ "sealed": base64::engine::general_purpose::STANDARD.encode(bytes) }))
    }

    /// The reverse of [`Sealer::seal_json`]; a value that is not sealed is returned as it is.
    pub fn open_json(&self, purpose: &str, v: Value) -> Result<Value, AppError> {
        let Some(text) = v.get("sealed").and_then(Value::as_str) else { return Ok(v) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| AppError::Internal(format!("a sealed {purpose} is not base64")))?;
        let plain = self.open(purpose, &bytes)?;
        serde_json::from_slice(&plain).map_err(|e| AppError::Internal(format!("a sealed {purpose}: {e}")))
    }
}

fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|_| "must be 64 hex digits or 32 bytes in base64".to_string())?
    };
    bytes.try_into().map_err(|_| "must be 32 bytes (64 hex digits, or 44 characters of base64)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let mut v = json!({
            "host": "web-01", "task": "login",
            "res": {"msg": "ok", "ansible_password": "hunter2", "api_token": "abc", "nested": [{"db_secret": "s"}],
                    "key": "k", "ssh_private_key": "-----BEGIN", "known_host_key": "ssh-ed25519 AAA", "changed": true},
            "no_log": {"_ansible_no_log": true, "stdout": "hidden stuff", "changed": true}
        });
        mask_secrets(&mut v);
        assert_eq!(v["host"], "web-01");
        assert_eq!(v["res"]["msg"], "ok");
        for k in ["ansible_password", "api_token", "key", "ssh_private_key"] {
            assert_eq!(v["res"][k], MASK, "{k}");
        }
        assert_eq!(v["res"]["nested"][0]["db_secret"], MASK);
        // One rule since the two word lists merged: a host key is masked too (the safe direction).
        assert_eq!(v["res"]["known_host_key"], MASK);
        assert_eq!(v["no_log"]["stdout"], MASK);
        assert_eq!(v["no_log"]["changed"], true);
    }

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let mut any = false;
        let v = masked_copy(
            &json!({"patch_group": "Group-1", "db": {"password": "hunter2", "port": 5432},
                    "ansible_become_pass": "x", "api_token": "t", "monkey": 1}),
            &mut any,
        );
        assert!(any);
        assert_eq!(v["patch_group"], "Group-1");
        assert_eq!(v["db"]["password"], MASK);
        assert_eq!(v["db"]["port"], 5432);
        assert_eq!(v["ansible_become_pass"], MASK);
        assert_eq!(v["api_token"], MASK);
        assert_eq!(v["monkey"], 1);
    }

    #[test]
    fn sealing_round_trips_and_binds_purpose_and_key() {
        let s = Sealer::new(&[7u8; 32]);
        let sealed = s.seal("credential a", b"hunter2").expect("seals");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(s.open("credential a", &sealed).expect("opens"), b"hunter2");
        assert!(s.open("credential b", &sealed).is_err());
        let other = Sealer::new(&[8u8; 32]);
        let e = other.open("credential a", &sealed).expect_err("other key");
        assert!(e.to_string().contains("PLAYDECK_CREDENTIAL_KEY"), "{e}");
    }

    #[test]
    fn one_rule_names_secrets() {
        for k in [
            "db_password",
            "ansible_become_pass",
            "vault_pwd",
            "auth",
            "x-auth-token",
            "aws_access_key",
            "known_host_key",
            "credential_id",
            "key",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["monkey", "keyboard", "hostname", "passenger", "author"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn the_quick_look_at_a_name_never_hides_a_secret() {
        for p in SECRET_PARTS {
            for k in [
                p.to_string(),
                format!("my{p}s"),
                p.to_ascii_uppercase(),
                format!("X-{}", p.to_ascii_uppercase()),
            ] {
                assert!(is_secret_key(&k), "{k}");
            }
        }
        for w in SECRET_WORDS {
            for k in [
                w.to_string(),
                format!("a.{w}"),
                format!("{}_id", w.to_ascii_uppercase()),
                format!("x-{w}-y"),
            ] {
                assert!(is_secret_key(&k), "{k}");
            }
        }
        for k in ["", "host", "ansible_facts", "stdout_lines", "ÄÖÜ-päss", "changed"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
