//! `cargo xtask bench grid`: the job grid and the dashboard over many jobs. Fills the database
//! with jobs of a realistic spread (50 templates, 20 inventories, 30 users, two sources, eight
//! statuses, 90 days), times each of the grid's queries and the dashboard's 30-day figures at
//! 10k jobs, then grows the same table to 1M and times them again: p50 and p95 of each, beside
//! the 10k figure, against the goals (30 ms for the grid, 200 ms for the dashboard).

use std::time::Instant;

use serde_json::Value;

/// The templates' names: ten kinds of work in five places.
const KINDS: [&str; 10] = [
    "patch-linux",
    "deploy-web",
    "retire-server",
    "backup-db",
    "rotate-certs",
    "restart-app",
    "provision-vm",
    "harden-ssh",
    "update-dns",
    "collect-facts",
];
const PLACES: [&str; 5] = ["prod", "stage", "dev", "dr", "lab"];

/// Adds jobs `from..=to` of the spread; ids grow with time, the newest ends now.
async fn fill(db: &tokio_postgres::Client, from: i64, to: i64, total: i64) {
    let kinds = KINDS.map(|k| format!("'{k}'")).join(",");
    let places = PLACES.map(|p| format!("'{p}'")).join(",");
    // Statuses by weight: 70 % successful, 14 % failed, 4 % canceled, 3 % error, and the rest
    // between new, pending, waiting and running (the newest jobs, as in a real system).
    let sql = format!(
        "insert into jobs (source, external_id, name, template, inventory, launched_by, \"limit\",
                           status, created, modified, started, finished, elapsed,
                           hosts_ok, hosts_changed, hosts_failed, plays, tasks, event_count, last_seq)
         select case when h % 10 < 7 then 'local' else 'aap-prod' end,
                'grid-' || g,
                t || ' #' || g,
                t,
                'inventory-' || lpad((h2 % 20 + 1)::text, 2, '0') || '.ini',
                'user' || lpad((h3 % 30 + 1)::text, 2, '0'),
                case when h3 % 3 = 0 then 'web-' || lpad((h2 % 400 + 1)::text, 3, '0') end,
                st, at, at + elapsed * interval '1 second',
                case when st not in ('new', 'pending') then at end,
                case when st in ('successful', 'failed', 'error', 'canceled') then at + elapsed * interval '1 second' end,
                case when st in ('successful', 'failed', 'error', 'canceled') then elapsed end,
                h % 40, h2 % 7, case when st = 'failed' then 1 + h % 3 else 0 end, 1 + h % 3, 5 + h % 40,
                80 + h % 900, 80 + h % 900
           from (select g, h, h2, h3,
                        (array[{kinds}])[h % 10 + 1] || '-' || (array[{places}])[h2 % 5 + 1] as t,
                        case when g > {total} - 40 then (array['new','pending','waiting','running'])[g % 4 + 1]
                             when h % 100 < 70 then 'successful' when h % 100 < 84 then 'failed'
                             when h % 100 < 88 then 'canceled' when h % 100 < 91 then 'error'
                             when h % 100 < 94 then 'new' when h % 100 < 96 then 'pending'
                             when h % 100 < 98 then 'waiting' else 'running' end as st,
                        now() - interval '90 days' * (({total} - g)::double precision / {total}) as at,
                        20 + (h % 600)::double precision as elapsed
                   from (select g, (g * 2654435761) % 4294967291 as h, (g * 40503) % 65521 as h2,
                                (g * 69069) % 32749 as h3
                           from generate_series({from}::bigint, {to}::bigint) g) x) y"
    );
    db.batch_execute(&sql).await.expect("fill jobs");
    db.batch_execute("vacuum analyze jobs").await.expect("analyze");
}

/// What each timed query asks, varied per call so no answer is cached anywhere but PostgreSQL's
/// buffers: the i-th call's query string.
type Query = (&'static str, Box<dyn Fn(usize, &State) -> String>);

/// What the queries need from the data: a job id in the middle, a week's range.
struct State {
    middle_id: i64,
    week_start: String,
    week_end: String,
}

fn queries() -> Vec<Query> {
    let template = |i: usize| format!("{}-{}", KINDS[i % 10], PLACES[(i / 10) % 5]);
    let statuses = ["successful", "failed", "canceled", "error", "running"];
    let orders =
        ["-started", "started", "-finished", "name", "status", "-elapsed", "template", "-modified", "id"];
    let mut q: Vec<Query> = vec![
        ("first page", Box::new(|_, _| String::new())),
        ("status", Box::new(move |i, _| format!("status={}", statuses[i % statuses.len()]))),
        ("template", Box::new(move |i, _| format!("template={}", template(i)))),
        ("inventory", Box::new(|i, _| format!("inventory=inventory-{:02}.ini", i % 20 + 1))),
        ("launched_by", Box::new(|i, _| format!("launched_by=user{:02}", i % 30 + 1))),
        ("source", Box::new(|i, _| format!("source={}", ["local", "aap-prod"][i % 2]))),
        (
            "template+status",
            Box::new(move |i, _| format!("template={}&status={}", template(i * 7), statuses[i % 4])),
        ),
        (
            "date range (a week)",
            Box::new(|_, s| format!("started_after={}&started_before={}", s.week_start, s.week_end)),
        ),
        (
            "quick search q",
            Box::new(|i, _| {
                // A host in the limit, a template's part, a user: what people type.
                match i % 3 {
                    0 => format!("q=web-{:03}", i % 400 + 1),
                    1 => format!("q={}", ["retire", "certs", "harden", "dns-dr"][i % 4]),
                    _ => format!("q=user{:02}", i % 30 + 1),
                }
            }),
        ),
        ("page 40", Box::new(|_, _| "page=40".into())),
        // Ten anchors from the middle of the table towards its older half.
        (
            "deep page (keyset)",
            Box::new(|i, s| format!("page_after={}", s.middle_id - (i as i64 % 10) * (s.middle_id / 20))),
        ),
    ];
    for o in orders {
        q.push(("order_by", Box::new(move |_, _| format!("order_by={o}"))));
    }
    q
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// p50 and p95 in ms of `calls` GETs (after two unmeasured ones), and whether every count was
/// exact (when the answer says).
async fn time_one(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    calls: usize,
    path_of: &dyn Fn(usize) -> String,
) -> (f64, f64, Option<bool>) {
    let mut ms = Vec::new();
    let mut exact = None;
    for i in 0..calls + 2 {
        let path = path_of(i);
        let t = Instant::now();
        let r = http.get(format!("{base}{path}")).bearer_auth(key).send().await.expect("get");
        let status = r.status();
        let body = r.bytes().await.expect("body");
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            println!("      {path}: {status} {}", String::from_utf8_lossy(&body));
            return (f64::NAN, f64::NAN, None);
        }
        if i >= 2 {
            ms.push(took);
        }
        if let Some(e) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["count_exact"].as_bool())
        {
            exact = Some(exact.unwrap_or(true) && e);
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (percentile(&ms, 0.5), percentile(&ms, 0.95), exact)
}

/// Each query's label, p50, p95 and whether its counts were exact.
async fn time_all(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    state: &State,
    calls: usize,
) -> Vec<(String, f64, f64, Option<bool>)> {
    let mut out = Vec::new();
    for (label, q) in queries() {
        let label = if label == "order_by" { q(0, state) } else { label.to_string() };
        let path_of = |i: usize| {
            let qs = q(i, state);
            if qs.is_empty() {
                "/api/v1/jobs".to_string()
            } else {
                format!("/api/v1/jobs?{qs}")
            }
        };
        let (p50, p95, exact) = time_one(http, base, key, calls, &path_of).await;
        out.push((label, p50, p95, exact));
    }
    let (p50, p95, _) = time_one(http, base, key, calls, &|_| "/api/v1/stats?window=30d".into()).await;
    out.push(("stats window=30d".into(), p50, p95, None));
    out
}

async fn state_of(db: &tokio_postgres::Client) -> State {
    let row = db
        .query_one(
            "select (min(id) + max(id)) / 2,
                    to_char((now() - interval '40 days') at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char((now() - interval '33 days') at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
               from jobs",
            &[],
        )
        .await
        .expect("state");
    State { middle_id: row.get(0), week_start: row.get(1), week_end: row.get(2) }
}

pub async fn grid(args: &[String], addr: std::net::SocketAddr, db: &tokio_postgres::Client, key: &str) {
    let small = super::arg(args, "--small", 10_000) as i64;
    let large = super::arg(args, "--jobs", 1_000_000) as i64;
    let calls = super::arg(args, "--calls", 40);
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    println!("grid: {small} jobs, then {large}; {calls} timed calls of each query, one at a time");

    let t = Instant::now();
    fill(db, 1, small, small).await;
    println!("      filled {small} jobs in {:.1} s", t.elapsed().as_secs_f64());
    let at_small = time_all(&http, &base, key, &state_of(db).await, calls).await;

    db.batch_execute("truncate jobs cascade").await.expect("truncate");
    let t = Instant::now();
    let step = 250_000;
    let mut from = 1;
    while from <= large {
        let to = (from + step - 1).min(large);
        fill(db, from, to, large).await;
        from = to + 1;
    }
    println!("      filled {large} jobs in {:.1} s", t.elapsed().as_secs_f64());
    let at_large = time_all(&http, &base, key, &state_of(db).await, calls).await;

    println!(
        "\n  {:<24} {:>10} {:>10}   {:>10} {:>10}   {:>6}  {:>7}  count",
        "query", "10k p50", "10k p95", "1M p50", "1M p95", "goal", "ratio"
    );
    let mut missed = 0;
    for ((label, s50, s95, _), (_, l50, l95, exact)) in at_small.iter().zip(&at_large) {
        let goal = if label.starts_with("stats") { 200.0 } else { 30.0 };
        let ratio = l95 / goal;
        if ratio.is_nan() || ratio > 1.0 {
            missed += 1;
        }
        println!(
            "  {label:<24} {s50:>8.2}ms {s95:>8.2}ms   {l50:>8.2}ms {l95:>8.2}ms   {goal:>4.0}ms  {ratio:>6.2}x  {}{}",
            match exact {
                Some(true) => "exact",
                Some(false) => "estimate",
                None => "",
            },
            if ratio.is_nan() || ratio > 1.0 { "  <- MISSES THE GOAL" } else { "" }
        );
    }
    println!(
        "\n  ratio = p95 at {large} jobs / goal (the grid 30 ms, the dashboard 200 ms); {}",
        if missed == 0 { "every query meets its goal".to_string() } else { format!("{missed} miss") }
    );
}
