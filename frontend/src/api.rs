//! One async fn per bff endpoint the page calls; every failure becomes an [`ApiError`] a person can
//! read, with the server's own `{"errors":[{"detail":…}]}` text when it sent one.
//!
//! Requests are same-origin, so the browser sends the HttpOnly session cookie itself: the page never
//! sees or keeps the API key after signing in.

use std::fmt;

use gloo_net::http::{Request, Response};
use serde::de::DeserializeOwned;
use shared::{ErrorBody, Job, Page, SessionInfo, SessionRequest};

/// Async state of anything the page fetches.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Loaded(Result<T, ApiError>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 401: no session (never signed in, signed out elsewhere, expired) or a wrong key.
    Unauthorized(String),
    /// Any other failed answer, with the server's detail.
    Server { status: u16, detail: String },
    /// No answer at all: the bff is down or the network is gone.
    Network(String),
    /// An answer that does not match the contract (a bff and a page of different versions).
    Decode(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized(detail) => f.write_str(detail),
            ApiError::Server { status, detail } => write!(f, "{detail} (HTTP {status})"),
            ApiError::Network(e) => write!(f, "Playdeck cannot be reached: {e}"),
            ApiError::Decode(e) => write!(f, "Unexpected answer from Playdeck: {e}"),
        }
    }
}

/// `GET /api/v1/session`: who is signed in, `None` when nobody is.
pub async fn session() -> Result<Option<SessionInfo>, ApiError> {
    match json(Request::get("/api/v1/session").build()).await {
        Ok(info) => Ok(Some(info)),
        Err(ApiError::Unauthorized(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /api/v1/session`: trades the key for a session cookie.
pub async fn sign_in(key: String) -> Result<SessionInfo, ApiError> {
    let body = serde_json::to_string(&SessionRequest { key }).map_err(|e| ApiError::Decode(e.to_string()))?;
    json(Request::post("/api/v1/session").header("Content-Type", "application/json").body(body)).await
}

/// `DELETE /api/v1/session`.
pub async fn sign_out() -> Result<(), ApiError> {
    send(Request::delete("/api/v1/session").build()).await.map(drop)
}

/// `GET /api/v1/jobs`: the newest `page_size` jobs, newest first (the server's default order).
pub async fn jobs(page_size: usize) -> Result<Page<Job>, ApiError> {
    let page_size = page_size.to_string();
    json(Request::get("/api/v1/jobs").query([("page_size", page_size.as_str())]).build()).await
}

async fn json<T: DeserializeOwned>(request: Result<Request, gloo_net::Error>) -> Result<T, ApiError> {
    let response = send(request).await?;
    let text = response.text().await.map_err(|e| ApiError::Network(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

/// Sends a request and turns every non-2xx answer into an [`ApiError`].
async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, ApiError> {
    let request = request.map_err(|e| ApiError::Network(e.to_string()))?;
    let response = request.send().await.map_err(|e| ApiError::Network(e.to_string()))?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    // A proxy in front of the bff may answer with HTML or nothing; fall back to the status line.
    let detail = match response.text().await.ok().and_then(|t| serde_json::from_str::<ErrorBody>(&t).ok()) {
        Some(body) if !body.errors.is_empty() => body.message(),
        _ => format!("{} {}", status, response.status_text()).trim().to_owned(),
    };
    Err(match status {
        401 => ApiError::Unauthorized(detail),
        _ => ApiError::Server { status, detail },
    })
}
