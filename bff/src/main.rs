//! `playdeck`: `serve` (the default) runs the server; `healthcheck` asks a running one whether it
//! is alive (for container probes).

use std::process::ExitCode;
use std::time::Duration;

use bff::infra::config::Config;
use bff::infra::embedded::{Cluster, Durability};

/// See the `mimalloc` line in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: playdeck [serve | healthcheck | help]

  serve        run the server (default); settings come from the environment:
               PLAYDECK_LISTEN, DATABASE_URL, PLAYDECK_DATA_DIR, PLAYDECK_BOOTSTRAP_ADMIN_KEY,
               PLAYDECK_INGEST_TOKEN, PLAYDECK_INGEST_MAX_BYTES, PLAYDECK_WEB_DIR, ...
  healthcheck  exit 0 if the server on PLAYDECK_LISTEN answers /healthz";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("playdeck: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command.as_str() {
        "serve" => runtime.block_on(serve()),
        "healthcheck" => runtime.block_on(healthcheck()),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("playdeck: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PLAYDECK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("PLAYDECK_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve() -> Result<(), String> {
    init_logging();
    let mut config = Config::from_env()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;

    // The cluster lives in this function's frame: whether serving ends normally, with an error or
    // with a panic, dropping it stops PostgreSQL.
    let (cluster, pg_config) = match &config.database_url {
        Some(url) => {
            let (pg, tls) =
                bff::infra::config::database::parse_database_url(url.expose(), |v| std::env::var(v).ok())?;
            config.database_tls = tls;
            (None, pg)
        }
        None => {
            let cluster = Cluster::start(&config.data_dir, Durability::Durable).await?;
            tracing::info!(port = cluster.port(), "embedded PostgreSQL is ready");
            let pg = cluster.pg_config("postgres");
            (Some(cluster), pg)
        }
    };

    let started = bff::start(config.clone(), pg_config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(key) = &started.new_admin_key {
        println!(
            "Admin API key (shown once; also in {}): {key}",
            config.data_dir.join("admin.key").display()
        );
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    println!("Playdeck is serving on {scheme}://{addr}");
    bff::engine::Engine::of(&started.state).set_listener(addr, config.tls.as_ref().map(|t| t.cert.as_path()));
    let shutdown = started.shutdown;
    let pool = started.state.pool.clone();
    let engine_state = started.state.clone();
    let stop = async move {
        stop_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    };
    let result = bff::server::serve(started.state, listener, config.tls.clone(), stop).await;
    // Playbooks still running are stopped and recorded before the database goes.
    bff::engine::stop(&engine_state).await;
    drop(engine_state);
    // Close the pool's connections before the cluster goes, so its stop is not logged as errors.
    drop(pool);
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || drop(cluster)).await.map_err(|e| e.to_string())?;
    }
    result
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn healthcheck() -> Result<(), String> {
    let config = Config::from_env()?;
    bff::server::healthcheck(&config).await
}
