//! What handlers take from a request and how lists answer: query strings (`Q`), ids in the path
//! (`JobId`, `path_id`), bodies with their size limit and gzip (`read_body`), and pages of results
//! with their next/previous links, built one way for every list.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::{header, HeaderMap};
use shared::Page;

use crate::infra::error::AppError;

/// Reads the `{id}` of a path: a clear 400 for `/jobs/abc`, in the contract's shape.
pub async fn path_id(parts: &mut axum::http::request::Parts, what: &str) -> Result<i64, AppError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, &())
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::BadRequest(format!("{raw:?} is not {what} id")))
}

/// Declares a typed id taken from the path's one `{id}`: `path_id_type!(WebhookId, "a webhook")`
/// makes `WebhookId(pub i64)`, an extractor that answers `"abc" is not a webhook id` (400).
macro_rules! path_id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        pub struct $name(pub i64);

        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $name {
            type Rejection = $crate::infra::error::AppError;
            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                _: &S,
            ) -> Result<Self, Self::Rejection> {
                $crate::infra::extract::path_id(parts, $what).await.map($name)
            }
        }
    };
}
pub(crate) use path_id_type;

path_id_type!(
    /// A job's id from the path.
    JobId,
    "a job"
);

/// Query strings read into a type, with a 400 in the contract's shape when they don't fit.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

/// Reads the body up to `limit` bytes, gunzipping it (to at most `limit` bytes too, so a small
/// gzip bomb is refused like a large body).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, AppError> {
    let too_large = move || {
        AppError::PayloadTooLarge(format!(
            "the body is larger than {limit} bytes (PLAYDECK_INGEST_MAX_BYTES); send smaller batches"
        ))
    };
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        // The buffer itself when nothing else holds it (no copy of the whole body).
        "identity" | "" => Ok(Vec::from(bytes)),
        "gzip" | "x-gzip" => tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&bytes[..]).take(limit as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| AppError::BadRequest(format!("the gzip body cannot be read: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        })
        .await
        .map_err(|e| AppError::Internal(format!("gunzip task: {e}")))?,
        other => Err(AppError::UnsupportedMedia(format!(
            "Content-Encoding {other:?} is not supported; send gzip or no encoding"
        ))),
    }
}

/// `?page=&page_size=` of a list that has no other filter.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

/// A page of a list with its links: `{path}?page=…&page_size=…` and the list's filters, so a
/// client follows `next` without knowing how the list is filtered.
pub fn page_of<T, K: AsRef<str>>(
    path: &str,
    page: i64,
    page_size: i64,
    filters: &[(K, Option<String>)],
    count: i64,
    results: Vec<T>,
) -> Page<T> {
    let link = |p: i64| {
        let mut parts = vec![format!("page={p}"), format!("page_size={page_size}")];
        parts.extend(
            filters
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{}={}", k.as_ref(), percent_encode(v)))),
        );
        format!("{path}?{}", parts.join("&"))
    };
    Page {
        count,
        count_exact: true,
        next: (page * page_size < count).then(|| link(page + 1)),
        previous: (page > 1).then(|| link(page - 1)),
        results,
    }
}

/// A list that is never paged, in the list shape: all of it, no links.
pub fn whole<T>(results: Vec<T>) -> Page<T> {
    Page { count: results.len() as i64, count_exact: true, next: None, previous: None, results }
}

/// The set filters of a flat query struct (its own field names and values), without its paging
/// (`page`, `page_size`, and the keyset's `page_after` and `page_before`).
pub fn filters_of<T: serde::Serialize>(v: &T) -> Vec<(String, Option<String>)> {
    let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(v) else { return Vec::new() };
    obj.into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "page" | "page_size" | "page_after" | "page_before"))
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, Some(s))),
            serde_json::Value::Number(n) => Some((k, Some(n.to_string()))),
            _ => None,
        })
        .collect()
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
