//! The AAP/AWX connector: syncs controllers' jobs and events into Playdeck and launches, cancels
//! and relaunches on them.
//!
//! Not built yet: no controller is ever configured, and every call says so.

use axum::response::Response;
use axum::Router;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::AppError;
use crate::launch::Hosts;
use crate::AppState;

/// The controllers to sync, from the environment (and later a config file).
#[derive(Debug, Clone, Default)]
pub struct AapConfig {}

impl AapConfig {
    pub fn from_env() -> Result<AapConfig, String> {
        Ok(AapConfig {})
    }

    pub fn for_tests() -> AapConfig {
        AapConfig {}
    }
}

/// The connector's shared state (controllers, their health).
#[derive(Debug, Default)]
pub struct Connector {}

impl Connector {
    pub fn new(_config: &AapConfig) -> Connector {
        Connector {}
    }
}

/// Starts the sync loops; called once the app is up.
pub fn start(_app: &AppState) {}

/// The controllers' health for `/readyz`.
pub fn health(_app: &AppState) -> Value {
    Value::Array(Vec::new())
}

/// `/api/v1/templates`, `/api/v1/controllers`, `/api/v1/ingest/aap-logging`.
pub fn router() -> Router<AppState> {
    Router::new()
}

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
