//! Secure connections against real parts: a PostgreSQL started here with `ssl=on` and a
//! `pg_hba.conf` that accepts `hostssl` only, certificates from a test CA made with `openssl`;
//! and Playdeck's own HTTPS listener (the healthcheck, a real playbook's callback over it, a
//! certificate swapped on disk taken without a restart).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bff::infra::config::database::parse_database_url;
use bff::infra::config::{Config, ListenerTls};
use bff::infra::embedded::{Cluster, Durability};
use bff::infra::secrets::Secret;
use common::pki::Pki;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn der(pem: &Path) -> Vec<u8> {
    bff::infra::tls::certs(pem).expect("cert")[0].to_vec()
}

/// A PostgreSQL with `ssl=on`, a server certificate for `localhost` only, and `hostssl` lines
/// only (password for everyone, a client certificate for `certuser`); the superuser connection
/// made before the switch stays open to look at `pg_stat_ssl`.
struct TlsPostgres {
    cluster: Cluster,
    admin: tokio_postgres::Client,
}

impl TlsPostgres {
    async fn start(pki: &Pki) -> TlsPostgres {
        let dir = temp_dir("tlspg");
        let cluster = Cluster::start(&dir, Durability::Throwaway).await.expect("cluster");
        let (admin, conn) =
            cluster.pg_config("postgres").connect(tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let pg_dir = dir.canonicalize().expect("dir").join("pg");
        let (cert, key) = pki.leaf("pg", "localhost", Some("DNS:localhost"), "serverAuth");
        // The server's key belongs to the server's user, readable by it alone.
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let owner = std::fs::metadata(&pg_dir).expect("pg dir");
        for (from, to) in [(&cert, "server.crt"), (&key, "server.key"), (&pki.path("ca.pem"), "root.crt")] {
            let target = pg_dir.join(to);
            std::fs::copy(from, &target).expect("copy");
            std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).expect("chown");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("mode");
        }
        std::fs::write(
            pg_dir.join("pg_hba.conf"),
            "hostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba");
        for sql in [
            "create role pdapp login password 'pw'",
            "create database pdapp owner pdapp",
            "create role certuser login",
            "create database certdb owner certuser",
            "alter system set ssl = on",
            "alter system set ssl_cert_file = 'server.crt'",
            "alter system set ssl_key_file = 'server.key'",
            "alter system set ssl_ca_file = 'root.crt'",
            "select pg_reload_conf()",
        ] {
            admin.batch_execute(sql).await.expect(sql);
        }
        // The reload is asynchronous: this session too sees `ssl = on` once it is done.
        eventually("PostgreSQL reloaded with ssl on", || async {
            let on: String = admin.query_one("show ssl", &[]).await.ok()?.get(0);
            (on == "on").then_some(())
        })
        .await;
        TlsPostgres { cluster, admin }
    }

    fn url(&self, host: &str, user: &str, db: &str, params: &str) -> String {
        let password = if user == "pdapp" { ":pw" } else { "" };
        format!("postgres://{user}{password}@{host}:{}/{db}?{params}", self.cluster.port())
    }
}

/// Why starting failed (it must fail).
async fn refused(url: &str) -> String {
    match start(url).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(e) => e,
    }
}

/// Starts Playdeck on the database `url` names (no HTTP listener: the pool and the LISTEN
/// connection are what talk to PostgreSQL).
async fn start(url: &str) -> Result<bff::Started, String> {
    let (pg, tls) = parse_database_url(url, |_| None)?;
    let mut config = Config::for_tests(temp_dir("tlsapp"));
    config.bootstrap_admin_key = Some(Secret(ADMIN_KEY.into()));
    config.ingest_token = Some(Secret(INGEST_TOKEN.into()));
    config.credential_key = Some(Secret(CREDENTIAL_KEY.into()));
    config.database_tls = tls;
    let started = bff::start(config, pg).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bff::live::Hub::of(&started.state).listening.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the LISTEN connection did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started)
}

#[tokio::test]
async fn playdeck_talks_tls_to_postgresql_as_sslmode_says() {
    let pki = Pki::new(temp_dir("pki"));
    let pg = TlsPostgres::start(&pki).await;
    let ca = pki.path("ca.pem").display().to_string();
    let other = pki.path("other-ca.pem").display().to_string();

    // The server takes TLS only.
    let e = refused(&pg.url("localhost", "pdapp", "pdapp", "sslmode=disable")).await;
    assert!(e.contains("no pg_hba.conf entry") || e.contains("database"), "{e}");

    // require: encrypted, and every connection of Playdeck's is (the pool's and LISTEN's).
    let app = start(&pg.url("localhost", "pdapp", "pdapp", "sslmode=require")).await.expect("require");
    let db = app.state.pool.get().await.expect("pooled");
    db.execute("select 1", &[]).await.expect("query");
    drop(db);
    let row = pg
        .admin
        .query_one(
            "select count(*), count(*) filter (where s.ssl), count(*) filter (where a.application_name = 'playdeck-listener' and s.ssl)
               from pg_stat_activity a join pg_stat_ssl s using (pid) where a.usename = 'pdapp'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (all, encrypted, listener): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(all >= 2, "the pool and the LISTEN connection: {all}");
    assert_eq!(encrypted, all, "every connection is encrypted");
    assert_eq!(listener, 1, "the LISTEN connection is encrypted");
    let _ = app.shutdown.send(true);
    drop(app);

    // verify-full against the right CA and the certificate's name.
    let app = start(&pg.url("localhost", "pdapp", "pdapp", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .expect("verify-full");
    let _ = app.shutdown.send(true);
    drop(app);

    // A wrong CA, a wrong host name: refused at start, in words naming the setting.
    let e =
        refused(&pg.url("localhost", "pdapp", "pdapp", &format!("sslmode=verify-full&sslrootcert={other}")))
            .await;
    assert!(e.contains("sslrootcert") && e.contains("not signed by sslrootcert"), "{e}");
    let e = refused(&pg.url("127.0.0.1", "pdapp", "pdapp", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .await;
    assert!(e.contains("does not name the host \"127.0.0.1\""), "{e}");
    // verify-ca checks the chain only: the same address is fine.
    let app = start(&pg.url("127.0.0.1", "pdapp", "pdapp", &format!("sslmode=verify-ca&sslrootcert={ca}")))
        .await
        .expect("verify-ca");
    let _ = app.shutdown.send(true);
    drop(app);
    // require with a root CA checks the chain, as libpq does.
    let e = refused(&pg.url("localhost", "pdapp", "pdapp", &format!("sslmode=require&sslrootcert={other}")))
        .await;
    assert!(e.contains("not signed"), "{e}");

    // A client certificate, when given, is what signs in (`cert` in pg_hba.conf).
    let (cert, key) = pki.leaf("client", "certuser", None, "clientAuth");
    let e =
        refused(&pg.url("localhost", "certuser", "certdb", &format!("sslmode=verify-full&sslrootcert={ca}")))
            .await;
    assert!(e.contains("certificate"), "{e}");
    let app = start(&pg.url(
        "localhost",
        "certuser",
        "certdb",
        &format!("sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}", cert.display(), key.display()),
    ))
    .await
    .expect("client certificate");
    let dn: Option<String> = pg
        .admin
        .query_one(
            "select max(s.client_dn) from pg_stat_activity a join pg_stat_ssl s using (pid) where a.usename = 'certuser'",
            &[],
        )
        .await
        .expect("client_dn")
        .get(0);
    assert_eq!(dn.as_deref(), Some("/CN=certuser"));
    let _ = app.shutdown.send(true);
}

/// The certificate the listener presents to a new connection.
async fn presented(addr: std::net::SocketAddr, ca: &Path) -> Vec<u8> {
    let config = bff::infra::tls::client_config(
        bff::infra::tls::Check::Chain(bff::infra::tls::roots(ca).expect("roots")),
        None,
    )
    .expect("client");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec()
}

#[tokio::test]
async fn the_listener_serves_https_reloads_its_certificate_and_the_engine_calls_back_over_it() {
    let pki = Pki::new(temp_dir("pki"));
    let (a_cert, a_key) = pki.leaf("a", "localhost", Some("DNS:localhost,IP:127.0.0.1"), "serverAuth");
    let (b_cert, b_key) = pki.leaf("b", "localhost", Some("DNS:localhost,IP:127.0.0.1"), "serverAuth");
    let live = temp_dir("listener-tls");
    let (cert, key) = (live.join("tls.crt"), live.join("tls.key"));
    std::fs::copy(&a_cert, &cert).expect("cert");
    std::fs::copy(&a_key, &key).expect("key");
    let files = ListenerTls { cert: cert.clone(), key: key.clone(), reload: Duration::from_millis(100) };

    let playbooks = temp_dir("playbooks");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/playbooks/hello.yml"),
        playbooks.join("hello.yml"),
    )
    .expect("playbook");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config::for_tests(temp_dir("app"));
    config.bootstrap_admin_key = Some(Secret(ADMIN_KEY.into()));
    config.ingest_token = Some(Secret(INGEST_TOKEN.into()));
    config.credential_key = Some(Secret(CREDENTIAL_KEY.into()));
    config.listen = addr;
    config.tls = Some(files.clone());
    config.engine.playbook_dir = playbooks;
    config.engine.ansible_playbook = Some(ansible_playbook());
    let started = bff::start(config.clone(), fresh_database().await).await.expect("start");
    bff::engine::Engine::of(&started.state).set_listener(addr, Some(&cert));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bff::server::serve(started.state.clone(), listener, Some(files), async move {
        let _ = stop_rx.await;
    }));

    let ca = pki.path("ca.pem");
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("ca")).expect("ca");
    let http = reqwest::Client::builder().add_root_certificate(root).build().expect("client");
    let base = format!("https://localhost:{}", addr.port());
    let r = http.get(format!("{base}/healthz")).send().await.expect("https");
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("strict-transport-security"), "HSTS over HTTPS");
    let r = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .expect("sign in");
    let cookie = r.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", addr.port())).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "plain HTTP is not served");
    bff::server::healthcheck(&config).await.expect("the healthcheck speaks HTTPS and trusts the certificate");
    assert_eq!(presented(addr, &ca).await, der(&a_cert));

    // A connection opened before the swap keeps working after it.
    let roots = bff::infra::tls::roots(&ca).expect("roots");
    let client = bff::infra::tls::client_config(bff::infra::tls::Check::Chain(roots), None).expect("client");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut open =
        tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.expect("handshake");
    let ask = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    open.write_all(ask).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = open.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));

    // Swap the files (key first, as a Secret's update can land); new handshakes get the new one.
    std::fs::copy(&b_key, &key).expect("swap key");
    std::fs::copy(&b_cert, &cert).expect("swap cert");
    let deadline = Instant::now() + Duration::from_secs(10);
    while presented(addr, &ca).await != der(&b_cert) {
        assert!(Instant::now() < deadline, "the new certificate was not taken within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open.write_all(ask).await.expect("write on the old connection");
    let n = open.read(&mut buf).await.expect("read on the old connection");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "the open connection still answers");

    // A real playbook whose callback posts its events back over HTTPS.
    let r = http
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"source": {"type": "playbook", "path": "hello.yml"},
                      "inventory": {"type": "inline", "hosts": ["localhost"],
                                    "host_vars": {"localhost": {"ansible_connection": "local",
                                                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}},
                      "wait": true}))
        .send()
        .await
        .expect("launch");
    assert_eq!(r.status(), 200);
    let run: Value = r.json().await.expect("json");
    assert_eq!(run["job"]["status"], "successful", "{run}");
    let events = run["job"]["event_count"].as_i64().unwrap_or(0);
    assert!(events >= 4, "the callback's events arrived over HTTPS: {run}");
    let _ = stop_tx.send(());
    let _ = started.shutdown.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(40), server).await;
}
