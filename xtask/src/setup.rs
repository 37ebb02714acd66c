//! Set-up (installing the tools, PostgreSQL and `.venv` that are missing) and the builds.

use std::path::Path;
use std::process::Command;

use crate::util::{is_root, output, run, step};

/// The ansible-core the local engine and its tests run (Python >= 3.11).
const ANSIBLE_CORE: &str = "ansible-core==2.19.14";

/// The API fuzzer `cargo xtask test` runs against the served OpenAPI document.
pub(crate) const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// The real SMTP server the mail notifier is tested against (bff/tests/mail.rs).
pub(crate) const AIOSMTPD: &str = "aiosmtpd==1.4.6";
/// How AWX and AAP run playbooks: the callback plugin is tested inside it (bff/tests/runner.rs).
pub(crate) const ANSIBLE_RUNNER: &str = "ansible-runner==2.4.3";

const TRUNK_VERSION: &str = "0.21.14";

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

pub(crate) fn postgres_installed() -> bool {
    std::env::var_os("PLAYDECK_PG_BIN").is_some()
        || std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
            .unwrap_or(false)
}

pub(crate) fn setup(browser: bool) -> Result<(), String> {
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
    // trunk's post-build hook stores the web app brotli- and gzip-compressed (Trunk.toml).
    if !Path::new("/usr/bin/brotli").exists() {
        apt_install(&["brotli"])?;
    }
    // A release build of the web app is shrunk by Debian's wasm-opt (index.html, Trunk.toml).
    if !Path::new("/usr/bin/wasm-opt").exists() {
        apt_install(&["binaryen"])?;
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
    // The API fuzzer runs in a network namespace of its own (ip netns).
    if browser
        && !Path::new("/usr/sbin/ip").exists()
        && !Path::new("/usr/bin/ip").exists()
        && !Path::new("/sbin/ip").exists()
    {
        missing.push("iproute2");
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    ensure_identity()?;
    ensure_venv()?;
    if browser && !Path::new(".venv/bin/schemathesis").is_file() {
        step(&format!("installing {SCHEMATHESIS} into .venv (the API fuzzer)"));
        run(Command::new(".venv/bin/pip").args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SCHEMATHESIS,
        ]))?;
    }
    if browser && !Path::new(".venv/bin/aiosmtpd").is_file() {
        step(&format!("installing {AIOSMTPD} into .venv (the SMTP server the mail tests use)"));
        run(Command::new(".venv/bin/pip").args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            AIOSMTPD,
        ]))?;
    }
    if browser && !Path::new(".venv/bin/ansible-runner").is_file() {
        step(&format!(
            "installing {ANSIBLE_RUNNER} into .venv (how AWX runs playbooks, for the plugin's tests)"
        ));
        run(Command::new(".venv/bin/pip").args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            ANSIBLE_RUNNER,
        ]))?;
    }
    // The deploy test checks the shipped alert rules with promtool.
    if browser && !Path::new("/usr/bin/promtool").exists() {
        apt_install_without_starting(&["prometheus"])?;
    }
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
        "    wasm32 target, trunk, wasm-bindgen-cli {wanted}, wasm-opt, PostgreSQL, git, OpenSSH, slapd, promtool, the test OpenID provider and .venv (ansible-core, schemathesis, aiosmtpd) are in place"
    );
    Ok(())
}

/// The demo's and the tests' identity parts: Debian's slapd (LDAP) and the test OpenID provider
/// (`oidc-provider` from npm in tests/fixtures/oidc).
fn ensure_identity() -> Result<(), String> {
    if !Path::new("/usr/sbin/slapd").exists() || !Path::new("/usr/bin/ldapsearch").exists() {
        // The tests start their own slapd, unprivileged, on loopback.
        apt_install_without_starting(&["slapd", "ldap-utils"])?;
    }
    if output(Command::new("openssl").arg("version")).is_none() {
        apt_install(&["openssl"])?;
    }
    if !Path::new("tests/fixtures/oidc/node_modules/oidc-provider").exists() {
        if output(Command::new("npm").arg("--version")).is_none() {
            apt_install(&["nodejs", "npm"])?;
        }
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir("tests/fixtures/oidc"))?;
    }
    Ok(())
}

/// Installs packages whose daemons (slapd on port 389, prometheus on 9090) must not start: the
/// tests start their own; policy-rc.d says no while apt runs.
fn apt_install_without_starting(packages: &[&str]) -> Result<(), String> {
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let wrote = is_root() && !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if wrote {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755));
    }
    let installed = apt_install(packages);
    if wrote {
        let _ = std::fs::remove_file(policy);
    }
    installed
}

/// `.venv/` in the project root with ansible-core from PyPI: the local engine finds
/// `.venv/bin/ansible-playbook` there, and so do its tests.
pub(crate) fn ensure_venv() -> Result<(), String> {
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

pub(crate) fn build_spa() -> Result<(), String> {
    step("building the web app (trunk, offline)");
    run(Command::new("trunk").args(["build", "--release", "--offline"]))
}

pub(crate) fn build_server(release: bool, extra: &[&str]) -> Result<(), String> {
    step("building the server");
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "-p", "bff"]).args(extra);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}
