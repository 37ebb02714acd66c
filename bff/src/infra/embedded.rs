//! The embedded PostgreSQL cluster: with no `DATABASE_URL`, Playdeck runs its own cluster from the
//! local PostgreSQL binaries in `$PLAYDECK_DATA_DIR/pg`, and stops it when it stops.
//!
//! PostgreSQL refuses to run as root, so as root the cluster runs as the unprivileged `postgres` user
//! and its directory belongs to that user. The server is spawned from a thread that lives exactly as
//! long as the server (`PR_SET_PDEATHSIG` is tied to the spawning *thread*), so if Playdeck dies hard
//! the kernel sends the cluster SIGINT (fast shutdown) instead of leaving it orphaned.
#![allow(unsafe_code)] // kill(2), prctl(2), getuid(2): each use says why it is sound.

use std::fs;

use crate::infra::secrets::write_private;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the cluster is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on, as a user's data deserves.
    Durable,
    /// fsync off: for throwaway clusters in tests, where a crash loses nothing of value.
    Throwaway,
}

/// A running cluster. Dropping it stops the server.
pub struct Cluster {
    pid: i32,
    port: u16,
    password: String,
    pg_dir: PathBuf,
    log_path: PathBuf,
    exit: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("pid", &self.pid).field("port", &self.port).finish()
    }
}

/// The unprivileged user the cluster runs as when Playdeck runs as root.
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Creates the cluster in `data_dir/pg` on first use, starts it on a free loopback port and
    /// waits until it accepts connections.
    pub async fn start(data_dir: &Path, durability: Durability) -> Result<Cluster, String> {
        Cluster::start_on(data_dir, durability, None).await
    }

    /// Like `start`, on a given port (`None`: a free one), e.g. to restart a cluster where its
    /// clients expect it.
    pub async fn start_on(
        data_dir: &Path,
        durability: Durability,
        port: Option<u16>,
    ) -> Result<Cluster, String> {
        let data_dir = data_dir.to_path_buf();
        let cluster = tokio::task::spawn_blocking(move || Cluster::spawn(&data_dir, durability, port))
            .await
            .map_err(|e| format!("starting PostgreSQL: {e}"))??;
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// Connection settings for one database of this cluster.
    pub fn pg_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user("playdeck")
            .password(self.password.as_str())
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(10));
        c
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn spawn(data_dir: &Path, durability: Durability, port: Option<u16>) -> Result<Cluster, String> {
        let bin = find_bin_dir()?;
        let run_as = run_as()?;
        fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let data_dir =
            data_dir.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", data_dir.display()))?;
        if let Some(r) = &run_as {
            // postgres must be able to reach its directory through ours.
            let mode = fs::metadata(&data_dir).map(|m| m.permissions().mode()).unwrap_or(0);
            if mode & 0o001 == 0 {
                set_mode(&data_dir, mode | 0o711)?;
            }
            check_traversable(&data_dir, r)?;
        }
        let pg_dir = data_dir.join("pg");
        let password_file = data_dir.join("pg.password");
        let log_path = data_dir.join("postgres.log");

        if !pg_dir.join("PG_VERSION").exists() {
            init_cluster(&bin, &pg_dir, &password_file, run_as.as_ref(), durability)?;
        }
        let password = fs::read_to_string(&password_file)
            .map_err(|e| {
                format!(
                    "the cluster in {} exists but its password file {} cannot be read ({e}); \
                     remove {} to start afresh",
                    pg_dir.display(),
                    password_file.display(),
                    pg_dir.display()
                )
            })?
            .trim()
            .to_string();
        stop_stale_server(&pg_dir);

        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&pg_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={port}")])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C in the terminal stops Playdeck, which then stops
            // the cluster after the last request, instead of both at once.
            .process_group(0);
        if durability == Durability::Throwaway {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            cmd.args(["-c", "full_page_writes=off"]);
        }
        if let Some(r) = &run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
        // This runs after the uid change (which would clear the death signal).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    return Err(std::io::Error::other("parent exited before postgres started"));
                }
                Ok(())
            });
        }

        let exit = Arc::new(Mutex::new(None));
        let exit_slot = exit.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || match cmd.spawn() {
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id()));
                    let status = child.wait();
                    let text = match status {
                        Ok(s) => s.to_string(),
                        Err(e) => e.to_string(),
                    };
                    if let Ok(mut slot) = exit_slot.lock() {
                        *slot = Some(text);
                    }
                }
            })
            .map_err(|e| format!("cannot start a thread for postgres: {e}"))?;
        let pid = rx
            .recv()
            .map_err(|_| "the postgres thread ended before starting it".to_string())?
            .map_err(|e| format!("cannot run {}: {e}", bin.join("postgres").display()))?;
        Ok(Cluster { pid: pid as i32, port, password, pg_dir, log_path, exit })
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let config = self.pg_config("postgres");
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "PostgreSQL exited while starting ({status}); its log {} ends with:\n{}",
                    self.log_path.display(),
                    log_tail(&self.log_path)
                ));
            }
            match config.connect(tokio_postgres::NoTls).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "PostgreSQL did not accept connections within {limit:?}: {e}; log {}:\n{}",
                        self.log_path.display(),
                        log_tail(&self.log_path)
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// How the server exited, if it did.
    pub fn exited(&self) -> Option<String> {
        self.exit.lock().ok().and_then(|s| s.clone())
    }

    /// Fast shutdown (SIGINT: active sessions are disconnected, everything is written), waiting up
    /// to 30 s, then immediate shutdown.
    pub fn stop(&self) {
        if self.exited().is_some() {
            return;
        }
        signal(self.pid, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.exited().is_none() {
            if Instant::now() > deadline {
                signal(self.pid, libc::SIGQUIT);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(dir = %self.pg_dir.display(), "embedded PostgreSQL stopped");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned ourselves; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// `PLAYDECK_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else `initdb` on PATH.
pub fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PLAYDECK_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("postgres").exists() {
                return Ok(dir);
            }
        }
    }
    Err("no PostgreSQL server binaries found (looked in PLAYDECK_PG_BIN, /usr/lib/postgresql/*/bin \
         and PATH); install them (Debian: apt-get install postgresql) or set DATABASE_URL"
        .into())
}

fn run_as() -> Result<Option<RunAs>, String> {
    // SAFETY: getuid(2) cannot fail and reads nothing from memory.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some(RunAs { uid: f[2].parse().ok()?, gid: f[3].parse().ok()? }))?
        })
        .map(Some)
        .ok_or_else(|| {
            "running as root, and PostgreSQL refuses to: the embedded cluster runs as the user \
             `postgres`, which does not exist (Debian's postgresql package creates it)"
                .to_string()
        })
}

fn check_traversable(dir: &Path, r: &RunAs) -> Result<(), String> {
    for anc in dir.ancestors() {
        let Ok(meta) = fs::metadata(anc) else { continue };
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        let ok = mode & 0o001 != 0
            || (meta.uid() == r.uid && mode & 0o100 != 0)
            || (meta.gid() == r.gid && mode & 0o010 != 0);
        if !ok {
            return Err(format!(
                "the embedded cluster runs as the user postgres, which cannot enter {} (mode {:o}); \
                 set PLAYDECK_DATA_DIR to a directory outside it (for example /var/lib/playdeck)",
                anc.display(),
                mode & 0o777
            ));
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

fn init_cluster(
    bin: &Path,
    pg_dir: &Path,
    password_file: &Path,
    run_as: Option<&RunAs>,
    durability: Durability,
) -> Result<(), String> {
    let password = crate::infra::secrets::random_token("");
    fs::create_dir_all(pg_dir).map_err(|e| format!("cannot create {}: {e}", pg_dir.display()))?;
    set_mode(pg_dir, 0o700)?;
    // initdb reads the superuser's password from a file the cluster's user can read; it lives
    // inside the (still empty, private) cluster directory's parent only for the moment of initdb.
    let pwfile = pg_dir.with_extension("pwfile");
    write_private(&pwfile, &password)?;
    if let Some(r) = run_as {
        std::os::unix::fs::chown(pg_dir, Some(r.uid), Some(r.gid))
            .and_then(|_| std::os::unix::fs::chown(&pwfile, Some(r.uid), Some(r.gid)))
            .map_err(|e| format!("cannot hand {} to postgres: {e}", pg_dir.display()))?;
    }
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(pg_dir)
        .args(["-U", "playdeck", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null());
    if durability == Durability::Throwaway {
        cmd.arg("--no-sync");
    }
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    let out = cmd.output().map_err(|e| format!("cannot run initdb: {e}"));
    let _ = fs::remove_file(&pwfile);
    let out = out?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(pg_dir);
        return Err(format!(
            "initdb failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    write_private(password_file, &password)?;
    tracing::info!(dir = %pg_dir.display(), "created the embedded PostgreSQL cluster");
    Ok(())
}

/// A server left running by a Playdeck that was killed before the kernel could signal it (or a
/// kernel without the signal): stop it, or the new one refuses to start on the same directory.
fn stop_stale_server(pg_dir: &Path) {
    let Ok(pidfile) = fs::read_to_string(pg_dir.join("postmaster.pid")) else { return };
    let Some(pid) = pidfile.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
        return;
    };
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "postgres" {
        return;
    }
    tracing::warn!(pid, "stopping a PostgreSQL left running on {}", pg_dir.display());
    signal(pid, libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
