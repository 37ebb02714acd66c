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

/// Serves the SPA's files; any other path gets `index.html`, so `/jobs/7` loads the app, which
/// routes it.
pub fn spa(config: &Config) -> Router<AppState> {
    match web_dir(config) {
        Some(dir) => {
            let index = dir.join("index.html");
            Router::new().fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
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
