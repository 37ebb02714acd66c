//! Synthetic but realistic playbook runs: the events ansible-runner's callback sends, in its
//! shapes and sizes (ANSI-coloured stdout, `event_data` with play/task/host/res), for the demo
//! feed and the benchmarks.
#![allow(dead_code)]

use serde_json::{json, Value};

/// How one host fares in a run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Ok,
    FailsAt(usize),
    Unreachable,
}

pub struct Play<'a> {
    pub name: &'a str,
    pub tasks: &'a [(&'a str, &'a str)], // (task name, module)
}

fn uuid(job: u64, counter: u64) -> String {
    format!("{:08x}-{:04x}-4000-8000-{:012x}", job as u32, (counter >> 48) as u16, counter & 0xffff_ffff_ffff)
}

pub fn now_iso(offset_ms: i64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + offset_ms;
    let secs = t.div_euclid(1000);
    let ms = t.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}000+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

// Howard Hinnant's days-to-date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// All events of one run, in counter order; `step_ms` apart in their `created` times.
pub fn playbook_run(
    job: u64,
    playbook: &str,
    plays: &[Play],
    hosts: &[(String, Fate)],
    step_ms: i64,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut counter = 0u64;
    let mut line = 0i64;
    let start_offset = -(step_ms * 200);
    let mut ev = |event: &str, stdout: String, data: Value, out: &mut Vec<Value>| {
        counter += 1;
        let lines = if stdout.is_empty() { 0 } else { stdout.lines().count() as i64 + 1 };
        out.push(json!({
            "counter": counter,
            "event": event,
            "uuid": uuid(job, counter),
            "parent_uuid": uuid(job, 0),
            "created": now_iso(start_offset + counter as i64 * step_ms),
            "stdout": stdout,
            "start_line": line,
            "end_line": line + lines,
            "runner_ident": format!("{job}"),
            "event_data": data,
        }));
        line += lines;
    };
    ev(
        "playbook_on_start",
        String::new(),
        json!({"playbook": playbook, "playbook_uuid": uuid(job, 0)}),
        &mut out,
    );
    let mut failed_hosts: Vec<String> = Vec::new();
    let mut task_index = 0usize;
    let mut stats: std::collections::BTreeMap<&str, std::collections::BTreeMap<String, i64>> =
        Default::default();
    for play in plays {
        ev(
            "playbook_on_play_start",
            format!("\r\nPLAY [{}] {}", play.name, "*".repeat(60usize.saturating_sub(play.name.len()))),
            json!({"play": play.name, "name": play.name, "pattern": "all", "playbook": playbook}),
            &mut out,
        );
        for (task, module) in play.tasks {
            ev(
                "playbook_on_task_start",
                format!("\r\nTASK [{task}] {}", "*".repeat(60usize.saturating_sub(task.len()))),
                json!({"play": play.name, "task": task, "name": task, "task_action": module, "playbook": playbook}),
                &mut out,
            );
            for (host, fate) in hosts {
                if failed_hosts.contains(host) {
                    continue;
                }
                let res_msg = format!(
                    "{module} on {host}: {}",
                    "All packages are at the latest version; nothing to do. ".repeat(26)
                );
                let changed = task_index % 3 == 1;
                let (event, stdout, res) = match fate {
                    Fate::Unreachable if task_index == 0 => (
                        "runner_on_unreachable",
                        format!("\u{1b}[1;31mfatal: [{host}]: UNREACHABLE! => {{\"changed\": false, \"msg\": \"Failed to connect to the host via ssh: ssh: connect to host {host} port 22: No route to host\", \"unreachable\": true}}\u{1b}[0m"),
                        json!({"changed": false, "unreachable": true, "msg": format!("Failed to connect to the host via ssh: ssh: connect to host {host} port 22: No route to host")}),
                    ),
                    Fate::FailsAt(i) if *i == task_index => (
                        "runner_on_failed",
                        format!("\u{1b}[0;31mfatal: [{host}]: FAILED! => {{\"changed\": false, \"msg\": \"Failed to download metadata for repo 'appstream': Cannot download repomd.xml\", \"rc\": 1}}\u{1b}[0m"),
                        json!({"changed": false, "failed": true, "rc": 1, "msg": "Failed to download metadata for repo 'appstream': Cannot download repomd.xml", "stderr": "Errors during downloading metadata for repository 'appstream'", "stdout": ""}),
                    ),
                    _ if changed => (
                        "runner_on_ok",
                        format!("\u{1b}[0;33mchanged: [{host}]\u{1b}[0m"),
                        json!({"changed": true, "msg": res_msg, "rc": 0, "stdout_lines": ["Complete!"]}),
                    ),
                    _ => (
                        "runner_on_ok",
                        format!("\u{1b}[0;32mok: [{host}]\u{1b}[0m"),
                        json!({"changed": false, "msg": res_msg, "rc": 0}),
                    ),
                };
                match event {
                    "runner_on_unreachable" => {
                        *stats.entry("dark").or_default().entry(host.clone()).or_default() += 1;
                        failed_hosts.push(host.clone());
                    }
                    "runner_on_failed" => {
                        *stats.entry("failures").or_default().entry(host.clone()).or_default() += 1;
                        failed_hosts.push(host.clone());
                    }
                    _ => {
                        *stats.entry("ok").or_default().entry(host.clone()).or_default() += 1;
                        if changed {
                            *stats.entry("changed").or_default().entry(host.clone()).or_default() += 1;
                        }
                    }
                }
                ev(
                    event,
                    stdout,
                    json!({"play": play.name, "task": task, "task_action": module, "host": host,
                           "remote_addr": host, "res": res, "duration": 1.25, "playbook": playbook,
                           "task_path": format!("/runner/project/{playbook}:{}", 10 + task_index * 6)}),
                    &mut out,
                );
            }
            task_index += 1;
        }
    }
    let mut recap = String::from(
        "\r\nPLAY RECAP *********************************************************************\r\n",
    );
    for (host, _) in hosts {
        let get = |k: &str| stats.get(k).and_then(|m| m.get(host)).copied().unwrap_or(0);
        recap.push_str(&format!(
            "{host:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped=0    rescued=0    ignored=0\r\n",
            get("ok"), get("changed"), get("dark"), get("failures")
        ));
    }
    let stat = |k: &str| json!(stats.get(k).cloned().unwrap_or_default());
    ev(
        "playbook_on_stats",
        recap,
        json!({"ok": stat("ok"), "changed": stat("changed"), "dark": stat("dark"), "failures": stat("failures"),
               "skipped": {}, "rescued": {}, "ignored": {}, "processed": stat("ok"), "playbook": playbook}),
        &mut out,
    );
    out
}

pub const PATCH: &[Play] = &[
    Play {
        name: "Pre-checks",
        tasks: &[
            ("Gather facts", "gather_facts"),
            ("Check free space on /var", "shell"),
            ("Check uptime", "command"),
        ],
    },
    Play {
        name: "Patching",
        tasks: &[
            ("Update all packages", "ansible.builtin.dnf"),
            ("Reboot if the kernel changed", "ansible.builtin.reboot"),
        ],
    },
    Play {
        name: "Post-checks",
        tasks: &[("Wait for sshd", "wait_for"), ("Check services", "service_facts")],
    },
];

pub const HELLO: &[Play] =
    &[Play { name: "Hello", tasks: &[("Gather facts", "gather_facts"), ("Say hello", "debug")] }];

pub const RETIRE: &[Play] = &[Play {
    name: "Retire server",
    tasks: &[
        ("Remove from monitoring", "uri"),
        ("Remove DNS records", "nsupdate"),
        ("Power off the VM", "vmware_guest"),
    ],
}];
