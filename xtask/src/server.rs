//! A running `playdeck serve` for the demo, the browser tests and the benchmarks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `playdeck serve`, stopped (SIGTERM, so it stops its database too) when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

/// Starts the server and waits for its "serving on" line; its other output goes to the terminal.
pub(crate) fn start_server(bin: &Path, envs: &[(&str, String)]) -> Result<Server, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve").stdout(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with("Admin API key") {
            continue; // printed by the demo itself, with the file it is in
        }
        println!("{line}");
        if let Some(u) = line.strip_prefix("Playdeck is serving on ") {
            url = Some(u.trim().to_string());
            break;
        }
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    let url = url.ok_or("the server stopped before it was serving; see its messages above")?;
    let server = Server { child, url };
    wait_ready(&server.url)?;
    Ok(server)
}

/// Waits for `/readyz` to answer 200 (database reachable, live relay listening).
fn wait_ready(url: &str) -> Result<(), String> {
    let addr = url.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(s, "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{url} did not become ready within a minute"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
