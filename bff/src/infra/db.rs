//! The connection pool and the migrations in `migrations/`.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::infra::config::database::{DatabaseTls, RootCert, SslMode};
use crate::infra::tls::{self, Check};

/// How every connection to PostgreSQL is made (the pool's and the LISTEN connection's): TLS as
/// `DATABASE_URL` says, checked by rustls. With `sslmode=disable` tokio-postgres never asks for TLS,
/// so one connector type serves every mode.
pub type Connector = MakeRustlsConnect;

pub fn connector(settings: &DatabaseTls) -> Result<Connector, String> {
    let describe = || settings.describe();
    let roots = match &settings.root {
        None => None,
        Some(RootCert::System) => {
            let mut store = tokio_rustls::rustls::RootCertStore::empty();
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Some(store)
        }
        Some(RootCert::File(path)) => {
            Some(tls::roots(path).map_err(|e| format!("DATABASE_URL sslrootcert: {e}"))?)
        }
    };
    let check = match (settings.mode, roots) {
        (SslMode::VerifyFull, Some(r)) => Check::Full(r),
        // libpq: `require` with a root CA checks the chain as `verify-ca` does.
        (SslMode::VerifyCa | SslMode::Require, Some(r)) => Check::Chain(r),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!("DATABASE_URL ({}): sslrootcert is needed", describe()))
        }
        _ => Check::Nothing,
    };
    let client_cert = match (&settings.cert, &settings.key) {
        (Some(c), Some(k)) => Some((
            tls::certs(c).map_err(|e| format!("DATABASE_URL sslcert: {e}"))?,
            tls::key(k).map_err(|e| format!("DATABASE_URL sslkey: {e}"))?,
        )),
        _ => None,
    };
    let config =
        tls::client_config(check, client_cert).map_err(|e| format!("DATABASE_URL ({}): {e}", describe()))?;
    Ok(MakeRustlsConnect::new(config))
}

/// The migrations, in order. A migration is never edited once released; a change is a new file.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_spine", include_str!("../../../migrations/0001_spine.sql")),
    ("0002_actions", include_str!("../../../migrations/0002_actions.sql")),
    ("0003_aap", include_str!("../../../migrations/0003_aap.sql")),
    ("0004_engine", include_str!("../../../migrations/0004_engine.sql")),
    ("0005_hardening", include_str!("../../../migrations/0005_hardening.sql")),
    ("0006_kb", include_str!("../../../migrations/0006_kb.sql")),
    ("0007_requests", include_str!("../../../migrations/0007_requests.sql")),
    ("0008_credentials", include_str!("../../../migrations/0008_credentials.sql")),
    ("0009_notifiers", include_str!("../../../migrations/0009_notifiers.sql")),
    ("0010_credential_hosts", include_str!("../../../migrations/0010_credential_hosts.sql")),
    ("0011_people", include_str!("../../../migrations/0011_people.sql")),
    ("0012_access", include_str!("../../../migrations/0012_access.sql")),
    ("0013_grid", include_str!("../../../migrations/0013_grid.sql")),
    ("0014_copies", include_str!("../../../migrations/0014_copies.sql")),
    ("0015_schedules", include_str!("../../../migrations/0015_schedules.sql")),
    ("0016_event_compression", include_str!("../../../migrations/0016_event_compression.sql")),
];

/// Key of the advisory lock that makes replicas starting together apply migrations one at a time.
const MIGRATION_LOCK: i64 = 0x706c_6179_6465_636b; // "playdeck"

/// The pool: `size` connections; a request that finds none free within `wait` answers 503 with
/// `Retry-After` instead of hanging.
pub fn pool(
    config: tokio_postgres::Config,
    connector: Connector,
    size: usize,
    wait: std::time::Duration,
) -> Result<Pool, String> {
    let manager =
        Manager::from_config(config, connector, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| format!("database pool: {e}"))
}

/// Says why the first connection failed in words that name the setting: a certificate refused
/// is the server's certificate against `sslrootcert`, or its name against the host connected to.
pub fn explain_connect_error(settings: &DatabaseTls, pg: &tokio_postgres::Config, error: &str) -> String {
    let host = pg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let why = if error.contains("UnknownIssuer") || error.contains("BadSignature") {
        "the server's certificate is not signed by sslrootcert".to_string()
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        format!("the server's certificate does not name the host {host:?} (sslmode=verify-full checks it; connect by a name the certificate has)")
    } else if error.contains("Expired") || error.contains("NotValidYet") {
        "the server's certificate is outside its validity dates".to_string()
    } else if error.contains("server does not support TLS") {
        "the server does not offer TLS (sslmode asks for it)".to_string()
    } else if error.contains("CertificateRequired")
        || error.contains("certificate required")
        || error.contains("requires a valid client certificate")
    {
        "the server asked for a client certificate (sslcert and sslkey)".to_string()
    } else {
        return format!("database: {error}");
    };
    format!("DATABASE_URL ({}): cannot connect to {host:?} over TLS: {why} ({error})", settings.describe())
}

/// Applies the migrations not applied yet, all in one transaction under an advisory lock: a second
/// replica waits for the first and then finds nothing left to do.
pub async fn migrate(pool: &Pool) -> Result<Vec<&'static str>, String> {
    let mut client = pool.get().await.map_err(|e| format!("database: {e}"))?;
    let tx = client.transaction().await.map_err(|e| format!("database: {e}"))?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| format!("migration lock: {e}"))?;
    tx.batch_execute(
        "create table if not exists schema_migrations (
             name text primary key,
             applied timestamptz not null default now()
         )",
    )
    .await
    .map_err(|e| format!("schema_migrations: {e}"))?;
    // Each applied migration's SHA-256: one edited after it was applied (its change would never
    // reach the databases that ran it) stops the start. Rows from before checksums are trusted
    // once and get theirs.
    tx.batch_execute("alter table schema_migrations add column if not exists checksum text")
        .await
        .map_err(|e| format!("schema_migrations: {e}"))?;
    let done: Vec<(String, Option<String>)> = tx
        .query("select name, checksum from schema_migrations", &[])
        .await
        .map_err(|e| format!("schema_migrations: {e}"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        let sum = crate::infra::secrets::hash_secret(sql);
        match done.iter().find(|(d, _)| d == name) {
            Some((_, Some(recorded))) if *recorded != sum => {
                return Err(format!(
                    "migration {name} was changed after it was applied (checksum {} now, {} when applied): \
                     an applied migration is never edited; put the change in a new migration",
                    &sum[..12],
                    &recorded[..recorded.len().min(12)]
                ));
            }
            Some((_, Some(_))) => continue,
            Some((_, None)) => {
                tx.execute("update schema_migrations set checksum = $2 where name = $1", &[name, &sum])
                    .await
                    .map_err(|e| format!("migration {name}: {e}"))?;
                continue;
            }
            None => {}
        }
        tx.batch_execute(sql).await.map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute("insert into schema_migrations (name, checksum) values ($1, $2)", &[name, &sum])
            .await
            .map_err(|e| format!("migration {name}: {e}"))?;
        applied.push(*name);
    }
    tx.commit().await.map_err(|e| format!("migrations: {e}"))?;
    Ok(applied)
}
