//! `cargo xtask …`: the two commands a newcomer runs (`demo`, `test`), the set-up both need, and
//! the benchmarks. No dependencies, so it compiles in seconds on a fresh machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask <command>

  demo          install what is missing, build the web app, start Playdeck with its embedded
                PostgreSQL (data in .playdeck/), print the URL and the admin key, and feed it a few
                example jobs live. Ctrl-C stops everything.
  test          install what is missing, build the web app, run every test (PostgreSQL, HTTP,
                WebSocket, SSE, the browser).
  setup         only install what is missing (wasm32 target, trunk, wasm-bindgen-cli, PostgreSQL,
                .venv with ansible-core, and with --browser chromium and playwright-core).
  bench ingest  events/s through POST /api/v1/ingest/events against a raw COPY of the same rows
  bench live    latency from accepted to received for K WebSocket clients
  bench aap-sync  lag from an event's creation on a (fake) AWX controller to a WebSocket client
  bench callback [--rounds N]
                wall time of one playbook (20 hosts x 50 tasks, connection local) without a callback,
                with Playdeck's callback (to a release Playdeck) and with ARA's (installed into .venv
                for this benchmark); prints the times and the ratios";

/// The ansible-core the local engine and its tests run (Python >= 3.11).
const ANSIBLE_CORE: &str = "ansible-core==2.19.14";
/// ARA, for `bench callback` only.
const ARA: &str = "ara[server]==1.8.0";

const TRUNK_VERSION: &str = "0.21.14";

/// The browser tests in `tests/browser/`, run in this order against one server: sign-in and the
/// live grid, the grid's filters and paging, the job page, actions by role, a 100k-line job.
const BROWSER_TESTS: &[&str] = &[
    "smoke.mjs",
    "grid.mjs",
    "detail.mjs",
    "actions.mjs",
    "big.mjs",
    "kb.mjs",
    "requests.mjs",
    "dashboard.mjs",
    "expired.mjs",
    "settings.mjs",
];

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
        Some("test") => test(),
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

/// The workspace `cargo xtask` was run in: found from the working directory (cargo runs aliases
/// there), so a binary built for one checkout never works on another; the source path it was built
/// from is the fallback.
fn project_root() -> PathBuf {
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

fn step(what: &str) {
    println!("\n==> {what}");
}

/// Runs a command, inheriting the terminal; an error names the command.
fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).as_deref() == Some("0")
}

/// Installs Debian packages (as root directly, else through sudo), mending an interrupted dpkg
/// and refreshing the package lists once.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    let sudo = |args: &[&str]| {
        let mut c = if is_root() { Command::new(args[0]) } else { Command::new("sudo") };
        if is_root() {
            c.args(&args[1..]);
        } else {
            c.args(args);
        }
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let _ = run(&mut sudo(&["dpkg", "--configure", "-a"]));
    run(&mut sudo(&["apt-get", "update", "-q"]))?;
    let mut args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(packages);
    run(&mut sudo(&args))
}

/// The exact wasm-bindgen version in Cargo.lock: wasm-bindgen-cli must be the same.
fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string("Cargo.lock").map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.trim().strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

fn postgres_installed() -> bool {
    std::env::var_os("PLAYDECK_PG_BIN").is_some()
        || std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
            .unwrap_or(false)
}

fn setup(browser: bool) -> Result<(), String> {
    step("checking the tools (installing what is missing)");
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !targets.lines().any(|t| t.trim() == "wasm32-unknown-unknown") {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let trunk = output(Command::new("trunk").arg("--version")).unwrap_or_default();
    if !trunk.contains("0.21.") {
        // 0.22 needs a newer rustc than this project's.
        run(Command::new("cargo").args(["install", "--locked", &format!("trunk@{TRUNK_VERSION}")]))?;
    }
    let wanted = locked_wasm_bindgen()?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if !have.ends_with(&wanted) {
        // Not --locked: one of its locked dependencies is gone from the registry.
        run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &wanted]))?;
    }
    if !postgres_installed() {
        apt_install(&["postgresql"])?;
    }
    // The engine clones git sources and reaches hosts over ssh (keys through ssh-agent).
    let mut missing: Vec<&str> = Vec::new();
    if !Path::new("/usr/bin/ssh").exists() || !Path::new("/usr/bin/ssh-agent").exists() {
        missing.push("openssh-client");
    }
    if output(Command::new("git").arg("--version")).is_none() {
        missing.push("git");
    }
    // The credential tests log in to a real sshd on a loopback port.
    if browser && !Path::new("/usr/sbin/sshd").exists() {
        missing.push("openssh-server");
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    ensure_venv()?;
    if browser {
        if !Path::new("/usr/bin/chromium").exists() {
            apt_install(&["chromium"])?;
        }
        if !Path::new("tests/browser/node_modules/playwright-core").exists() {
            if output(Command::new("npm").arg("--version")).is_none() {
                apt_install(&["nodejs", "npm"])?;
            }
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir("tests/browser"))?;
        }
    }
    println!(
        "    wasm32 target, trunk, wasm-bindgen-cli {wanted}, PostgreSQL, git, OpenSSH and .venv (ansible-core) are in place"
    );
    Ok(())
}

/// `.venv/` in the project root with ansible-core from PyPI: the local engine finds
/// `.venv/bin/ansible-playbook` there, and so do its tests.
fn ensure_venv() -> Result<(), String> {
    if Path::new(".venv/bin/ansible-playbook").is_file() {
        return Ok(());
    }
    step(&format!("creating .venv with {ANSIBLE_CORE} (PyPI)"));
    let python = ["python3.13", "python3.12", "python3.11", "python3"]
        .into_iter()
        .find(|p| {
            output(Command::new(p).args(["-c", "import sys; print(sys.version_info >= (3, 11))"])).as_deref()
                == Some("True")
        })
        .ok_or(
            "ansible-core needs Python 3.11 or newer with venv and pip; install python3 (and python3-venv)",
        )?;
    if !Path::new(".venv/bin/python").is_file() {
        run(Command::new(python).args(["-m", "venv", ".venv"]))?;
    }
    run(Command::new(".venv/bin/pip").args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        ANSIBLE_CORE,
    ]))
}

fn build_spa() -> Result<(), String> {
    step("building the web app (trunk, offline)");
    run(Command::new("trunk").args(["build", "--release", "--offline"]))
}

fn build_server(release: bool, extra: &[&str]) -> Result<(), String> {
    step("building the server");
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "-p", "bff"]).args(extra);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"))
}

/// A running `playdeck serve`, stopped (SIGTERM, so it stops its database too) when dropped.
struct Server {
    child: Child,
    url: String,
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
fn start_server(bin: &Path, envs: &[(&str, String)]) -> Result<Server, String> {
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

fn demo() -> Result<(), String> {
    setup(false)?;
    build_spa()?;
    build_server(false, &["--bin", "playdeck", "--example", "demo_feed"])?;
    step("starting Playdeck (embedded PostgreSQL in .playdeck/)");
    let data_dir = PathBuf::from(".playdeck");
    let listen = std::env::var("PLAYDECK_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let server = start_server(
        &target_dir().join("debug/playdeck"),
        &[("PLAYDECK_DATA_DIR", data_dir.display().to_string()), ("PLAYDECK_LISTEN", listen)],
    )?;
    let key = std::fs::read_to_string(data_dir.join("admin.key")).unwrap_or_default();
    println!("\n  Playdeck is running:  {}", server.url);
    println!("  Admin API key:        {}   (also in .playdeck/admin.key)", key.trim());
    println!("  Ingest token:         .playdeck/ingest.token");
    println!("\n  Open the URL, sign in with the key. Example jobs are fed in live; Ctrl-C stops.\n");
    // A real playbook through the run-playbook API, on the local engine.
    let launch = r#"{"source": {"type": "playbook", "path": "patch.yml"},
        "inventory": {"type": "file", "path": "demo.yml"},
        "extra_vars": {"patch_group": "Group-1"}, "options": {"limit": "web-01"}}"#;
    match http(&server.url, "POST", "/api/v1/jobs", key.trim(), Some(launch)) {
        Ok((202, body)) => println!(
            "  Launched patch.yml on web-01 with patch group Group-1 (local engine): job {}\n",
            json_number(&body, "id").map(|n| n.to_string()).unwrap_or_else(|| "?".into())
        ),
        Ok((status, body)) => println!("  Launching patch.yml answered {status}: {body}\n"),
        Err(e) => println!("  Launching patch.yml failed: {e}\n"),
    }
    let token = std::fs::read_to_string(data_dir.join("ingest.token")).unwrap_or_default();
    let mut feeder = Command::new(target_dir().join("debug/examples/demo_feed"))
        .env("PLAYDECK_URL", &server.url)
        .env("PLAYDECK_INGEST_TOKEN", token.trim())
        .spawn()
        .map_err(|e| format!("cannot start the demo feed: {e}"))?;
    // Ctrl-C reaches the whole process group: the server stops itself and its database.
    let mut server = server;
    let status = server.child.wait().map_err(|e| e.to_string())?;
    let _ = feeder.kill();
    let _ = feeder.wait();
    println!("Playdeck stopped ({status}).");
    Ok(())
}

fn test() -> Result<(), String> {
    setup(true)?;
    build_spa()?;
    step("unit and integration tests (real PostgreSQL, HTTP, WebSocket, SSE)");
    run(Command::new("cargo").args(["test", "--workspace"]))?;
    build_server(false, &["--bin", "playdeck"])?;
    step("browser tests (chromium, playwright-core; screenshots in tests/browser/screenshots)");
    let dir = std::env::temp_dir().join(format!("playdeck-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let key = "pdk_browser_test_admin_key";
    let token = "pdi_browser_test_ingest_token";
    let server = start_server(
        &target_dir().join("debug/playdeck"),
        &[
            ("PLAYDECK_DATA_DIR", dir.display().to_string()),
            ("PLAYDECK_LISTEN", "127.0.0.1:0".into()),
            ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", key.into()),
            ("PLAYDECK_INGEST_TOKEN", token.into()),
            ("PLAYDECK_LOG", "warn".into()),
            // expired.mjs ingests a job that finished in 2001; nothing else is that old.
            ("PLAYDECK_EVENT_RETENTION_DAYS", "3650".into()),
            ("PLAYDECK_RETENTION_INTERVAL_SECS", "1".into()),
        ],
    )?;
    // Each script is one page's test; all of them run, and the first failure is reported.
    let mut result = Ok(());
    for script in BROWSER_TESTS {
        step(&format!("browser test: {script}"));
        let outcome = run(Command::new("node")
            .arg(format!("tests/browser/{script}"))
            .env("PLAYDECK_URL", &server.url)
            .env("PLAYDECK_ADMIN_KEY", key)
            .env("PLAYDECK_INGEST_TOKEN", token));
        if result.is_ok() {
            result = outcome;
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("\nAll tests passed.");
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let which = args
        .first()
        .map(String::as_str)
        .ok_or("bench what? `cargo xtask bench ingest`, `live`, `aap-sync` or `callback`")?;
    if which == "callback" {
        return bench_callback(&args[1..]);
    }
    if !matches!(which, "ingest" | "live" | "aap-sync") {
        return Err(format!("no benchmark {which:?}; there are `ingest`, `live`, `aap-sync` and `callback`"));
    }
    if !postgres_installed() {
        setup(false)?;
    }
    step(&format!("benchmark: {which} (release build)"));
    if which == "aap-sync" {
        return run(Command::new("cargo")
            .args(["run", "--release", "-p", "bff", "--example", "bench_aap", "--"])
            .args(&args[1..]));
    }
    run(Command::new("cargo").args(["run", "--release", "-p", "bff", "--example", "bench", "--"]).args(args))
}

/// One HTTP/1.1 request over a plain TcpStream (the xtask has no dependencies): (status, body).
fn http(
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
fn json_number(text: &str, key: &str) -> Option<i64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[at..].trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Makes sure ARA is in `.venv` (for this benchmark only) and answers its callback directory.
fn ensure_ara() -> Result<String, String> {
    let dir = || output(Command::new(".venv/bin/python").args(["-m", "ara.setup.callback_plugins"]));
    if let Some(d) = dir() {
        return Ok(d);
    }
    step(&format!("installing {ARA} into .venv (for this benchmark only)"));
    run(Command::new(".venv/bin/pip").args(["install", "--quiet", "--disable-pip-version-check", ARA]))?;
    dir().ok_or_else(|| "ARA was installed but its callback directory cannot be found".into())
}

/// `cargo xtask bench callback`: the same playbook without a callback, with Playdeck's and with
/// ARA's, rounds interleaved so drift on a busy machine hits each alike; medians compared.
fn bench_callback(args: &[String]) -> Result<(), String> {
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => {
            args.get(i + 1).and_then(|n| n.parse().ok()).filter(|n| *n > 0).ok_or("--rounds N (N > 0)")?
        }
        None => 3,
    };
    if !postgres_installed() {
        setup(false)?;
    }
    ensure_venv()?;
    let ara = ensure_ara();
    if let Err(e) = &ara {
        println!("    ARA is left out: {e}");
    }
    build_server(true, &["--bin", "playdeck"])?;

    let dir = std::env::temp_dir().join(format!("playdeck-bench-callback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let python = std::fs::canonicalize(".venv/bin/python").map_err(|e| format!(".venv/bin/python: {e}"))?;
    let mut hosts = String::from("[bench]\n");
    for i in 1..=20 {
        hosts.push_str(&format!(
            "bench-{i:02} ansible_connection=local ansible_python_interpreter={}\n",
            python.display()
        ));
    }
    std::fs::write(dir.join("hosts.ini"), hosts).map_err(|e| e.to_string())?;
    let mut playbook = String::from("- name: Benchmark\n  hosts: bench\n  gather_facts: false\n  tasks:\n");
    for t in 1..=50 {
        playbook.push_str(&format!(
            "    - name: Task {t}\n      ansible.builtin.debug:\n        msg: \"task {t} on {{{{ inventory_hostname }}}}\"\n"
        ));
    }
    std::fs::write(dir.join("bench.yml"), playbook).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("warm.yml"),
        "- hosts: bench-01\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: warm\n",
    )
    .map_err(|e| e.to_string())?;

    step("starting a release Playdeck for the callback to send to");
    let key = "pdk_bench_callback_admin_key";
    let token = "pdi_bench_callback_ingest_token";
    let server = start_server(
        &target_dir().join("release/playdeck"),
        &[
            ("PLAYDECK_DATA_DIR", dir.join("data").display().to_string()),
            ("PLAYDECK_LISTEN", "127.0.0.1:0".into()),
            ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", key.into()),
            ("PLAYDECK_INGEST_TOKEN", token.into()),
            ("PLAYDECK_LOG", "warn".into()),
        ],
    )?;
    let plugin_dir =
        std::fs::canonicalize("deploy/collection/plugins/callback").map_err(|e| e.to_string())?;

    struct Variant {
        name: &'static str,
        env: Vec<(&'static str, String)>,
        /// Wall seconds, and CPU seconds of ansible-playbook and its workers (not the server's).
        times: Vec<f64>,
        cpu: Vec<f64>,
    }
    let mut variants = vec![
        Variant { name: "no callback", env: vec![], times: vec![], cpu: vec![] },
        Variant {
            name: "Playdeck",
            env: vec![
                ("ANSIBLE_CALLBACK_PLUGINS", plugin_dir.display().to_string()),
                ("ANSIBLE_CALLBACKS_ENABLED", "playdeck".into()),
                ("PLAYDECK_URL", server.url.clone()),
                ("PLAYDECK_INGEST_TOKEN", token.into()),
            ],
            times: vec![],
            cpu: vec![],
        },
    ];
    if let Ok(ara_dir) = &ara {
        variants.push(Variant {
            name: "ARA",
            env: vec![
                ("ANSIBLE_CALLBACK_PLUGINS", ara_dir.clone()),
                ("ARA_API_CLIENT", "offline".into()),
                ("ARA_BASE_DIR", dir.join("ara").display().to_string()),
            ],
            times: vec![],
            cpu: vec![],
        });
    }
    let ansible = std::fs::canonicalize(".venv/bin/ansible-playbook").map_err(|e| e.to_string())?;
    let play = |v: &Variant, playbook: &str, job: &str| -> Result<(f64, f64), String> {
        let mut cmd = Command::new(&ansible);
        cmd.args(["-i", "hosts.ini", playbook])
            .current_dir(&dir)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("PLAYDECK_JOB_EXTERNAL_ID", job)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, val) in &v.env {
            cmd.env(k, val);
        }
        let cpu = children_cpu();
        let started = Instant::now();
        let status = cmd.status().map_err(|e| format!("ansible-playbook: {e}"))?;
        if !status.success() {
            return Err(format!("the {} run failed ({status})", v.name));
        }
        Ok((started.elapsed().as_secs_f64(), children_cpu() - cpu))
    };
    step("warming up (caches, ARA's database)");
    for v in &variants {
        play(v, "warm.yml", "bench-warm")?;
    }
    for round in 1..=rounds {
        step(&format!("round {round} of {rounds}: 20 hosts x 50 tasks, connection local"));
        // Each round starts with another variant, so what a run leaves behind (ARA's database
        // writes, a warm cache) does not always fall on the same next one.
        let n = variants.len();
        for i in 0..n {
            let v = &mut variants[(i + round - 1) % n];
            let (t, cpu) = play(v, "bench.yml", &format!("bench-{round}"))?;
            println!("    {:<12} {t:>7.2} s   (CPU {cpu:.2} s)", v.name);
            v.times.push(t);
            v.cpu.push(cpu);
        }
    }
    // What Playdeck stored of the last round, to show nothing was lost on the way.
    let stored = http(&server.url, "GET", &format!("/api/v1/jobs?external_id=bench-{rounds}"), key, None)
        .ok()
        .and_then(|(_, body)| json_number(&body, "event_count"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let median = |t: &[f64]| {
        let mut t = t.to_vec();
        t.sort_by(|a, b| a.total_cmp(b));
        t[t.len() / 2]
    };
    let base = median(&variants[0].times);
    let base_cpu = median(&variants[0].cpu);
    println!("\n  callback      wall median (s)   ratio    CPU median (s)   ratio    wall runs (s)");
    for v in &variants {
        let (m, c) = (median(&v.times), median(&v.cpu));
        let runs: Vec<String> = v.times.iter().map(|t| format!("{t:.2}")).collect();
        println!(
            "  {:<12}  {m:>15.2}   {:>5.3}x  {c:>14.2}   {:>5.3}x   {}",
            v.name,
            m / base,
            c / base_cpu,
            runs.join(", ")
        );
    }
    println!(
        "\n  CPU: ansible-playbook and its workers only; the wall time also carries Playdeck and PostgreSQL\n  \
         ingesting the events on the same machine, and whatever else the machine runs."
    );
    if variants.len() < 3 {
        println!("  ARA           (not installed)");
    }
    match stored {
        Some(n) => println!("\n  Playdeck stored {n} events of the last Playdeck run (2 per host and task, plus plays and tasks)."),
        None => println!("\n  (could not read back what Playdeck stored)"),
    }
    Ok(())
}

/// CPU seconds (user + system) of this process's waited-for children so far, from /proc.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rfind(')').map(|i| stat[i + 1..].split_whitespace().collect()).unwrap_or_default();
    // After the command name: state is field 3 of stat(5); cutime and cstime are 16 and 17.
    let ticks = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz =
        output(Command::new("getconf").arg("CLK_TCK")).and_then(|v| v.parse::<f64>().ok()).unwrap_or(100.0);
    (ticks(16) + ticks(17)) / hz
}
