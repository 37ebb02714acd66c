//! One error type for every handler, answered in the contract's shape `{"errors":[{"detail":…}]}`.
//!
//! Internal errors are logged once, by the `error_shape` middleware, with the request they belong
//! to; the client only learns that something went wrong on the server. The same middleware gives
//! axum's own rejections (unknown route, wrong method) the standard shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::ErrorBody;

#[derive(Debug, Clone)]
pub enum AppError {
    /// 400: the request cannot be read (malformed JSON, bad query parameter).
    BadRequest(String),
    /// 401: no key, or a key that is not valid.
    Unauthorized(String),
    /// 403: a valid key whose role may not do this.
    Forbidden(String),
    /// 404: no such thing.
    NotFound(String),
    /// 409: conflicts with what is stored.
    Conflict(String),
    /// 413: the body is larger than allowed.
    PayloadTooLarge(String),
    /// 415: a body encoding or content type we do not read.
    UnsupportedMedia(String),
    /// 422: well-formed, but the values are wrong.
    Unprocessable(String),
    /// 429: too many requests from this client; the value is when to try again (seconds).
    TooManyRequests(u64),
    /// 503: a dependency (the database) is not reachable right now.
    Unavailable(String),
    /// 507: the database's disk is full; nothing of the request was stored.
    InsufficientStorage(String),
    /// 502: a service we ask on the caller's behalf (the directory, the OpenID provider) failed;
    /// the detail says which and why (it names no secret).
    BadGateway(String),
    /// 500: a bug or an unexpected failure; the detail is logged, never sent.
    Internal(String),
}

/// The detail of an internal error, carried to the logging middleware in the response.
#[derive(Clone)]
struct InternalDetail(String);

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn not_found_job(id: i64) -> AppError {
        AppError::NotFound(format!("job {id} does not exist"))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::BadRequest(m)
            | AppError::Unauthorized(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::PayloadTooLarge(m)
            | AppError::UnsupportedMedia(m)
            | AppError::Unprocessable(m)
            | AppError::Unavailable(m)
            | AppError::InsufficientStorage(m)
            | AppError::BadGateway(m)
            | AppError::Internal(m) => f.write_str(m),
            AppError::TooManyRequests(s) => write!(f, "too many requests; try again in {s} s"),
        }
    }
}

pub fn error_response(status: StatusCode, detail: impl Into<String>) -> Response {
    let mut body = ErrorBody::new(detail);
    body.request_id = request_id();
    (status, axum::Json(body)).into_response()
}

tokio::task_local! {
    /// The request being served (`x-request-id`), set by `security::security_headers` for the
    /// whole of it: error bodies and log lines carry it.
    pub static REQUEST_ID: String;
}

/// The id of the request this task serves, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            AppError::Internal(detail) => {
                let mut resp = error_response(status, "internal server error; see the server's log");
                resp.extensions_mut().insert(InternalDetail(detail));
                resp
            }
            AppError::Unavailable(detail) => {
                let busy = detail.starts_with("database pool: ");
                let words = if busy {
                    "the server is busy (every database connection is in use); try again in a moment"
                } else {
                    "the database is not reachable; try again"
                };
                let mut resp = error_response(status, words);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(if busy { 1 } else { 5 }));
                resp.extensions_mut().insert(InternalDetail(detail));
                resp
            }
            AppError::InsufficientStorage(detail) => {
                let mut resp = error_response(
                    status,
                    "the database's disk is full: nothing was stored; send it again once space is freed",
                );
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(30));
                resp.extensions_mut().insert(InternalDetail(detail));
                resp
            }
            AppError::TooManyRequests(s) => {
                let mut resp = error_response(status, format!("too many requests; try again in {s} s"));
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
                resp
            }
            other => error_response(status, other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return AppError::Unavailable(format!("database: {e}"));
        }
        // Show the server's own message, not just "db error".
        match e.as_db_error() {
            // Class 22, data exceptions: what the caller sent does not fit (too long, out of
            // range, not valid in its type or encoding). The caller's mistake, said in the
            // database's words, which name the type or the value but hold no secret.
            Some(db) if db.code().code().starts_with("22") => {
                AppError::Unprocessable(format!("a value does not fit: {}", db.message()))
            }
            // Class 53, insufficient resources: a full disk (53100) is said as such; out of
            // memory or connections is the database being unavailable for now.
            Some(db) if db.code().code() == "53100" => {
                AppError::InsufficientStorage(format!("database: {} ({})", db.message(), db.code().code()))
            }
            Some(db) if db.code().code().starts_with("53") => {
                AppError::Unavailable(format!("database: {} ({})", db.message(), db.code().code()))
            }
            Some(db) => AppError::Internal(format!("database: {} ({})", db.message(), db.code().code())),
            None => AppError::Internal(format!("database: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    /// No connection free in time is a busy server; a connection that cannot be made is a
    /// database out of reach (the answer says which).
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Timeout(_) => AppError::Unavailable(format!("database pool: {e}")),
            other => AppError::Unavailable(format!("database: {other}")),
        }
    }
}

/// `axum::Json`, but a body it cannot read gets the contract's error shape.
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    /// The body as JSON, then as `T`; a NUL byte in any string or key is a 400 naming where (the
    /// edge rule: PostgreSQL's text cannot hold one; ingest bodies, read apart, replace it).
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if let Some(at) = crate::infra::text::nul_in_json(&value) {
            return Err(AppError::BadRequest(format!("`{at}` holds a NUL byte, which no text may hold")));
        }
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Ok(AppJson(v)),
            Err(e) => Err(AppError::Unprocessable(format!(
                "Failed to deserialize the JSON body into the target type: {e}"
            ))),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let detail = rejection.body_text();
    match rejection.status() {
        StatusCode::UNPROCESSABLE_ENTITY => AppError::Unprocessable(detail),
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(detail),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMedia(detail),
        _ => AppError::BadRequest(detail),
    }
}

/// Logs internal errors once, with the request's method and path, and gives every other error
/// response that is not already in the contract's shape (axum's own rejections of a path or query,
/// unknown routes, wrong methods) that shape, keeping its status and its words.
pub async fn error_shape(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // Inside a nested router the URI lost its prefix; the original is what the client sent.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let resp = next.run(req).await;
    if let Some(InternalDetail(detail)) = resp.extensions().get::<InternalDetail>() {
        let request_id = request_id().unwrap_or_default();
        tracing::error!(%method, %path, %request_id, status = resp.status().as_u16(), error = %detail, "request failed");
        return resp;
    }
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let detail = if text.is_empty() {
        match status {
            StatusCode::NOT_FOUND => format!("no such resource: {path}"),
            StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        }
    } else {
        text
    };
    let mut out = error_response(status, detail);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out
}
