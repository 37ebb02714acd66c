//! The connection pool and the migrations in `migrations/`.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

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
];

/// Key of the advisory lock that makes replicas starting together apply migrations one at a time.
const MIGRATION_LOCK: i64 = 0x706c_6179_6465_636b; // "playdeck"

pub fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, String> {
    let manager =
        Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| format!("database pool: {e}"))
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
    let done: Vec<String> = tx
        .query("select name from schema_migrations", &[])
        .await
        .map_err(|e| format!("schema_migrations: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        if done.iter().any(|d| d == name) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute("insert into schema_migrations (name) values ($1)", &[name])
            .await
            .map_err(|e| format!("migration {name}: {e}"))?;
        applied.push(*name);
    }
    tx.commit().await.map_err(|e| format!("migrations: {e}"))?;
    Ok(applied)
}
