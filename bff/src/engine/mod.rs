//! The local engine: runs playbooks with ansible-playbook on this host.
//!
//! Not built yet: every call answers that the local engine is not available.

use axum::response::Response;
use axum::Router;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::AppError;
use crate::launch::Hosts;
use crate::AppState;

/// Where playbooks are, how many run at once, where ansible-playbook is.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {}

impl EngineConfig {
    pub fn from_env() -> Result<EngineConfig, String> {
        Ok(EngineConfig {})
    }

    pub fn for_tests() -> EngineConfig {
        EngineConfig {}
    }
}

/// The engine's shared state (running processes).
#[derive(Debug, Default)]
pub struct Engine {}

impl Engine {
    pub fn new(_config: &EngineConfig) -> Engine {
        Engine {}
    }
}

/// Starts the queue's workers; called once the app is up.
pub fn start(_app: &AppState) {}

/// The engine's own endpoints (webhooks, …).
pub fn router() -> Router<AppState> {
    Router::new()
}

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
