//! The OpenAPI document: it describes exactly the routes the routers serve (scanned from the
//! source), and the served document is the committed `docs/openapi.json` (regenerate it with
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

/// Every `.route("path", get(..).post(..))` in the server's source, as (method, path).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut routes = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("source");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's arguments: up to the matching parenthesis.
            let (mut depth, mut end) = (1, 0);
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else { continue };
            for method in ["get", "post", "put", "delete", "patch"] {
                let bare = call.contains(&format!(" {method}(")) || call.contains(&format!(",{method}("));
                if bare || call.contains(&format!(".{method}(")) {
                    routes.insert((method.to_string(), path.to_string()));
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
