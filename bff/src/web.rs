//! The built SPA, health endpoints and the headers every page gets.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};

use crate::config::Config;
use crate::AppState;

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

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers and the LISTEN connection is up.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let database = match app.pool.get().await {
        Ok(db) => match db.query_one("select 1", &[]).await {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        },
        Err(e) => format!("error: {e}"),
    };
    let listening = app.hub.listening.load(Ordering::SeqCst);
    let ready = database == "ok" && listening;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "listener": if listening { "connected" } else { "disconnected" },
        "live_clients": app.hub.ws_clients() + app.hub.sse_clients(),
        "controllers": crate::aap::health(&app),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The most header bytes a request may carry (hyper's own limits are larger: ~400 KiB, 100 headers).
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The longest request target.
const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses oversize headers (431) and URIs (414). Headers for every response: no sniffing, and who may frame the pages (`frame-ancestors` from
/// `PLAYDECK_FRAME_ANCESTORS`, default only this origin) instead of a blanket X-Frame-Options.
pub async fn security_headers(State(app): State<AppState>, req: Request, next: Next) -> Response {
    // Behind a TLS-terminating route the original scheme arrives in X-Forwarded-Proto.
    let tls =
        req.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let mut resp = if header_bytes > MAX_HEADER_BYTES {
        crate::error::error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request's headers are larger than {} KiB", MAX_HEADER_BYTES / 1024),
        )
    } else if req.uri().to_string().len() > MAX_URI_BYTES {
        crate::error::error_response(
            StatusCode::URI_TOO_LONG,
            format!("the request's URI is longer than {} KiB", MAX_URI_BYTES / 1024),
        )
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    let csp = format!("frame-ancestors {}; object-src 'none'; base-uri 'self'", app.config.frame_ancestors);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}
