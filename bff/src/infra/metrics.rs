//! Prometheus metrics: counters and histograms kept in memory, rendered as text (the `ops`
//! module serves them at `/metrics`, with the gauges it reads at each scrape).
//!
//! Hand-rolled rather than a metrics crate: a few dozen series, one mutex, and the text format is
//! simple. Every series is declared in `FAMILIES` with its help text, so `/metrics` describes
//! even those that have not moved yet.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::infra::state::AppState;

/// What each family is and means.
const FAMILIES: &[(&str, &str, &str)] = &[
    ("playdeck_http_requests_total", "counter", "HTTP requests by route, method and status."),
    ("playdeck_http_request_seconds", "histogram", "HTTP request duration by route."),
    ("playdeck_ingest_batches_total", "counter", "Ingest batches written, by source."),
    ("playdeck_ingest_events_total", "counter", "New events stored by ingest, by source."),
    (
        "playdeck_ingest_duplicates_total",
        "counter",
        "Events that were already stored (duplicates), by source.",
    ),
    ("playdeck_ingest_rejected_total", "counter", "Ingest requests refused, by reason."),
    ("playdeck_ingest_seconds", "histogram", "Time to write one ingest batch (one transaction)."),
    (
        "playdeck_notification_lag_seconds",
        "histogram",
        "From an ingest commit to its notification at the live relay.",
    ),
    ("playdeck_live_messages_total", "counter", "Live messages sent to clients, by transport and kind."),
    (
        "playdeck_live_encoded_total",
        "counter",
        "Live messages serialized, by kind: once per broadcast, however many clients it goes to.",
    ),
    ("playdeck_live_resyncs_total", "counter", "Clients that fell behind and were resynced, by transport."),
    ("playdeck_live_clients", "gauge", "Connected live clients, by transport."),
    ("playdeck_listener_reconnects_total", "counter", "Times the LISTEN connection was re-established."),
    ("playdeck_listener_connected", "gauge", "1 when the LISTEN connection is up."),
    ("playdeck_pg_notification_queue_usage", "gauge", "PostgreSQL's pg_notification_queue_usage() (0..1)."),
    ("playdeck_db_pool_connections", "gauge", "Connections in the pool, by state."),
    ("playdeck_engine_jobs", "gauge", "Local engine jobs by state (queued, running)."),
    ("playdeck_webhook_deliveries", "gauge", "Webhook deliveries by outcome (pending, delivered, failed)."),
    ("playdeck_notifier_deliveries", "gauge", "Mail and chat notifications by kind and outcome."),
    (
        "playdeck_aap_controller_up",
        "gauge",
        "1 when a controller syncs without errors, by controller and status.",
    ),
    ("playdeck_aap_sync_age_seconds", "gauge", "Seconds since the controller's last successful sync round."),
    ("playdeck_aap_active_jobs", "gauge", "Controller jobs still being followed, by controller."),
    ("playdeck_aap_sync_round_seconds", "histogram", "Duration of a successful sync round, by controller."),
    ("playdeck_aap_sync_errors_total", "counter", "Failed sync rounds, by controller."),
];

const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Series {
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<Series>,
    /// `playdeck_live_messages_total` by transport and kind: counted for every message to every
    /// client (hundreds of thousands a second under load), so atomics, not the mutex.
    live_messages: [[AtomicU64; LIVE_KINDS.len()]; LIVE_TRANSPORTS.len()],
}

const LIVE_TRANSPORTS: [&str; 2] = ["websocket", "sse"];
const LIVE_KINDS: [&str; 4] = ["job", "events", "resync", "error"];

pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Metrics {
    /// The metrics with every counter series whose labels are known at start already at 0 (as
    /// Prometheus' instrumentation guide advises: a series that appears later hides its first
    /// increase from `rate()`): the sources and controllers configured, the transports and kinds.
    pub fn new(controllers: &[String]) -> Metrics {
        let m = Metrics::default();
        let mut sources = vec!["local".to_string()];
        sources.extend(controllers.iter().cloned());
        for source in &sources {
            for family in [
                "playdeck_ingest_batches_total",
                "playdeck_ingest_events_total",
                "playdeck_ingest_duplicates_total",
            ] {
                m.add(family, &[("source", source)], 0.0);
            }
        }
        for status in ["400", "401", "413", "415", "422", "429", "503"] {
            m.add("playdeck_ingest_rejected_total", &[("status", status)], 0.0);
        }
        for kind in ["job", "events"] {
            m.add("playdeck_live_encoded_total", &[("kind", kind)], 0.0);
        }
        for transport in ["websocket", "sse"] {
            m.add("playdeck_live_resyncs_total", &[("transport", transport)], 0.0);
        }
        m.add("playdeck_listener_reconnects_total", &[], 0.0);
        for controller in controllers {
            m.add("playdeck_aap_sync_errors_total", &[("controller", controller)], 0.0);
        }
        m
    }

    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], by: f64) {
        if let Ok(mut s) = self.series.lock() {
            *s.counters.entry((name, labels(pairs))).or_default() += by;
        }
    }

    /// One live message sent to one client.
    pub fn live_message(&self, transport: &str, kind: &str) {
        let t = LIVE_TRANSPORTS.iter().position(|x| *x == transport);
        let k = LIVE_KINDS.iter().position(|x| *x == kind);
        if let (Some(t), Some(k)) = (t, k) {
            self.live_messages[t][k].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], seconds: f64) {
        if let Ok(mut s) = self.series.lock() {
            let h = s.histograms.entry((name, labels(pairs))).or_default();
            if h.counts.is_empty() {
                h.counts = vec![0; BUCKETS.len()];
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// The text exposition, with the gauges read at scrape time appended by the caller.
    pub fn render(&self, gauges: &[(&'static str, Labels, f64)]) -> String {
        let mut out = String::new();
        let Ok(s) = self.series.lock() else { return out };
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for ((name, l), v) in s.counters.iter().filter(|((n, _), _)| n == family) {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
            }
            for ((name, l), h) in s.histograms.iter().filter(|((n, _), _)| n == family) {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ =
                        writeln!(out, "{name}_bucket{} {}", fmt_labels(l, Some(&b.to_string())), h.counts[i]);
                }
                let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(l, Some("+Inf")), h.count);
                let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(l, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", fmt_labels(l, None), h.count);
            }
            if *family == "playdeck_live_messages_total" {
                for (t, transport) in LIVE_TRANSPORTS.iter().enumerate() {
                    for (k, kind) in LIVE_KINDS.iter().enumerate() {
                        let l = labels(&[("transport", transport), ("kind", kind)]);
                        let v = self.live_messages[t][k].load(Ordering::Relaxed);
                        let _ = writeln!(out, "{family}{} {v}", fmt_labels(&l, None));
                    }
                }
            }
            for (name, l, v) in gauges.iter().filter(|(n, _, _)| n == family) {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
            }
        }
        out
    }
}

fn fmt_labels(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Counts every API request by its route (the pattern, never the ids or the query) and status, and
/// runs it in a span so its log lines say which request they belong to.
pub async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    // A fixed set: a made-up method must not make a series of its own.
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let request_id = crate::infra::error::request_id().unwrap_or_default();
    let span = tracing::info_span!("request", %method, %route, %request_id);
    let started = Instant::now();
    // Ordinary requests end in time; the live streams, a launch that waits for its job and the
    // request box's confirm (which may launch and wait) take as long as they need.
    let long = route.ends_with("/ws")
        || route.ends_with("/stream")
        || route == "/api/v1/live"
        || (method == "POST" && (route == "/api/v1/jobs" || route.ends_with("/confirm")));
    let run = next.run(req).instrument(span.clone());
    let resp = if long {
        run.await
    } else {
        match tokio::time::timeout(app.config.request_timeout, run).await {
            Ok(resp) => resp,
            Err(_) => {
                let mut resp = crate::infra::error::error_response(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the request took longer than {} s (PLAYDECK_REQUEST_TIMEOUT_SECS) and was stopped; try again",
                        app.config.request_timeout.as_secs_f64()
                    ),
                );
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(1));
                resp
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16().to_string();
    app.metrics
        .inc("playdeck_http_requests_total", &[("route", &route), ("method", method), ("status", &status)]);
    app.metrics.observe("playdeck_http_request_seconds", &[("route", &route)], seconds);
    span.in_scope(|| tracing::debug!(status = resp.status().as_u16(), seconds, "request finished"));
    resp
}
