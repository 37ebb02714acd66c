//! A fake AWX controller to point a running Playdeck at, for trying the AAP connector by hand:
//!
//! ```sh
//! cargo run -p bff --example fake_controller -- --port 8052 [--prefix /api/controller/v2]
//! PLAYDECK_AAP_URL=http://127.0.0.1:8052 PLAYDECK_AAP_TOKEN=awx-token-0123456789 cargo run -p bff
//! ```
//!
//! It serves the fixtures' finished job 26 and starts a new job every `--every` seconds (default
//! 20) that runs for a while, one event every 300 ms, some of them failing on a host.

#[path = "support/fake_awx.rs"]
mod fake_awx;

use std::time::Duration;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = arg(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(8052);
    let prefix = arg(&args, "--prefix").unwrap_or_else(|| "/api/v2".into());
    let every: u64 = arg(&args, "--every").and_then(|p| p.parse().ok()).unwrap_or(20);
    let fake = fake_awx::FakeAwx::start_on(&prefix, port).await;
    fake.add_fixture_job();
    println!("fake AWX controller on {}{prefix}/ (token {})", fake.url, fake_awx::TOKEN);
    let hosts = ["web-01", "web-02", "db-01"];
    let tasks = ["Gathering Facts", "Update packages", "Restart services", "Check health"];
    for n in 1.. {
        let failing = (n % 3 == 0).then_some("db-01");
        let id = fake.add_job(&format!("Patch run {n}"), &hosts, &tasks, failing);
        println!("job {id} starts");
        let len = fake.script_len(id);
        let _ = fake.run(id, 1, Duration::from_millis(300)).await;
        println!("job {id} ended after {len} events");
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}
