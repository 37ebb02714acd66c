//! The ingest path and the read API, against a real PostgreSQL over real HTTP.

mod common;

use std::io::Write;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn ingested_events_read_back_in_order_with_hosts_stdout_and_history() {
    let app = spawn_app().await;
    let mut evs = vec![
        json!({"counter": 1, "event": "playbook_on_start", "created": "2026-11-23T10:00:00Z", "stdout": ""}),
        json!({"counter": 2, "event": "playbook_on_play_start", "stdout": "PLAY [site] ****",
               "event_data": {"play": "site"}}),
        json!({"counter": 3, "event": "playbook_on_task_start", "stdout": "TASK [patch] ****",
               "event_data": {"play": "site", "task": "patch"}}),
        json!({"counter": 4, "event": "runner_on_ok", "stdout": "\u{1b}[0;33mchanged: [web-01]\u{1b}[0m",
               "event_data": {"host": "web-01", "task": "patch", "res": {"changed": true}}}),
        json!({"counter": 5, "event": "runner_on_failed", "stdout": "\u{1b}[0;31mfatal: [web-02]: FAILED!\u{1b}[0m",
               "event_data": {"host": "web-02", "task": "patch", "res": {"msg": "boom"}}}),
        json!({"counter": 6, "event": "runner_on_unreachable", "stdout": "fatal: [web-03]: UNREACHABLE!",
               "event_data": {"host": "web-03", "task": "patch"}}),
    ];
    let body = json!({"source": "aap", "job": {"external_id": 26, "name": "Patch Group-1", "template": "patch",
        "inventory": "prod", "launched_by": "alice", "limit": "web-0*"}, "events": evs.clone()});
    let r = app.ingest_ok(&body).await;
    assert_eq!(r["accepted"], 6);
    assert_eq!(r["duplicates"], 0);
    let id = r["job_id"].as_i64().expect("job id");

    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "running");
    assert_eq!(job["source"], "aap");
    assert_eq!(job["external_id"], "26");
    assert_eq!(job["template"], "patch");
    assert_eq!(job["launched_by"], "alice");
    assert_eq!(job["limit"], "web-0*");
    assert_eq!(job["current_task"], "patch");
    assert_eq!(job["current_play"], "site");
    assert_eq!(job["hosts"], json!({"ok": 0, "changed": 1, "failed": 1, "skipped": 0, "unreachable": 1}));
    assert_eq!(job["started"], "2026-11-23T10:00:00Z");
    assert!(job["elapsed"].as_f64().is_some(), "a running job's elapsed ticks");

    evs = vec![json!({"counter": 7, "event": "playbook_on_stats", "created": "2026-11-23T10:05:00Z",
        "event_data": {"ok": {"web-01": 2, "web-02": 1}, "changed": {"web-01": 1}, "failures": {"web-02": 1},
                       "dark": {"web-03": 1}, "skipped": {}, "rescued": {}, "ignored": {}}})];
    app.ingest_ok(&json!({"source": "aap", "job": {"external_id": "26"}, "events": evs})).await;
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "failures in playbook_on_stats fail the job");
    assert_eq!(job["finished"], "2026-11-23T10:05:00Z");
    assert_eq!(job["elapsed"], 300.0);
    assert_eq!(job["name"], "Patch Group-1", "fields absent from a later batch are kept");

    let hosts = app.get_json(&format!("/api/v1/jobs/{id}/hosts")).await;
    let by_host: Vec<(String, String, i64)> = hosts["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap_or("").into(),
                h["status"].as_str().unwrap_or("").into(),
                h["ok"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        by_host,
        vec![
            ("web-01".into(), "changed".into(), 2),
            ("web-02".into(), "failed".into(), 1),
            ("web-03".into(), "unreachable".into(), 0)
        ]
    );

    let txt = app.get(&format!("/api/v1/jobs/{id}/stdout?format=txt")).await.text().await.expect("txt");
    assert_eq!(
        txt,
        "PLAY [site] ****\nTASK [patch] ****\nchanged: [web-01]\nfatal: [web-02]: FAILED!\nfatal: [web-03]: UNREACHABLE!\n"
    );
    let ansi = app.get(&format!("/api/v1/jobs/{id}/stdout?format=ansi")).await.text().await.expect("ansi");
    assert!(ansi.contains("\u{1b}[0;31mfatal: [web-02]"));

    let history = app.get_json(&format!("/api/v1/jobs/{id}/history")).await;
    let statuses: Vec<&str> = history["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, vec!["new", "running", "failed"]);
    assert_eq!(history["results"][2]["by"], "event playbook_on_stats");

    let page = app.get_json(&format!("/api/v1/jobs/{id}/events?after_counter=2&limit=3")).await;
    let counters: Vec<i64> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["counter"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(counters, vec![3, 4, 5]);
    assert_eq!(page["count"], 7);
    assert_eq!(page["next"], format!("/api/v1/jobs/{id}/events?after_counter=5&limit=3"));
    assert_eq!(page["results"][1]["host"], "web-01");
    assert_eq!(page["results"][1]["changed"], true);
    assert_eq!(page["results"][2]["failed"], true);
}

#[tokio::test]
async fn duplicates_and_shuffled_batches_are_stored_once_in_counter_order() {
    let app = spawn_app().await;
    let all = events(1, 200);
    // Out of order: the second half first, then overlapping and repeated batches.
    let r = app.ingest_ok(&batch("7", all[100..].to_vec())).await;
    assert_eq!((r["accepted"].as_i64(), r["duplicates"].as_i64()), (Some(100), Some(0)));
    let r = app.ingest_ok(&batch("7", all[50..150].to_vec())).await;
    assert_eq!((r["accepted"].as_i64(), r["duplicates"].as_i64()), (Some(50), Some(50)));
    let mut shuffled: Vec<Value> = all[..50].iter().rev().cloned().collect();
    shuffled.push(all[3].clone());
    let r = app.ingest_ok(&batch("7", shuffled)).await;
    assert_eq!(
        (r["accepted"].as_i64(), r["duplicates"].as_i64()),
        (Some(50), Some(1)),
        "a repeat within a batch counts"
    );
    let r = app.ingest_ok(&batch("7", all.clone())).await;
    assert_eq!((r["accepted"].as_i64(), r["duplicates"].as_i64()), (Some(0), Some(200)));

    let id = r["job_id"].as_i64().expect("id");
    assert_eq!(app.count(&format!("select count(*) from job_events where job_id = {id}")).await, 200);
    // Rolling per-host counts count each event once.
    assert_eq!(app.count(&format!("select sum(ok)::bigint from job_hosts where job_id = {id}")).await, 200);
    let txt = app.get(&format!("/api/v1/jobs/{id}/stdout")).await.text().await.expect("txt");
    let lines: Vec<String> = txt.lines().map(str::to_string).collect();
    let expected: Vec<String> = (1..=200).map(|c| format!("ok: [host-{}] => line {c}", c % 7)).collect();
    assert_eq!(lines, expected);
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["event_count"], 200);
    assert_eq!(job["cursor"], "200", "cursors are arrival order without gaps");
    // Batches of an existing job use up no job ids: the next job gets the next id.
    let next = app.ingest_ok(&batch("8", events(1, 1))).await;
    assert_eq!(next["job_id"].as_i64(), Some(id + 1));
}

#[tokio::test]
async fn status_given_by_the_source_wins_over_events() {
    let app = spawn_app().await;
    let r = app
        .ingest_ok(&json!({"source": "aap", "job": {"external_id": "9", "status": "pending"}, "events": []}))
        .await;
    let id = r["job_id"].as_i64().expect("id");
    app.ingest_ok(&json!({"source": "aap", "job": {"external_id": "9", "status": "canceled"},
        "events": [{"counter": 1, "event": "playbook_on_start"}]}))
        .await;
    app.ingest_ok(&json!({"source": "aap", "job": {"external_id": "9"},
        "events": [{"counter": 2, "event": "playbook_on_stats", "event_data": {"ok": {"a": 1}}}]}))
        .await;
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "canceled");
    assert!(job["finished"].is_string());
    let history = app.get_json(&format!("/api/v1/jobs/{id}/history")).await;
    let statuses: Vec<&str> = history["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, vec!["new", "pending", "canceled"]);
    // The same external id from another source is another job.
    let other = app.ingest_ok(&json!({"source": "local", "job": {"external_id": "9"}, "events": []})).await;
    assert_ne!(other["job_id"].as_i64(), Some(id));
}

#[tokio::test]
async fn gzip_bodies_and_hostile_strings_are_accepted_whole() {
    let app = spawn_app().await;
    let big_stdout: String = "x".repeat(3 * 1024 * 1024);
    let body = json!({"source": "local", "job": {"external_id": "g1", "name": "<script>alert(1)</script>'; drop table jobs;--"},
    "events": [
        {"counter": 1, "event": "runner_on_ok", "stdout": big_stdout, "event_data": {"host": "h\u{0}1", "res": {"msg": "nul \u{0} inside"}}},
        {"counter": 2, "event": "verbose", "stdout": "ünïcödé ✓ \u{7f}"}
    ]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.to_string().as_bytes()).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    let resp = app
        .http
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(INGEST_TOKEN)
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(compressed)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    let id = app.count("select id from jobs where external_id = 'g1'").await;
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["name"], "<script>alert(1)</script>'; drop table jobs;--");
    let page = app.get_json(&format!("/api/v1/jobs/{id}/events")).await;
    assert_eq!(
        page["results"][0]["stdout"].as_str().map(str::len),
        Some(3 * 1024 * 1024),
        "stdout kept whole"
    );
    assert_eq!(page["results"][0]["host"], "h\u{fffd}1", "NUL, which PostgreSQL cannot store, is replaced");
    assert_eq!(page["results"][1]["stdout"], "ünïcödé ✓ \u{7f}");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_in_the_error_shape_and_stores_nothing() {
    let app = spawn_app_with(|c| c.ingest_max_bytes = 64 * 1024).await;
    let post = |body: Vec<u8>, token: Option<&str>| {
        let mut req = app.http.post(app.url("/api/v1/ingest/events")).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let good = batch("b1", events(1, 3)).to_string().into_bytes();

    let detail = assert_error(post(good.clone(), None).await.expect("send"), 401).await;
    assert!(detail.contains("ingest token"), "{detail}");
    assert_error(post(good.clone(), Some("wrong")).await.expect("send"), 401).await;
    assert_error(post(good.clone(), Some(ADMIN_KEY)).await.expect("send"), 401).await;

    let detail = assert_error(
        post(b"{\"source\": \"local\", ".to_vec(), Some(INGEST_TOKEN)).await.expect("send"),
        400,
    )
    .await;
    assert!(detail.contains("not valid JSON"), "{detail}");
    assert_error(post(b"[]".to_vec(), Some(INGEST_TOKEN)).await.expect("send"), 422).await;
    assert_error(
        post(b"{\"source\": 5, \"job\": {\"external_id\": \"1\"}}".to_vec(), Some(INGEST_TOKEN))
            .await
            .expect("send"),
        422,
    )
    .await;
    assert_error(
        post(br#"{"source": "", "job": {"external_id": "1"}}"#.to_vec(), Some(INGEST_TOKEN))
            .await
            .expect("send"),
        422,
    )
    .await;
    assert_error(
        post(
            br#"{"source": "x", "job": {"external_id": "1", "status": "exploded"}}"#.to_vec(),
            Some(INGEST_TOKEN),
        )
        .await
        .expect("send"),
        422,
    )
    .await;

    // One bad event in a batch: nothing of the batch is stored.
    let mut evs = events(1, 5);
    evs[3]["event_data"] = json!("not an object");
    let detail = assert_error(app.ingest(&batch("b1", evs)).await, 422).await;
    assert!(detail.contains("events[3]"), "the error names the event: {detail}");
    let mut evs = events(1, 5);
    evs[1]["counter"] = json!(-4);
    assert_error(app.ingest(&batch("b1", evs)).await, 422).await;
    let mut evs = events(1, 5);
    evs[2]["created"] = json!("yesterday");
    assert_error(app.ingest(&batch("b1", evs)).await, 422).await;

    let oversize =
        batch("b1", vec![json!({"counter": 1, "event": "verbose", "stdout": "y".repeat(100 * 1024)})]);
    assert_error(app.ingest(&oversize).await, 413).await;
    // A small gzip that unpacks beyond the limit is refused the same way.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(oversize.to_string().as_bytes()).expect("gzip");
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 64 * 1024);
    let resp = app
        .http
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(INGEST_TOKEN)
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .expect("send");
    assert_error(resp, 413).await;
    let resp = app
        .http
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(INGEST_TOKEN)
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .expect("send");
    assert_error(resp, 400).await;
    let resp = app
        .http
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(INGEST_TOKEN)
        .header("content-encoding", "br")
        .body(good.clone())
        .send()
        .await
        .expect("send");
    assert_error(resp, 415).await;

    assert_eq!(app.count("select count(*) from jobs").await, 0, "no job half-written");
    assert_eq!(app.count("select count(*) from job_events").await, 0, "no event stored");

    // The read side: keys, unknown ids, bad parameters.
    assert_error(app.http.get(app.url("/api/v1/jobs")).send().await.expect("send"), 401).await;
    assert_error(
        app.http.get(app.url("/api/v1/jobs")).bearer_auth("pdk_nope").send().await.expect("send"),
        401,
    )
    .await;
    assert_error(
        app.http.get(app.url("/api/v1/jobs")).bearer_auth(INGEST_TOKEN).send().await.expect("send"),
        401,
    )
    .await;
    let detail = assert_error(app.get("/api/v1/jobs/424242").await, 404).await;
    assert!(detail.contains("424242"));
    for path in [
        "/api/v1/jobs/424242/events",
        "/api/v1/jobs/424242/hosts",
        "/api/v1/jobs/424242/stdout",
        "/api/v1/jobs/424242/history",
        "/api/v1/jobs/424242/stream",
    ] {
        assert_error(app.get(path).await, 404).await;
    }
    assert_error(app.get("/api/v1/jobs/abc").await, 400).await;
    assert_error(app.get("/api/v1/jobs?page=0").await, 400).await;
    assert_error(app.get("/api/v1/jobs?page_size=5000").await, 400).await;
    assert_error(app.get("/api/v1/jobs?status=exploded").await, 400).await;
    assert_error(app.get("/api/v1/jobs?order_by=password").await, 400).await;
    assert_error(app.get("/api/v1/jobs?started_after=tuesday").await, 400).await;
    assert_error(app.get("/api/v1/no-such-thing").await, 404).await;
    assert_error(
        app.http.delete(app.url("/api/v1/jobs")).bearer_auth(ADMIN_KEY).send().await.expect("send"),
        405,
    )
    .await;
    app.ingest_ok(&batch("b2", events(1, 1))).await;
    let id = app.count("select id from jobs").await;
    assert_error(app.get(&format!("/api/v1/jobs/{id}/stdout?format=html")).await, 400).await;
    assert_error(app.get(&format!("/api/v1/jobs/{id}/events?limit=0")).await, 400).await;
    assert_error(app.get(&format!("/api/v1/jobs/{id}/stream?cursor=abc")).await, 400).await;
}

#[tokio::test]
async fn the_job_list_filters_orders_and_pages() {
    let app = spawn_app().await;
    let jobs = [
        ("1", "aap", "patch", "prod", "alice", "successful", "2026-11-01T10:00:00Z"),
        ("2", "aap", "patch", "stage", "bob", "failed", "2026-11-02T10:00:00Z"),
        ("3", "local", "hello", "prod", "alice", "running", "2026-11-03T10:00:00Z"),
        ("4", "aap", "retire", "prod", "carol", "failed", "2026-11-04T10:00:00Z"),
        ("5", "local", "hello_world", "lab", "bob", "successful", "2026-11-05T10:00:00Z"),
    ];
    for (ext, source, template, inventory, who, status, started) in jobs {
        app.ingest_ok(
            &json!({"source": source, "job": {"external_id": ext, "name": format!("{template} run {ext}"),
            "template": template, "inventory": inventory, "launched_by": who, "status": status},
            "events": [{"counter": 1, "event": "playbook_on_start", "created": started}]}),
        )
        .await;
    }
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|j| j["external_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let all = app.get_json("/api/v1/jobs").await;
    assert_eq!(all["count"], 5);
    assert_eq!(ids(&all), vec!["5", "4", "3", "2", "1"], "newest first");
    assert_eq!(ids(&app.get_json("/api/v1/jobs?status=failed").await), vec!["4", "2"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?status=failed,running").await), vec!["4", "3", "2"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?template=patch").await), vec!["2", "1"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?inventory=prod&launched_by=alice").await), vec!["3", "1"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?source=local").await), vec!["5", "3"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?external_id=4").await), vec!["4"]);
    assert_eq!(
        ids(&app
            .get_json("/api/v1/jobs?started_after=2026-11-02T00:00:00Z&started_before=2026-11-04T00:00:00Z")
            .await),
        vec!["3", "2"]
    );
    assert_eq!(ids(&app.get_json("/api/v1/jobs?q=HELLO").await), vec!["5", "3"], "quick search ignores case");
    assert_eq!(ids(&app.get_json("/api/v1/jobs?q=hello_").await), vec!["5"], "_ is literal, not a wildcard");
    assert_eq!(ids(&app.get_json("/api/v1/jobs?q=%25").await), Vec::<String>::new(), "% is literal");
    assert_eq!(ids(&app.get_json("/api/v1/jobs?q=carol").await), vec!["4"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?order_by=started").await), vec!["1", "2", "3", "4", "5"]);
    assert_eq!(ids(&app.get_json("/api/v1/jobs?order_by=-name").await)[0], "4");

    let p1 = app.get_json("/api/v1/jobs?page_size=2&status=successful,failed,running").await;
    assert_eq!(ids(&p1), vec!["5", "4"]);
    assert_eq!(p1["previous"], Value::Null);
    let next = p1["next"].as_str().expect("next link").to_string();
    let p2 = app.get_json(&next).await;
    assert_eq!(ids(&p2), vec!["3", "2"]);
    let p3 = app.get_json(p2["next"].as_str().expect("next")).await;
    assert_eq!(ids(&p3), vec!["1"]);
    assert_eq!(p3["next"], Value::Null);
    // `next` is a keyset link; `previous` goes back the same way.
    assert!(next.contains("page_after="), "{next}");
    let back = app.get_json(p3["previous"].as_str().expect("previous")).await;
    assert_eq!(ids(&back), vec!["3", "2"]);
    let by_number = app.get_json("/api/v1/jobs?page=2&page_size=2&status=successful,failed,running").await;
    assert_eq!(ids(&by_number), vec!["3", "2"], "page=N keeps working");
    assert!(by_number["previous"].as_str().is_some_and(|p| p.contains("page=1")));
    assert_eq!(all["count_exact"], true);
}

/// Every order, both ways, with nulls and ties: walking `next` from the first page gives the
/// same jobs as one long page, and walking `previous` back from the last page gives them in
/// reverse; the count stays exact and the same on every page.
#[tokio::test]
async fn keyset_pages_walk_every_order_both_ways_through_nulls_and_ties() {
    let app = spawn_app().await;
    let db = app.db().await;
    // 23 jobs: names in ties, some never started, unfinished, without a template.
    db.batch_execute(
        "insert into jobs (source, external_id, name, template, status, created, modified, started, finished, elapsed)
         select 'local', 'k' || g, 'job ' || (g % 4), case when g % 5 = 0 then null else 'tpl-' || (g % 3) end,
                case when g % 6 = 0 then 'new' when g % 7 = 0 then 'running' else 'successful' end,
                now() - make_interval(mins => g), now() - make_interval(mins => g % 9),
                case when g % 6 = 0 then null else now() - make_interval(mins => g % 11) end,
                case when g % 6 = 0 or g % 7 = 0 then null else now() - make_interval(mins => g % 5) end,
                case when g % 6 = 0 or g % 7 = 0 then null else (g % 4) * 10 end
           from generate_series(1, 23) g",
    )
    .await
    .expect("jobs");
    let ids = |v: &Value| -> Vec<i64> {
        v["results"].as_array().expect("results").iter().map(|j| j["id"].as_i64().expect("id")).collect()
    };
    for field in ["id", "started", "finished", "name", "status", "elapsed", "template", "modified"] {
        for order in [field.to_string(), format!("-{field}")] {
            let whole = ids(&app.get_json(&format!("/api/v1/jobs?page_size=200&order_by={order}")).await);
            assert_eq!(whole.len(), 23);
            let mut walked = Vec::new();
            let mut page = app.get_json(&format!("/api/v1/jobs?page_size=4&order_by={order}")).await;
            let last = loop {
                assert_eq!(page["count"], 23, "{order}");
                assert_eq!(page["count_exact"], true);
                walked.extend(ids(&page));
                match page["next"].as_str() {
                    Some(next) => page = app.get_json(next).await,
                    None => break page,
                }
                assert!(walked.len() <= 23, "{order}: next never ends");
            };
            assert_eq!(walked, whole, "{order}: forward by next links");
            let mut back: Vec<i64> = ids(&last).into_iter().rev().collect();
            let mut page = last;
            while let Some(previous) = page["previous"].as_str().map(str::to_string) {
                page = app.get_json(&previous).await;
                back.extend(ids(&page).into_iter().rev());
                assert!(back.len() <= 23, "{order}: previous never ends");
            }
            back.reverse();
            assert_eq!(back, whole, "{order}: backward by previous links");
        }
    }
    let gone = app.get("/api/v1/jobs?page_after=999999").await;
    assert!(assert_error(gone, 400).await.contains("no job 999999"));
    let both = app.get("/api/v1/jobs?page_after=1&page_before=2").await;
    assert_error(both, 400).await;
    let mixed = app.get("/api/v1/jobs?page_after=1&page=3").await;
    assert_error(mixed, 400).await;
}

/// Above 20 000 matching jobs the count is the planner's estimate, flagged; a filter matching
/// few is counted exactly. The quick search finds a word through the trigram index.
#[tokio::test]
async fn a_large_count_is_an_estimate_and_says_so() {
    let app = spawn_app().await;
    let db = app.db().await;
    db.batch_execute(
        "insert into jobs (source, external_id, name, template, status, \"limit\")
         select 'local', 'e' || g, 'job ' || g, 'tpl-' || (g % 10), 'successful',
                case when g % 1000 = 7 then 'web-rare' end
           from generate_series(1, 30000) g;
         analyze jobs",
    )
    .await
    .expect("jobs");
    let all = app.get_json("/api/v1/jobs?page_size=1").await;
    assert_eq!(all["count_exact"], false);
    let n = all["count"].as_i64().expect("count");
    assert!((24_000..=36_000).contains(&n), "estimate {n} near 30000");
    let few = app.get_json("/api/v1/jobs?template=tpl-7&q=web-rare").await;
    assert_eq!(few["count_exact"], true);
    assert_eq!(few["count"], 30);
    // The server's own search expression is the one the index holds (a seq scan is cheaper on
    // 30 000 small rows, so it is switched off to see whether the index can answer).
    db.batch_execute("set enable_seqscan = off").await.expect("set");
    let plan: String = db
        .query(
            &format!("explain select id from jobs where {} ilike '%web-rare%'", bff::jobs::read::SEARCH_TEXT),
            &[],
        )
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("jobs_search"), "the quick search uses the trigram index: {plan}");
}

#[tokio::test]
async fn keys_roles_and_sessions() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "ci", "role": "viewer"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.expect("json");
    let viewer = created["secret"].as_str().expect("secret").to_string();
    assert!(
        app.count("select count(*) from api_keys where key_hash like 'pdk_%'").await == 0,
        "only hashes are stored"
    );
    // A viewer reads, but cannot manage keys.
    let resp = app.http.get(app.url("/api/v1/jobs")).bearer_auth(&viewer).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let resp = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&viewer)
        .json(&json!({"name": "x", "role": "admin"}))
        .send()
        .await
        .expect("send");
    assert_error(resp, 403).await;

    // A session cookie in exchange for the key; HttpOnly, and the key is not in it.
    let resp =
        app.http.post(app.url("/api/v1/session")).json(&json!({"key": viewer})).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite") && !cookie.contains(&viewer));
    let pair = cookie.split(';').next().expect("pair").to_string();
    let me: Value = app
        .http
        .get(app.url("/api/v1/session"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "viewer");
    let resp =
        app.http.post(app.url("/api/v1/session")).json(&json!({"key": "wrong"})).send().await.expect("send");
    assert_error(resp, 401).await;
    let resp = app
        .http
        .post(app.url("/api/v1/session"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_error(resp, 400).await;

    // Revoking the key ends its sessions.
    let kid = created["id"].as_i64().expect("id");
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{kid}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 204);
    assert_error(
        app.http.get(app.url("/api/v1/session")).header("cookie", &pair).send().await.expect("send"),
        401,
    )
    .await;
    assert_error(app.http.get(app.url("/api/v1/jobs")).bearer_auth(&viewer).send().await.expect("send"), 401)
        .await;
}

#[tokio::test]
async fn events_filter_by_host_and_brief_events_drop_event_data_but_keep_timing() {
    let app = spawn_app().await;
    let mut evs = events(1, 21);
    evs[3]["event_data"]["start"] = json!("2026-11-23T10:00:01.000000");
    evs[3]["event_data"]["end"] = json!("2026-11-23T10:00:03.500000");
    evs[3]["event_data"]["duration"] = json!(2.5);
    let r = app.ingest_ok(&batch("brief", evs)).await;
    let id = r["job_id"].as_i64().expect("job id");

    // host-3 has counters 3, 10, 17: a host's drill-down pages through only its events.
    let page = app.get_json(&format!("/api/v1/jobs/{id}/events?host=host-3&limit=2")).await;
    let counters = |p: &Value| -> Vec<i64> {
        p["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|e| e["counter"].as_i64().unwrap_or(-1))
            .collect()
    };
    assert_eq!(counters(&page), [3, 10]);
    assert_eq!(page["count"], 3, "count is the host's events");
    assert_eq!(page["results"][0]["event_data"]["res"]["msg"], "x", "full events keep event_data");
    let next = page["next"].as_str().expect("a next page");
    assert!(next.contains("host=host-3"), "next keeps the host: {next}");
    assert_eq!(counters(&app.get_json(next).await), [17]);

    let brief = app.get_json(&format!("/api/v1/jobs/{id}/events?brief=true&limit=5000")).await;
    let results = brief["results"].as_array().expect("results");
    assert_eq!(results.len(), 21, "brief pages may be longer than 1000");
    assert!(brief["next"].is_null());
    assert_eq!(results[0]["event_data"], json!({}), "brief events drop event_data");
    assert_eq!(results[0]["stdout"], "\u{1b}[0;32mok: [host-1] => line 1\u{1b}[0m", "and keep stdout");
    assert_eq!(
        results[3]["event_data"],
        json!({"start": "2026-11-23T10:00:01.000000", "end": "2026-11-23T10:00:03.500000", "duration": 2.5}),
        "but keep the timing"
    );

    let detail = assert_error(app.get(&format!("/api/v1/jobs/{id}/events?limit=5000")).await, 400).await;
    assert!(detail.contains("1000"), "{detail}");
    assert_error(app.get(&format!("/api/v1/jobs/{id}/events?brief=true&limit=10001")).await, 400).await;
}

/// Overlapping batches of new jobs, all posted at once: each job gets one row, each event is
/// stored once under a gap-free `seq`, the hosts' counts hold each event once, and what the
/// answers say (accepted + duplicates) adds up to what was sent.
#[tokio::test]
async fn overlapping_batches_of_new_jobs_posted_at_once_store_each_event_once() {
    let app = spawn_app().await;
    let jobs = ["par-a", "par-b", "par-c"];
    let mut bodies = Vec::new();
    let mut sent = 0i64;
    for job in jobs {
        // 12 windows of 100 counters over 1..=595, each overlapping the next by 55, shuffled,
        // and every fifth window repeating an event inside itself.
        for w in 0..12i64 {
            let mut evs = events(w * 45 + 1, 100);
            evs.reverse();
            evs.rotate_left((w * 7) as usize % 100);
            if w % 5 == 0 {
                evs.push(evs[3].clone());
            }
            sent += evs.len() as i64;
            bodies.push(batch(job, evs));
        }
    }
    let answers = futures_util::future::join_all(bodies.iter().map(|b| app.ingest_ok(b))).await;
    let accepted: i64 = answers.iter().map(|a| a["accepted"].as_i64().expect("accepted")).sum();
    let duplicates: i64 = answers.iter().map(|a| a["duplicates"].as_i64().expect("duplicates")).sum();
    assert_eq!(accepted, 3 * 595, "each event accepted once");
    assert_eq!(accepted + duplicates, sent, "accepted + duplicates = sent");
    let db = app.db().await;
    for job in jobs {
        let rows = db
            .query("select id, event_count, last_seq from jobs where external_id = $1", &[&job])
            .await
            .expect("job");
        assert_eq!(rows.len(), 1, "one row for {job}");
        let (id, count, last_seq): (i64, i64, i64) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        assert_eq!((count, last_seq), (595, 595));
        let r = db
            .query_one(
                "select count(*), count(distinct counter), min(seq), max(seq), count(distinct seq)
                   from job_events where job_id = $1",
                &[&id],
            )
            .await
            .expect("events");
        let got: [i64; 5] = [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)];
        assert_eq!(got, [595, 595, 1, 595, 595], "{job}: count, distinct counters, seq 1..=595 without gaps");
        // runner_on_ok per host, each once: host-N gets the counters ≡ N (mod 7).
        let ok: i64 = db
            .query_one("select sum(ok)::bigint from job_hosts where job_id = $1", &[&id])
            .await
            .expect("hosts")
            .get(0);
        assert_eq!(ok, 595, "{job}: the hosts' counts hold each event once");
    }
}

/// A write that began before a batch but reached the row after it (the engine recording a
/// cancel while the plugin's last batch goes in) never moves `modified` back: the pages keep
/// the newest copy of a job by `modified`, so an older stamp on the newer state left them on
/// "running" for good.
#[tokio::test]
async fn a_write_that_started_before_a_batch_never_moves_modified_back() {
    let app = spawn_app().await;
    let r = app.ingest_ok(&batch("stamp", events(1, 3))).await;
    let id = r["job_id"].as_i64().expect("job id");
    let modified = |job: &Value| -> chrono::DateTime<chrono::Utc> {
        job["modified"].as_str().expect("modified").parse().expect("a time")
    };

    // Its transaction, and so PostgreSQL's now(), starts here.
    let mut db = app.state.pool.get().await.expect("pool");
    let tx = db.transaction().await.expect("begin");
    tx.query_one("select 1", &[]).await.expect("statement");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    app.ingest_ok(&batch("stamp", events(4, 3))).await;
    let after_batch = modified(&app.get_json(&format!("/api/v1/jobs/{id}")).await);

    let moved =
        bff::writer::set_status(&tx, id, shared::JobStatus::Canceled, "test", Some("canceled by test"))
            .await
            .expect("set status");
    assert!(moved);
    tx.commit().await.expect("commit");
    let job = app.get_json(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "canceled");
    assert!(
        modified(&job) >= after_batch,
        "the cancel is stamped {} but the batch before it {after_batch}",
        job["modified"]
    );
}

/// Long event data is stored compressed with lz4 (migration 0016), and reads back as sent.
#[tokio::test]
async fn long_event_data_is_stored_with_lz4_and_reads_back_whole() {
    let app = spawn_app().await;
    let stdout: String = (0..400).map(|i| format!("line {i} of the task's output\n")).collect();
    let mut ev = event(1, "runner_on_ok", "web-01", "build");
    ev["event_data"]["res"]["stdout"] = json!(stdout);
    let r = app.ingest_ok(&batch("lz4", vec![ev])).await;
    let id = r["job_id"].as_i64().expect("job id");
    let db = app.db().await;
    let method: Option<String> = db
        .query_one("select pg_column_compression(event_data) from job_events where job_id = $1", &[&id])
        .await
        .expect("compression")
        .get(0);
    assert_eq!(method.as_deref(), Some("lz4"));
    let events = app.get_json(&format!("/api/v1/jobs/{id}/events")).await;
    let data = &events["results"][0]["event_data"];
    assert_eq!(data["res"]["stdout"], json!(stdout), "{events}");
}

/// A batch whose rows take more than one chunk of the COPY (`infra::copy::CHUNK`) is stored
/// whole: every event once, in counter order, its data as sent.
#[tokio::test]
async fn a_batch_larger_than_a_copy_chunk_is_stored_whole_and_in_order() {
    let app = spawn_app().await;
    let line = "x".repeat(100);
    let per_event = 8 * 1024;
    let n = 3 * bff::infra::copy::CHUNK / per_event + 1;
    let stdout: String = (0..per_event / line.len()).map(|i| format!("{i:04} {line}\n")).collect();
    let evs: Vec<Value> = (1..=n as i64)
        .map(|c| {
            let mut ev = event(c, "runner_on_ok", &format!("web-{:02}", c % 7), "build");
            ev["event_data"]["res"]["stdout"] = json!(format!("{c}\n{stdout}"));
            ev
        })
        .collect();
    let r = app.ingest_ok(&batch("chunks", evs)).await;
    assert_eq!(r["accepted"], n as i64, "{r}");
    let id = r["job_id"].as_i64().expect("job id");
    let db = app.db().await;
    let rows = db
        .query(
            "select seq, counter, event_data->'res'->>'stdout' from job_events where job_id = $1 order by seq",
            &[&id],
        )
        .await
        .expect("events");
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate() {
        let (seq, counter, out): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!((seq, counter), (i as i64 + 1, i as i64 + 1));
        assert_eq!(out, format!("{counter}\n{stdout}"), "event {counter} reads back whole");
    }
}

/// The row's hosts' outcome counts move with each batch (a host counted once, by its worst
/// outcome) and always equal a full count of its hosts: through hosts that change outcome,
/// re-sent events, Ansible's final summary (which replaces a host's counts) and events after it.
#[tokio::test]
async fn the_row_counts_its_hosts_outcomes_across_batches() {
    let app = spawn_app().await;
    let db = app.db().await;
    let on = |counter: i64, kind: &str, host: &str, changed: bool| {
        let mut ev = event(counter, kind, host, "patch");
        ev["event_data"]["res"]["changed"] = json!(changed);
        ev
    };
    let stats = |counter: i64| {
        let mut ev = event(counter, "playbook_on_stats", "", "");
        ev["event_data"] = json!({
            "ok": {"h1": 2, "h2": 3, "h6": 1},
            "changed": {"h2": 1},
            "failures": {"h1": 1},
            "dark": {"h4": 1},
            "skipped": {"h5": 1, "h6": 1}
        });
        ev
    };
    let batches: Vec<Vec<Value>> = vec![
        vec![
            on(1, "runner_on_ok", "h1", false),
            on(2, "runner_on_skipped", "h2", false),
            on(3, "runner_on_ok", "h3", true),
            on(4, "runner_on_unreachable", "h4", false),
        ],
        // h1 fails, h2 goes from skipped to ok, h5 is new; counter 3 again counts once.
        vec![
            on(3, "runner_on_ok", "h3", true),
            on(5, "runner_on_failed", "h1", false),
            on(6, "runner_on_ok", "h2", false),
            on(7, "runner_on_skipped", "h5", false),
        ],
        // h1 stays failed after an ok, h2 changes, h3 fails, h4 answers at last.
        vec![
            on(8, "runner_on_ok", "h1", false),
            on(9, "runner_on_ok", "h2", true),
            on(10, "runner_on_failed", "h3", false),
            on(11, "runner_on_ok", "h4", false),
        ],
        vec![stats(12)],
        // After the final summary a host's counts stay as it said.
        vec![on(13, "runner_on_failed", "h2", false), on(14, "runner_on_ok", "h7", false)],
    ];
    // failed, unreachable, changed, ok, skipped after each batch.
    let expected = [(0, 1, 1, 1, 1), (1, 1, 1, 1, 1), (2, 1, 1, 0, 1), (2, 1, 1, 1, 1), (2, 1, 1, 2, 1)];
    for (i, events) in batches.into_iter().enumerate() {
        let r = app.ingest_ok(&batch("outcomes", events)).await;
        let id = r["job_id"].as_i64().expect("job id");
        let row = db
            .query_one(
                "select hosts_failed, hosts_unreachable, hosts_changed, hosts_ok, hosts_skipped from jobs where id = $1",
                &[&id],
            )
            .await
            .expect("row");
        let full = db
            .query_one(
                "select count(*) filter (where failures > 0)::int,
                        count(*) filter (where failures = 0 and dark > 0)::int,
                        count(*) filter (where failures = 0 and dark = 0 and changed > 0)::int,
                        count(*) filter (where failures = 0 and dark = 0 and changed = 0 and ok > 0)::int,
                        count(*) filter (where failures = 0 and dark = 0 and changed = 0 and ok = 0 and skipped > 0)::int
                   from job_hosts where job_id = $1",
                &[&id],
            )
            .await
            .expect("full count");
        let of = |r: &tokio_postgres::Row| -> (i32, i32, i32, i32, i32) {
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
        };
        assert_eq!(of(&row), of(&full), "batch {}: the row's counts are its hosts'", i + 1);
        assert_eq!(of(&row), expected[i], "batch {}", i + 1);
    }
}
