//! The local engine: runs playbooks with ansible-playbook on this host.
//!
//! Not built yet: every call answers that the local engine is not available.

use axum::response::Response;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::AppError;
use crate::launch::Hosts;
use crate::AppState;

fn unavailable() -> AppError {
    AppError::Unprocessable("the local engine is not available in this build".into())
}

pub async fn launch(_app: &AppState, _caller: &Caller, _body: Value) -> Result<Response, AppError> {
    Err(unavailable())
}

pub async fn cancel(_app: &AppState, _caller: &Caller, _id: i64) -> Result<Response, AppError> {
    Err(unavailable())
}

pub async fn relaunch(
    _app: &AppState,
    _caller: &Caller,
    _id: i64,
    _hosts: Hosts,
) -> Result<Response, AppError> {
    Err(unavailable())
}
