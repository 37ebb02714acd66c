//! The monitoring that ships in `deploy/monitoring/`: the PrometheusRule's rules pass
//! `promtool check rules` and its unit tests (`alerts-test.yaml`, `promtool test rules`); every
//! expression of the rules and of the Grafana dashboard parses (as recording rules, through
//! promtool) and names only metrics a running Playdeck serves at `/metrics`; the kustomization
//! refers to files that exist and the ServiceMonitor to the Service's port.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value as Json;
use serde_yaml::Value;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian's prometheus package; cargo xtask setup installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The metric names an expression uses (histogram series by their family's name).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\bplaydeck_[a-z0-9_]+").expect("regex");
    re.find_iter(expr)
        .map(|m| {
            let name = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_string()
        })
        .collect()
}

fn dashboard_exprs(dashboard: &Json) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_alerts_and_dashboard_check_with_promtool_and_name_served_metrics() {
    let app = spawn_app().await;
    let text = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let served: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    assert!(served.len() > 20, "{text}");

    // The rules: a PrometheusRule whose spec is a rules file promtool accepts and whose alerts
    // fire as alerts-test.yaml says.
    let rule = yaml(&monitoring().join("prometheusrule.yaml"));
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let dir = temp_dir("monitoring");
    std::fs::write(dir.join("rules.yaml"), serde_yaml::to_string(&rule["spec"]).expect("yaml"))
        .expect("write");
    std::fs::copy(monitoring().join("alerts-test.yaml"), dir.join("alerts-test.yaml")).expect("copy");
    let checked = promtool(&["check", "rules", "rules.yaml"], &dir);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    promtool(&["test", "rules", "alerts-test.yaml"], &dir);

    let mut exprs = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in rule["spec"]["groups"].as_sequence().expect("groups") {
        for r in group["rules"].as_sequence().expect("rules") {
            let name = r["alert"].as_str().expect("every rule is an alert");
            assert!(
                matches!(r["labels"]["severity"].as_str(), Some("warning" | "critical")),
                "{name}: a severity"
            );
            assert!(
                r["annotations"]["summary"].is_string() && r["annotations"]["description"].is_string(),
                "{name}"
            );
            alerts.insert(name.to_string());
            exprs.push(r["expr"].as_str().expect("expr").to_string());
        }
    }
    // What the deploy guide promises to alert on.
    for wanted in [
        "PlaydeckIngestRejections",
        "PlaydeckControllerSyncStale",
        "PlaydeckEngineQueueBacklog",
        "PlaydeckListenerDown",
        "PlaydeckWebhookFailures",
        "PlaydeckNotifierFailures",
    ] {
        assert!(alerts.contains(wanted), "{wanted} in {alerts:?}");
    }

    // The dashboard: every query parses (checked as recording rules, with Grafana's variables
    // given values) and the data source is a variable.
    let dashboard: Json = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("grafana-dashboard.json")).expect("read"),
    )
    .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "playdeck");
    let queries = dashboard_exprs(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    let records: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            serde_json::json!({"record": format!("dashboard:query_{i}"),
                               "expr": q.replace("$__rate_interval", "5m").replace("$instance", ".*")})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": records}]});
    std::fs::write(dir.join("dashboard.yaml"), serde_yaml::to_string(&file).expect("yaml")).expect("write");
    promtool(&["check", "rules", "dashboard.yaml"], &dir);
    exprs.extend(queries);

    // Nothing named that Playdeck does not serve.
    for expr in &exprs {
        for metric in metrics_in(expr) {
            assert!(served.contains(&metric), "{metric} (in {expr}) is not served at /metrics");
        }
    }

    // The kustomization's files exist; the ServiceMonitor scrapes the Service's port.
    let k = yaml(&monitoring().join("kustomization.yaml"));
    for r in k["resources"].as_sequence().expect("resources") {
        assert!(monitoring().join(r.as_str().expect("path")).is_file(), "{r:?}");
    }
    for g in k["configMapGenerator"].as_sequence().expect("generator") {
        for f in g["files"].as_sequence().expect("files") {
            assert!(monitoring().join(f.as_str().expect("path")).is_file(), "{f:?}");
        }
    }
    let sm = yaml(&monitoring().join("servicemonitor.yaml"));
    let service = yaml(&monitoring().join("../kubernetes/base/service.yaml"));
    let port = &sm["spec"]["endpoints"][0]["port"];
    assert!(
        service["spec"]["ports"].as_sequence().expect("ports").iter().any(|p| &p["name"] == port),
        "the ServiceMonitor's port {port:?} is the Service's"
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
}
