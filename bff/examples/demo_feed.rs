//! Feeds a running Playdeck example jobs through the ingest endpoint, as the callback plugin
//! would: a history of finished jobs at once, then a new job every few seconds, played live.
//! `cargo xtask demo` runs it; PLAYDECK_URL and PLAYDECK_INGEST_TOKEN say where.

#[path = "support/run.rs"]
mod run;

use std::time::Duration;

use run::{Fate, HELLO, PATCH, RETIRE};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("PLAYDECK_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("PLAYDECK_INGEST_TOKEN").unwrap_or_default();
    let ingest = format!("{url}/api/v1/ingest/events");
    let http = reqwest::Client::new();
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let catalogue = [
        ("Patch Group-1", "patch-linux", "patch.yml", PATCH, "prod-linux"),
        ("Hello world", "hello", "hello.yml", HELLO, "lab"),
        ("Retire db-07", "retire-server", "retire.yml", RETIRE, "prod-linux"),
    ];
    let people = ["alice", "bob", "ci-pipeline"];
    for n in 0u64.. {
        let (name, template, playbook, plays, inventory) = catalogue[(n % 3) as usize];
        let hosts: Vec<(String, Fate)> = (1..=(3 + (seed + n) % 6))
            .map(|h| {
                let fate = match (seed + n * 7 + h) % 11 {
                    0 => Fate::Unreachable,
                    1 => Fate::FailsAt(3),
                    _ => Fate::Ok,
                };
                (format!("web-{h:02}.example.com"), fate)
            })
            .collect();
        let external_id = format!("demo-{seed}-{n}");
        let events = run::playbook_run(seed + n, playbook, plays, &hosts, 400);
        let job = json!({"external_id": external_id, "name": name, "template": template, "inventory": inventory,
                         "project": "ops-playbooks", "launched_by": people[(n % 3) as usize]});
        // The first jobs are history, sent at once; the rest play live, a few events at a time.
        let live = n >= 12;
        let chunk = if live { 2 } else { events.len() };
        for part in events.chunks(chunk) {
            let mut part = part.to_vec();
            if live {
                // A live job happens now, whatever times the generator gave its events.
                for e in &mut part {
                    e["created"] = json!(run::now_iso(0));
                }
            }
            let body = json!({"source": "local", "job": job, "events": part});
            match http.post(&ingest).bearer_auth(&token).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => eprintln!("demo feed: ingest answered {}", r.status()),
                Err(_) => return, // the server is gone: the demo is over
            }
            if live {
                tokio::time::sleep(Duration::from_millis(350)).await;
            }
        }
        if live {
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    }
}
