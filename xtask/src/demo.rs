//! `cargo xtask demo`: Playdeck with its embedded PostgreSQL, fed example jobs live.

use std::path::PathBuf;
use std::process::Command;

use crate::people;
use crate::server::start_server;
use crate::setup::{build_server, build_spa, setup};
use crate::util::{http, json_number, step, target_dir};

/// Serves, on a free port of localhost, a page that frames Playdeck as a portal would.
fn portal(playdeck: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Operations portal</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{margin:0;font-family:sans-serif}}header{{padding:8px 12px;background:#234;color:#fff}}\
         iframe{{border:0;width:100%;height:calc(100vh - 40px)}}</style></head>\
         <body><header>Operations portal (the demo's page on another site)</header>\
         <iframe title=\"Playdeck\" src=\"{playdeck}/?embed=1\"></iframe></body></html>"
    );
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    Ok(format!("http://localhost:{port}/"))
}

pub(crate) fn demo() -> Result<(), String> {
    setup(false)?;
    build_spa()?;
    build_server(false, &["--bin", "playdeck", "--example", "demo_feed"])?;
    let data_dir = PathBuf::from(".playdeck");
    step("starting the test OpenID provider and a seeded LDAP directory (slapd) on loopback");
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let identity = people::start(&root.join(".playdeck/ldap"))?;
    step("starting Playdeck (embedded PostgreSQL in .playdeck/)");
    let listen = std::env::var("PLAYDECK_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let public = std::env::var("PLAYDECK_PUBLIC_URL").unwrap_or_else(|_| format!("http://{listen}"));
    // A portal page on localhost (another site to the browser) that frames Playdeck.
    let portal = portal(&public)?;
    let mut env = vec![
        ("PLAYDECK_DATA_DIR", data_dir.display().to_string()),
        ("PLAYDECK_LISTEN", listen),
        ("PLAYDECK_PUBLIC_URL", public),
        // Two teams, two templates each; the groups' settings grant nothing in the demo.
        ("PLAYDECK_ACCESS_CONFIG", root.join("examples/demo-access.toml").display().to_string()),
        ("PLAYDECK_FRAME_ANCESTORS", format!("'self' {}", portal.trim_end_matches('/'))),
    ];
    env.extend(identity.env().into_iter().filter(|(k, _)| !k.ends_with("_GROUPS")));
    let server = start_server(&target_dir().join("debug/playdeck"), &env)?;
    let key = std::fs::read_to_string(data_dir.join("admin.key")).unwrap_or_default();
    println!("\n  Playdeck is running:  {}", server.url);
    println!("  Sign in as one of the example people:");
    for (how, user, password, team) in people::PEOPLE {
        println!("    {user:<6} password {password:<15} by {how}; {team}");
    }
    println!("  Each sees only their team's jobs and launches only its templates.");
    println!("  A portal framing Playdeck (sign in inside it): {portal}");
    println!("  Admin API key:        {}   (also in .playdeck/admin.key)", key.trim());
    println!("  Ingest token:         .playdeck/ingest.token");
    println!(
        "\n  Open the URL and sign in. Example jobs are fed in live; the Audit page shows who did what."
    );
    println!("  Ctrl-C stops.\n");
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
    drop(identity);
    println!("Playdeck stopped ({status}).");
    Ok(())
}
