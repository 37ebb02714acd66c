//! `/api/v1/jobs`: the jobs of every source in one resource. Reading them (`read`), launching,
//! canceling and relaunching on the engine each job belongs to (`launch`), and one job's events
//! live over Server-Sent Events (`live::sse`).

pub mod launch;
pub mod read;

use axum::routing::{get, post};
use axum::Router;

use crate::infra::state::AppState;
use crate::live::sse;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(read::list).post(launch::create))
        .route("/{id}", get(read::show))
        .route("/{id}/events", get(read::events))
        .route("/{id}/hosts", get(read::hosts))
        .route("/{id}/stdout", get(read::stdout))
        .route("/{id}/history", get(read::history))
        .route("/{id}/stream", get(sse::stream))
        .route("/{id}/cancel", post(launch::cancel))
        .route("/{id}/relaunch", post(launch::relaunch))
}
