//! `GET /api/v1/jobs/{id}/stream`: one job's events over Server-Sent Events, for CI/CD clients.
//!
//! Each event's `id:` is its cursor, so a client that reconnects with `Last-Event-ID` resumes
//! exactly after what it has; `event: job` carries the job's state as it changes, and a final
//! `event: end` comes once the job is finished and every stored event was sent.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::{Job, JobEvent};
use tokio::sync::{broadcast, mpsc};

use crate::infra::auth::Caller;
use crate::infra::error::AppError;
use crate::infra::extract::{JobId, Q};
use crate::infra::state::AppState;
use crate::live::{self, Follower, HubMessage};
use crate::store::jobs::fetch_job;

#[derive(Deserialize)]
pub struct StreamQuery {
    /// Where to resume when the client cannot send `Last-Event-ID`.
    cursor: Option<String>,
}

pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    JobId(id): JobId,
    headers: HeaderMap,
    Q(q): Q<StreamQuery>,
) -> Result<Response, AppError> {
    let given = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string).or(q.cursor);
    let cursor = live::parse_cursor(given.as_deref())?;
    let job = {
        let db = app.pool.get().await?;
        crate::store::jobs::visible_job(&db, &caller, id).await?
    };
    let (tx, rx) = mpsc::channel::<Event>(64);
    // Subscribe before the first read so nothing committed in between is lost.
    let hub_rx = live::Hub::of(&app).subscribe();
    let watch = live::until_revoked(app.clone(), caller);
    tokio::spawn(async move {
        // The stream ends (its sender dropped) when the job is done or the caller may no longer read.
        tokio::select! {
            _ = follow(app, job, Follower::new(id, cursor), hub_rx, tx) => {}
            _ = watch => {}
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

fn job_event(kind: &str, job: &Job) -> Event {
    Event::default().event(kind).data(serde_json::to_string(job).unwrap_or_default())
}

fn event_event(e: &JobEvent) -> Event {
    Event::default()
        .id(e.cursor.clone())
        .event("job_event")
        .data(serde_json::to_string(e).unwrap_or_default())
}

/// Sends until the job is finished and everything was sent, or the client leaves.
async fn follow(
    app: AppState,
    job: Job,
    mut follower: Follower,
    mut hub_rx: broadcast::Receiver<std::sync::Arc<HubMessage>>,
    tx: mpsc::Sender<Event>,
) {
    let (_interest, mut batches) = live::Hub::of(&app).follow(job.id);
    let _counted = live::Hub::of(&app).client(live::Transport::Sse);
    let shutdown = crate::infra::state::shutting_down(app.shutdown.clone());
    tokio::pin!(shutdown);
    if tx.send(job_event("job", &job)).await.is_err() {
        return;
    }
    let mut check = tokio::time::interval(Duration::from_secs(5));
    let mut done = false;
    let mut catch_up = true;
    while !done {
        if catch_up {
            catch_up = false;
            match drain(&app, &mut follower, &tx).await {
                Ok(true) => {}
                _ => return,
            }
            done = finished(&app, &follower, &tx).await;
            continue;
        }
        tokio::select! {
            batch = batches.recv() => match batch {
                Ok(msg) => {
                    if let HubMessage::Events { from, to, events, .. } = &*msg {
                        let Ok(fresh) = follower.take(&app.pool, *from, *to, events).await else { return };
                        for e in &fresh {
                            if tx.send(event_event(e)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    app.metrics.inc("playdeck_live_resyncs_total", &[("transport", "sse")]);
                    catch_up = true;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = hub_rx.recv() => match msg {
                Ok(msg) => match &*msg {
                    HubMessage::Job { job: j, .. } if j.id == follower.job_id => {
                        if tx.send(job_event("job", j)).await.is_err() {
                            return;
                        }
                        catch_up = j.status.is_finished();
                    }
                    HubMessage::Reconnected => catch_up = true,
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    app.metrics.inc("playdeck_live_resyncs_total", &[("transport", "sse")]);
                    catch_up = true;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // A safety net for a final status whose broadcast this stream did not see.
            _ = check.tick() => catch_up = true,
            _ = &mut shutdown => return,
            _ = tx.closed() => return,
        }
    }
}

/// Sends every stored event past the cursor. `Ok(false)`: the client left.
async fn drain(app: &AppState, follower: &mut Follower, tx: &mpsc::Sender<Event>) -> Result<bool, AppError> {
    loop {
        let page = follower.read_page(&app.pool).await?;
        if page.is_empty() {
            return Ok(true);
        }
        for e in &page {
            if tx.send(event_event(e)).await.is_err() {
                return Ok(false);
            }
        }
    }
}

/// Sends `end` if the job is finished and the client has all of it.
async fn finished(app: &AppState, follower: &Follower, tx: &mpsc::Sender<Event>) -> bool {
    let Ok(db) = app.pool.get().await else { return false };
    let Ok(Some(job)) = fetch_job(&db, follower.job_id).await else { return false };
    let last: i64 = job.cursor.parse().unwrap_or(0);
    if job.status.is_finished() && follower.cursor >= last {
        let _ = tx.send(job_event("end", &job)).await;
        return true;
    }
    false
}
