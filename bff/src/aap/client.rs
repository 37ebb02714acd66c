//! A typed client of one controller's REST API v2: one reqwest client with timeouts and the
//! bearer token, the API prefix detected on first contact, `next` links followed, and retries
//! with capped backoff for failures worth retrying.
//!
//! What is retried: connection failures and 429 (with its Retry-After) for every request; time-outs
//! and 502/503/504 for reads only, since a launch or cancel whose answer was lost may have happened
//! and must not be sent twice. 401 and 403 are never retried: they are reported as what they are.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::infra::config::ControllerConfig;
use crate::infra::secrets::Secret;

/// The prefixes a controller may serve its API under, in the order they are tried.
pub const PREFIXES: [&str; 2] = ["/api/controller/v2", "/api/v2"];

/// Why a request to a controller failed. The messages name the controller and the request, never
/// the token.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientError {
    /// 401: the controller does not accept the token.
    Unauthorized(String),
    /// 403: the token's user may not do this.
    Forbidden(String),
    /// 404: no such object (or no API at that prefix).
    NotFound(String),
    /// Another 4xx: the controller refused the request; `detail` is its own words.
    Refused { status: u16, detail: String },
    /// Not reachable, timed out, or failing (5xx), after the retries.
    Unreachable(String),
    /// It answered something that is not the AWX API.
    Invalid(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unauthorized(m)
            | ClientError::Forbidden(m)
            | ClientError::NotFound(m)
            | ClientError::Unreachable(m)
            | ClientError::Invalid(m) => f.write_str(m),
            ClientError::Refused { detail, .. } => f.write_str(detail),
        }
    }
}

/// A page of a list, as AWX answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub count: i64,
    pub next: Option<String>,
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
}

pub struct Client {
    http: reqwest::Client,
    name: String,
    base: Url,
    token: Secret,
    fixed_prefix: Option<String>,
    detected: Mutex<Option<String>>,
    retries: u32,
    retry_base: Duration,
    max_backoff: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("name", &self.name).field("base", &self.base.as_str()).finish()
    }
}

/// The words of an error and of its causes ("error sending request: connection refused").
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The controller's own words from an error body: `detail`, `error`, or field errors
/// (`{"limit": ["…"]}`) as `limit: …`.
pub fn error_detail(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return if text.is_empty() || text.starts_with('<') {
            String::new()
        } else {
            text.chars().take(300).collect()
        };
    };
    fn flat(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a.iter().map(flat).collect::<Vec<_>>().join(" "),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| {
                    if matches!(k.as_str(), "detail" | "error" | "__all__" | "non_field_errors") {
                        flat(v)
                    } else {
                        format!("{k}: {}", flat(v))
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
    flat(&v).chars().take(1000).collect()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

impl Client {
    pub fn new(cfg: &ControllerConfig) -> Result<Client, String> {
        let base = Url::parse(&format!("{}/", cfg.url.trim_end_matches('/')))
            .map_err(|e| format!("controller {}: url {:?}: {e}", cfg.name, cfg.url))?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            .user_agent(concat!("playdeck/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!cfg.verify_tls);
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(&pem.0)
                .map_err(|e| format!("controller {}: ca_file: {e}", cfg.name))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| format!("controller {}: HTTP client: {e}", cfg.name))?;
        Ok(Client {
            http,
            name: cfg.name.clone(),
            base,
            token: cfg.token.clone(),
            fixed_prefix: cfg.api_prefix.clone(),
            detected: Mutex::new(None),
            retries: cfg.retries,
            retry_base: cfg.retry_base,
            max_backoff: cfg.max_backoff,
        })
    }

    /// The prefix in use: configured, or detected already (`None` before the first contact).
    pub fn known_prefix(&self) -> Option<String> {
        self.fixed_prefix.clone().or_else(|| self.detected.lock().ok().and_then(|d| d.clone()))
    }

    /// The API prefix: configured, or found by asking for each one's API root. A prefix that
    /// answers 401/403 exists (the token is the problem, which the next request reports).
    pub async fn prefix(&self) -> Result<String, ClientError> {
        if let Some(p) = self.known_prefix() {
            return Ok(p);
        }
        for candidate in PREFIXES {
            let url = self.absolute(&format!("{candidate}/"))?;
            let (status, body) = self.send(Method::GET, url, None).await?;
            let is_api_root = || {
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.as_object().map(|o| o.contains_key("jobs") || o.contains_key("ping")))
                    .unwrap_or(false)
            };
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                || (status.is_success() && is_api_root())
            {
                if let Ok(mut d) = self.detected.lock() {
                    *d = Some(candidate.to_string());
                }
                tracing::info!(controller = %self.name, prefix = candidate, "detected the API prefix");
                return Ok(candidate.to_string());
            }
            if status.is_server_error() {
                return Err(ClientError::Unreachable(format!(
                    "controller {} answered {status} to GET {candidate}/",
                    self.name
                )));
            }
        }
        Err(ClientError::Invalid(format!(
            "controller {} has no AWX API at {}api/controller/v2/ nor at {}api/v2/: is the URL right? \
             (an API elsewhere needs api_prefix / PLAYDECK_AAP_API_PREFIX)",
            self.name, self.base, self.base
        )))
    }

    /// `path` (from the server root, e.g. `/api/v2/jobs/`) as a URL on the controller.
    fn absolute(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Invalid(format!("controller {}: bad path {path:?}: {e}", self.name)))
    }

    /// The URL of an API path (`/jobs/26/`) under the prefix, with query parameters.
    pub async fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ClientError> {
        let prefix = self.prefix().await?;
        let mut url = self.absolute(&format!("{prefix}{path}"))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// A `next` link as AWX gives it (a path from the server root, or a whole URL). Links to
    /// another host are refused: the token goes to the controller only.
    pub fn follow(&self, link: &str) -> Result<Url, ClientError> {
        let url = self.base.join(link).map_err(|e| {
            ClientError::Invalid(format!(
                "controller {} gave an unreadable next link {link:?}: {e}",
                self.name
            ))
        })?;
        if url.origin() != self.base.origin() {
            return Err(ClientError::Invalid(format!(
                "controller {} gave a next link to another host ({link:?}); not followed",
                self.name
            )));
        }
        Ok(url)
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        let shown = url.path().to_string();
        let (status, body) = self.send(Method::GET, url, None).await?;
        self.check(&Method::GET, &shown, status, &body)?;
        serde_json::from_slice(&body).map_err(|e| {
            ClientError::Invalid(format!(
                "controller {}: GET {shown} answered unreadable JSON: {e}",
                self.name
            ))
        })
    }

    /// Every item of a list, following `next` links (at most `limit` pages).
    pub async fn all<T: DeserializeOwned>(&self, first: Url, limit: usize) -> Result<Vec<T>, ClientError> {
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..limit {
            let page: Page<T> = self.get(url).await?;
            out.extend(page.results);
            match page.next {
                Some(next) => url = self.follow(&next)?,
                None => break,
            }
        }
        Ok(out)
    }

    /// POST a JSON body; the answer's JSON (`Null` for an empty body, as cancel's 202).
    pub async fn post(&self, url: Url, body: &Value) -> Result<(StatusCode, Value), ClientError> {
        let shown = url.path().to_string();
        let (status, answer) = self.send(Method::POST, url, Some(body)).await?;
        self.check(&Method::POST, &shown, status, &answer)?;
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, Value::Null));
        }
        let v = serde_json::from_slice(&answer).map_err(|e| {
            ClientError::Invalid(format!(
                "controller {}: POST {shown} answered unreadable JSON: {e}",
                self.name
            ))
        })?;
        Ok((status, v))
    }

    /// Turns a non-2xx answer into the error it means.
    fn check(&self, method: &Method, path: &str, status: StatusCode, body: &[u8]) -> Result<(), ClientError> {
        if status.is_success() {
            return Ok(());
        }
        let detail = error_detail(body);
        let said = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        let name = &self.name;
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized(format!(
                "controller {name} does not accept Playdeck's token (401 to {method} {path}){said}; \
                 check the token configured for it"
            )),
            StatusCode::FORBIDDEN => ClientError::Forbidden(format!(
                "controller {name} does not let Playdeck's token do this (403 to {method} {path}){said}"
            )),
            StatusCode::NOT_FOUND => {
                ClientError::NotFound(format!("controller {name} has no {path} (404){said}"))
            }
            s if s.is_client_error() => ClientError::Refused {
                status: s.as_u16(),
                detail: if detail.is_empty() {
                    s.canonical_reason().unwrap_or("refused").to_string()
                } else {
                    detail
                },
            },
            s => ClientError::Unreachable(format!("controller {name} failed: {s} to {method} {path}{said}")),
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.retry_base.saturating_mul(1u32 << attempt.min(16));
        let [r] = crate::infra::secrets::random_bytes::<1>();
        let jitter = 1.0 + f64::from(r) / 255.0 * 0.2;
        exp.mul_f64(jitter).min(self.max_backoff)
    }

    /// Sends with retries; answers the final status and body, whatever the status.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let read_only = method == Method::GET;
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.token.expose())
                .header(ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let last = attempt >= self.retries;
            let wait = match req.send().await {
                Err(e) => {
                    let worth = e.is_connect() || (read_only && (e.is_timeout() || e.is_request()));
                    if !worth || last {
                        let what = if e.is_timeout() { "timed out" } else { "is not reachable" };
                        return Err(ClientError::Unreachable(format!(
                            "controller {} {what} ({method} {}): {}",
                            self.name,
                            url.path(),
                            describe(&e.without_url())
                        )));
                    }
                    self.backoff(attempt)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let busy = status == StatusCode::TOO_MANY_REQUESTS
                        || (read_only
                            && matches!(
                                status,
                                StatusCode::BAD_GATEWAY
                                    | StatusCode::SERVICE_UNAVAILABLE
                                    | StatusCode::GATEWAY_TIMEOUT
                            ));
                    if !busy || last {
                        let bytes = resp.bytes().await.map_err(|e| {
                            ClientError::Unreachable(format!(
                                "controller {}: reading the answer to {method} {}: {}",
                                self.name,
                                url.path(),
                                describe(&e.without_url())
                            ))
                        })?;
                        return Ok((status, bytes.to_vec()));
                    }
                    let asked = retry_after(resp.headers());
                    asked.unwrap_or_else(|| self.backoff(attempt)).min(self.max_backoff)
                }
            };
            attempt += 1;
            tracing::debug!(controller = %self.name, path = url.path(), attempt, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_errors_read_as_the_controllers_words() {
        assert_eq!(
            error_detail(br#"{"detail": "Method \"POST\" not allowed."}"#),
            "Method \"POST\" not allowed."
        );
        assert_eq!(
            error_detail(br#"{"variables_needed_to_start": ["'release' value missing"]}"#),
            "variables_needed_to_start: 'release' value missing"
        );
        assert_eq!(error_detail(b"<html>gateway</html>"), "");
        assert_eq!(error_detail(b""), "");
    }

    #[test]
    fn next_links_stay_on_the_controller() {
        let c = Client::new(&ControllerConfig::new("aap", "https://aap.example.com", "t")).expect("client");
        let u = c.follow("/api/v2/jobs/?page=2&page_size=200").expect("relative");
        assert_eq!(u.as_str(), "https://aap.example.com/api/v2/jobs/?page=2&page_size=200");
        assert!(c.follow("https://evil.example.com/api/v2/jobs/?page=2").is_err());
        assert!(c.follow("https://aap.example.com/api/v2/jobs/?page=3").is_ok());
    }
}
