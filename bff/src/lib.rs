//! Playdeck's backend-for-frontend: the ingest path, the read API, the live relay and the SPA.
//!
//! `app(state)` builds the router apart from `main`, so tests serve it on port 0 against their own
//! database.

pub mod aap;
pub mod audit;
pub mod auth;
pub mod config;
pub mod credentials;
pub mod db;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod ingest;
pub mod jobs;
pub mod kb;
pub mod launch;
pub mod live;
pub mod metrics;
pub mod notifiers;
pub mod openapi;
pub mod requests;
pub mod retention;
pub mod security;
pub mod sse;
pub mod stats;
pub mod web;
pub mod webhooks;
pub mod ws;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use deadpool_postgres::Pool;
use tokio::sync::watch;

use crate::config::{Config, Secret};

/// What every handler shares.
pub struct App {
    /// Settings read at start.
    pub config: Config,
    /// Connections for queries and ingest transactions.
    pub pool: Pool,
    /// The live relay's broadcast hub.
    pub hub: Arc<live::Hub>,
    /// Sign-in attempts per client (a brake on guessing keys).
    pub signin_limit: security::RateLimiter,
    /// Ingest requests per client.
    pub ingest_limit: security::RateLimiter,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The token the ingest endpoints accept.
    pub ingest_token: Secret,
    /// The AAP/AWX connector's controllers and their health.
    pub aap: aap::Connector,
    /// Seals and opens credentials (and queued jobs' secrets) with the credential key.
    pub sealer: credentials::Sealer,
    /// The local engine's running jobs.
    pub engine: engine::Engine,
    /// Turns true when the server shuts down, so long-lived streams end and shutdown completes.
    pub shutdown: watch::Receiver<bool>,
}

/// The state handlers receive: cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Resolves once the server shuts down (or never, if the sender is gone without saying so).
pub async fn shutting_down(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A started Playdeck: the state plus what stops it.
pub struct Started {
    pub state: AppState,
    /// Set to true to end the live streams before shutting down.
    pub shutdown: watch::Sender<bool>,
    /// The admin key created at this start, to print once.
    pub new_admin_key: Option<String>,
}

/// Connects to the database, applies migrations, makes sure the admin key and the ingest token
/// exist and starts the live relay.
pub async fn start(config: Config, pg_config: tokio_postgres::Config) -> Result<Started, String> {
    let pool = db::pool(pg_config.clone(), config.pool_size)?;
    let applied = db::migrate(&pool).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    let ingest_token = auth::ingest_token(&config)?;
    let sealer = credentials::Sealer::load(&config)?;
    let hub = live::Hub::new(config.hub_capacity);
    let metrics = Arc::new(metrics::Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let relay_shutdown = shutdown_rx.clone();
    let app = AppState(Arc::new(App {
        signin_limit: security::RateLimiter::new(
            config.signin_per_minute as f64 / 60.0,
            config.signin_per_minute as f64,
        ),
        ingest_limit: security::RateLimiter::new(
            config.ingest_per_second as f64,
            2.0 * config.ingest_per_second as f64,
        ),
        aap: aap::Connector::new(&config.aap),
        engine: engine::Engine::new(&config.engine),
        sealer,
        config,
        pool: pool.clone(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        ingest_token,
        shutdown: shutdown_rx,
    }));
    let new_admin_key = auth::bootstrap_admin(&app).await?;
    kb::seed(&app).await?;
    live::start(pool, pg_config, hub, metrics, relay_shutdown);
    retention::start(&app);
    aap::start(&app);
    engine::start(&app);
    Ok(Started { state: app, shutdown: shutdown_tx, new_admin_key })
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(ingest::router())
        .merge(jobs::router())
        .merge(auth::router())
        .merge(launch::router())
        .merge(audit::router())
        .merge(kb::router())
        .merge(stats::router())
        .merge(aap::router())
        .merge(engine::router())
        .merge(requests::router())
        .merge(credentials::router())
        .merge(notifiers::router())
        .route("/jobs/{id}/stream", get(sse::stream))
        .route("/ws", get(ws::upgrade))
        .route("/openapi.json", get(openapi::serve))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .fallback(|| async { error::AppError::NotFound("no such API endpoint".into()) })
        .layer(axum::middleware::from_fn(error::error_shape));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(web::healthz))
        .route("/readyz", get(web::readyz))
        .route("/metrics", get(metrics::scrape))
        .merge(web::spa(&state.config))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::security_headers))
        .with_state(state)
}
