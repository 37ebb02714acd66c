//! The launch form's lists and checks against real ansible-core: playbooks with their plays,
//! prompts and survey files; inventories as `ansible-inventory` reads them (re-read when the file
//! changes); survey choices from the inventory, from an earlier answer and from a URL behind a
//! stored credential; `--list-hosts` counts; answers refused with a 422 naming the question and
//! nothing queued; defaults filled in and password answers masked in the job's record.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use common::*;
use serde_json::{json, Value};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const PLAY: &str = "  gather_facts: false\n  tasks:\n    - name: Say\n      ansible.builtin.debug:\n        msg: \"tier={{ tier | default('-') }} hosts={{ targets | default([]) | join(',') }} pin={{ unlock_pin | default('') }}\"\n";

/// A playbook directory: `deploy.yml` with a survey whose choices come from the inventory, an
/// earlier answer and a URL; `prompted.yml` with `vars_prompt` only; `broken.yml` whose survey
/// does not parse; a role's tasks file, which is not a playbook.
fn playbooks(url: &str) -> PathBuf {
    // One level deeper than the data directory, so a path relative to the server's working
    // directory does not happen to work from the playbook's too.
    let dir = temp_dir("survey-playbooks").join("project");
    write(
        &dir.join("deploy.yml"),
        &format!("- name: Deploy to {{{{ tier | default('none') }}}}\n  hosts: \"{{{{ targets | default(['all']) | join(',') }}}}\"\n  vars:\n    ansible_connection: local\n    ansible_python_interpreter: \"{{{{ ansible_playbook_python }}}}\"\n{PLAY}"),
    );
    write(
        &dir.join("deploy.survey.yml"),
        &format!(
            "name: Deploy\nspec:\n\
             - {{question_name: Tier, variable: tier, type: multiplechoice, required: true, choices_from: {{source: inventory_groups, group: tiers}}}}\n\
             - {{question_name: Targets, variable: targets, type: multiselect, required: true, choices_from: {{source: inventory_hosts, group: '{{{{ tier }}}}', pattern: 'app-*'}}}}\n\
             - {{question_name: Release, variable: release, type: multiplechoice, required: false, choices_from: {{source: url, url: '{url}?tier={{{{ tier }}}}', credential: releases}}}}\n\
             - {{question_name: Ticket, variable: ticket, type: multiplechoice, required: false, choices_from: {{source: url, url: 'http://127.0.0.1:9/nothing', free_text: true}}}}\n\
             - {{question_name: Batch size, variable: batch, type: integer, min: 1, max: 10, default: 2}}\n\
             - {{question_name: Unlock PIN, variable: unlock_pin, type: password, required: false, default: pin-default-4242}}\n"
        ),
    );
    write(
        &dir.join("prompted.yml"),
        "- name: Prompted\n  hosts: all\n  vars_prompt:\n    - name: who\n      prompt: Who is it for?\n      private: false\n      default: ops\n    - name: token\n      prompt: Token\n  tasks: []\n",
    );
    write(&dir.join("broken.yml"), &format!("- name: Broken survey\n  hosts: all\n{PLAY}"));
    write(&dir.join("broken.survey.yml"), "spec:\n  - variable: x\n    type: dropdown\n");
    write(&dir.join("roles/web/tasks/main.yml"), "- name: A task, not a play\n  ansible.builtin.debug: {}\n");
    dir
}

/// An inventory directory: a YAML file with tiers, an INI file with a host range, a broken one.
fn inventories() -> PathBuf {
    let dir = temp_dir("survey-inventories");
    write(
        &dir.join("site.yml"),
        "all:\n  children:\n    tiers:\n      children:\n        staging:\n          hosts: {app-s1: {}, db-s1: {}}\n        production:\n          hosts: {app-p1: {}, app-p2: {}, db-p1: {}}\n",
    );
    write(&dir.join("legacy/hosts.ini"), "[web]\nweb[01:03].example.com\n\n[web:vars]\nhttp_port=80\n");
    write(&dir.join("bad.yml"), "all:\n  hosts: [not, a, mapping\n");
    write(&dir.join("group_vars/all.yml"), "x: 1\n");
    dir
}

/// A releases service behind a token: the releases of the tier it is asked for.
async fn releases_server(asked: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/releases",
        get(move |headers: HeaderMap, axum::extract::Query(q): axum::extract::Query<Value>| {
            let asked = asked.clone();
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer rel-token-424242")
                {
                    return (StatusCode::UNAUTHORIZED, "[]".to_string());
                }
                let tier = q["tier"].as_str().unwrap_or("").to_string();
                (StatusCode::OK, json!([format!("{tier}-2026.11"), format!("{tier}-2026.12")]).to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/releases")
}

fn question<'a>(survey: &'a Value, variable: &str) -> &'a Value {
    survey["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .find(|q| q["variable"] == variable)
        .expect(variable)
}

async fn resolved(app: &TestApp, body: Value) -> Value {
    let r = post(app, "/api/v1/playbooks/survey", &body).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launch_form_lists_what_exists_resolves_choices_counts_hosts_and_the_server_checks_answers() {
    let asked = Arc::new(AtomicUsize::new(0));
    let url = releases_server(asked.clone()).await;
    let (pb_dir, inv_dir) = (playbooks(&url), inventories());
    // A relative data directory, as the demo's (`.playdeck`): ansible-playbook runs elsewhere.
    let data = temp_dir("survey-data");
    let cwd = std::env::current_dir().expect("cwd");
    let (a, b): (Vec<_>, Vec<_>) = (cwd.components().collect(), data.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut relative = PathBuf::from("../".repeat(a.len() - common));
    relative.extend(&b[common..]);
    let app = spawn_engine(pb_dir.clone(), |c| {
        c.data_dir = relative;
        c.engine.inventory_dir = inv_dir.clone();
        c.deliveries.allow = vec![bff::infra::config::AllowRule::parse("127.0.0.1/32").expect("rule")];
    })
    .await;
    let cred = post(
        &app,
        "/api/v1/credentials",
        &json!({"name": "releases", "kind": "api_token", "inputs": {"token": "rel-token-424242"}}),
    )
    .await;
    assert_eq!(cred.status(), 201);
    remember_secret("rel-token-424242");

    // The playbooks, with their plays, prompts and surveys; a role's tasks are not a playbook.
    let list = app.get_json("/api/v1/playbooks").await;
    let paths: Vec<&str> =
        list["results"].as_array().expect("results").iter().filter_map(|p| p["path"].as_str()).collect();
    assert_eq!(paths, ["broken.yml", "deploy.yml", "prompted.yml"]);
    let by = |path: &str| {
        list["results"].as_array().expect("results").iter().find(|p| p["path"] == path).cloned().expect(path)
    };
    let deploy = by("deploy.yml");
    assert_eq!(deploy["plays"][0]["name"], "Deploy to {{ tier | default('none') }}");
    assert_eq!(deploy["survey"]["spec"].as_array().map(Vec::len), Some(6));
    assert!(deploy["survey_error"].is_null());
    let broken = by("broken.yml");
    assert!(broken["survey"].is_null());
    assert_eq!(
        broken["survey_error"],
        "survey invalid: question 1 (x): `type` \"dropdown\" is not one of text, textarea, password, integer, float, multiplechoice, multiselect"
    );
    let prompted = by("prompted.yml");
    assert_eq!(
        prompted["vars_prompt"][1],
        json!({"name": "token", "prompt": "Token", "private": true, "default": null})
    );
    assert_eq!(prompted["survey"]["spec"][0]["question_name"], "Who is it for?");
    assert_eq!(prompted["survey"]["spec"][0]["required"], false);
    assert_eq!(prompted["survey"]["spec"][1]["type"], "password");

    // The inventories as ansible-inventory reads them (the INI range expanded), a broken one with
    // its error, group_vars not an inventory.
    let invs = app.get_json("/api/v1/inventories").await;
    let names: Vec<&str> =
        invs["results"].as_array().expect("results").iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["bad.yml", "legacy/hosts.ini", "site.yml"]);
    assert!(
        invs["results"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("ansible-inventory could not read it")),
        "{invs}"
    );
    assert_eq!(invs["results"][1]["host_count"], 3);
    assert_eq!(invs["results"][2]["host_count"], 5);
    let site = app.get_json("/api/v1/inventories/site.yml/hosts").await;
    assert_eq!(site["hosts"], json!(["app-p1", "app-p2", "app-s1", "db-p1", "db-s1"]));
    let tiers =
        site["groups"].as_array().expect("groups").iter().find(|g| g["name"] == "tiers").expect("tiers");
    assert_eq!(
        (tiers["host_count"].as_u64(), &tiers["children"]),
        (Some(5), &json!(["staging", "production"]))
    );
    let legacy = app.get_json("/api/v1/inventories/legacy%2Fhosts.ini/hosts").await;
    assert_eq!(legacy["hosts"], json!(["web01.example.com", "web02.example.com", "web03.example.com"]));
    assert!(!legacy.to_string().contains("http_port"), "variables are not shown");
    for bad in ["nope.yml", "..%2F..%2Fetc%2Fpasswd", "legacy"] {
        assert_error(app.get(&format!("/api/v1/inventories/{bad}/hosts")).await, 404).await;
    }
    // A changed file is read again.
    write(&inv_dir.join("legacy/hosts.ini"), "[web]\nweb[01:04].example.com\n");
    let legacy = app.get_json("/api/v1/inventories/legacy%2Fhosts.ini/hosts").await;
    assert_eq!(legacy["host_count"], 4);

    // Viewers do not launch, so they are not shown what a launch may name.
    let viewer = new_key(&app, "watcher", "viewer").await;
    for path in ["/api/v1/playbooks", "/api/v1/inventories"] {
        let r = app.http.get(app.url(path)).bearer_auth(&viewer).send().await.expect("get");
        assert_error(r, 403).await;
    }

    // The survey's choices: the inventory's groups under `tiers`; the hosts of the chosen tier
    // that match `app-*`; the releases service's answer for that tier, with the credential.
    let s = resolved(&app, json!({"path": "deploy.yml"})).await;
    assert_eq!(
        question(&s, "tier")["choices_error"],
        "choose an inventory file first: the choices are its hosts"
    );
    let s = resolved(&app, json!({"path": "deploy.yml", "inventory": "site.yml"})).await;
    assert_eq!(question(&s, "tier")["choices"], json!(["production", "staging"]));
    assert_eq!(question(&s, "targets")["depends_on"], json!(["tier"]));
    assert_eq!(question(&s, "targets")["choices_error"], "answer survey question “Tier” (`tier`) first");
    let s = resolved(
        &app,
        json!({"path": "deploy.yml", "inventory": "site.yml", "answers": {"tier": "production"}}),
    )
    .await;
    assert_eq!(question(&s, "targets")["choices"], json!(["app-p1", "app-p2"]));
    assert_eq!(question(&s, "release")["choices"], json!(["production-2026.11", "production-2026.12"]));
    assert!(
        question(&s, "ticket")["choices_error"]
            .as_str()
            .is_some_and(|e| e.contains("http://127.0.0.1:9/nothing")),
        "{s}"
    );
    assert_eq!(question(&s, "ticket")["choices_from"]["free_text"], true);
    assert_eq!(question(&s, "batch")["default"], 2);
    // The URL's answer is kept a minute.
    let before = asked.load(Ordering::SeqCst);
    resolved(&app, json!({"path": "deploy.yml", "inventory": "site.yml", "answers": {"tier": "production"}}))
        .await;
    assert_eq!(asked.load(Ordering::SeqCst), before, "asked again within the minute");
    assert_error(post(&app, "/api/v1/playbooks/survey", &json!({"path": "broken.yml"})).await, 422).await;
    assert_error(post(&app, "/api/v1/playbooks/survey", &json!({"path": "missing.yml"})).await, 404).await;
    assert_error(
        post(&app, "/api/v1/playbooks/survey", &json!({"path": "deploy.yml", "inventory": "../x"})).await,
        422,
    )
    .await;

    // The hosts a launch would touch, as ansible-playbook --list-hosts says.
    let count = |body: Value| {
        let app = &app;
        async move {
            let r = post(app, "/api/v1/playbooks/hosts", &body).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (status, c) = count(json!({"path": "deploy.yml", "inventory": "site.yml"})).await;
    assert_eq!((status, &c["count"]), (200, &json!(5)), "{c}");
    let (_, c) = count(json!({"path": "deploy.yml", "inventory": "site.yml", "limit": "staging"})).await;
    assert_eq!(c["hosts"], json!(["app-s1", "db-s1"]));
    let (_, c) = count(json!({"path": "deploy.yml", "inventory": "site.yml", "extra_vars": {"targets": ["app-p1"], "tier": "production"}})).await;
    assert_eq!((&c["count"], &c["plays"][0]["name"]), (&json!(1), &json!("Deploy to production")), "{c}");
    let (_, c) = count(json!({"path": "deploy.yml", "hosts": ["h1", "h2"]})).await;
    assert_eq!(c["count"], 2);
    for (body, status) in [
        (json!({"path": "deploy.yml"}), 422),
        (json!({"path": "deploy.yml", "hosts": ["a b"]}), 422),
        (json!({"path": "deploy.yml", "hosts": ["h[0:99999999]"]}), 422),
        (json!({"path": "deploy.yml", "hosts": ["-x"]}), 422),
        (json!({"path": "deploy.yml", "inventory": "site.yml", "limit": " --help"}), 422),
        (json!({"path": "deploy.yml", "inventory": "site.yml", "limit": "--help"}), 422),
        (json!({"path": "../deploy.yml", "inventory": "site.yml"}), 422),
        (json!({"path": "deploy.yml", "inventory": "bad.yml"}), 422),
    ] {
        let (s, e) = count(body.clone()).await;
        assert_eq!(s, status, "{body}: {e}");
        assert!(e["errors"][0]["detail"].is_string(), "{e}");
    }

    // Launches: answers outside the spec are refused naming the question, and nothing is queued.
    let jobs_before = app.count("select count(*) from jobs").await;
    let launch = |vars: Value| {
        json!({"source": {"type": "playbook", "path": "deploy.yml"},
                                       "inventory": {"type": "file", "path": "site.yml"}, "extra_vars": vars})
    };
    for (vars, said) in [
        (json!({}), "`extra_vars`: survey question “Tier” (`tier`) needs an answer"),
        (json!({"tier": "qa", "targets": ["app-p1"]}), "`extra_vars`: survey question “Tier” (`tier`): \"qa\" is not one of the choices (production, staging)"),
        (json!({"tier": "production", "targets": ["app-s1"]}), "`extra_vars`: survey question “Targets” (`targets`): \"app-s1\" is not one of the choices (app-p1, app-p2)"),
        (json!({"tier": "production", "targets": ["app-p1"], "batch": 11}), "`extra_vars`: survey question “Batch size” (`batch`): must be at most 10"),
        (json!({"tier": "production", "targets": ["app-p1"], "release": "staging-2026.12"}), "`extra_vars`: survey question “Release” (`release`): \"staging-2026.12\" is not one of the choices (production-2026.11, production-2026.12)"),
    ] {
        let detail = assert_error(post(&app, "/api/v1/jobs", &launch(vars.clone())).await, 422).await;
        assert_eq!(detail, said, "{vars}");
    }
    assert_eq!(app.count("select count(*) from jobs").await, jobs_before, "nothing was queued");

    // A right answer runs: the default filled in, free text where the choices could not be had,
    // the password answer masked in the job's record.
    let mut body =
        launch(json!({"tier": "production", "targets": ["app-p2"], "release": "production-2026.12",
                                 "ticket": "CHG-1234", "unlock_pin": "pin-in-survey-777"}));
    body["wait"] = json!(true);
    remember_secret("pin-in-survey-777");
    remember_secret("pin-default-4242");
    let r = post(&app, "/api/v1/jobs", &body).await;
    assert_eq!(r.status(), 200);
    let run: Value = r.json().await.expect("json");
    assert_eq!(run["job"]["status"], "successful", "{run}");
    let hosts: Vec<&str> =
        run["hosts"].as_array().expect("hosts").iter().filter_map(|h| h["host"].as_str()).collect();
    assert_eq!(hosts, ["app-p2"]);
    let db = app.db().await;
    let id = run["job"]["id"].as_i64().expect("id");
    let recorded: Value =
        db.query_one("select extra_vars from jobs where id = $1", &[&id]).await.expect("job").get(0);
    assert_eq!(recorded["batch"], 2, "{recorded}");
    assert_eq!(recorded["unlock_pin"], "********", "a password answer is masked whatever its name");
    let stdout =
        app.get(&format!("/api/v1/jobs/{}/stdout", run["job"]["id"])).await.text().await.expect("stdout");
    assert!(
        stdout.contains("tier=production hosts=app-p2 pin=********"),
        "redacted from the output too: {stdout}"
    );
    let stored: String = db
        .query_one("select string_agg(coalesce(extra_vars::text, ''), ' ') from jobs", &[])
        .await
        .expect("q")
        .get(0);
    assert!(!stored.contains("pin-in-survey-777"));
    let events: String = db
        .query_one("select coalesce(string_agg(stdout || event_data::text, ' '), '') from job_events", &[])
        .await
        .expect("q")
        .get(0);
    assert!(!events.contains("pin-in-survey-777"), "no event carries the password answer");
    // The password default is not shown; an answer of `$encrypted$` takes it.
    assert_eq!(question(&s, "unlock_pin")["default"], "$encrypted$");
    assert!(!list.to_string().contains("pin-default-4242"), "the default is not in the list");

    // A playbook whose survey is invalid still launches with the extra vars as given.
    let r = post(
        &app,
        "/api/v1/jobs",
        &json!({"source": {"type": "playbook", "path": "broken.yml"},
        "inventory": {"type": "inline", "hosts": ["h1"]}, "extra_vars": {"anything": 1}}),
    )
    .await;
    assert_eq!(r.status(), 202);
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Playdeck Tests", "-c", "user.email=tests@playdeck.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playbooks_of_a_git_repository_at_a_branch_are_listed_with_their_surveys() {
    let repo = temp_dir("survey-repo");
    write(&repo.join("site.yml"), "- name: Main branch\n  hosts: all\n  tasks: []\n");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "main"]);
    git(&repo, &["checkout", "-q", "-b", "release"]);
    write(&repo.join("ops/deploy.yml"), "- name: Release deploy\n  hosts: web\n  tasks: []\n");
    write(
        &repo.join("ops/deploy.survey.yml"),
        "spec:\n  - {question_name: Version, variable: version, type: text, required: true, max: 20}\n",
    );
    let outside = temp_dir("survey-outside").join("secret-plays.yml");
    write(&outside, "- name: Not in the repository\n  hosts: all\n  tasks: []\n");
    std::os::unix::fs::symlink(&outside, repo.join("leak.yml")).expect("link");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "release"]);
    let data = temp_dir("survey-git-data");
    let app = spawn_engine(temp_dir("survey-empty"), |c| {
        c.engine.git_allow_file = true;
        c.data_dir = data.clone();
    })
    .await;
    let url = format!("file://{}", repo.display());
    let q = |branch: &str| format!("/api/v1/playbooks?repo={url}&branch={branch}");

    let release = app.get_json(&q("release")).await;
    let paths: Vec<&str> =
        release["results"].as_array().expect("results").iter().filter_map(|p| p["path"].as_str()).collect();
    assert_eq!(paths, ["ops/deploy.yml", "site.yml"], "a link out of the repository is not read: {release}");
    assert_eq!(release["results"][0]["plays"][0], json!({"name": "Release deploy", "hosts": "web"}));
    assert_eq!(release["results"][0]["survey"]["spec"][0]["variable"], "version");
    let main = app.get_json(&q("main")).await;
    assert_eq!(main["count"], 1);
    assert_eq!(main["results"][0]["plays"][0]["name"], "Main branch");
    // Each listing reads a checkout of its own and leaves none behind.
    let reading = data.join("engine/reading");
    assert_eq!(std::fs::read_dir(&reading).map(|d| d.count()).unwrap_or(0), 0, "{}", reading.display());

    for (query, status) in [
        (q("--upload-pack=x"), 422),
        (q("no-such-branch"), 422),
        ("/api/v1/playbooks?repo=-oProxyCommand=x".to_string(), 422),
        ("/api/v1/playbooks?branch=main".to_string(), 400),
        ("/api/v1/playbooks?nonsense=1".to_string(), 400),
        (format!("/api/v1/playbooks?repo={url}&credential=nope"), 422),
    ] {
        assert_error(app.get(&query).await, status).await;
    }
}
