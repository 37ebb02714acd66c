//! Faults injected on purpose, each asserting that nothing is lost and nothing doubled: PostgreSQL
//! restarted while a real playbook streams its events through the callback plugin, the
//! `playdeck` process SIGKILLed in the middle of ingest and started again, a full disk under
//! PostgreSQL, and the replica that syncs a controller SIGKILLed.

mod common;
#[path = "../examples/support/fake_awx.rs"]
mod fake_awx;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bff::infra::embedded::{Cluster, Durability};
use common::*;

/// A playbook that takes a few seconds: 30 items of a command on one local host.
const SLOW_PLAYBOOK: &str = "- hosts: all
  gather_facts: false
  tasks:
    - name: Step
      ansible.builtin.command: sleep 0.1
      loop: \"{{ range(0, 30) | list }}\"
    - name: Done
      ansible.builtin.debug:
        msg: all steps ran
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_while_a_playbook_streams_loses_and_doubles_nothing() {
    let dir = temp_dir("pg-restart");
    let cluster = Cluster::start(&dir.join("db"), Durability::Throwaway).await.expect("cluster");
    let port = cluster.port();
    let pg = cluster.pg_config("postgres");
    let app = spawn_app_on(pg.clone(), |_| {}).await;
    std::fs::write(dir.join("site.yml"), SLOW_PLAYBOOK).expect("playbook");
    std::fs::write(
        dir.join("hosts"),
        "web-01 ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n",
    )
    .expect("inventory");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let playbook = tokio::process::Command::new(ansible_playbook())
        .arg(dir.join("site.yml"))
        .arg("-i")
        .arg(dir.join("hosts"))
        .env("ANSIBLE_CALLBACK_PLUGINS", root.join("deploy/collection/plugins/callback"))
        .env("ANSIBLE_CALLBACKS_ENABLED", "playdeck")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("PLAYDECK_URL", app.url(""))
        .env("PLAYDECK_INGEST_TOKEN", INGEST_TOKEN)
        .env("PLAYDECK_JOB_EXTERNAL_ID", "pg-restart")
        .env("PLAYDECK_FLUSH_INTERVAL_MS", "50")
        .env("PLAYDECK_FINAL_WAIT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ansible-playbook");

    // Once the first events are in, PostgreSQL goes away for two seconds, mid-run.
    let stored = |pg: tokio_postgres::Config| async move {
        let (db, conn) = pg.connect(tokio_postgres::NoTls).await.ok()?;
        tokio::spawn(conn);
        let n: i64 = db
            .query_one(
                "select count(*) from job_events e join jobs j on j.id = e.job_id where j.external_id = 'pg-restart'",
                &[],
            )
            .await
            .ok()?
            .get(0);
        Some(n)
    };
    eventually("the first events are stored", || async { stored(pg.clone()).await.filter(|n| *n >= 5) })
        .await;
    tokio::task::spawn_blocking(move || drop(cluster)).await.expect("stop PostgreSQL");
    let down_at = stored(pg.clone()).await;
    assert_eq!(down_at, None, "PostgreSQL is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _cluster =
        Cluster::start_on(&dir.join("db"), Durability::Throwaway, Some(port)).await.expect("restart");

    let out = playbook.wait_with_output().await.expect("ansible-playbook");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "ansible-playbook: {stderr}\n{printed}");
    assert!(!stderr.contains("not delivered"), "the plugin delivered every event after retrying: {stderr}");
    assert!(printed.contains("all steps ran"), "{printed}");

    let db = app.db().await;
    let job_id: i64 =
        db.query_one("select id from jobs where external_id = 'pg-restart'", &[]).await.expect("job").get(0);
    let (rows, distinct, last_seq) = event_copies(&db, job_id).await;
    // Every callback event: playbook, play, two task starts, 30 items and the loop's result, the
    // debug's start and result, the stats.
    let max_counter: i64 = db
        .query_one("select max(counter) from job_events where job_id = $1", &[&job_id])
        .await
        .expect("max")
        .get(0);
    assert_eq!(
        (rows, distinct, last_seq),
        (max_counter, max_counter, max_counter),
        "each event once, no hole"
    );
    let text =
        app.get(&format!("/api/v1/jobs/{job_id}/stdout?format=txt")).await.text().await.expect("stdout");
    assert_eq!(text, printed, "the stored output is what ansible-playbook printed, byte for byte");
    let job = app.get_json(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(job["status"], "successful", "{job}");
}

/// The `playdeck` binary on a fixed port, its URL once it serves.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A file of its own in the tests' log directory, for a `playdeck` process's log lines.
fn log_file() -> std::fs::File {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    capture_logs();
    std::fs::File::create(log_dir().join(format!("playdeck-server-{}-{n}.jsonl", std::process::id())))
        .expect("log file")
}

fn start_server(pg: &tokio_postgres::Config, data: &std::path::Path, port: u16) -> Server {
    start_server_with(pg, data, port, &[])
}

fn start_server_with(
    pg: &tokio_postgres::Config,
    data: &std::path::Path,
    port: u16,
    env: &[(&str, String)],
) -> Server {
    let host = match &pg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    remember_secret(&String::from_utf8_lossy(pg.get_password().expect("password")));
    let url = format!(
        "postgres://{}:{}@{host}:{}/{}",
        pg.get_user().expect("user"),
        String::from_utf8_lossy(pg.get_password().expect("password")),
        pg.get_ports()[0],
        pg.get_dbname().expect("dbname")
    );
    Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_playdeck"))
            .arg("serve")
            .env("DATABASE_URL", url)
            .env("PLAYDECK_DATA_DIR", data)
            .env("PLAYDECK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PLAYDECK_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
            .env("PLAYDECK_INGEST_TOKEN", INGEST_TOKEN)
            .env("PLAYDECK_API_PER_SECOND", "100000")
            .env("PLAYDECK_INGEST_PER_SECOND", "100000")
            // Its log lines go where the tests' own go, for the secrets check.
            .env("PLAYDECK_LOG", "info,bff=debug")
            .env("PLAYDECK_LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdout(Stdio::null())
            .stderr(log_file())
            .spawn()
            .expect("run playdeck"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playdeck_killed_mid_ingest_and_restarted_loses_and_doubles_nothing() {
    let pg = fresh_database().await;
    let data = temp_dir("killed-ingest");
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let mut server = Some(start_server(&pg, &data, port));
    let base = format!("http://127.0.0.1:{port}");

    // Four senders, each a job of 60 batches of 20 events, each batch sent until it is
    // acknowledged, as the callback plugin does (a connection refused or cut is tried again).
    let (jobs, batches, per) = (4usize, 60i64, 20i64);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..jobs)
        .map(|j| {
            let url = format!("{base}/api/v1/ingest/events");
            let acked = acked.clone();
            tokio::spawn(async move {
                let http =
                    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
                let mut retries = 0;
                for b in 0..batches {
                    let body = batch(&format!("killed-{j}"), events(1 + b * per, per));
                    loop {
                        match http.post(&url).bearer_auth(INGEST_TOKEN).json(&body).send().await {
                            Ok(r) if r.status().is_success() => break,
                            Ok(r) if r.status().is_client_error() => panic!("refused: {}", r.status()),
                            _ => {
                                retries += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                retries
            })
        })
        .collect();

    // SIGKILL once a third of the batches are acknowledged, then start again on the same port.
    let third = jobs * batches as usize / 3;
    eventually("a third of the batches acknowledged", || async {
        (acked.load(std::sync::atomic::Ordering::SeqCst) >= third).then_some(())
    })
    .await;
    let mut killed = server.take().expect("server");
    killed.0.kill().expect("kill -9");
    killed.0.wait().expect("reaped");
    let at_kill = acked.load(std::sync::atomic::Ordering::SeqCst);
    server = Some(start_server(&pg, &data, port));
    let mut retried = 0;
    for s in senders {
        retried += s.await.expect("sender");
    }
    assert!(at_kill < jobs * batches as usize, "the kill came mid-ingest");
    assert!(retried > 0, "some batch had to be sent again after the kill");

    let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    for j in 0..jobs {
        let row = db
            .query_one("select id, event_count from jobs where external_id = $1", &[&format!("killed-{j}")])
            .await
            .expect("one job row");
        let (id, count): (i64, i64) = (row.get(0), row.get(1));
        let want = batches * per;
        assert_eq!(
            event_copies(&db, id).await,
            (want, want, want),
            "job killed-{j}: each event once, no hole"
        );
        assert_eq!(count, want, "job killed-{j}: the row counts each event once");
    }
    let jobs_rows: i64 = db
        .query_one("select count(*) from jobs where external_id like 'killed-%'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(jobs_rows, jobs as i64, "one row per job");
    drop(server);
}

/// A small tmpfs file system, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount a tmpfs (the tests run as root, as CI does)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// PostgreSQL's disk fills up: an ingest batch is refused with 507 and `Retry-After`, nothing of
/// it is stored; once space is freed, the same batch sent again is stored once, and the job reads
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_ingest_with_507_stores_nothing_half_and_recovers() {
    let dir = temp_dir("full-disk");
    let disk = Tmpfs::mount(&dir.join("disk"), "160m");
    let cluster = Cluster::start(&disk.0.join("db"), Durability::Throwaway).await.expect("cluster");
    let app = spawn_app_on(cluster.pg_config("postgres"), |_| {}).await;
    // Events with a large output: a batch needs new pages of the table and its TOAST.
    let big = |from: i64| -> serde_json::Value {
        let events: Vec<serde_json::Value> = (from..from + 200)
            .map(|c| {
                let mut e = event(c, "runner_on_ok", "web-01", "ping");
                // Random-looking text, so compression does not make it small.
                e["stdout"] = serde_json::Value::String(
                    (0..4000).map(|i| char::from(b'a' + ((c * 7919 + i * 104_729) % 26) as u8)).collect(),
                );
                e
            })
            .collect();
        batch("full-disk", events)
    };
    app.ingest_ok(&big(1)).await;

    // Fill what is left of the disk.
    let filler = disk.0.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status()
        .expect("dd");
    let refused = app.ingest(&big(201)).await;
    assert_eq!(refused.status(), 507, "a full disk is said as such");
    assert_eq!(refused.headers()["retry-after"], "30");
    let detail = assert_error(refused, 507).await;
    assert!(detail.contains("disk is full"), "{detail}");
    let stored = || async {
        app.count("select count(*) from job_events e join jobs j on j.id = e.job_id where j.external_id = 'full-disk'")
            .await
    };
    assert_eq!(stored().await, 200, "nothing of the refused batch was stored");

    // Space comes back: the same batch is taken, once.
    std::fs::remove_file(&filler).expect("free the space");
    let again = app.ingest_ok(&big(201)).await;
    assert_eq!((again["accepted"].as_i64(), again["duplicates"].as_i64()), (Some(200), Some(0)), "{again}");
    assert_eq!(stored().await, 400);
    let job_id = again["job_id"].as_i64().expect("job");
    let db = app.db().await;
    assert_eq!(event_copies(&db, job_id).await, (400, 400, 400), "each event once, no hole");
    drop(app);
    tokio::task::spawn_blocking(move || drop(cluster)).await.expect("stop PostgreSQL");
    drop(disk);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// Two `playdeck` processes on one database, both configured with the same controller, each
/// reaching it through a proxy that counts what it passes on: the standby sends nothing while
/// the active one syncs; the active one SIGKILLed, the standby takes over once (its lock's
/// session ends with the process) and syncs on, nothing stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_replica_killed_hands_the_controller_over_once() {
    let fake = fake_awx::FakeAwx::start("/api/v2").await;
    fake.add_fixture_job();
    let pg = fresh_database().await;
    let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let (url_a, through_a) = counting_proxy(fake.addr).await;
    let (url_b, through_b) = counting_proxy(fake.addr).await;
    let controller = |url: &str| -> Vec<(&'static str, String)> {
        vec![
            ("PLAYDECK_AAP_URL", url.to_string()),
            ("PLAYDECK_AAP_TOKEN", fake_awx::TOKEN.to_string()),
            ("PLAYDECK_AAP_POLL_INTERVAL", "0.05".to_string()),
        ]
    };
    let mut a = Some(start_server_with(&pg, &temp_dir("replica-a"), free_port(), &controller(&url_a)));
    let synced = |external_id: i64, events: i64| {
        let db = &db;
        async move {
            let row = db
                .query_opt(
                    "select id, event_count from jobs where source = 'aap' and external_id = $1",
                    &[&external_id.to_string()],
                )
                .await
                .ok()??;
            (row.get::<_, i64>(1) == events).then(|| row.get::<_, i64>(0))
        }
    };
    let fixture = eventually("A syncs the controller's job", || synced(fake_awx::FIXTURE_JOB, 9)).await;
    let port_b = free_port();
    let _b = start_server_with(&pg, &temp_dir("replica-b"), port_b, &controller(&url_b));
    let http = reqwest::Client::new();
    let status_b = || {
        let http = http.clone();
        async move {
            let page: serde_json::Value = http
                .get(format!("http://127.0.0.1:{port_b}/api/v1/controllers"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            page["results"][0]["status"].as_str().map(str::to_string)
        }
    };
    eventually("B stands by", || async { status_b().await.filter(|s| s == "standby") }).await;
    let seen = fake.requests().len();
    eventually("twenty more requests from A", || async {
        (fake.requests().len() >= seen + 20).then_some(())
    })
    .await;
    assert_eq!(
        through_b.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the standby sent the controller nothing"
    );
    assert!(through_a.load(std::sync::atomic::Ordering::SeqCst) > 0);

    // A dies at once; B takes over and follows the controller's next job.
    let mut killed = a.take().expect("A");
    killed.0.kill().expect("kill -9");
    killed.0.wait().expect("reaped");
    let next = fake.add_job("After the crash", &["h-1"], &["Gathering Facts"], None);
    fake.finish(next, "successful", true);
    let next_id = eventually("B syncs the next job", || synced(next, 6)).await;
    eventually("B reports ok", || async { status_b().await.filter(|s| s == "ok") }).await;
    assert!(through_b.load(std::sync::atomic::Ordering::SeqCst) > 0, "B asks the controller now");
    assert_eq!(event_copies(&db, next_id).await, (6, 6, 6), "the next job once");
    assert_eq!(event_copies(&db, fixture).await, (9, 9, 9), "the first job not synced again");
    let takeovers: i64 =
        db.query_one("select count(*) from jobs where source = 'aap'", &[]).await.expect("count").get(0);
    assert_eq!(takeovers, 2, "one row per controller job");
}

/// Two `playdeck` processes on one database fire an every-second schedule between them, each
/// second once, each run with its own job; one SIGKILLed mid-way, the other fires on and no
/// second is lost (a run the killed one was launching is taken over later, as
/// `schedules::downtime_is_caught_up…` shows; here at most that one is left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_playdeck_processes_fire_each_scheduled_second_once_and_one_killed_loses_none() {
    let pg = fresh_database().await;
    let (db, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let playbooks = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/playbooks"));
    // Replicas share the credential key (the README says every one needs the same): a
    // schedule's launch sealed by one is opened by the other.
    let key = "5ced0c0ffee5ced0c0ffee5ced0c0ffee5ced0c0ffee5ced0c0ffee5ced0c0ff";
    remember_secret(key);
    let env = vec![
        ("PLAYDECK_PLAYBOOK_DIR", playbooks.display().to_string()),
        ("PLAYDECK_ANSIBLE_PLAYBOOK", ansible_playbook().display().to_string()),
        ("PLAYDECK_CREDENTIAL_KEY", key.to_string()),
    ];
    let port_a = free_port();
    let mut a = Some(start_server_with(&pg, &temp_dir("sched-a"), port_a, &env));
    let http = reqwest::Client::new();
    let created: serde_json::Value = eventually("A answers and takes the schedule", || {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://127.0.0.1:{port_a}/api/v1/schedules"))
                .bearer_auth(ADMIN_KEY)
                .json(&serde_json::json!({"name": "both", "cron": "* * * * * *", "overlap": "run",
                                          "launch": {"source": {"type": "playbook", "path": "hello.yml"}}}))
                .send()
                .await
                .ok()?;
            (r.status() == 201).then_some(())?;
            r.json().await.ok()
        }
    })
    .await;
    let id = created["id"].as_i64().expect("id");
    let _b = start_server_with(&pg, &temp_dir("sched-b"), free_port(), &env);
    let fired = || {
        let db = &db;
        async move {
            db.query_one(
                "select count(*) from schedule_runs where schedule_id = $1 and state = 'fired'",
                &[&id],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0)
        }
    };
    eventually("five runs fired", || async { (fired().await >= 5).then_some(()) }).await;
    let mut killed = a.take().expect("A");
    killed.0.kill().expect("kill -9");
    killed.0.wait().expect("reaped");
    let at_kill = fired().await;
    eventually("B fires five more", || async { (fired().await >= at_kill + 5).then_some(()) }).await;
    db.execute("update schedules set enabled = false, next_run = null where id = $1", &[&id])
        .await
        .expect("pause");
    let row = db
        .query_one(
            "select count(*), count(distinct scheduled_for), count(*) filter (where gap > interval '1 second'),
                    count(*) filter (where state = 'launching'), count(*) filter (where state not in ('fired', 'launching')),
                    count(job_id), count(distinct job_id)
               from (select scheduled_for, state, job_id,
                            scheduled_for - lag(scheduled_for) over (order by scheduled_for) as gap
                       from schedule_runs where schedule_id = $1) r",
            &[&id],
        )
        .await
        .expect("runs");
    let v: Vec<i64> = (0..7).map(|i| row.get::<_, i64>(i)).collect();
    assert_eq!(v[0], v[1], "one run per second");
    assert_eq!(v[2], 0, "no second lost across the kill");
    assert!(v[3] <= 1, "at most the run the killed process was launching waits for its takeover: {v:?}");
    assert_eq!(v[4], 0, "none skipped or failed: {v:?}");
    assert_eq!(v[5], v[6], "one job per run");
    let per_run: i64 = db
        .query_one(
            "select count(*) from (select schedule_run_id from jobs where schedule_run_id is not null
                                    group by 1 having count(*) > 1) d",
            &[],
        )
        .await
        .expect("doubles")
        .get(0);
    assert_eq!(per_run, 0, "no run launched twice");
}
