//! `cargo xtask …`: the two commands a newcomer runs (`demo`, `test`), the set-up both need, and
//! the benchmarks. No dependencies, so it compiles in seconds on a fresh machine. Modules: `util`
//! (running commands, paths, a bare HTTP client), `setup` (installing tools, building), `server`
//! (a running `playdeck serve`), `demo`, `test` and `bench`.

mod bench;
mod demo;
mod people;
mod server;
mod setup;
mod test;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::bench::bench;
use crate::demo::demo;
use crate::setup::setup;
use crate::test::test;
use crate::util::project_root;

const USAGE: &str = "usage: cargo xtask <command>

  demo          install what is missing, build the web app, start Playdeck with its embedded
                PostgreSQL (data in .playdeck/), print the URL and the admin key, and feed it a few
                example jobs live. Ctrl-C stops everything.
  test          install what is missing, build the web app, run every test (PostgreSQL, HTTP,
                WebSocket, SSE, the browser). `test grid.mjs …` runs only those browser tests.
  setup         only install what is missing (wasm32 target, trunk, wasm-bindgen-cli, PostgreSQL,
                .venv with ansible-core, and with --browser chromium and playwright-core).
  bench ingest  events/s through POST /api/v1/ingest/events against a raw COPY of the same rows
  bench grid    each query of the job grid and the dashboard at 10k and at 1M jobs (p50/p95)
  bench live    latency from accepted to received for K WebSocket clients
  bench fanout  100 running jobs to 1000 WebSocket clients on a playdeck of its own, beside a
                plain broadcast of the same frames (p99 and capacity)
  bench idle    memory per idle WebSocket connection, 10k clients on a playdeck of its own
  bench auth    GET /api/v1/jobs with a person's session against the same call with an API key
  bench aap-sync  lag from an event's creation on a (fake) AWX controller to a WebSocket client
  bench callback [--rounds N]
                wall time of one playbook (20 hosts x 50 tasks, connection local) without a callback,
                with Playdeck's callback (to a release Playdeck) and with ARA's (installed into .venv
                for this benchmark); prints the times and the ratios";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    if let Err(e) = std::env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    // Tools installed by `cargo install` live in cargo's bin directory, which a fresh shell may not
    // have on PATH yet; trunk also looks for wasm-bindgen there.
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin"));
    if let Some(bin) = cargo_bin {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        if !dirs.contains(&bin) {
            dirs.insert(0, bin);
            if let Ok(joined) = std::env::join_paths(dirs) {
                // Set before any thread or child exists.
                std::env::set_var("PATH", joined);
            }
        }
    }
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("setup") => setup(args.iter().any(|a| a == "--browser")),
        Some("bench") => bench(&args[1..]),
        Some("help") | Some("-h") | Some("--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: {e}");
            ExitCode::FAILURE
        }
    }
}
