//! The OpenAPI document: it describes exactly the routes the routers serve (scanned from the
//! source, following each router's nesting), and the served document is the committed `docs/openapi.json` (regenerate it with
//! `UPDATE_OPENAPI=1 cargo test -p bff --test openapi`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text of `call`'s parenthesised arguments, `rest` starting just after its `(`.
fn args_of(rest: &str) -> &str {
    let mut depth = 1;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return &rest[..i];
        }
    }
    rest
}

/// A router function's name as other modules call it: `kb::router`, `aap::ingest_router`.
fn router_key(module: &str, name: &str) -> String {
    format!("{module}::{name}")
}

/// The last two segments of a call such as `crate::deliveries::webhooks::router`.
fn called_key(call: &str) -> String {
    let parts: Vec<&str> = call.trim().trim_end_matches("()").split("::").collect();
    match parts.as_slice() {
        [.., m, f] => router_key(m, f),
        [f] => router_key("", f),
        [] => String::new(),
    }
}

/// Every `.route("path", get(..).post(..))` in the server's source, as (method, path below
/// `/api/v1`): each router's paths are relative to where it is nested (`.nest("/kb", kb::router())`,
/// also inside other routers), so the scan follows the nesting from `lib.rs`'s `app`.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    sources(&src, &mut files);
    // (module, fn name) -> body, for every function that builds a router.
    let mut bodies: Vec<(String, String)> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source");
        let module = match f.file_stem().and_then(|s| s.to_str()) {
            Some("mod") => {
                f.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()).unwrap_or("").to_string()
            }
            Some(stem) => stem.to_string(),
            None => continue,
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("fn ") {
            rest = &rest[at + 3..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let header_end = rest.find('{').unwrap_or(rest.len());
            if !rest[..header_end].contains("-> Router") {
                continue;
            }
            let body_end = rest.find("\n}\n").unwrap_or(rest.len());
            bodies.push((router_key(&module, &name), rest[header_end..body_end].to_string()));
        }
    }
    // Where each router is nested: the roots are lib.rs's `app` (below /api/v1).
    let mut prefix: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    prefix.insert(router_key("lib", "app"), String::new());
    for _ in 0..4 {
        for (key, body) in &bodies {
            let Some(base) = prefix.get(key).cloned() else { continue };
            let mut found = Vec::new();
            for (kw, nested) in [(".nest(", true), (".merge(", false)] {
                let mut rest = body.as_str();
                while let Some(at) = rest.find(kw) {
                    rest = &rest[at + kw.len()..];
                    let args = args_of(rest);
                    let (path, calls) = if nested {
                        let path = args.split('"').nth(1).unwrap_or("").to_string();
                        (path, args.split_once(',').map(|x| x.1).unwrap_or("").to_string())
                    } else {
                        (String::new(), args.to_string())
                    };
                    // `ingest::router().merge(aap::ingest_router())`: every call in the argument.
                    for call in calls.split(".merge(") {
                        let call = call.trim().trim_end_matches(')').trim_end_matches('(');
                        if call.ends_with("router") {
                            found.push((called_key(call), format!("{base}{path}")));
                        }
                    }
                }
            }
            for (k, p) in found {
                prefix.entry(k).or_insert(p);
            }
        }
    }
    let mut routes = BTreeSet::new();
    for (key, body) in &bodies {
        let Some(base) = prefix.get(key) else { continue };
        let mut rest = body.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = args_of(rest);
            let Some(path) = call.split('"').nth(1) else { continue };
            let full = match (base.as_str(), path) {
                ("", p) => p.to_string(),
                (b, "/") => b.to_string(),
                (b, p) => format!("{b}{p}"),
            };
            for method in ["get", "post", "put", "delete", "patch"] {
                let bare = call.contains(&format!(" {method}(")) || call.contains(&format!(",{method}("));
                if bare || call.contains(&format!(".{method}(")) {
                    routes.insert((method.to_string(), full.clone()));
                }
            }
        }
    }
    // Outside /api/v1.
    for top in ["/healthz", "/readyz", "/metrics"] {
        routes.remove(&("get".to_string(), top.to_string()));
    }
    routes
}

#[test]
fn the_document_describes_every_route_and_nothing_else() {
    let in_source = routes_in_source();
    assert!(in_source.len() > 30, "the scan found the routers: {in_source:?}");
    let documented: BTreeSet<(String, String)> = bff::openapi::documented_routes().into_iter().collect();
    let undocumented: Vec<_> = in_source.difference(&documented).collect();
    let gone: Vec<_> = documented.difference(&in_source).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (bff/src/openapi.rs): {undocumented:?}"
    );
    assert!(gone.is_empty(), "documented routes that no router serves: {gone:?}");
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("openapi");
    assert_eq!(r.status(), 200);
    let served: serde_json::Value = r.json().await.expect("json");
    assert_eq!(served["openapi"], "3.0.3");
    // Every schema a route refers to is defined.
    let text = served.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap_or("");
        assert!(
            served["components"]["schemas"].get(name).is_some(),
            "schema {name} is referred to but not defined"
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).expect("pretty") + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &pretty).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == pretty,
        "docs/openapi.json differs from what the server serves; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p bff --test openapi` and commit it"
    );
}

#[tokio::test]
async fn the_document_declares_the_5xx_that_are_not_bugs() {
    let app = spawn_app().await;
    let doc: serde_json::Value =
        app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("doc").json().await.expect("json");
    let responses = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
    let jobs = responses("/api/v1/jobs", "get");
    assert!(jobs["503"]["headers"]["Retry-After"].is_object(), "an exhausted pool: {jobs}");
    assert!(jobs["502"].is_null(), "reading jobs asks no other service");
    for (path, method) in
        [("/api/v1/jobs", "post"), ("/api/v1/templates", "get"), ("/api/v1/session", "post")]
    {
        let r = responses(path, method);
        assert!(r["502"].is_object() && r["504"].is_object() && r["503"].is_object(), "{method} {path}: {r}");
    }
    assert!(
        doc["paths"]["/api/v1/jobs"]["get"]["responses"]["500"].is_null(),
        "a 500 is never declared: it is a bug"
    );
}
