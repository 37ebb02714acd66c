//! What operators and the platform probe: `/healthz` (the process answers), `/readyz` (the
//! database, the LISTEN connection and each controller) and `/metrics` (Prometheus text: the
//! counters of `infra::metrics` and the gauges read at each scrape).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::infra::metrics::{labels, Labels};
use crate::infra::state::AppState;
use crate::live;

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
    let listening = live::Hub::of(&app).listening.load(Ordering::SeqCst);
    let ready = database == "ok" && listening;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "listener": if listening { "connected" } else { "disconnected" },
        "live_clients": live::Hub::of(&app).ws_clients() + live::Hub::of(&app).sse_clients(),
        "controllers": crate::aap::health(&app),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /metrics` (with `PLAYDECK_METRICS_TOKEN`, only for `Authorization: Bearer <token>`).
pub async fn scrape(State(app): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &app.config.metrics_token {
        let given = crate::infra::auth::bearer(&headers);
        if !given.is_some_and(|g| crate::infra::secrets::same_secret(g, token.expose())) {
            return crate::infra::error::AppError::Unauthorized(
                "the metrics need `Authorization: Bearer <PLAYDECK_METRICS_TOKEN>`".into(),
            )
            .into_response();
        }
    }
    let mut gauges: Vec<(&'static str, Labels, f64)> = Vec::new();
    let hub = &live::Hub::of(&app);
    gauges.push(("playdeck_live_clients", labels(&[("transport", "websocket")]), hub.ws_clients() as f64));
    gauges.push(("playdeck_live_clients", labels(&[("transport", "sse")]), hub.sse_clients() as f64));
    let listening = hub.listening.load(std::sync::atomic::Ordering::SeqCst);
    gauges.push(("playdeck_listener_connected", Vec::new(), if listening { 1.0 } else { 0.0 }));
    let status = app.pool.status();
    gauges.push(("playdeck_db_pool_connections", labels(&[("state", "open")]), status.size as f64));
    gauges.push(("playdeck_db_pool_connections", labels(&[("state", "idle")]), status.available as f64));
    if let Ok(db) = app.pool.get().await {
        if let Ok(row) = db.query_one("select pg_notification_queue_usage()", &[]).await {
            gauges.push(("playdeck_pg_notification_queue_usage", Vec::new(), row.get::<_, f64>(0)));
        }
        // Shared state read from the tables, so every replica reports the same figures.
        if let Ok(row) = db
            .query_one(
                "select count(*) filter (where state = 'queued'), count(*) filter (where state = 'running')
                   from engine_jobs where state <> 'done'",
                &[],
            )
            .await
        {
            gauges.push((
                "playdeck_engine_jobs",
                labels(&[("state", "queued")]),
                row.get::<_, i64>(0) as f64,
            ));
            gauges.push((
                "playdeck_engine_jobs",
                labels(&[("state", "running")]),
                row.get::<_, i64>(1) as f64,
            ));
        }
        if let Ok(rows) = db.query("select state, count(*) from webhook_deliveries group by state", &[]).await
        {
            for state in ["pending", "delivered", "failed"] {
                let n = rows.iter().find(|r| r.get::<_, &str>(0) == state).map_or(0, |r| r.get::<_, i64>(1));
                gauges.push(("playdeck_webhook_deliveries", labels(&[("outcome", state)]), n as f64));
            }
        }
        if let Ok(rows) = db
            .query(
                "select coalesce(n.kind, 'deleted'), d.state, count(*) from notifier_deliveries d
                   left join notifiers n on n.id = d.notifier_id group by 1, 2",
                &[],
            )
            .await
        {
            for kind in ["mail", "chat"] {
                for state in ["pending", "delivered", "failed"] {
                    let n = rows
                        .iter()
                        .find(|r| r.get::<_, &str>(0) == kind && r.get::<_, &str>(1) == state)
                        .map_or(0, |r| r.get::<_, i64>(2));
                    gauges.push((
                        "playdeck_notifier_deliveries",
                        labels(&[("kind", kind), ("outcome", state)]),
                        n as f64,
                    ));
                }
            }
        }
    }
    if let Ok(controllers) = serde_json::from_value::<Vec<shared::aap::Controller>>(crate::aap::health(&app))
    {
        let now = chrono::Utc::now();
        for c in controllers {
            let up = if c.healthy { 1.0 } else { 0.0 };
            gauges.push((
                "playdeck_aap_controller_up",
                labels(&[("controller", &c.name), ("status", &c.status)]),
                up,
            ));
            gauges.push((
                "playdeck_aap_active_jobs",
                labels(&[("controller", &c.name)]),
                c.active_jobs as f64,
            ));
            if let Some(t) = c.last_sync {
                let age = (now - t).num_milliseconds().max(0) as f64 / 1000.0;
                gauges.push(("playdeck_aap_sync_age_seconds", labels(&[("controller", &c.name)]), age));
            }
        }
    }
    let mut resp = app.metrics.render(&gauges).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}
