//! Schedules against real PostgreSQL and real ansible-playbook runs: cron with seconds fires
//! local jobs, each run linked to its job; pausing stops it; a previous run still going skips
//! the next (`overlap: skip`); two replicas fire each run once; downtime is caught up once (or
//! skipped); a run whose launcher died is finished without a second job; a revoked token's
//! schedule stops, saying why; and bad input is refused with 422 naming the field, nothing
//! written.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn playbooks() -> PathBuf {
    let dir = temp_dir("schedule-playbooks");
    for f in ["hello.yml", "wait.yml"] {
        let from = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/playbooks")).join(f);
        std::fs::copy(from, dir.join(f)).expect("copy example");
    }
    dir
}

fn hello() -> Value {
    json!({"source": {"type": "playbook", "path": "hello.yml"}})
}

async fn create(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url("/api/v1/schedules")).bearer_auth(key).json(&body).send().await.expect("create")
}

async fn create_ok(app: &TestApp, body: Value) -> Value {
    let r = create(app, ADMIN_KEY, body).await;
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).expect("json")
}

async fn patch(app: &TestApp, id: i64, body: Value) -> reqwest::Response {
    app.http
        .patch(app.url(&format!("/api/v1/schedules/{id}")))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .expect("patch")
}

async fn runs(app: &TestApp, id: i64) -> Vec<Value> {
    let page = app.get_json(&format!("/api/v1/schedules/{id}/runs?page_size=200")).await;
    page["results"].as_array().expect("results").clone()
}

async fn runs_until(app: &TestApp, id: i64, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually(what, || async {
        let r = runs(app, id).await;
        ok(&r).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_jobs_each_linked_to_its_run_and_pausing_stops_it() {
    let app = spawn_engine(playbooks(), |_| {}).await;
    let s = create_ok(
        &app,
        json!({"name": "hello every 2 s", "cron": "*/2 * * * * *", "time_zone": "Europe/Berlin",
               "overlap": "run", "launch": hello()}),
    )
    .await;
    let id = s["id"].as_i64().expect("id");
    assert_eq!(s["time_zone"], "Europe/Berlin");
    assert_eq!(s["source"], "local");
    assert_eq!(s["target"], "hello.yml");
    assert_eq!(s["created_by"], "bootstrap admin");
    let next = s["next_run"].as_str().expect("next run");
    assert!(next.ends_with("+01:00") || next.ends_with("+02:00"), "with Berlin's offset: {next}");

    let fired =
        runs_until(&app, id, "two runs fired", |r| r.iter().filter(|r| r["state"] == "fired").count() >= 2)
            .await;
    let db = app.db().await;
    for run in fired.iter().filter(|r| r["state"] == "fired") {
        let job_id = run["job_id"].as_i64().expect("a fired run names its job");
        let row = db
            .query_one("select schedule_run_id, launched_by, template from jobs where id = $1", &[&job_id])
            .await
            .expect("job");
        assert_eq!(row.get::<_, Option<i64>>(0), run["id"].as_i64(), "the job says which run");
        assert_eq!(row.get::<_, String>(1), "bootstrap admin", "launched as the schedule's owner");
        assert_eq!(row.get::<_, String>(2), "hello.yml");
        let t = run["scheduled_for"].as_str().expect("time");
        assert!(t.ends_with("+01:00") || t.ends_with("+02:00"), "{t}");
    }
    // The jobs run to their end.
    let first_job = fired.last().and_then(|r| r["job_id"].as_i64()).expect("job");
    eventually("the first scheduled job succeeded", || async {
        let j = app.get_json(&format!("/api/v1/jobs/{first_job}")).await;
        (j["status"] == "successful").then_some(())
    })
    .await;

    // Paused: no new run comes due, and the schedule says so.
    let r = patch(&app, id, json!({"enabled": false})).await;
    assert_eq!(r.status(), 200);
    let paused: Value = r.json().await.expect("json");
    assert_eq!(paused["enabled"], false);
    assert!(paused["next_run"].is_null());
    let before = runs(&app, id).await.len();
    // Two more would have come due in 4 s: the last run's time stays the last.
    let last_time = runs(&app, id).await[0]["scheduled_for"].clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = runs(&app, id).await;
    assert_eq!(after.len(), before, "nothing fired while paused");
    assert_eq!(after[0]["scheduled_for"], last_time);
    let audit = app.count("select count(*) from audit_log where action = 'schedule.pause'").await;
    assert_eq!(audit, 1);

    // Resumed: it fires again, from now on (the paused seconds are not caught up).
    let r = patch(&app, id, json!({"enabled": true})).await;
    assert_eq!(r.status(), 200);
    runs_until(&app, id, "a run after resuming", |r| r.len() > before).await;
    let after = runs(&app, id).await;
    assert!(after.iter().all(|r| r["state"] != "skipped"), "{after:?}");

    // Listed, with its last run.
    let list = app.get_json("/api/v1/schedules").await;
    assert_eq!(list["count"], 1);
    assert!(list["results"][0]["last_run"]["id"].is_i64());
    // Deleted: gone, its jobs stay.
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/schedules/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_error(app.get(&format!("/api/v1/schedules/{id}")).await, 404).await;
    assert!(app.count("select count(*) from jobs where schedule_run_id is not null").await >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_going_skips_the_next_and_queue_waits_for_it() {
    let app = spawn_engine(playbooks(), |_| {}).await;
    let slow = json!({"source": {"type": "playbook", "path": "wait.yml"}, "extra_vars": {"seconds": 5}});
    let skip = create_ok(
        &app,
        json!({"name": "slow, skip", "cron": "* * * * * *", "overlap": "skip", "launch": slow}),
    )
    .await["id"]
        .as_i64()
        .expect("id");
    // A time that comes due while the first run is still launching is skipped before that run
    // has a job to name; the ones after its job exists name it.
    let names_a_job = |r: &Value| r["reason"].as_str().is_some_and(|s| s.contains("(job "));
    let r = runs_until(&app, skip, "a run skipped while the first goes on", |r| {
        r.iter().any(|r| r["state"] == "skipped" && names_a_job(r))
    })
    .await;
    let first = r.iter().find(|r| r["state"] == "fired").expect("the first fired");
    let job = first["job_id"].as_i64().expect("job");
    assert_eq!(r.iter().filter(|r| r["state"] == "fired").count(), 1, "one run at a time: {r:?}");
    for skipped in r.iter().filter(|r| r["state"] == "skipped") {
        let reason = skipped["reason"].as_str().expect("reason");
        assert!(reason.contains("overlap: skip"), "{reason}");
        assert!(!names_a_job(skipped) || reason.contains(&format!("(job {job})")), "{reason}");
        assert!(skipped["job_id"].is_null());
    }
    patch(&app, skip, json!({"enabled": false})).await;

    // `queue`: the next run waits for the one going on, then launches once it ended; a third
    // time meanwhile is skipped (one run waits at most).
    let slow = json!({"source": {"type": "playbook", "path": "wait.yml"}, "extra_vars": {"seconds": 3}});
    let queue = create_ok(
        &app,
        json!({"name": "slow, queue", "cron": "* * * * * *", "overlap": "queue", "launch": slow}),
    )
    .await["id"]
        .as_i64()
        .expect("id");
    let r = runs_until(&app, queue, "a queued run launched after the first", |r| {
        r.iter().filter(|r| r["state"] == "fired").count() >= 2
    })
    .await;
    patch(&app, queue, json!({"enabled": false})).await;
    let mut fired: Vec<&Value> = r.iter().filter(|r| r["state"] == "fired").collect();
    fired.sort_by_key(|r| r["scheduled_for"].as_str().map(String::from));
    let job = |r: &Value| r["job_id"].as_i64().expect("job");
    let (first, second) = (job(fired[0]), job(fired[1]));
    let db = app.db().await;
    let row = db
        .query_one(
            "select (select finished from jobs where id = $1) <= (select created from jobs where id = $2)",
            &[&first, &second],
        )
        .await
        .expect("times");
    assert!(
        row.get::<_, Option<bool>>(0).unwrap_or(false),
        "the queued run launched once the first had finished"
    );
    assert!(fired[1]["reason"].as_str().is_some_and(|r| r.contains("waits for")), "{:?}", fired[1]);
    let skipped = r.iter().find(|r| r["state"] == "skipped").expect("a third time skipped");
    assert!(skipped["reason"].as_str().is_some_and(|r| r.contains("already waits")), "{skipped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_each_run_once() {
    let pg = fresh_database().await;
    let dir = playbooks();
    let program = ansible_playbook();
    let spawn = |pg: tokio_postgres::Config, dir: PathBuf, program: PathBuf| async move {
        let app = spawn_app_on(pg, |c| {
            c.engine.playbook_dir = dir;
            c.engine.ansible_playbook = Some(program);
        })
        .await;
        bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);
        app
    };
    let a = spawn(pg.clone(), dir.clone(), program.clone()).await;
    let b = spawn(pg, dir, program).await;
    let id =
        create_ok(&a, json!({"name": "both", "cron": "* * * * * *", "overlap": "run", "launch": hello()}))
            .await["id"]
            .as_i64()
            .expect("id");
    runs_until(&a, id, "six runs", |r| r.iter().filter(|r| r["state"] == "fired").count() >= 6).await;
    patch(&a, id, json!({"enabled": false})).await;
    let db = a.db().await;
    let row = db
        .query_one(
            "select count(*), count(distinct scheduled_for), count(job_id), count(distinct job_id)
               from schedule_runs where schedule_id = $1",
            &[&id],
        )
        .await
        .expect("runs");
    let (n, times, jobs, distinct): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(n, times, "one run per time");
    assert_eq!(jobs, distinct, "one job per run");
    let launched: i64 = db
        .query_one(
            "select count(*) from jobs j join schedule_runs r on r.id = j.schedule_run_id where r.schedule_id = $1",
            &[&id],
        )
        .await
        .expect("jobs")
        .get(0);
    assert_eq!(launched, jobs, "no job without its run, none twice");
    // Consecutive seconds: none missed while both replicas ticked.
    let gaps: i64 = db
        .query_one(
            "select count(*) from (select scheduled_for - lag(scheduled_for) over (order by scheduled_for) as gap
                                     from schedule_runs where schedule_id = $1) g where gap > interval '1 second'",
            &[&id],
        )
        .await
        .expect("gaps")
        .get(0);
    let times: Vec<String> = db
        .query(
            "select scheduled_for::text || ' ' || state from schedule_runs where schedule_id = $1 order by 1",
            &[&id],
        )
        .await
        .expect("times")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(gaps, 0, "no second skipped: {times:?}");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_is_caught_up_once_or_skipped_and_a_dead_launcher_is_finished_without_a_second_job() {
    let pg = fresh_database().await;
    let dir = playbooks();
    let app = spawn_app_on(pg.clone(), |c| {
        c.engine.playbook_dir = dir.clone();
        c.engine.ansible_playbook = Some(ansible_playbook());
    })
    .await;
    bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);
    let once = create_ok(&app, json!({"name": "once", "cron": "* * * * *", "launch": hello()})).await["id"]
        .as_i64()
        .expect("id");
    let skip =
        create_ok(&app, json!({"name": "skip", "cron": "* * * * *", "catch_up": "skip", "launch": hello()}))
            .await["id"]
            .as_i64()
            .expect("id");
    // Playdeck was down for the last five minutes and a bit: both came due 5 times.
    let db = app.db().await;
    db.execute(
        "update schedules set next_run = date_trunc('minute', now()) - interval '4 minutes' where id = any($1)",
        &[&vec![once, skip]],
    )
    .await
    .expect("backdate");
    let caught = runs_until(&app, once, "the catch-up run launched", |r| {
        r.first().is_some_and(|r| r["state"] != "launching")
    })
    .await;
    assert_eq!(caught.len(), 1, "once: {caught:?}");
    assert_eq!(caught[0]["state"], "fired");
    let reason = caught[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("5 runs missed") && reason.contains("catch_up: once"), "{reason}");
    let skipped = runs_until(&app, skip, "the skipped run", |r| !r.is_empty()).await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["state"], "skipped");
    assert!(skipped[0]["reason"].as_str().expect("reason").contains("catch_up: skip"));
    let s = app.get_json(&format!("/api/v1/schedules/{once}")).await;
    let next = chrono::DateTime::parse_from_rfc3339(s["next_run"].as_str().expect("next")).expect("time");
    assert!(next > chrono::Utc::now(), "the next run is in the future");

    // A launcher died twice: once before launching, once after its job was made.
    let job_id = caught[0]["job_id"].as_i64().expect("job");
    patch(&app, once, json!({"enabled": false})).await;
    let dead: i64 = db
        .query_one(
            "insert into schedule_runs (schedule_id, scheduled_for, state, modified)
             values ($1, now() - interval '1 hour', 'launching', now() - interval '1 minute') returning id",
            &[&once],
        )
        .await
        .expect("run")
        .get(0);
    // The second one's job was made: a copy of the caught-up job's row claims it. One statement,
    // so the ticker never sees the run without its job.
    let half: i64 = db
        .query_one(
            "with run as (
                 insert into schedule_runs (schedule_id, scheduled_for, state, modified)
                 values ($1, now() - interval '2 hours', 'launching', now() - interval '1 minute') returning id)
             insert into jobs (source, external_id, name, status, schedule_run_id)
             select 'local', 'made-before-the-crash', 'hello.yml', 'successful', id from run
             returning schedule_run_id",
            &[&once],
        )
        .await
        .expect("run and job")
        .get(0);
    let taken = runs_until(&app, once, "both taken over", |r| {
        r.iter().filter(|r| r["state"] == "fired").count() == 3
    })
    .await;
    let by_id = |id: i64| taken.iter().find(|r| r["id"] == id).expect("run").clone();
    assert!(by_id(dead)["job_id"].as_i64().is_some_and(|j| j != job_id), "the dead launcher's run launched");
    let half_job: i64 = db
        .query_one("select id from jobs where external_id = 'made-before-the-crash'", &[])
        .await
        .expect("job")
        .get(0);
    assert_eq!(by_id(half)["job_id"], half_job, "linked to the job it had made, not launched again");
    let per_run: i64 = db
        .query_one("select count(*) from jobs where schedule_run_id = $1", &[&half])
        .await
        .expect("count")
        .get(0);
    assert_eq!(per_run, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tokens_schedule_stops_saying_why() {
    let app = spawn_engine(playbooks(), |_| {}).await;
    let key: Value = post(&app, "/api/v1/keys", &json!({"name": "ci", "role": "operator"}))
        .await
        .json()
        .await
        .expect("key");
    let secret = key["secret"].as_str().expect("secret").to_string();
    remember_secret(&secret);
    let r = create(
        &app,
        &secret,
        json!({"name": "ci's", "cron": "* * * * * *", "overlap": "run", "launch": hello()}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["id"].as_i64().expect("id");
    // A viewer may see it but not change it.
    let viewer = new_key(&app, "watcher", "viewer").await;
    let r = app
        .http
        .get(app.url(&format!("/api/v1/schedules/{id}")))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/schedules/{id}")))
        .bearer_auth(&viewer)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("patch");
    assert_error(r, 403).await;
    let r = create(&app, &viewer, json!({"name": "v", "cron": "* * * * *", "launch": hello()})).await;
    assert_error(r, 403).await;

    runs_until(&app, id, "a run fired", |r| r.iter().any(|r| r["state"] == "fired")).await;
    let key_id = key["id"].as_i64().expect("key id");
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{key_id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success(), "{}", r.status());
    let r = runs_until(&app, id, "a run that could not launch for the revoked token", |r| {
        r.first().is_some_and(|r| r["state"] == "failed")
    })
    .await;
    let reason = r[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("not launched") && reason.contains("revoked"), "{reason}");
    // Recorded as a job that ended in error, never started, saying why.
    let job = app.get_json(&format!("/api/v1/jobs/{}", r[0]["job_id"].as_i64().expect("its job"))).await;
    assert_eq!((job["status"].as_str(), job["started"].is_null()), (Some("error"), true), "{job}");
    assert!(
        job["explanation"].as_str().is_some_and(|e| e.contains("could not launch") && e.contains("revoked")),
        "{job}"
    );
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field_and_nothing_is_written() {
    let app = spawn_engine(playbooks(), |_| {}).await;
    let cases = [
        (json!({"name": "x", "cron": "0 25 * * *", "launch": hello()}), "field 2 (hour)"),
        (
            json!({"name": "x", "cron": "0 22 * * 1-5", "time_zone": "Mars/Olympus", "launch": hello()}),
            "unknown zone",
        ),
        (json!({"name": "x", "cron": "* * * *", "launch": hello()}), "has 4 fields"),
        (json!({"name": "x", "cron": "@sometimes", "launch": hello()}), "unknown name"),
        (
            json!({"name": "x", "cron": "0 9 * * *", "exclusions": [{"from": "2027-01-02T00:00", "to": "2027-01-01T00:00"}], "launch": hello()}),
            "`exclusions[0]` ends",
        ),
        (
            json!({"name": "x", "cron": "0 9 * * *", "exclusions": [{"weekly": ["caturday"]}], "launch": hello()}),
            "not a day",
        ),
        (json!({"name": "x", "at": "2020-01-01T00:00:00", "launch": hello()}), "in the past"),
        (
            json!({"name": "x", "at": "2027-03-28T02:30:00", "time_zone": "Europe/Berlin", "launch": hello()}),
            "does not exist",
        ),
        (
            json!({"name": "x", "cron": "0 9 * * *", "at": "2027-01-01T00:00:00", "launch": hello()}),
            "not both",
        ),
        (json!({"name": "x", "launch": hello()}), "say when"),
        (json!({"name": "x", "cron": "0 9 * * *", "overlap": "sometimes", "launch": hello()}), "`overlap`"),
        (json!({"name": "x", "cron": "0 9 * * *", "catch_up": "twice", "launch": hello()}), "`catch_up`"),
        (json!({"name": "", "cron": "0 9 * * *", "launch": hello()}), "`name`"),
        (json!({"name": "x", "cron": "0 9 * * *"}), "`launch`"),
        (
            json!({"name": "x", "cron": "0 9 * * *", "launch": {"source": {"type": "playbook", "path": "nope.yml"}}}),
            "would be refused now",
        ),
        (
            json!({"name": "x", "cron": "0 9 * * *", "launch": {"source": {"type": "playbook", "path": "hello.yml"}, "wait": true}}),
            "`launch.wait`",
        ),
        (json!({"name": "x", "cron": "0 9 * * *", "launch": {"template": "Deploy"}}), "would be refused now"),
    ];
    for (body, says) in cases {
        let r = create(&app, ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status(), 422, "{body}: {}", r.text().await.unwrap_or_default());
        let detail = assert_error(create(&app, ADMIN_KEY, body.clone()).await, 422).await;
        assert!(detail.contains(says), "{body}: {detail}");
    }
    let nul = json!({"name": "x\u{0}y", "cron": "0 9 * * *", "launch": hello()});
    assert!(assert_error(create(&app, ADMIN_KEY, nul).await, 400).await.contains("NUL"));
    let r = app
        .http
        .post(app.url("/api/v1/schedules"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("post");
    assert_error(r, 400).await;
    let detail = assert_error(
        create(&app, ADMIN_KEY, json!({"name": "x", "cron": "0 9 * * *", "launch": hello(), "colour": 1}))
            .await,
        422,
    )
    .await;
    assert!(detail.contains("colour"), "{detail}");
    assert_eq!(app.count("select count(*) from schedules").await, 0, "nothing written");
    assert_error(app.get("/api/v1/schedules/999").await, 404).await;
    assert_error(app.get("/api/v1/schedules/abc").await, 400).await;
    assert_error(patch(&app, 999, json!({"enabled": false})).await, 404).await;

    // A change that would break a stored schedule is refused the same way, and changes nothing.
    let id = create_ok(&app, json!({"name": "ok", "cron": "0 9 * * *", "launch": hello()})).await["id"]
        .as_i64()
        .expect("id");
    let detail = assert_error(patch(&app, id, json!({"cron": "0 9 * * 8"})).await, 422).await;
    assert!(detail.contains("field 5 (day of week)"), "{detail}");
    let s = app.get_json(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(s["cron"], "0 9 * * *");
}

#[tokio::test]
async fn the_preview_gives_the_next_runs_in_the_zone_with_their_offsets() {
    let app = spawn_app().await;
    let r = post(
        &app,
        "/api/v1/schedules/preview",
        &json!({"cron": "0 22 * * 1-5", "time_zone": "Europe/Berlin", "count": 5,
                "exclusions": [{"weekly": ["wed"]}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["time_zone"], "Europe/Berlin");
    let runs: Vec<chrono::DateTime<chrono::FixedOffset>> = p["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t.as_str().expect("time")).expect("rfc 3339"))
        .collect();
    assert_eq!(runs.len(), 5);
    use chrono::{Datelike, Timelike};
    for t in &runs {
        assert_eq!((t.hour(), t.minute()), (22, 0), "22:00 in Berlin: {t}");
        assert!(t.weekday().number_from_monday() <= 5 && t.weekday() != chrono::Weekday::Wed, "{t}");
        assert!([3600, 7200].contains(&t.offset().local_minus_utc()), "{t}");
    }
    let once = post(
        &app,
        "/api/v1/schedules/preview",
        &json!({"at": "2027-12-24T22:00:00", "time_zone": "America/New_York"}),
    )
    .await
    .json::<Value>()
    .await
    .expect("json");
    assert_eq!(once["runs"], json!(["2027-12-24T22:00:00-05:00"]));
    let detail =
        assert_error(post(&app, "/api/v1/schedules/preview", &json!({"cron": "61 * * * *"})).await, 422)
            .await;
    assert!(detail.contains("field 1 (minute)"), "{detail}");
    assert_error(
        post(&app, "/api/v1/schedules/preview", &json!({"cron": "* * * * *", "count": 0})).await,
        422,
    )
    .await;
}

/// A run whose launch is refused when it comes due (here its playbook is gone) is recorded as a
/// job that ended in error before it started; receivers of `schedule.failed` are told so, those
/// of `job.finished` get it as `job.error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_launch_is_an_error_job_and_receivers_are_told() {
    let dir = playbooks();
    std::fs::copy(dir.join("hello.yml"), dir.join("gone.yml")).expect("copy");
    let app = spawn_engine(dir.clone(), quick_deliveries).await;
    let hook = |events: Value| {
        let app = &app;
        async move {
            let r =
                post(app, "/api/v1/webhooks", &json!({"url": "http://127.0.0.1:9/hook", "events": events}))
                    .await;
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.expect("json");
            remember_secret(v["secret"].as_str().unwrap_or_default());
            v["id"].as_i64().expect("id")
        }
    };
    let failed_hook = hook(json!(["schedule.failed"])).await;
    let finished_hook = hook(json!(["job.finished"])).await;
    let launch = json!({"source": {"type": "playbook", "path": "gone.yml"}});
    let id =
        create_ok(&app, json!({"name": "gone", "cron": "* * * * * *", "overlap": "run", "launch": launch}))
            .await["id"]
            .as_i64()
            .expect("id");
    std::fs::remove_file(dir.join("gone.yml")).expect("remove");
    let r = runs_until(&app, id, "a run that could not launch", |r| r.iter().any(|r| r["state"] == "failed"))
        .await;
    patch(&app, id, json!({"enabled": false})).await;
    let run = r.iter().find(|r| r["state"] == "failed").expect("failed");
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|w| w.contains("the launch was refused") && w.contains("gone.yml")),
        "{run}"
    );
    let job_id = run["job_id"].as_i64().expect("its job");
    let job = app.get_json(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(job["status"], "error");
    assert_eq!(job["template"], "gone.yml");
    assert_eq!(job["launched_by"], "bootstrap admin");
    let db = app.db().await;
    let event = |hook: i64| {
        let db = &db;
        async move {
            db.query_opt(
                "select event from webhook_deliveries where webhook_id = $1 and job_id = $2",
                &[&hook, &job_id],
            )
            .await
            .expect("deliveries")
            .map(|r| r.get::<_, String>(0))
        }
    };
    assert_eq!(event(failed_hook).await.as_deref(), Some("schedule.failed"));
    assert_eq!(event(finished_hook).await.as_deref(), Some("job.error"));
    // A job that ran and failed is no `schedule.failed`: the fired runs' jobs never gave one.
    let others: i64 = db
        .query_one(
            "select count(*) from webhook_deliveries where event = 'schedule.failed' and job_id <> $1
                and job_id not in (select job_id from schedule_runs where state = 'failed' and job_id is not null)",
            &[&job_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(others, 0);
}

/// Playdeck stopped for three seconds and started again (on the same database): every second
/// that came due while it was down fires once, after the restart, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_fires_every_second_it_missed_once() {
    let pg = fresh_database().await;
    let dir = playbooks();
    let start = |pg: tokio_postgres::Config, dir: PathBuf| async move {
        let app = spawn_app_on(pg, |c| {
            c.engine.playbook_dir = dir;
            c.engine.ansible_playbook = Some(ansible_playbook());
        })
        .await;
        bff::engine::Engine::of(&app.state).set_listen_addr(app.addr);
        app
    };
    let a = start(pg.clone(), dir.clone()).await;
    let id = create_ok(
        &a,
        json!({"name": "restarted", "cron": "* * * * * *", "overlap": "run", "launch": hello()}),
    )
    .await["id"]
        .as_i64()
        .expect("id");
    runs_until(&a, id, "two runs before the stop", |r| r.len() >= 2).await;
    drop(a);
    let stopped = chrono::Utc::now();
    // Down for three seconds: the fault's duration, not a wait for something.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = start(pg, dir).await;
    runs_until(&b, id, "runs after the restart", |r| {
        r.first()
            .and_then(|r| r["scheduled_for"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t > stopped + chrono::Duration::seconds(4))
    })
    .await;
    patch(&b, id, json!({"enabled": false})).await;
    let all = runs_until(&b, id, "every run launched", |r| r.iter().all(|r| r["state"] != "launching")).await;
    assert!(all.iter().all(|r| r["state"] == "fired" && r["reason"].is_null()), "{all:?}");
    let db = b.db().await;
    let row = db
        .query_one(
            "select count(*), count(distinct scheduled_for), count(distinct job_id),
                    count(*) filter (where gap > interval '1 second')
               from (select scheduled_for, job_id,
                            scheduled_for - lag(scheduled_for) over (order by scheduled_for) as gap
                       from schedule_runs where schedule_id = $1) r",
            &[&id],
        )
        .await
        .expect("runs");
    let (n, times, jobs, gaps): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((n, jobs, gaps), (times, times, 0), "each second once, each with its own job, none missing");
    assert!(n >= 6, "the seconds while it was down were fired too: {n}");
}

/// A schedule's launch may carry secrets (extra vars, a one-off become password): the answers and
/// the stored `launch` show them masked, the body itself is sealed under the credential key, and
/// the run still gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_a_schedules_launch_are_masked_shown_and_sealed_stored() {
    let app = spawn_engine(playbooks(), |_| {}).await;
    let (vault, become_pw) = ("s3cret-db-in-a-schedule", "s3cret-become-in-a-schedule");
    remember_secret(vault);
    remember_secret(become_pw);
    let launch = json!({"source": {"type": "playbook", "path": "hello.yml"},
                        "extra_vars": {"patch_group": "Group-1", "db_password": vault},
                        "credentials": {"become_password": {"type": "value", "value": become_pw}}});
    let s = create_ok(
        &app,
        json!({"name": "with secrets", "cron": "* * * * * *", "overlap": "run", "launch": launch}),
    )
    .await;
    let id = s["id"].as_i64().expect("id");
    for shown in [
        s.to_string(),
        app.get_json(&format!("/api/v1/schedules/{id}")).await.to_string(),
        app.get_json("/api/v1/schedules").await.to_string(),
    ] {
        assert!(!shown.contains(vault) && !shown.contains(become_pw), "a secret is shown: {shown}");
    }
    assert_eq!(s["launch"]["extra_vars"]["patch_group"], "Group-1", "what is not secret is shown");
    let db = app.db().await;
    let row = db
        .query_one("select launch::text, launch_sealed::text from schedules where id = $1", &[&id])
        .await
        .expect("row");
    for stored in [row.get::<_, String>(0), row.get::<_, String>(1)] {
        assert!(
            !stored.contains(vault) && !stored.contains(become_pw),
            "a secret is stored in the clear: {stored}"
        );
    }
    let r = runs_until(&app, id, "a run fired", |r| r.iter().any(|r| r["state"] == "fired")).await;
    patch(&app, id, json!({"name": "renamed, secrets kept"})).await;
    patch(&app, id, json!({"enabled": false})).await;
    let job = r.iter().find(|r| r["state"] == "fired").and_then(|r| r["job_id"].as_i64()).expect("job");
    eventually("the run with its secrets succeeded", || async {
        (app.get_json(&format!("/api/v1/jobs/{job}")).await["status"] == "successful").then_some(())
    })
    .await;
    // The body is still whole after a change that did not name it.
    let s = app.get_json(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(s["name"], "renamed, secrets kept");
    assert_eq!(s["launch"]["credentials"]["become_password"]["type"], "value");
}
