//! Serving the app: plain HTTP, or HTTPS with `PLAYDECK_TLS_CERT` and `PLAYDECK_TLS_KEY` (PEM),
//! the files looked at every `reload` and taken again when they change (cert-manager or
//! OpenShift's service CA renewing them), without a restart and without dropping the connections
//! already open. `healthcheck` asks a running server, in its own scheme, trusting its certificate.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::infra::config::{Config, ListenerTls};
use crate::infra::state::AppState;
use crate::infra::tls;

/// How long open connections may finish after the stop signal over HTTPS.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stop` resolves.
pub async fn serve(
    app: AppState,
    listener: tokio::net::TcpListener,
    tls_files: Option<ListenerTls>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let router = crate::app(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let Some(files) = tls_files else {
        return axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| format!("server: {e}"));
    };
    tls::install_default_provider();
    let config = RustlsConfig::from_pem_file(&files.cert, &files.key).await.map_err(|e| {
        format!(
            "PLAYDECK_TLS_CERT / PLAYDECK_TLS_KEY ({} , {}): {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    let handle = axum_server::Handle::new();
    let reloader = tokio::spawn(reload(config.clone(), files.clone()));
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            stop.await;
            handle.graceful_shutdown(Some(DRAIN));
        });
    }
    let listener = listener.into_std().map_err(|e| format!("listener: {e}"))?;
    let served = axum_server::from_tcp_rustls(listener, config)
        .map_err(|e| format!("listener: {e}"))?
        .handle(handle)
        .serve(router)
        .await
        .map_err(|e| format!("server: {e}"));
    reloader.abort();
    served
}

/// What the files hold now (a change of either is a new certificate).
fn fingerprint(files: &ListenerTls) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((std::fs::read(&files.cert).ok()?, std::fs::read(&files.key).ok()?))
}

/// Looks at the files every `reload`; new contents that parse become the certificate for the next
/// handshakes. Half-written or broken files are logged and the old certificate kept.
async fn reload(config: RustlsConfig, files: ListenerTls) {
    let mut seen = fingerprint(&files);
    let mut every = tokio::time::interval(files.reload);
    every.tick().await;
    loop {
        every.tick().await;
        let now = fingerprint(&files);
        if now.is_none() || now == seen {
            continue;
        }
        match config.reload_from_pem_file(&files.cert, &files.key).await {
            Ok(()) => {
                tracing::info!(cert = %files.cert.display(), "the listener's certificate changed on disk and was taken");
                seen = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the listener's new certificate cannot be used yet; keeping the old one")
            }
        }
    }
}

/// `playdeck healthcheck`: exit 0 if the server on `PLAYDECK_LISTEN` answers `/healthz`, over
/// HTTPS when it serves HTTPS (its own certificate's chain trusted, whatever names it bears:
/// this is the server itself, on loopback).
pub async fn healthcheck(config: &Config) -> Result<(), String> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let stream = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no answer"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let answer = match &config.tls {
        None => ask(stream, addr).await?,
        Some(files) => {
            let own = tls::certs(&files.cert).map_err(|e| format!("PLAYDECK_TLS_CERT: {e}"))?;
            let client = tls::client_config(tls::Check::Own(own), None)?;
            let name = tokio_rustls::rustls::pki_types::ServerName::from(addr.ip());
            let stream = tokio::time::timeout(
                Duration::from_secs(3),
                tokio_rustls::TlsConnector::from(std::sync::Arc::new(client)).connect(name, stream),
            )
            .await
            .map_err(|_| format!("{addr}: no TLS handshake"))?
            .map_err(|e| format!("{addr}: TLS: {e}"))?;
            ask(stream, addr).await?
        }
    };
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("/healthz answered {}", String::from_utf8_lossy(&answer).lines().next().unwrap_or("")))
    }
}

async fn ask<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, addr: SocketAddr) -> Result<Vec<u8>, String> {
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await {
        Err(_) => return Err("no answer from /healthz".into()),
        // A TLS peer that closes without close_notify still sent its answer.
        Ok(Err(e)) if answer.is_empty() => return Err(e.to_string()),
        Ok(_) => {}
    }
    Ok(answer)
}
