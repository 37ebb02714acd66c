//! `cargo xtask bench`: the ingest, live and AAP-sync benchmarks, and the callback benchmark.

use std::process::{Command, Stdio};
use std::time::Instant;

use crate::server::start_server;
use crate::setup::{build_server, ensure_venv, postgres_installed, setup};
use crate::util::{http, json_number, output, run, step, target_dir};

/// ARA, for `bench callback` only.
const ARA: &str = "ara[server]==1.8.0";

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let which = args.first().map(String::as_str).ok_or(
        "bench what? `cargo xtask bench ingest`, `grid`, `live`, `fanout`, `idle`, `auth`, `aap-sync` or `callback`",
    )?;
    if which == "callback" {
        return bench_callback(&args[1..]);
    }
    if which == "idle" || which == "fanout" {
        return bench_own_server(which, &args[1..]);
    }
    if !matches!(which, "ingest" | "grid" | "live" | "auth" | "aap-sync") {
        return Err(format!(
            "no benchmark {which:?}; there are `ingest`, `grid`, `live`, `fanout`, `idle`, `auth`, `aap-sync` and `callback`"
        ));
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

/// `cargo xtask bench idle` and `fanout`: a release `playdeck` of its own, and the benchmark's
/// clients in another process, so the server's memory and CPU are its own.
fn bench_own_server(which: &str, args: &[String]) -> Result<(), String> {
    if !postgres_installed() {
        setup(false)?;
    }
    build_server(true, &["--bin", "playdeck", "--example", "bench"])?;
    let dir = std::env::temp_dir().join(format!("playdeck-bench-{which}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = "pdk_bench_idle_admin_key_0123456789abcdef";
    let token = "pdi_bench_idle_ingest_token_0123456789";
    step("starting a release Playdeck");
    let server = start_server(
        &target_dir().join("release/playdeck"),
        &[
            ("PLAYDECK_DATA_DIR", dir.join("data").display().to_string()),
            ("PLAYDECK_LISTEN", "127.0.0.1:0".into()),
            ("PLAYDECK_BOOTSTRAP_ADMIN_KEY", key.into()),
            ("PLAYDECK_INGEST_TOKEN", token.into()),
            ("PLAYDECK_API_PER_SECOND", "1000000".into()),
            ("PLAYDECK_LOG", "warn".into()),
        ],
    )?;
    let pid = server.child.id().to_string();
    let result = run(Command::new(target_dir().join("release/examples/bench"))
        .args([which, "--url", &server.url, "--key", key, "--token", token, "--pid", &pid])
        .args(args));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    result
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
    let key = "pdk_bench_callback_admin_key_0123456789";
    let token = "pdi_bench_callback_ingest_token_0123456789";
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
