//! The built web app: its files, and `index.html` for every other path so the app routes it.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::Html;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::infra::config::Config;
use crate::infra::state::AppState;

/// Where trunk put the SPA: `PLAYDECK_WEB_DIR`, else `dist/` beside the working directory, else the
/// workspace's `dist/` (a binary run from the source tree).
pub fn web_dir(config: &Config) -> Option<PathBuf> {
    let candidates = [
        config.web_dir.clone(),
        Some(PathBuf::from("dist")),
        Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist"))),
    ];
    candidates.into_iter().flatten().find(|d| d.join("index.html").is_file())
}

/// The CSP hash sources (`sha256-…`) of the inline scripts in the built `index.html`: trunk's
/// loader. Read from the file that is served, so the policy always matches the page.
pub fn inline_script_hashes(config: &Config) -> Vec<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let Some(html) = web_dir(config).and_then(|d| std::fs::read_to_string(d.join("index.html")).ok()) else {
        return Vec::new();
    };
    let mut hashes = Vec::new();
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else { break };
        let tag = &after[..open_end];
        let body = &after[open_end + 1..];
        let Some(close) = body.find("</script>") else { break };
        if !tag.contains(" src=") {
            let digest = sha2::Sha256::digest(body[..close].as_bytes());
            hashes.push(format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest)));
        }
        rest = &body[close..];
    }
    hashes
}

/// Whether a file name carries trunk's content hash (`frontend-0123456789abcdef_bg.wasm`): such a
/// file never changes under its name.
fn hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let stem = name.split('.').next().unwrap_or("");
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    // Trunk writes a 64-bit hash in hex without leading zeros.
    stem.rsplit_once('-')
        .is_some_and(|(_, h)| (12..=16).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Hashed files are cached for a year; `index.html` (and every route the app serves it for) is
/// checked each time, so a new release is picked up at once.
async fn cache_control(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let immutable = hashed(req.uri().path());
    let mut resp = next.run(req).await;
    // A hashed name that is gone gets the page (the fallback): that must not stick.
    let page = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let value = if immutable && resp.status().is_success() && !page {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static(value));
    resp
}

/// Serves the SPA's files, precompressed (brotli, gzip) when the browser accepts it; any other
/// path gets `index.html`, so `/jobs/7` loads the app, which routes it.
pub fn spa(config: &Config) -> Router<AppState> {
    match web_dir(config) {
        Some(dir) => {
            let index = ServeFile::new(dir.join("index.html")).precompressed_br().precompressed_gzip();
            let files = ServeDir::new(dir).precompressed_br().precompressed_gzip().fallback(index);
            Router::new().fallback_service(files).layer(axum::middleware::from_fn(cache_control))
        }
        None => Router::new().fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(
                    "<!doctype html><title>Playdeck</title><h1>Playdeck</h1>\
                     <p>The web app is not built. Run <code>cargo xtask demo</code> (or \
                     <code>trunk build --release</code>) in the source tree, or set PLAYDECK_WEB_DIR. \
                     The API is at <code>/api/v1</code>.</p>",
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::hashed;

    #[test]
    fn trunks_hashed_names_are_told_apart() {
        assert!(hashed("/frontend-d03dbda4ea7af918_bg.wasm"));
        assert!(hashed("/frontend-d03dbda4ea7af918.js"));
        assert!(hashed("/style-f1f5aa24ec95c28b.css"));
        assert!(hashed("/style-28d5fed5d81fabb.css"), "15 digits: no leading zero");
        assert!(!hashed("/index.html"));
        assert!(!hashed("/jobs/7"));
        assert!(!hashed("/retire-vm.yml"));
    }
}
