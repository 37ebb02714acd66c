//! The Kubernetes/OpenShift manifests: every kustomization resolves, every document parses, and
//! everything the Deployment refers to (Secrets, ConfigMaps, settings, probe paths) exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// A strategic merge as kustomize does it for what these patches use: maps merged key by key,
/// lists of named items (containers, env, ports, volumes, volumeMounts) merged by name, other
/// lists replaced.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) if b.iter().all(|x| x["name"].is_string()) => {
            for item in b {
                match a.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => a.push(item.clone()),
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
        })
        .collect()
}

/// Renders a kustomization the way `kubectl kustomize` would for what this project uses:
/// resources (files and directories), recursively, then strategic-merge `patches` by kind and name.
fn render(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml");
    let k: Value = serde_yaml::from_str(&text).expect("kustomization parses");
    let mut docs = Vec::new();
    for r in k["resources"].as_sequence().expect("resources") {
        let path = dir.join(r.as_str().expect("resource path"));
        if path.is_dir() {
            docs.extend(render(&path));
        } else {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v = Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
                assert!(v["apiVersion"].is_string(), "{}: apiVersion", path.display());
                assert!(v["kind"].is_string(), "{}: kind", path.display());
                assert!(v["metadata"]["name"].is_string(), "{}: metadata.name", path.display());
                docs.push(v);
            }
        }
    }
    for p in k["patches"].as_sequence().into_iter().flatten() {
        let path = dir.join(p["path"].as_str().expect("a patch names its path"));
        for patch in documents(&path) {
            let target = docs
                .iter_mut()
                .find(|d| d["kind"] == patch["kind"] && d["metadata"]["name"] == patch["metadata"]["name"])
                .unwrap_or_else(|| panic!("{}: patches nothing ({:?})", path.display(), patch["kind"]));
            merge(target, &patch);
        }
    }
    docs
}

use serde::Deserialize;

fn names(docs: &[Value], kind: &str) -> BTreeSet<String> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Every value of `key` anywhere under `v`.
fn find<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some(key) {
                    out.push(val);
                }
                find(val, key, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| find(x, key, out)),
        _ => {}
    }
}

#[test]
fn manifests_render_and_refer_only_to_what_exists() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    for overlay in ["base", "overlays/openshift"] {
        let docs = render(&deploy_dir().join(overlay));
        let secrets = names(&docs, "Secret");
        let configmaps = names(&docs, "ConfigMap");
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "runs as non-root");
        assert!(pod["securityContext"]["runAsUser"].is_null(), "no fixed UID: OpenShift assigns one");

        let mut refs = Vec::new();
        find(pod, "secretRef", &mut refs);
        find(pod, "secretKeyRef", &mut refs);
        for r in refs {
            let name = r["name"].as_str().expect("name");
            assert!(secrets.contains(name), "{overlay}: Secret {name} is referred to but not defined");
        }
        let mut refs = Vec::new();
        find(pod, "configMapRef", &mut refs);
        find(pod, "configMapKeyRef", &mut refs);
        for r in refs {
            let name = r["name"].as_str().expect("name");
            assert!(configmaps.contains(name), "{overlay}: ConfigMap {name} is referred to but not defined");
        }
        // Every setting given to the pod is one Playdeck documents.
        for d in docs.iter().filter(|d| d["kind"] == "ConfigMap" || d["kind"] == "Secret") {
            let data = if d["kind"] == "Secret" { &d["stringData"] } else { &d["data"] };
            for key in data.as_mapping().expect("data").keys() {
                let key = key.as_str().expect("key");
                assert!(readme.contains(&format!("`{key}`")), "{key} is not a documented setting");
            }
        }
        // Probes hit endpoints the server has.
        let c = &pod["containers"][0];
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["exec"]["command"][1], "healthcheck");
        // The PDB and the Service select the pods.
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for kind in ["Service", "PodDisruptionBudget", "NetworkPolicy"] {
            let d = docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("a {kind}"));
            let sel = if kind == "Service" {
                &d["spec"]["selector"]
            } else if kind == "NetworkPolicy" {
                &d["spec"]["podSelector"]["matchLabels"]
            } else {
                &d["spec"]["selector"]["matchLabels"]
            };
            for (k, v) in sel.as_mapping().expect("selector") {
                assert_eq!(&labels[k], v, "{kind} selects the pods");
            }
        }
        let env_value = |name: &str| {
            c["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
        };
        if overlay.contains("openshift") {
            // Re-encrypt: the router speaks TLS to the pods with OpenShift's service-serving
            // certificate, which Playdeck serves from the Secret and reloads when it is renewed.
            let route = docs.iter().find(|d| d["kind"] == "Route").expect("a Route");
            assert_eq!(route["spec"]["to"]["name"], "playdeck");
            assert_eq!(route["spec"]["tls"]["termination"], "reencrypt");
            let service = docs.iter().find(|d| d["kind"] == "Service").expect("a Service");
            let secret = service["metadata"]["annotations"]
                ["service.beta.openshift.io/serving-cert-secret-name"]
                .as_str()
                .expect("the Service asks for a serving certificate");
            let volume = pod["volumes"]
                .as_sequence()
                .expect("volumes")
                .iter()
                .find(|v| v["secret"]["secretName"] == secret)
                .expect("the serving certificate's Secret is mounted");
            let mount = c["volumeMounts"]
                .as_sequence()
                .expect("mounts")
                .iter()
                .find(|m| m["name"] == volume["name"])
                .expect("and mounted in the container");
            let dir = mount["mountPath"].as_str().expect("path");
            assert_eq!(env_value("PLAYDECK_TLS_CERT"), Some(Value::from(format!("{dir}/tls.crt"))));
            assert_eq!(env_value("PLAYDECK_TLS_KEY"), Some(Value::from(format!("{dir}/tls.key"))));
            assert_eq!(
                c["readinessProbe"]["httpGet"]["scheme"], "HTTPS",
                "the probe follows the listener's scheme"
            );
        } else {
            // Plain Kubernetes: plain HTTP behind the cluster's ingress, which terminates TLS.
            assert!(env_value("PLAYDECK_TLS_CERT").is_none());
        }
    }
}
