//! The AAP/AWX connector: launches, cancels and relaunches on a controller.
//!
//! Not built yet: every call answers that no controller is configured.

use axum::response::Response;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::AppError;
use crate::launch::Hosts;
use crate::AppState;

fn not_configured() -> AppError {
    AppError::Unprocessable("no AAP/AWX controller is configured (PLAYDECK_AAP_URL)".into())
}

pub async fn launch(_app: &AppState, _caller: &Caller, _body: Value) -> Result<Response, AppError> {
    Err(not_configured())
}

pub async fn cancel(
    _app: &AppState,
    _caller: &Caller,
    _controller: &str,
    _id: i64,
) -> Result<Response, AppError> {
    Err(not_configured())
}

pub async fn relaunch(
    _app: &AppState,
    _caller: &Caller,
    _controller: &str,
    _id: i64,
    _hosts: Hosts,
) -> Result<Response, AppError> {
    Err(not_configured())
}
