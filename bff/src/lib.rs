//! Playdeck's backend-for-frontend: it ingests Ansible events from every source, keeps them in
//! PostgreSQL, relays them live to browsers, runs playbooks (local engine, AAP/AWX), serves the
//! read and launch API and the web app. ARCHITECTURE.md at the repository root has the layers.
//!
//! Layers, each using only those below it:
//! - `infra`: the state, settings, errors, extractors, secrets, outbound guard, database, auth,
//!   metrics; it names no feature.
//! - `store`: the job record (reading jobs, hosts and events; actions on jobs).
//! - `live`: the relay of what changed, over WebSockets and SSE.
//! - `writer`: the one writer of a job's state changes (ingest and the engine call it).
//! - features, one module per resource with its own router: `ingest`, `jobs`, `session`, `keys`,
//!   `audit`, `kb`, `stats`, `requests`, `credentials`, `aap`, `engine`, `deliveries`,
//!   `retention`, `ops`, `web`, `openapi`.
//! - this file: `start` wires the services, `app(state)` the routers (apart from `main`, so tests
//!   serve it on port 0 against their own database).

pub mod infra;
pub mod live;
pub mod store;

pub mod aap;
pub mod audit;
pub mod bindings;
pub mod credentials;
pub mod deliveries;
pub mod engine;
pub mod ingest;
pub mod inventories;
pub mod jobs;
pub mod kb;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod playbooks;
pub mod requests;
pub mod retention;
pub mod schedules;
pub mod server;
pub mod session;
pub mod stats;
pub mod tokens;
pub mod users;
pub mod web;
pub mod writer;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::infra::config::Config;
use crate::infra::error::{self, AppError};
use crate::infra::secrets::Sealer;
use crate::infra::security::{self, RateLimiter};
use crate::infra::state::{App, AppState, Services};
use crate::infra::{auth, db, metrics};

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
    let https =
        config.tls.is_some() || config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let local = config
        .public_url
        .as_deref()
        .is_some_and(|u| u.contains("://127.0.0.1") || u.contains("://localhost"));
    if config.framed_by_others() && !https && !local {
        // Browsers keep a `Secure` cookie only from HTTPS (or this machine): a framed page could not sign in.
        tracing::warn!(
            frame_ancestors = %config.frame_ancestors,
            "PLAYDECK_FRAME_ANCESTORS names other sites but Playdeck is not served over HTTPS (PLAYDECK_PUBLIC_URL): \
             the session cookie must be Secure in a frame, so signing in inside the portal will not work"
        );
    }
    let connector = db::connector(&config.database_tls)?;
    let pool = db::pool(pg_config.clone(), connector.clone(), config.pool_size, config.pool_wait)?;
    if let Err(e) = pool.get().await {
        let cause = match &e {
            deadpool_postgres::PoolError::Backend(b) => {
                let mut text = b.to_string();
                let mut source = std::error::Error::source(b);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                text
            }
            other => other.to_string(),
        };
        return Err(db::explain_connect_error(&config.database_tls, &pg_config, &cause));
    }
    let applied = db::migrate(&pool).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    let ingest_token = auth::ingest_token(&config)?;
    let sealer =
        Sealer::load(config.credential_key.as_ref(), &config.data_dir, config.database_url.is_some())?;
    let hub = live::Hub::new(config.hub_capacity);
    let mut services = Services::default();
    services.insert(aap::Connector::new(&config.aap));
    services.insert(engine::Engine::new(&config.engine));
    services.insert(deliveries::Dispatcher::default());
    services.insert(schedules::fire::Ticker::default());
    services.insert(inventories::Inventories::default());
    services.insert(playbooks::Playbooks::default());
    services.insert(deliveries::notifiers::smtp::Mailers::default());
    services.insert(hub.clone());
    if let Some(oidc) = &config.auth.oidc {
        services.insert(session::oidc::Oidc::new(oidc, config.auth.jwks_refetch)?);
    }
    let controllers: Vec<String> = config.aap.controllers.iter().map(|c| c.name.clone()).collect();
    let metrics = Arc::new(metrics::Metrics::new(&controllers));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let relay_shutdown = shutdown_rx.clone();
    let app = AppState(Arc::new(App {
        signin_limit: RateLimiter::new(
            config.signin_per_minute as f64 / 60.0,
            config.signin_per_minute as f64,
        ),
        signin_user_limit: RateLimiter::new(
            config.auth.signin_per_user_per_minute as f64 / 60.0,
            config.auth.signin_per_user_per_minute as f64,
        ),
        api_limit: RateLimiter::new(config.api_per_second as f64, 2.0 * config.api_per_second as f64),
        ingest_limit: RateLimiter::new(
            config.ingest_per_second as f64,
            2.0 * config.ingest_per_second as f64,
        ),
        sealer,
        services,
        csp: security::content_security_policy(&config.frame_ancestors, &web::inline_script_hashes(&config)),
        bindings: infra::access::Bindings::new({
            let a = &config.auth;
            let mut fixed =
                infra::access::from_group_settings(&a.admin_groups, &a.operator_groups, &a.viewer_groups);
            fixed.extend(a.access.iter().cloned());
            fixed
        }),
        config,
        pool: pool.clone(),
        metrics: metrics.clone(),
        ingest_token,
        shutdown: shutdown_rx,
    }));
    let new_admin_key = auth::bootstrap_admin(&app).await?;
    kb::seed(&app).await?;
    live::start(pool, pg_config, connector, hub, metrics, relay_shutdown);
    retention::start(&app);
    aap::start(&app);
    engine::start(&app);
    deliveries::start(&app);
    schedules::fire::start(&app);
    Ok(Started { state: app, shutdown: shutdown_tx, new_admin_key })
}

/// The whole HTTP surface: each resource's router nested at its path.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .nest("/ingest", ingest::router().merge(aap::ingest_router()))
        .nest("/jobs", jobs::router())
        .nest("/session", session::router())
        .nest("/keys", keys::router())
        .nest("/tokens", tokens::router())
        .nest("/users", users::router())
        .nest("/audit", audit::router())
        .nest("/bindings", bindings::router())
        .nest("/kb", kb::router())
        .nest("/stats", stats::router())
        .nest("/requests", requests::router())
        .nest("/credentials", credentials::router())
        .nest("/schedules", schedules::router())
        .nest("/playbooks", playbooks::router())
        .nest("/inventories", inventories::router())
        .merge(aap::router())
        .merge(deliveries::router())
        .route("/ws", get(live::ws::upgrade))
        .route("/live", get(live::ws::feed))
        .route("/live/poll", get(live::ws::poll))
        .route("/openapi.json", get(openapi::serve))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .fallback(|| async { AppError::NotFound("no such API endpoint".into()) })
        .layer(axum::middleware::from_fn(error::error_shape));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::scrape))
        .merge(web::spa(&state.config))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::security_headers))
        .with_state(state)
}
