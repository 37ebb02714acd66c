//! The state every handler shares (`AppState(Arc<App>)`), and the shutdown signal.
//!
//! The state holds infrastructure only. A feature's long-lived part (its connections, its queue
//! of running work) is a *service*: `start` registers it once by its type and the feature finds
//! it with [`App::service`], so this module never names a feature and imports run one way.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::watch;

use crate::infra::config::Config;
use crate::infra::metrics::Metrics;
use crate::infra::secrets::{Sealer, Secret};
use crate::infra::security::RateLimiter;

/// What every handler shares.
pub struct App {
    /// Settings read at start.
    pub config: Config,
    /// Connections for queries and ingest transactions.
    pub pool: Pool,
    /// Sign-in attempts per client (a brake on guessing keys).
    pub signin_limit: RateLimiter,
    /// Password sign-in attempts per username (a brake on guessing one person's password).
    pub signin_user_limit: RateLimiter,
    /// Ingest requests per client.
    pub ingest_limit: RateLimiter,
    /// API requests per token, session or proxied person (`PLAYDECK_API_PER_SECOND`).
    pub api_limit: RateLimiter,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The token the ingest endpoints accept.
    pub ingest_token: Secret,
    /// Seals and opens credentials (and queued jobs' secrets) with the credential key.
    pub sealer: Sealer,
    /// The features' own long-lived parts (the AAP connector, the local engine, the outbox
    /// dispatcher, the live relay's hub), each registered once by `start` and found by its type.
    pub services: Services,
    /// Who may see and do what where (role bindings: settings, file, Settings page).
    pub bindings: crate::infra::access::Bindings,
    /// The Content-Security-Policy sent with every response (`security::content_security_policy`).
    pub csp: String,
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

/// The features' services, one of each type.
#[derive(Default)]
pub struct Services(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl Services {
    /// Registers a feature's service; a second of the same type replaces the first.
    pub fn insert<T: Any + Send + Sync>(&mut self, service: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(service));
    }

    /// The service of type `T`, if one was registered.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>()).and_then(|s| s.downcast_ref::<T>())
    }
}

impl App {
    /// A feature's service. Every service is registered by `start` before the state is shared,
    /// so a missing one is a wiring mistake in `start`, found by the first test that starts.
    pub fn service<T: Any + Send + Sync>(&self) -> &T {
        match self.services.get::<T>() {
            Some(s) => s,
            None => panic!("{} was not registered in `start`", std::any::type_name::<T>()),
        }
    }
}
