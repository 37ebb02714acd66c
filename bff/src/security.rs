//! Defences shared by the API: secret masking before anything is stored, rate limits, and the
//! CSRF rule for cookie-authenticated writes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;
use serde_json::Value;

/// What a masked value reads as.
pub const MASK: &str = "********";

/// The header a browser must send on a write authenticated by the session cookie. A page on
/// another site cannot send it without a CORS preflight, which this server never grants.
pub const CSRF_HEADER: &str = "x-playdeck-csrf";

/// Whether a key names a secret: passwords, secrets, tokens, private and API keys.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "private_key",
        "api_key",
        "apikey",
        "access_key",
    ];
    WORDS.iter().any(|w| k.contains(w)) || k == "key" || (k.ends_with("_key") && !k.ends_with("host_key"))
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

/// A token bucket per client: `per_second` on average, up to `burst` at once.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> RateLimiter {
        RateLimiter { per_second, burst, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `client`; `Err(seconds)` says when the next one is available.
    pub fn check(&self, client: &str) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let now = Instant::now();
        if buckets.len() > 10_000 {
            // Forget clients whose bucket has refilled: they lose nothing.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(client.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The client's address as `client_key` gives it, as an extractor.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
        Ok(ClientAddr(client_key(&parts.headers, peer)))
    }
}

/// Who a request comes from, for rate limits: the first `X-Forwarded-For` hop (behind the
/// cluster's router), else the peer address.
pub fn client_key(headers: &HeaderMap, peer: Option<std::net::SocketAddr>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
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
        assert_eq!(v["res"]["known_host_key"], "ssh-ed25519 AAA");
        assert_eq!(v["no_log"]["stdout"], MASK);
        assert_eq!(v["no_log"]["changed"], true);
    }

    #[test]
    fn the_bucket_refuses_beyond_the_burst() {
        let l = RateLimiter::new(0.5, 3.0);
        assert!(l.check("a").is_ok() && l.check("a").is_ok() && l.check("a").is_ok());
        assert_eq!(l.check("a"), Err(2));
        assert!(l.check("b").is_ok(), "clients are counted apart");
    }
}
