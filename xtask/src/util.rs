//! Shared helpers: the project root, running commands, the target directory, a bare HTTP client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The workspace `cargo xtask` was run in: found from the working directory (cargo runs aliases
/// there), so a binary built for one checkout never works on another; the source path it was built
/// from is the fallback.
pub(crate) fn project_root() -> PathBuf {
    let is_root = |d: &Path| {
        d.join("xtask/Cargo.toml").is_file()
            && std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
    };
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(root) = cwd.ancestors().find(|d| is_root(d)) {
            return root.to_path_buf();
        }
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

pub(crate) fn step(what: &str) {
    println!("\n==> {what}");
}

/// Runs a command, inheriting the terminal; an error names the command.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn is_root() -> bool {
    output(Command::new("id").arg("-u")).as_deref() == Some("0")
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"))
}

/// One HTTP/1.1 request over a plain TcpStream (the xtask has no dependencies): (status, body).
pub(crate) fn http(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let addr = base.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut s = TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The first `"key": <number>` in a JSON text.
pub(crate) fn json_number(text: &str, key: &str) -> Option<i64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[at..].trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
