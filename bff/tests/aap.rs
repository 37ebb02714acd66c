//! The AAP/AWX connector against a fake controller that answers in AWX's exact shapes: sync into
//! PostgreSQL and out over the WebSocket, restarts, failing controllers, both API prefixes,
//! launch, cancel and relaunch, and the external-logging receiver.

mod common;
#[path = "../examples/support/fake_awx.rs"]
mod fake_awx;

use std::time::Duration;

use bff::infra::config::ControllerConfig;
use common::*;
use fake_awx::{FakeAwx, Mode, FIXTURE_JOB, TOKEN};
use serde_json::{json, Value};

fn controller(name: &str, fake: &FakeAwx) -> ControllerConfig {
    ControllerConfig::for_tests(name, &fake.url, TOKEN)
}

async fn app_with(controllers: Vec<ControllerConfig>) -> TestApp {
    spawn_app_with(move |c| c.aap.controllers = controllers).await
}

/// The Playdeck job of a controller's job, if synced.
async fn job_of(app: &TestApp, source: &str, external_id: i64) -> Option<Value> {
    let page = app.get_json(&format!("/api/v1/jobs?source={source}&external_id={external_id}")).await;
    page["results"].as_array().and_then(|r| r.first()).cloned()
}

async fn controllers(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/v1/controllers").await["results"].as_array().cloned().unwrap_or_default()
}

async fn controller_state(app: &TestApp, name: &str) -> Value {
    controllers(app).await.into_iter().find(|c| c["name"] == name).expect("controller listed")
}

async fn counters(app: &TestApp, job_id: i64) -> Vec<i64> {
    let page = app.get_json(&format!("/api/v1/jobs/{job_id}/events?limit=1000")).await;
    page["results"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["counter"].as_i64().expect("counter"))
        .collect()
}

/// Stored copies of a job's events (see `event_copies`).
async fn copies(app: &TestApp, job_id: i64) -> (i64, i64, i64) {
    event_copies(&app.db().await, job_id).await
}

#[tokio::test]
async fn a_controller_job_is_synced_into_postgres_and_out_over_the_websocket() {
    let fake = FakeAwx::start("/api/v2").await;
    fake.add_fixture_job();
    let app = app_with(vec![controller("aap", &fake)]).await;

    let job = eventually("job 26 synced with its 9 events", || async {
        job_of(&app, "aap", FIXTURE_JOB)
            .await
            .filter(|j| j["event_count"] == 9 && j["status"] == "successful")
    })
    .await;
    assert_eq!(job["source"], "aap");
    assert_eq!(job["name"], "Demo Job Template");
    assert_eq!(job["template"], "Demo Job Template");
    assert_eq!(job["inventory"], "Demo Inventory");
    assert_eq!(job["project"], "Demo Project");
    assert_eq!(job["scm_revision"], "347e44fea036c94d5f60e544de006453ee5c71ad", "AWX's scm_revision");
    assert_eq!(job["launched_by"], "admin");
    assert_eq!(
        job["started"], "2023-06-06T18:22:42.907521Z",
        "the controller's start, not the first event's"
    );
    assert_eq!(job["finished"], "2023-06-06T18:23:02.484722Z");
    let elapsed = job["elapsed"].as_f64().expect("elapsed");
    assert!((elapsed - 19.577).abs() < 0.01, "elapsed {elapsed}");
    assert_eq!(job["hosts"]["ok"], 1);
    let id = job["id"].as_i64().expect("id");

    assert_eq!(counters(&app, id).await, (1..=9).collect::<Vec<_>>());
    let events = app.get_json(&format!("/api/v1/jobs/{id}/events?limit=1000")).await;
    let stats = &events["results"][8];
    assert_eq!(stats["event"], "playbook_on_stats");
    assert!(stats["stdout"].as_str().expect("stdout").contains("PLAY RECAP"));
    assert_eq!(events["results"][4]["host"], "localhost", "the host's name, not AWX's host id");
    let hosts = app.get_json(&format!("/api/v1/jobs/{id}/hosts")).await;
    assert_eq!(hosts["results"][0]["host"], "localhost");
    assert_eq!(hosts["results"][0]["ok"], 2);
    assert_eq!(hosts["results"][0]["final_summary"], true);

    let mut ws = Follower::start(&app, id).await;
    ws.until(9).await;
    ws.assert_exactly(9);

    let c = controller_state(&app, "aap").await;
    assert_eq!(c["healthy"], true, "{c}");
    assert_eq!(c["api_prefix"], "/api/v2", "detected");
    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| r.starts_with(
            "GET /api/v2/jobs/26/job_events/?order_by=counter&counter__gt=0&no_truncate=1&page_size=200"
        )),
        "events asked in counter order, untruncated, 200 a page: {requests:#?}"
    );
    assert!(requests.iter().any(|r| r.starts_with("GET /api/v2/jobs/?order_by=modified&modified__gte=")));
    assert!(requests.iter().any(|r| r.starts_with("GET /api/v2/jobs/26/job_host_summaries/")));
    assert!(!requests.iter().any(|r| r.contains("[no valid bearer]")), "every request has the token");
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["controllers"][0]["name"], "aap");
    assert_eq!(ready["controllers"][0]["healthy"], true);
}

#[tokio::test]
async fn a_running_job_shows_its_events_live_over_several_polls() {
    let fake = FakeAwx::start("/api/v2").await;
    let hosts: Vec<String> = (1..=30).map(|h| format!("web-{h:02}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let awx_id = fake.add_job(
        "Rolling deploy",
        &hosts,
        &["Gathering Facts", "Deploy", "Restart", "Check"],
        Some("web-07"),
    );
    let total = fake.script_len(awx_id) as i64;
    assert!(total > 200, "more than one page of events");
    let app = app_with(vec![controller("aap", &fake)]).await;

    let job = eventually("the pending job", || job_of(&app, "aap", awx_id)).await;
    assert_eq!(job["status"], "pending");
    let id = job["id"].as_i64().expect("id");
    let mut ws = Follower::start(&app, id).await;

    fake.release(awx_id, 10);
    ws.until(10).await;
    let job = eventually("running", || async {
        job_of(&app, "aap", awx_id).await.filter(|j| j["status"] == "running")
    })
    .await;
    assert_eq!(job["current_task"], "Gathering Facts");
    fake.release(awx_id, 20);
    ws.until(30).await;
    // The rest at once: more than a page of events behind the cursor.
    fake.finish(awx_id, "failed", false);
    ws.until(total as usize).await;
    ws.assert_exactly(total);
    assert!(ws.messages >= 3, "events came in several messages as the job ran ({})", ws.messages);

    let job = eventually("failed", || async {
        job_of(&app, "aap", awx_id).await.filter(|j| j["status"] == "failed")
    })
    .await;
    assert_eq!(job["event_count"], total);
    assert_eq!(job["hosts"]["failed"], 1);
    assert_eq!(job["hosts"]["ok"], 29);
    let hosts = app.get_json(&format!("/api/v1/jobs/{id}/hosts")).await;
    let web07 = hosts["results"].as_array().expect("hosts").iter().find(|h| h["host"] == "web-07").cloned();
    let web07 = web07.expect("web-07");
    assert_eq!(web07["failures"], 1);
    assert_eq!(web07["final_summary"], true);
    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| r.contains("job_events/") && r.contains("page=2")),
        "next links followed"
    );

    // Finished but not processed yet: still followed until the controller says it is.
    let done = || async {
        app.db()
            .await
            .query_one("select done from aap_jobs where external_id = $1", &[&awx_id])
            .await
            .expect("cursor row")
            .get::<_, bool>(0)
    };
    // Three more requests about the job (it is still followed) leave it not done.
    fake.clear_requests();
    eventually("three more reads of the job", || async {
        let asked = fake.requests().iter().filter(|r| r.contains(&format!("/jobs/{awx_id}/"))).count();
        (asked >= 3).then_some(())
    })
    .await;
    assert!(!done().await, "event processing is not finished at the controller");
    fake.set_processing_finished(awx_id);
    eventually("done", || async { done().await.then_some(()) }).await;
    assert_eq!(copies(&app, id).await, (total, total, total));
}

#[tokio::test]
async fn a_restart_mid_job_resumes_from_the_cursor_and_loses_and_doubles_nothing() {
    let fake = FakeAwx::start("/api/v2").await;
    let awx_id =
        fake.add_job("Patch", &["db-1", "db-2", "db-3"], &["Gathering Facts", "Patch", "Reboot"], None);
    let total = fake.script_len(awx_id) as i64;
    fake.release(awx_id, 10);
    let first = app_with(vec![controller("aap", &fake)]).await;
    let job = eventually("10 events synced", || async {
        job_of(&first, "aap", awx_id).await.filter(|j| j["event_count"] == 10)
    })
    .await;
    eventually("the cursor stored", || async {
        let c = first.count(&format!("select last_counter from aap_jobs where external_id = {awx_id}")).await;
        (c == 10).then_some(())
    })
    .await;
    let id = job["id"].as_i64().expect("id");
    let pg = first.pg.clone();
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // While Playdeck is down the job goes on.
    fake.release(awx_id, 8);
    fake.clear_requests();
    let second = spawn_app_on(pg, {
        let c = controller("aap", &fake);
        move |cfg| cfg.aap.controllers = vec![c]
    })
    .await;
    let mut ws = Follower::start(&second, id).await;
    ws.until(18).await;
    fake.finish(awx_id, "successful", true);
    ws.until(total as usize).await;
    ws.assert_exactly(total);
    eventually("successful", || async {
        job_of(&second, "aap", awx_id)
            .await
            .filter(|j| j["status"] == "successful" && j["event_count"] == total)
    })
    .await;
    assert_eq!(copies(&second, id).await, (total, total, total), "each event stored once, no seq wasted");
    let first_read = fake
        .requests()
        .into_iter()
        .find(|r| r.starts_with(&format!("GET /api/v2/jobs/{awx_id}/job_events/?order_by=counter")))
        .expect("events read after the restart");
    assert!(first_read.contains("counter__gt=10&"), "resumed from the stored cursor: {first_read}");
}

#[tokio::test]
async fn with_two_replicas_one_syncs_a_controller_and_the_other_stands_by() {
    let fake = FakeAwx::start("/api/v2").await;
    fake.add_fixture_job();
    let first = app_with(vec![controller("aap", &fake)]).await;
    eventually("synced", || async {
        job_of(&first, "aap", FIXTURE_JOB).await.filter(|j| j["event_count"] == 9)
    })
    .await;
    // The second replica reaches the controller through a proxy that counts what it passes on.
    let (proxy_url, through_proxy) = counting_proxy(fake.addr).await;
    let second = spawn_app_on(first.pg.clone(), {
        let c = ControllerConfig::for_tests("aap", &proxy_url, TOKEN);
        move |cfg| cfg.aap.controllers = vec![c]
    })
    .await;
    let standby = eventually("the second replica stands by", || async {
        Some(controller_state(&second, "aap").await).filter(|c| c["status"] == "standby")
    })
    .await;
    assert_eq!(standby["healthy"], true, "{standby}");
    assert_eq!(controller_state(&first, "aap").await["status"], "ok");
    // Over twenty more rounds of the active replica, the standby asks the controller nothing.
    let seen = fake.requests().len();
    eventually("twenty more requests from the active replica", || async {
        (fake.requests().len() >= seen + 20).then_some(())
    })
    .await;
    assert_eq!(through_proxy.load(std::sync::atomic::Ordering::SeqCst), 0, "the standby sent no request");
    // The first one stops: the second takes over and follows the controller's new jobs.
    drop(first);
    let id = fake.add_job("After the handover", &["h-1"], &["Gathering Facts"], None);
    fake.finish(id, "successful", true);
    eventually("synced by the second replica", || async {
        job_of(&second, "aap", id).await.filter(|j| j["status"] == "successful" && j["event_count"] == 6)
    })
    .await;
    // The job shows up while the round that stored it is still running; the round then reports ok.
    eventually("the second replica reports ok", || async {
        Some(controller_state(&second, "aap").await).filter(|c| c["status"] == "ok")
    })
    .await;
    assert!(through_proxy.load(std::sync::atomic::Ordering::SeqCst) > 0, "the new active replica asks");
    assert_eq!(
        copies(&second, job_of(&second, "aap", id).await.expect("job")["id"].as_i64().expect("id")).await,
        (6, 6, 6)
    );
    // Handed over once: the fixture job, synced before the handover, is not synced again.
    let fixture = job_of(&second, "aap", FIXTURE_JOB).await.expect("fixture job")["id"].as_i64().expect("id");
    assert_eq!(copies(&second, fixture).await, (9, 9, 9));
}

#[tokio::test]
async fn events_the_controller_saves_out_of_order_are_not_missed() {
    let fake = FakeAwx::start("/api/v2").await;
    let awx_id = fake.add_job("Late event", &["app-1", "app-2"], &["Gathering Facts", "Deploy"], None);
    let total = fake.script_len(awx_id) as i64;
    fake.release(awx_id, 8);
    fake.hide(awx_id, 5);
    let app = app_with(vec![controller("aap", &fake)]).await;
    let job = eventually("7 events", || async {
        job_of(&app, "aap", awx_id).await.filter(|j| j["event_count"] == 7)
    })
    .await;
    let id = job["id"].as_i64().expect("id");
    assert!(!counters(&app, id).await.contains(&5));
    // The controller saves counter 5 after the cursor moved past it, then finishes.
    fake.reveal(awx_id, 5);
    fake.finish(awx_id, "successful", true);
    eventually("every event, 5 included", || async {
        job_of(&app, "aap", awx_id).await.filter(|j| j["event_count"] == total && j["status"] == "successful")
    })
    .await;
    assert_eq!(counters(&app, id).await, (1..=total).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_job_the_controller_fails_on_does_not_hold_back_the_others() {
    let fake = FakeAwx::start("/api/v2").await;
    let broken = fake.add_job("Broken", &["b-1"], &["Gathering Facts"], None);
    fake.release(broken, 3);
    fake.lock().broken_events.insert(broken);
    let app = app_with(vec![controller("aap", &fake)]).await;
    let fine = fake.add_job("Fine", &["f-1"], &["Gathering Facts"], None);
    fake.release(fine, 2);
    eventually("the other job's events", || async {
        job_of(&app, "aap", fine).await.filter(|j| j["event_count"] == 2)
    })
    .await;
    fake.release(fine, 2);
    eventually("and more of them, round after round", || async {
        job_of(&app, "aap", fine).await.filter(|j| j["event_count"] == 4)
    })
    .await;
    let c = controller_state(&app, "aap").await;
    assert_eq!(c["healthy"], true, "one job's trouble is not the controller's: {c}");
    assert_eq!(job_of(&app, "aap", broken).await.expect("listed")["event_count"], 0);

    fake.lock().broken_events.clear();
    eventually("the job once the controller serves it", || async {
        job_of(&app, "aap", broken).await.filter(|j| j["event_count"] == 3)
    })
    .await;
}

#[tokio::test]
async fn a_controller_that_goes_down_is_unhealthy_while_others_keep_syncing_and_comes_back() {
    // Two controllers, each with its own API prefix (AWX's and AAP 2.5's gateway).
    let east = FakeAwx::start("/api/v2").await;
    let west = FakeAwx::start("/api/controller/v2").await;
    east.add_fixture_job();
    let app = app_with(vec![controller("east", &east), controller("west", &west)]).await;
    eventually("east's job", || async {
        job_of(&app, "east", FIXTURE_JOB).await.filter(|j| j["event_count"] == 9)
    })
    .await;
    assert_eq!(controller_state(&app, "east").await["api_prefix"], "/api/v2");
    assert_eq!(
        eventually("west healthy", || async {
            Some(controller_state(&app, "west").await).filter(|c| c["healthy"] == true)
        })
        .await["api_prefix"],
        "/api/controller/v2"
    );

    // East synced its job; wait for its first round to be recorded before stopping it, so
    // "not healthy" below means "down", not "still starting".
    eventually("east healthy", || async {
        Some(controller_state(&app, "east").await).filter(|c| c["healthy"] == true)
    })
    .await;
    east.stop().await;
    let down = eventually("east unhealthy", || async {
        Some(controller_state(&app, "east").await)
            .filter(|c| c["healthy"] == false && c["status"] != "starting")
    })
    .await;
    assert_eq!(down["status"], "unreachable", "{down}");
    assert!(down["detail"].as_str().expect("detail").contains("east"), "{down}");
    assert!(down["failing_since"].is_string());
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "Playdeck itself stays ready");
    let ready: Value = ready.json().await.expect("json");
    let listed = ready["controllers"].as_array().expect("controllers");
    assert!(listed.iter().any(|c| c["name"] == "east" && c["healthy"] == false), "{ready}");

    // West keeps syncing meanwhile, and east's jobs go on without Playdeck seeing them.
    let west_job = west.add_job("West job", &["w-1"], &["Gathering Facts"], None);
    west.finish(west_job, "successful", true);
    let east_job = east.add_job("East job", &["e-1"], &["Gathering Facts"], None);
    east.finish(east_job, "successful", true);
    eventually("west's job while east is down", || async {
        job_of(&app, "west", west_job).await.filter(|j| j["status"] == "successful")
    })
    .await;
    assert!(job_of(&app, "east", east_job).await.is_none());

    east.restart().await;
    eventually("east back and its new job synced", || async {
        job_of(&app, "east", east_job).await.filter(|j| j["status"] == "successful" && j["event_count"] == 6)
    })
    .await;
    let back = eventually("east healthy", || async {
        Some(controller_state(&app, "east").await).filter(|c| c["healthy"] == true)
    })
    .await;
    assert!(back["detail"].is_null() && back["failing_since"].is_null(), "{back}");
}

/// In the middle of a job the controller answers 500 for half a minute, then hangs past the
/// request timeout for another half, while the job goes on there: the controller is shown failing
/// with the reason, and once it answers again the sync catches up: every event once, in order, to
/// a follower as well, and the job ends as the controller says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_failing_for_a_minute_mid_job_is_caught_up_with_nothing_lost_or_doubled() {
    let fake = FakeAwx::start("/api/v2").await;
    let hosts: Vec<String> = (1..=10).map(|h| format!("web-{h:02}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let awx_id =
        fake.add_job("Long run", &hosts, &["Gathering Facts", "Deploy", "Restart", "Check"], Some("web-03"));
    let total = fake.script_len(awx_id) as i64;
    let mut ctl = controller("aap", &fake);
    ctl.request_timeout = Duration::from_millis(500);
    let app = app_with(vec![ctl]).await;
    let id = eventually("the pending job", || job_of(&app, "aap", awx_id)).await["id"].as_i64().expect("id");
    let mut ws = Follower::start(&app, id).await;
    fake.release(awx_id, 20);
    ws.until(20).await;

    // The job goes on at the controller (2 events every 300 ms) while it answers 500s, then
    // hangs.
    fake.set_mode(Mode::Fail(500));
    let run = fake.run(awx_id, 2, Duration::from_millis(300));
    let failing = eventually("the controller is shown failing", || async {
        Some(controller_state(&app, "aap").await)
            .filter(|c| c["healthy"] == false && c["status"] != "starting")
    })
    .await;
    assert!(failing["detail"].as_str().unwrap_or("").contains("500"), "{failing}");
    tokio::time::sleep(Duration::from_secs(30)).await;
    fake.set_mode(Mode::Stall(Duration::from_secs(5)));
    eventually("the controller is shown timing out", || async {
        Some(controller_state(&app, "aap").await)
            .filter(|c| c["detail"].as_str().is_some_and(|d| d.contains("timed out")))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    run.await.expect("the job ran to its end at the controller");
    let stored_during_outage = copies(&app, id).await.0;
    assert!(stored_during_outage < total, "the outage held events back ({stored_during_outage} of {total})");

    fake.set_mode(Mode::Normal);
    ws.until(total as usize).await;
    ws.assert_exactly(total);
    let job = eventually("the job's end, from the controller", || async {
        job_of(&app, "aap", awx_id).await.filter(|j| j["status"] == "failed")
    })
    .await;
    assert_eq!(job["event_count"], total);
    assert_eq!(copies(&app, id).await, (total, total, total), "each event once, no hole");
    eventually("the controller is healthy again", || async {
        Some(controller_state(&app, "aap").await).filter(|c| c["healthy"] == true && c["detail"].is_null())
    })
    .await;
}

#[tokio::test]
async fn a_rejected_token_is_reported_clearly_and_not_hammered() {
    let fake = FakeAwx::start("/api/v2").await;
    fake.add_fixture_job();
    fake.set_mode(Mode::Unauthorized);
    let app = app_with(vec![controller("aap", &fake)]).await;
    let c = eventually("unauthorized", || async {
        Some(controller_state(&app, "aap").await).filter(|c| c["status"] == "unauthorized")
    })
    .await;
    assert_eq!(c["healthy"], false);
    let detail = c["detail"].as_str().expect("detail");
    assert!(detail.contains("401") && detail.contains("token"), "{detail}");
    assert!(!detail.contains(TOKEN), "the token itself is never shown");

    // Backoff, not a retry loop: with a 50 ms poll, a backoff that doubles up to 300 ms keeps the
    // refused requests the fake recorded that far apart (a slower machine only widens the gaps).
    fake.clear_requests();
    let refused = eventually("four more refused requests", || async {
        let log: Vec<std::time::Instant> =
            fake.request_log().into_iter().filter(|(_, r)| r.contains("/jobs/")).map(|(t, _)| t).collect();
        (log.len() >= 5).then_some(log)
    })
    .await;
    let gaps: Vec<Duration> = refused.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(150)),
        "three polls or more between refusals: {gaps:?}"
    );
    assert!(gaps.iter().any(|g| *g >= Duration::from_millis(290)), "the backoff grows to its cap: {gaps:?}");

    let resp = app.get("/api/v1/templates").await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.expect("json");
    assert_eq!(page["errors"][0]["controller"], "aap");
    assert!(page["errors"][0]["detail"].as_str().expect("detail").contains("401"));
    let launch = post(&app, "/api/v1/jobs", &json!({"template": 7})).await;
    let detail = assert_error(launch, 502).await;
    assert!(detail.contains("401"), "{detail}");

    fake.set_mode(Mode::Normal);
    eventually("synced once the token is accepted", || async {
        job_of(&app, "aap", FIXTURE_JOB).await.filter(|j| j["event_count"] == 9)
    })
    .await;
}

#[tokio::test]
async fn transient_failures_are_retried_and_a_stalled_controller_times_out() {
    let fake = FakeAwx::start("/api/v2").await;
    fake.add_fixture_job();
    // Busy at first: the client retries (honouring Retry-After) within the same round.
    fake.fail_next(&[(503, None), (429, Some(0))]);
    let app = app_with(vec![controller("aap", &fake)]).await;
    eventually("synced despite 503 and 429", || async {
        job_of(&app, "aap", FIXTURE_JOB).await.filter(|j| j["event_count"] == 9)
    })
    .await;
    let requests = fake.requests();
    assert_eq!(requests[0], requests[1], "the same request, retried");
    assert_eq!(requests[1], requests[2]);
    drop(app);

    let slow = FakeAwx::start("/api/v2").await;
    slow.set_mode(Mode::Stall(Duration::from_secs(5)));
    let mut stalled = controller("slow", &slow);
    stalled.request_timeout = Duration::from_millis(200);
    stalled.api_prefix = Some("/api/v2".into());
    let app = app_with(vec![stalled]).await;
    let c = eventually("timed out", || async {
        Some(controller_state(&app, "slow").await).filter(|c| c["status"] == "unreachable")
    })
    .await;
    assert!(c["detail"].as_str().expect("detail").contains("timed out"), "{c}");
    assert_eq!(c["api_prefix"], "/api/v2", "as configured, without probing");
}

#[tokio::test]
async fn templates_are_listed_with_their_prompts_and_survey() {
    let fake = FakeAwx::start("/api/controller/v2").await;
    let app = app_with(vec![controller("aap", &fake)]).await;
    let page = app.get_json("/api/v1/templates").await;
    assert_eq!(page["count"], 3);
    assert_eq!(page["errors"], json!([]));
    let by_id =
        |id: i64| page["results"].as_array().expect("results").iter().find(|t| t["id"] == id).cloned();
    let patch = by_id(8).expect("template 8");
    assert_eq!(patch["controller"], "aap");
    assert_eq!(patch["name"], "Patch servers");
    assert_eq!(patch["ask_limit_on_launch"], true);
    assert_eq!(patch["ask_tags_on_launch"], false);
    assert_eq!(patch["survey_enabled"], true);
    assert_eq!(patch["survey"]["spec"][0]["variable"], "release");
    assert_eq!(patch["survey"]["spec"][0]["type"], "multiplechoice");
    assert_eq!(patch["inventory"], "Demo Inventory");
    assert!(by_id(7).expect("template 7")["survey"].is_null());
    assert_eq!(by_id(12002).expect("template 12002")["ask_job_type_on_launch"], true);

    let secret = &new_key(&app, "watcher", "viewer").await;
    let resp = app.http.get(app.url("/api/v1/templates")).bearer_auth(secret).send().await.expect("get");
    assert_error(resp, 403).await;
    let resp = app.http.get(app.url("/api/v1/controllers")).bearer_auth(secret).send().await.expect("get");
    assert_eq!(resp.status(), 200, "anyone signed in sees the controllers' health");
}

#[tokio::test]
async fn a_template_launch_answers_the_job_at_once_with_the_fields_the_controller_ignored() {
    let fake = FakeAwx::start("/api/v2").await;
    let app = app_with(vec![controller("aap", &fake)]).await;
    let resp = post(
        &app,
        "/api/v1/jobs",
        &json!({"template": "Patch servers", "limit": "web-01", "job_tags": "deploy",
                "extra_vars": {"release": "2026.11", "db_password": "hunter2", "color": "blue"}}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let launched: Value = resp.json().await.expect("json");
    assert_eq!(
        launched["ignored_fields"],
        json!({"job_tags": "deploy", "extra_vars": {"db_password": "hunter2", "color": "blue"}}),
        "the template prompts for the limit and its survey only"
    );
    assert_eq!(launched["controller"], "aap");
    let job = &launched["job"];
    assert_eq!(job["source"], "aap");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["template"], "Patch servers");
    assert_eq!(job["limit"], "web-01");
    let id = job["id"].as_i64().expect("id");
    let awx_id: i64 = launched["external_id"].as_str().expect("external id").parse().expect("number");
    assert_eq!(job["external_id"], awx_id.to_string());

    // Live from its first event.
    let mut ws = Follower::start(&app, id).await;
    fake.release(awx_id, 1);
    ws.until(1).await;
    fake.finish(awx_id, "successful", true);
    let total = fake.script_len(awx_id);
    ws.until(total).await;
    ws.assert_exactly(total as i64);

    let action = app
        .db()
        .await
        .query_one("select action, by, detail from job_actions where job_id = $1", &[&id])
        .await
        .expect("recorded");
    assert_eq!(action.get::<_, String>(0), "launch");
    assert_eq!(action.get::<_, String>(1), "bootstrap admin");
    let detail: Value = action.get(2);
    assert_eq!(detail["asked"]["extra_vars"]["db_password"], "********", "{detail}");
    assert_eq!(detail["asked"]["extra_vars"]["color"], "blue");
    assert_eq!(detail["ignored_fields"]["job_tags"], "deploy");
    assert_eq!(detail["ignored_fields"]["extra_vars"]["db_password"], "********", "{detail}");

    // Bad input and the controller's refusals, each a clear 4xx.
    let d =
        assert_error(post(&app, "/api/v1/jobs", &json!({"template": 8, "verbosity": 9})).await, 422).await;
    assert!(d.contains("verbosity"), "{d}");
    let d = assert_error(post(&app, "/api/v1/jobs", &json!({"template": 8, "limt": "web"})).await, 422).await;
    assert!(d.contains("limt"), "{d}");
    let d = assert_error(post(&app, "/api/v1/jobs", &json!({"template": 8})).await, 422).await;
    assert!(d.contains("'release' value missing"), "the controller's words: {d}");
    let d = assert_error(post(&app, "/api/v1/jobs", &json!({"template": 999})).await, 404).await;
    assert!(d.contains("999"), "{d}");
    let d = assert_error(post(&app, "/api/v1/jobs", &json!({"template": "No such"})).await, 404).await;
    assert!(d.contains("No such"), "{d}");
    let d = assert_error(
        post(&app, "/api/v1/jobs", &json!({"template": 7, "controller": "elsewhere"})).await,
        422,
    )
    .await;
    assert!(d.contains("elsewhere"), "{d}");
    let failed: i64 =
        app.count("select count(*) from job_actions where action = 'launch' and job_id is null").await;
    assert_eq!(failed, 3, "launches the controller refused are recorded too");
}

#[tokio::test]
async fn cancel_and_relaunch_go_to_the_controller_and_its_refusals_are_clear() {
    let fake = FakeAwx::start("/api/v2").await;
    fake.add_fixture_job();
    let running = fake.add_job("Long job", &["a-1", "a-2"], &["Gathering Facts", "Wait"], Some("a-2"));
    fake.release(running, 3);
    let app = app_with(vec![controller("aap", &fake)]).await;
    let finished = eventually("job 26", || async {
        job_of(&app, "aap", FIXTURE_JOB).await.filter(|j| j["event_count"] == 9)
    })
    .await["id"]
        .as_i64()
        .expect("id");
    let live = eventually("the running job", || async {
        job_of(&app, "aap", running).await.filter(|j| j["status"] == "running")
    })
    .await["id"]
        .as_i64()
        .expect("id");

    let d = assert_error(post(&app, &format!("/api/v1/jobs/{finished}/cancel"), &json!({})).await, 409).await;
    assert!(d.contains("refused") && d.contains("not allowed") && d.contains("successful"), "{d}");

    let resp = post(&app, &format!("/api/v1/jobs/{live}/cancel"), &json!({})).await;
    assert_eq!(resp.status(), 202);
    eventually("canceled", || async {
        job_of(&app, "aap", running).await.filter(|j| j["status"] == "canceled")
    })
    .await;

    let d = assert_error(
        post(&app, &format!("/api/v1/jobs/{live}/relaunch"), &json!({"hosts": "failed"})).await,
        422,
    )
    .await;
    assert!(d.contains("failed hosts"), "the controller's words: {d}");
    assert_error(post(&app, &format!("/api/v1/jobs/{live}/relaunch"), &json!({"hosts": "some"})).await, 422)
        .await;
    let resp = post(&app, &format!("/api/v1/jobs/{live}/relaunch"), &json!({"hosts": "all"})).await;
    assert_eq!(resp.status(), 201);
    let again: Value = resp.json().await.expect("json");
    let new_id = again["job"]["id"].as_i64().expect("id");
    assert_ne!(new_id, live);
    assert_eq!(again["job"]["source"], "aap");
    assert_eq!(again["job"]["name"], "Long job");

    let rows = app
        .db()
        .await
        .query("select job_id, action, by, detail from job_actions order by id", &[])
        .await
        .expect("actions");
    let actions: Vec<(Option<i64>, String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        actions,
        vec![
            (Some(finished), "cancel".to_string(), "bootstrap admin".to_string()),
            (Some(live), "cancel".to_string(), "bootstrap admin".to_string()),
            (Some(live), "relaunch".to_string(), "bootstrap admin".to_string()),
            (Some(new_id), "relaunch".to_string(), "bootstrap admin".to_string()),
        ]
    );
    let detail: Value = rows[3].get(3);
    assert_eq!(detail["relaunch_of"], live);
    assert_eq!(detail["hosts"], "all");
}

/// A job event as AWX's external logging sends it (`awx.analytics.job_events`): the event's
/// fields, `job` and `host` as ids, `id` null, timestamps as Django writes them.
fn logging_record(event: &Value) -> Value {
    let mut r = event.clone();
    let o = r.as_object_mut().expect("object");
    for k in ["type", "url", "related", "summary_fields"] {
        o.remove(k);
    }
    let ms = |v: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time")).expect("time");
        json!(t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    let created = ms(&o["created"]);
    o.insert("created".into(), created.clone());
    o.insert("modified".into(), created.clone());
    o.insert("id".into(), Value::Null);
    o.insert("@timestamp".into(), created);
    o.insert("message".into(), json!("Event data saved."));
    o.insert("level".into(), json!("INFO"));
    o.insert("logger_name".into(), json!("awx.analytics.job_events"));
    o.insert("cluster_host_id".into(), json!("awx-task-1"));
    o.insert("tower_uuid".into(), json!("5a6c3a0e-0000-4000-8000-000000000001"));
    r
}

/// AAP's external logging and the sync bring the same job's events at the same time, the logging
/// records in overlapping posts sent in parallel: one job row, each event once, arrival order
/// without a hole, and each post's accepted + duplicates = what it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_logging_racing_the_sync_stores_each_event_once() {
    let fake = FakeAwx::start("/api/v2").await;
    let hosts: Vec<String> = (1..=20).map(|h| format!("web-{h:02}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let awx_id = fake.add_job("Race", &hosts, &["Gathering Facts", "Deploy", "Restart", "Check"], None);
    let total = fake.script_len(awx_id) as i64;
    fake.finish(awx_id, "successful", true);
    let records: Vec<String> =
        fake.lock().jobs[&awx_id].script.iter().map(|e| logging_record(e).to_string()).collect();
    let app = app_with(vec![controller("aap", &fake)]).await;

    // Four senders, each its windows of 40 records overlapping the next by 20, all at once while
    // the sync reads the same job.
    let url = app.url("/api/v1/ingest/aap-logging");
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (http, url, records) = (app.http.clone(), url.clone(), records.clone());
            tokio::spawn(async move {
                let mut start = s * 20;
                while start < records.len() {
                    let window = &records[start..(start + 40).min(records.len())];
                    let body: String = window.iter().map(|r| format!("{r}\n")).collect();
                    let r = http
                        .post(&url)
                        .basic_auth("awx", Some(INGEST_TOKEN))
                        .body(body)
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(r.status(), 200);
                    let r: Value = r.json().await.expect("json");
                    let sum =
                        r["accepted"].as_i64().expect("accepted") + r["duplicates"].as_i64().expect("dups");
                    assert_eq!(sum, window.len() as i64, "accepted + duplicates = sent: {r}");
                    start += 80;
                }
            })
        })
        .collect();
    for s in senders {
        s.await.expect("sender");
    }
    let job = eventually("the whole job", || async {
        job_of(&app, "aap", awx_id).await.filter(|j| j["event_count"] == total && j["status"] == "successful")
    })
    .await;
    let id = job["id"].as_i64().expect("id");
    assert_eq!(copies(&app, id).await, (total, total, total), "each event once, no hole");
    let rows = app
        .count(&format!("select count(*) from jobs where source = 'aap' and external_id = '{awx_id}'"))
        .await;
    assert_eq!(rows, 1, "one job row");
}

#[tokio::test]
async fn external_logging_plain_and_splunk_plus_the_sync_store_each_event_once() {
    let fake = FakeAwx::start("/api/v2").await;
    let ctl = controller("aap", &fake);
    let app = spawn_app_with(move |c| {
        c.aap.controllers = vec![ctl];
        c.ingest_max_bytes = 64 * 1024;
    })
    .await;
    let fixture: Value = serde_json::from_str(include_str!("fixtures/awx/jobEvents.json")).expect("fixture");
    let mut events = fixture["results"].as_array().expect("events").clone();
    events.sort_by_key(|e| e["counter"].as_i64());
    let url = app.url("/api/v1/ingest/aap-logging");

    // Plain JSON lines, basic auth with any user and the ingest token.
    let lines: String = events[..3].iter().map(|e| format!("{}\n", logging_record(e))).collect();
    let resp =
        app.http.post(&url).basic_auth("awx", Some(INGEST_TOKEN)).body(lines).send().await.expect("post");
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.expect("json");
    assert_eq!((r["accepted"].as_i64(), r["duplicates"].as_i64()), (Some(3), Some(0)), "{r}");

    // Splunk-wrapped, with the Splunk header; counter 3 again, and a record of another logger.
    let mut body = String::new();
    for e in &events[2..5] {
        body.push_str(&json!({"time": 1686075778.18, "event": logging_record(e)}).to_string());
    }
    body.push_str(
        &json!({"event": {"logger_name": "awx.analytics.activity_stream", "operation": "update"}})
            .to_string(),
    );
    let resp = app
        .http
        .post(&url)
        .header("authorization", format!("Splunk {INGEST_TOKEN}"))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.expect("json");
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(r["duplicates"], 1, "{r}");
    assert_eq!(r["ignored"], 1, "{r}");
    let job = job_of(&app, "aap", FIXTURE_JOB).await.expect("the job, from logging alone");
    let id = job["id"].as_i64().expect("id");
    assert_eq!(job["event_count"], 5);

    // Now the sync finds the same job on the controller: only the 4 missing events are added.
    fake.add_fixture_job();
    eventually("synced", || async {
        job_of(&app, "aap", FIXTURE_JOB)
            .await
            .filter(|j| j["event_count"] == 9 && j["status"] == "successful")
    })
    .await;
    assert_eq!(copies(&app, id).await, (9, 9, 9));
    assert_eq!(counters(&app, id).await, (1..=9).collect::<Vec<_>>());
    let mut ws = Follower::start(&app, id).await;
    ws.until(9).await;
    ws.assert_exactly(9);
    let resp = app
        .http
        .post(app.url("/api/v1/ingest/aap-logging/aap"))
        .bearer_auth(INGEST_TOKEN)
        .body(events.iter().map(|e| format!("{}\n", logging_record(e))).collect::<String>())
        .send()
        .await
        .expect("post");
    let r: Value = resp.json().await.expect("json");
    assert_eq!((r["accepted"].as_i64(), r["duplicates"].as_i64()), (Some(0), Some(9)), "{r}");

    // Refusals: a wrong token, and a body with no JSON at all.
    let resp = app.http.post(&url).basic_auth("awx", Some("wrong")).body("{}").send().await.expect("post");
    assert_error(resp, 401).await;
    let resp =
        app.http.post(&url).header("authorization", "Splunk wrong").body("{}").send().await.expect("post");
    assert_error(resp, 401).await;
    let resp =
        app.http.post(&url).bearer_auth(INGEST_TOKEN).body("this is not json").send().await.expect("post");
    assert_error(resp, 400).await;
    // Over the ingest size limit, plain or unpacked from gzip: 413, and nothing of it stored.
    let mut big = logging_record(&events[0]);
    big["counter"] = json!(50);
    big["stdout"] = json!("y".repeat(100 * 1024));
    let big = format!("{big}\n");
    let resp = app.http.post(&url).bearer_auth(INGEST_TOKEN).body(big.clone()).send().await.expect("post");
    assert_error(resp, 413).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, big.as_bytes()).expect("gzip");
    let resp = app
        .http
        .post(&url)
        .bearer_auth(INGEST_TOKEN)
        .header("content-encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("post");
    assert_error(resp, 413).await;
    assert_eq!(job_of(&app, "aap", FIXTURE_JOB).await.expect("job")["event_count"], 9, "nothing stored");
    // A job event record without a job id is counted, not a reason to refuse the batch.
    let resp = app
        .http
        .post(&url)
        .bearer_auth(INGEST_TOKEN)
        .body(json!({"logger_name": "awx.analytics.job_events", "counter": 1, "event": "x"}).to_string())
        .send()
        .await
        .expect("post");
    let r: Value = resp.json().await.expect("json");
    assert_eq!(r["rejected"], 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_operator_sees_and_launches_only_the_templates_of_their_bindings() {
    let fake = FakeAwx::start("/api/v2").await;
    let ctl = controller("aap-prod", &fake);
    let app = spawn_app_with(move |c| {
        c.aap.controllers = vec![ctl];
        common::people::trust_loopback_proxy(c);
        c.auth.access = bff::infra::access::parse_file(
            "access.toml",
            "[[binding]]\ngroup = \"patchers\"\nrole = \"operator\"\nsources = [\"aap-prod\"]\ntemplates = [\"Patch *\"]\n",
        )
        .expect("access");
    })
    .await;
    let as_patcher = |method: reqwest::Method, path: &str| {
        app.http
            .request(method, app.url(path))
            .header("x-forwarded-user", "pat")
            .header("x-forwarded-groups", "patchers")
            .header("x-playdeck-csrf", "1")
    };
    let page: Value = as_patcher(reqwest::Method::GET, "/api/v1/templates")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["Patch servers"], "{page}");
    let all = app.get_json("/api/v1/templates").await;
    assert!(all["count"].as_i64().unwrap_or(0) >= 3, "the admin sees every template: {all}");
    // Launching another template by id is refused before the controller launches anything.
    let r = as_patcher(reqwest::Method::POST, "/api/v1/jobs")
        .json(&json!({"template": 7}))
        .send()
        .await
        .expect("launch");
    let detail = assert_error(r, 403).await;
    assert!(detail.contains("may not launch \"JT with Default Cred\""), "{detail}");
    assert!(
        !fake.requests().iter().any(|r| r.starts_with("POST") && r.contains("/launch/")),
        "nothing was launched: {:?}",
        fake.requests()
    );
}

/// The controller's own schedules of its templates are listed read-only with the next run it
/// computed (AWX's `/schedules/` shapes); its housekeeping (system job) schedules are not; a
/// controller that does not answer is named.
#[tokio::test]
async fn the_controllers_own_template_schedules_are_listed_read_only() {
    let fake = FakeAwx::start("/api/v2").await;
    let app = app_with(vec![controller("aap", &fake)]).await;
    let list = app.get_json("/api/v1/controllers/schedules").await;
    let names: Vec<&str> =
        list["results"].as_array().expect("results").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        ["Job Template Schedule 1", "Patch every weekday evening"],
        "job templates' only, soonest first: {list}"
    );
    let patch = &list["results"][1];
    assert_eq!(patch["controller"], "aap");
    assert_eq!((patch["template"].as_str(), patch["template_id"].as_i64()), (Some("Patch servers"), Some(8)));
    assert_eq!(patch["time_zone"], "Europe/Berlin");
    assert!(patch["rrule"].as_str().expect("rrule").contains("RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"));
    assert_eq!(patch["next_run"], "2027-01-04T21:00:00Z");
    assert_eq!(list["errors"], json!([]));

    fake.set_mode(Mode::Fail(500));
    let list = app.get_json("/api/v1/controllers/schedules").await;
    assert_eq!(list["count"], 0);
    assert_eq!(list["errors"][0]["controller"], "aap");
    assert!(list["errors"][0]["detail"].as_str().expect("detail").contains("500"), "{list}");
}

/// A schedule of a controller's job template: checked against the controller when it is made (an
/// unknown template is refused with the controller's own words), and each run it fires is a job
/// launched there, linked to its run.
#[tokio::test]
async fn a_schedule_of_a_template_launches_on_the_controller() {
    let fake = FakeAwx::start("/api/v2").await;
    let app = app_with(vec![controller("aap", &fake)]).await;
    let unknown = post(
        &app,
        "/api/v1/schedules",
        &json!({"name": "x", "cron": "0 22 * * *", "launch": {"template": "No such template"}}),
    )
    .await;
    assert_eq!(unknown.status(), 422);
    let detail: Value = unknown.json().await.expect("json");
    assert!(
        detail["errors"][0]["detail"].as_str().is_some_and(|d| d.contains("No such template")),
        "{detail}"
    );
    let created = post(
        &app,
        "/api/v1/schedules",
        &json!({"name": "patch nightly", "cron": "* * * * * *", "time_zone": "Europe/Berlin", "overlap": "run",
                "launch": {"template": "Patch servers", "limit": "web-01", "extra_vars": {"release": "2026.11"}}}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let s: Value = created.json().await.expect("json");
    assert_eq!((s["source"].as_str(), s["target"].as_str()), (Some("aap"), Some("Patch servers")));
    let id = s["id"].as_i64().expect("id");
    let run = eventually("a run fired on the controller", || async {
        let runs = app.get_json(&format!("/api/v1/schedules/{id}/runs")).await;
        runs["results"].as_array()?.iter().find(|r| r["state"] == "fired").cloned()
    })
    .await;
    let _ = app
        .http
        .patch(app.url(&format!("/api/v1/schedules/{id}")))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("pause");
    let job = app.get_json(&format!("/api/v1/jobs/{}", run["job_id"].as_i64().expect("job"))).await;
    assert_eq!(
        (job["source"].as_str(), job["template"].as_str(), job["limit"].as_str()),
        (Some("aap"), Some("Patch servers"), Some("web-01"))
    );
    let linked = app
        .count(&format!(
            "select count(*) from jobs where schedule_run_id = {}",
            run["id"].as_i64().expect("run")
        ))
        .await;
    assert_eq!(linked, 1, "the controller's job records its run");
}
