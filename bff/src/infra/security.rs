//! Defences shared by the API: rate limits, the client's address, the CSRF rule for
//! cookie-authenticated writes, and the headers and size limits every response and request get.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::infra::state::AppState;

/// The header a browser must send on a write authenticated by the session cookie. A page on
/// another site cannot send it without a CORS preflight, which this server never grants.
pub const CSRF_HEADER: &str = "x-playdeck-csrf";

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
        self.check_at(client, Instant::now())
    }

    /// `check` at a given moment (the clock a test sets; `check` reads the real one).
    pub fn check_at(&self, client: &str, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() > 10_000 {
            // Forget clients whose bucket has refilled: they lose nothing.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(client.to_string()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
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

impl<S> axum::extract::FromRequestParts<S> for ClientAddr
where
    AppState: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let app = <AppState as axum::extract::FromRef<S>>::from_ref(state);
        let peer = peer_of(parts);
        Ok(ClientAddr(client_key(&app.config.auth, &parts.headers, peer)))
    }
}

/// The connection's peer, when the server was started with connect info.
pub fn peer_of(parts: &axum::http::request::Parts) -> Option<std::net::SocketAddr> {
    parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0)
}

/// Who a request comes from, for rate limits and the audit log: the peer address, unless the
/// peer is a trusted proxy (`PLAYDECK_TRUSTED_PROXIES`); then the nearest `X-Forwarded-For` hop
/// that is not itself a trusted proxy. Anyone else's `X-Forwarded-For` is ignored.
pub fn client_key(
    auth: &crate::infra::config::AuthConfig,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
) -> String {
    let Some(peer) = peer else { return "unknown".into() };
    if !auth.trusts(peer.ip()) {
        return peer.ip().to_string();
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    // From the nearest hop outwards: the first that is not a trusted proxy is the client. A hop
    // that is not an address (`unknown`, garbage) ends the walk too: what lies beyond it was
    // written by the client and proves nothing.
    let mut client = peer.ip().to_string();
    for hop in hops.iter().rev() {
        match hop_address(hop) {
            Some(ip) if auth.trusts(ip) => client = ip.to_string(),
            Some(ip) => return ip.to_string(),
            None => return format!("unparsed:{}", hop.chars().take(64).collect::<String>()),
        }
    }
    client
}

/// An `X-Forwarded-For` hop as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
fn hop_address(hop: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

/// The edge rule for query strings: the name of the first parameter that holds a NUL byte.
fn nul_in_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) =
            (crate::infra::text::percent_decode(k, true), crate::infra::text::percent_decode(v, true));
        (k.contains(&0) || v.contains(&0)).then(|| String::from_utf8_lossy(&k).replace('\0', "\\0"))
    })
}

/// The most header bytes a request may carry (hyper's own limits are larger: ~400 KiB, 100 headers).
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The longest request target.
const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses oversize headers (431) and URIs (414). Headers for every response: no sniffing, and who may frame the pages (`frame-ancestors` from
/// `PLAYDECK_FRAME_ANCESTORS`, default only this origin) instead of a blanket X-Frame-Options.
pub async fn security_headers(State(app): State<AppState>, req: Request, next: Next) -> Response {
    // The caller's request id when it is a sane one (a proxy's or a pipeline's), else a new one.
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(crate::infra::secrets::random_bytes::<8>()));
    let mut resp = crate::infra::error::REQUEST_ID.scope(id.clone(), guarded(app, req, next)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn guarded(app: AppState, req: Request, next: Next) -> Response {
    // Served over HTTPS here, or behind a TLS-terminating route (the scheme in X-Forwarded-Proto).
    let tls = app.config.tls.is_some()
        || req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let mut resp = if header_bytes > MAX_HEADER_BYTES {
        crate::infra::error::error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request's headers are larger than {} KiB", MAX_HEADER_BYTES / 1024),
        )
    } else if req.uri().to_string().len() > MAX_URI_BYTES {
        crate::infra::error::error_response(
            StatusCode::URI_TOO_LONG,
            format!("the request's URI is longer than {} KiB", MAX_URI_BYTES / 1024),
        )
    } else if let Some(name) = nul_in_query(req.uri().query().unwrap_or("")) {
        crate::infra::error::error_response(
            StatusCode::BAD_REQUEST,
            format!("the query parameter `{name}` holds a NUL byte, which no text may hold"),
        )
    } else if crate::infra::text::percent_decode(req.uri().path(), false).contains(&0) {
        crate::infra::error::error_response(StatusCode::BAD_REQUEST, "the path holds a NUL byte".to_string())
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if let Ok(v) = HeaderValue::from_str(&app.csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// The Content-Security-Policy of every response. Scripts: this origin's files, WebAssembly
/// compilation, and the inline loaders whose hashes are given (trunk's `<script type="module">`
/// in `index.html`); styles: this origin's files, and `style` attributes (the timeline's bars,
/// the output's virtual scrolling and ANSI colours are set that way), never `<style>` elements.
pub fn content_security_policy(frame_ancestors: &str, script_hashes: &[String]) -> String {
    let hashes: String = script_hashes.iter().map(|h| format!(" '{h}'")).collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    /// On a clock the test moves: the burst, then one token per 1/rate seconds, the wait it
    /// announces, clients apart, and a full bucket forgotten (no wall clock anywhere).
    #[test]
    fn the_bucket_refuses_beyond_the_burst_and_refills_at_its_rate() {
        let l = RateLimiter::new(0.5, 3.0);
        let t0 = Instant::now();
        let at = |secs: f64| t0 + Duration::from_secs_f64(secs);
        assert!((0..3).all(|_| l.check_at("a", at(0.0)).is_ok()), "the burst");
        assert_eq!(l.check_at("a", at(0.0)), Err(2), "one more token in 2 s");
        assert_eq!(l.check_at("a", at(1.0)), Err(1), "half a token after 1 s: 1 s to go");
        assert!(l.check_at("a", at(2.0)).is_ok(), "a whole token after 2 s");
        assert_eq!(l.check_at("a", at(2.0)), Err(2));
        assert!(l.check_at("b", at(2.0)).is_ok(), "clients are counted apart");
        // After long enough the bucket is full again, never fuller than the burst.
        assert!((0..3).all(|_| l.check_at("a", at(100.0)).is_ok()));
        assert!(l.check_at("a", at(100.0)).is_err());
        // A clock read out of order (another thread's earlier instant) takes nothing back.
        assert!(l.check_at("a", at(99.0)).is_err());
    }

    #[test]
    fn past_ten_thousand_clients_the_full_buckets_are_forgotten() {
        let l = RateLimiter::new(1.0, 2.0);
        let t0 = Instant::now();
        for i in 0..10_001 {
            l.check_at(&format!("c{i}"), t0).expect("first request");
        }
        l.check_at("late", t0 + Duration::from_secs(5)).expect("a new client");
        let kept = l.buckets.lock().expect("lock").len();
        assert_eq!(kept, 1, "refilled buckets are dropped, the newest kept");
    }
}

#[cfg(test)]
mod client_key_tests {
    use super::client_key;
    use axum::http::HeaderMap;

    #[test]
    fn the_client_is_the_first_hop_that_is_not_a_trusted_proxy() {
        let mut auth = crate::infra::config::AuthConfig::for_tests();
        auth.trusted_proxies = crate::infra::config::auth::parse_cidrs("t", "10.0.0.0/8").expect("cidrs");
        let key = |peer: &str, xff: &[&str]| {
            let mut h = HeaderMap::new();
            for v in xff {
                h.append("x-forwarded-for", v.parse().expect("value"));
            }
            client_key(&auth, &h, Some(peer.parse().expect("peer")))
        };
        // Not from a trusted proxy: the header is the client's own words.
        assert_eq!(key("203.0.113.9:4000", &["1.1.1.1"]), "203.0.113.9");
        // Through the proxy: what the proxy appended, not what the client prepended.
        assert_eq!(key("10.0.0.2:4000", &["6.6.6.6, 198.51.100.7"]), "198.51.100.7");
        assert_eq!(key("10.0.0.2:4000", &["6.6.6.6", "198.51.100.7"]), "198.51.100.7");
        assert_eq!(key("10.0.0.2:4000", &["198.51.100.7, 10.0.0.5"]), "198.51.100.7");
        // Ports and brackets as some proxies write them.
        assert_eq!(key("10.0.0.2:4000", &["6.6.6.6, 198.51.100.7:5678"]), "198.51.100.7");
        assert_eq!(key("10.0.0.2:4000", &["[2001:db8::1]:443"]), "2001:db8::1");
        // A hop that is not an address stops the walk: nothing beyond it is believed.
        assert_eq!(key("10.0.0.2:4000", &["6.6.6.6, unknown"]), "unparsed:unknown");
        // Only proxies: the nearest of them.
        assert_eq!(key("10.0.0.2:4000", &["10.0.0.7"]), "10.0.0.7");
        assert_eq!(key("10.0.0.2:4000", &[]), "10.0.0.2");
        // IPv4-mapped IPv6 peers are the IPv4 address.
        assert_eq!(key("[::ffff:10.0.0.2]:4000", &["198.51.100.7"]), "198.51.100.7");
    }
}
