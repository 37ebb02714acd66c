//! A fake AWX/AAP controller for the connector's tests and its benchmark: the API v2 endpoints
//! the connector uses, under one prefix (`/api/v2` or `/api/controller/v2`), answered in the exact
//! shapes of `bff/tests/fixtures/awx/` (real AWX answers): pages of at most 200 with `next` links,
//! `job_events` in `start_line` order unless asked for `order_by=counter`, `stdout` cut to 1024
//! characters unless `no_truncate=1`, host summaries only once `playbook_on_stats` exists,
//! cancel's 202 or 405, launch's `ignored_fields`.
//!
//! Jobs follow a script the caller drives: `release` makes the next events visible, stamped with
//! the time of release (as AWX stamps `created`); `finish` ends the job. The server can be told
//! to answer 401, fail with a status, stall, fail the next few requests, or stop listening.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// The job of the fixtures (`job.json`, `jobEvents.json`): finished, 9 events, one host.
pub const FIXTURE_JOB: i64 = 26;
/// The token the fake accepts.
pub const TOKEN: &str = "awx-token-0123456789";

const JOB: &str = include_str!("../../tests/fixtures/awx/job.json");
const EVENTS: &str = include_str!("../../tests/fixtures/awx/jobEvents.json");
const TEMPLATE: &str = include_str!("../../tests/fixtures/awx/jobTemplate.json");
const TEMPLATES: &str = include_str!("../../tests/fixtures/awx/jobTemplates.json");
const LAUNCH_INFO: &str = include_str!("../../tests/fixtures/awx/jobTemplateLaunch.json");
/// AWX's `/schedules/` (three: two of system jobs, one of a job template).
const SCHEDULES: &str = include_str!("../../tests/fixtures/awx/schedules.json");

/// How the fake answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    /// 401 to everything but the API root (which AWX serves to anyone).
    Unauthorized,
    /// This status to everything.
    Fail(u16),
    /// Waits this long before answering anything.
    Stall(Duration),
}

/// One job: its detail as AWX shows it, and the events it will have.
pub struct FakeJob {
    pub job: Value,
    /// Every event of the run, in counter order.
    pub script: Vec<Value>,
    /// How many of the script's events exist so far.
    pub released: usize,
    /// Counters that exist but are not visible yet (AWX saving events out of order).
    pub hidden: BTreeSet<i64>,
    pub processing_finished: bool,
    pub hosts: Vec<String>,
    pub tasks: Vec<String>,
    pub failing: Option<String>,
}

impl FakeJob {
    /// A job none of whose events exists yet.
    fn pending(
        job: Value,
        script: Vec<Value>,
        hosts: Vec<String>,
        tasks: Vec<String>,
        failing: Option<String>,
    ) -> FakeJob {
        FakeJob {
            job,
            script,
            released: 0,
            hidden: BTreeSet::new(),
            processing_finished: false,
            hosts,
            tasks,
            failing,
        }
    }
}

/// Everything the fake knows; tests may reach in through `FakeAwx::state`.
pub struct Fake {
    pub prefix: String,
    pub token: String,
    pub mode: Mode,
    /// Statuses (and Retry-After seconds) for the next requests, before answering normally.
    pub fail_next: VecDeque<(u16, Option<u64>)>,
    pub jobs: BTreeMap<i64, FakeJob>,
    pub templates: BTreeMap<i64, Value>,
    pub surveys: HashMap<i64, Value>,
    /// Every request: `GET /api/v2/jobs/?page_size=200 [bearer ok]`.
    pub requests: Vec<String>,
    /// When each of `requests` came.
    pub request_times: Vec<std::time::Instant>,
    /// Hosts and tasks of jobs the launch endpoint starts.
    pub launch_hosts: Vec<String>,
    pub launch_tasks: Vec<String>,
    /// Bytes of padding in each task result's stdout (the benchmark's event size).
    pub stdout_padding: usize,
    /// Jobs whose events endpoint answers 500.
    pub broken_events: BTreeSet<i64>,
    next_job: i64,
    next_event: i64,
    last_stamp: DateTime<Utc>,
}

impl Fake {
    /// A strictly increasing "now", so `modified` orders every change.
    fn now(&mut self) -> DateTime<Utc> {
        let mut t = Utc::now();
        if t <= self.last_stamp {
            t = self.last_stamp + chrono::Duration::microseconds(1);
        }
        self.last_stamp = t;
        t
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

pub struct FakeAwx {
    pub url: String,
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Fake>>,
    server: Mutex<Option<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)>>,
}

type Shared = Arc<Mutex<Fake>>;

impl FakeAwx {
    /// Serves on a free port of 127.0.0.1 under `prefix` (`/api/v2` or `/api/controller/v2`), with
    /// the fixtures' two job templates plus one with a survey, and no job yet.
    pub async fn start(prefix: &str) -> FakeAwx {
        FakeAwx::start_on(prefix, 0).await
    }

    /// The same, on the given port of 127.0.0.1 (0: any free one).
    pub async fn start_on(prefix: &str, port: u16) -> FakeAwx {
        let mut templates = BTreeMap::new();
        let t7 = parse(TEMPLATE);
        let mut surveyed = t7.clone();
        surveyed["id"] = json!(8);
        surveyed["name"] = json!("Patch servers");
        surveyed["url"] = json!("/api/v2/job_templates/8/");
        surveyed["survey_enabled"] = json!(true);
        surveyed["ask_limit_on_launch"] = json!(true);
        templates.insert(7, t7);
        templates.insert(8, surveyed);
        for t in parse(TEMPLATES)["results"].as_array().cloned().unwrap_or_default() {
            if let Some(id) = t["id"].as_i64() {
                templates.insert(id, t);
            }
        }
        let mut surveys = HashMap::new();
        surveys.insert(
            8,
            json!({"name": "Patch", "description": "What to patch to",
                   "spec": [{"question_name": "Release", "question_description": "Package set to install",
                             "required": true, "type": "multiplechoice", "variable": "release",
                             "min": null, "max": null, "default": "", "choices": ["2026.10", "2026.11"],
                             "new_question": true}]}),
        );
        let state = Arc::new(Mutex::new(Fake {
            prefix: prefix.trim_end_matches('/').to_string(),
            token: TOKEN.to_string(),
            mode: Mode::Normal,
            fail_next: VecDeque::new(),
            jobs: BTreeMap::new(),
            templates,
            surveys,
            requests: Vec::new(),
            request_times: Vec::new(),
            launch_hosts: vec!["web-01".into(), "web-02".into()],
            launch_tasks: vec!["Gathering Facts".into(), "Deploy".into()],
            stdout_padding: 0,
            broken_events: BTreeSet::new(),
            next_job: 1000,
            next_event: 1,
            last_stamp: Utc::now(),
        }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the fake AWX");
        let addr = listener.local_addr().expect("addr");
        let fake = FakeAwx { url: format!("http://{addr}"), addr, state, server: Mutex::new(None) };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().fallback(handle).with_state(self.state.clone());
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await;
        });
        *self.server.lock().expect("lock") = Some((tx, task));
    }

    /// Stops listening: connections are refused until `restart`.
    pub async fn stop(&self) {
        let server = self.server.lock().expect("lock").take();
        if let Some((tx, task)) = server {
            let _ = tx.send(true);
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("bind the same port again");
        self.serve(listener);
    }

    pub fn lock(&self) -> MutexGuard<'_, Fake> {
        self.state.lock().expect("fake AWX state")
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// The next requests get these statuses (with Retry-After seconds), then all is normal.
    pub fn fail_next(&self, failures: &[(u16, Option<u64>)]) {
        self.lock().fail_next.extend(failures.iter().copied());
    }

    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        let mut s = self.lock();
        s.requests.clear();
        s.request_times.clear();
    }

    /// Every request since the last `clear_requests`, with when it came.
    pub fn request_log(&self) -> Vec<(std::time::Instant, String)> {
        let s = self.lock();
        s.request_times.iter().copied().zip(s.requests.iter().cloned()).collect()
    }

    /// The fixtures' job 26: successful, its 9 events and its host summary all there.
    pub fn add_fixture_job(&self) -> i64 {
        let mut s = self.lock();
        let now = s.now();
        let mut job = parse(JOB);
        job["modified"] = json!(stamp(now));
        let script: Vec<Value> = parse(EVENTS)["results"].as_array().cloned().unwrap_or_default();
        let mut script = script;
        script.sort_by_key(|e| e["counter"].as_i64().unwrap_or(0));
        let released = script.len();
        s.jobs.insert(
            FIXTURE_JOB,
            FakeJob {
                job,
                script,
                released,
                hidden: BTreeSet::new(),
                processing_finished: true,
                hosts: vec!["localhost".into()],
                tasks: vec!["Gathering Facts".into(), "Hello Message".into()],
                failing: None,
            },
        );
        FIXTURE_JOB
    }

    /// A pending job of `hosts` × `tasks` whose events the caller releases; `failing` fails its
    /// second task. Answers its id.
    pub fn add_job(&self, name: &str, hosts: &[&str], tasks: &[&str], failing: Option<&str>) -> i64 {
        let mut s = self.lock();
        let id = s.next_job;
        s.next_job += 1;
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let tasks: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
        let job = new_job(&mut s, id, name, None);
        let padding = s.stdout_padding;
        let script = script(id, name, &hosts, &tasks, failing, padding);
        s.jobs.insert(id, FakeJob::pending(job, script, hosts, tasks, failing.map(str::to_string)));
        id
    }

    /// A pending job whose run is a real `ansible-runner` run: runner's events (its
    /// `artifacts/<ident>/job_events/*.json`, in counter order) as AWX stores and serves them, for
    /// the caller to release. Answers its id.
    pub fn add_runner_job(&self, name: &str, runner_events: &[Value]) -> i64 {
        let mut s = self.lock();
        let id = s.next_job;
        s.next_job += 1;
        let job = new_job(&mut s, id, name, None);
        let summary_job = json!({"id": id, "name": name, "description": "", "status": "running", "failed": false,
                                 "elapsed": 0.0, "type": "job", "job_template_id": 7, "job_template_name": name});
        let mut hosts: Vec<String> = Vec::new();
        let script = runner_events
            .iter()
            .map(|e| {
                let data = &e["event_data"];
                let text = |k: &str| data[k].as_str().unwrap_or("").to_string();
                let host_name = text("host");
                let host = (!host_name.is_empty()).then(|| {
                    let at = hosts.iter().position(|h| *h == host_name).unwrap_or_else(|| {
                        hosts.push(host_name.clone());
                        hosts.len() - 1
                    });
                    at as i64 + 1
                });
                let kind = e["event"].as_str().unwrap_or("");
                let failed = matches!(
                    kind,
                    "runner_on_failed" | "runner_item_on_failed" | "runner_on_async_failed" | "runner_on_unreachable"
                ) && data["ignore_errors"] != json!(true);
                let counter = e["counter"].clone();
                json!({
                    "id": null, "type": "job_event", "url": null,
                    "related": {"job": format!("/api/v2/jobs/{id}/"), "children": format!("/api/v2/job_events/{counter}/children/")},
                    "summary_fields": {"job": summary_job, "role": {}},
                    "created": null, "modified": null,
                    "job": id, "event": kind, "counter": counter, "event_display": kind,
                    "event_data": data, "event_level": 0, "failed": failed,
                    "changed": data["res"]["changed"] == json!(true),
                    "uuid": e["uuid"], "parent_uuid": e["parent_uuid"].as_str().unwrap_or(""),
                    "host": host, "host_name": host_name,
                    "playbook": text("playbook"), "play": text("play"), "task": text("task"), "role": text("role"),
                    "stdout": e["stdout"], "start_line": e["start_line"], "end_line": e["end_line"],
                    "verbosity": 0
                })
            })
            .collect();
        s.jobs.insert(id, FakeJob::pending(job, script, hosts, Vec::new(), None));
        id
    }

    /// How many events the job's run has in all.
    pub fn script_len(&self, id: i64) -> usize {
        self.lock().jobs.get(&id).map(|j| j.script.len()).unwrap_or(0)
    }

    /// Makes the next `n` events of a job exist now; the job is running from its first event.
    pub fn release(&self, id: i64, n: usize) {
        let mut s = self.lock();
        release(&mut s, id, n);
    }

    /// Hides an event that exists (as if the controller had not saved it yet).
    pub fn hide(&self, id: i64, counter: i64) {
        if let Some(j) = self.lock().jobs.get_mut(&id) {
            j.hidden.insert(counter);
        }
    }

    pub fn reveal(&self, id: i64, counter: i64) {
        if let Some(j) = self.lock().jobs.get_mut(&id) {
            j.hidden.remove(&counter);
        }
    }

    /// Ends the job: every event exists, the status is final; `processed` says whether the
    /// controller has processed all events yet.
    pub fn finish(&self, id: i64, status: &str, processed: bool) {
        let mut s = self.lock();
        let remaining = s.jobs.get(&id).map(|j| j.script.len() - j.released).unwrap_or(0);
        release(&mut s, id, remaining);
        let now = s.now();
        if let Some(j) = s.jobs.get_mut(&id) {
            end(j, status, now);
            j.processing_finished = processed;
        }
    }

    pub fn set_processing_finished(&self, id: i64) {
        if let Some(j) = self.lock().jobs.get_mut(&id) {
            j.processing_finished = true;
        }
    }

    pub fn job(&self, id: i64) -> Option<Value> {
        self.lock().jobs.get(&id).map(|j| j.job.clone())
    }

    /// Plays a job out in the background: `per_tick` events every `tick`, then the job ends,
    /// failed if a host failed, successful otherwise.
    pub fn run(&self, id: i64, per_tick: usize, tick: Duration) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                let mut s = state.lock().expect("fake AWX state");
                let left = s.jobs.get(&id).map(|j| j.script.len() - j.released).unwrap_or(0);
                if left == 0 {
                    let now = s.now();
                    if let Some(j) = s.jobs.get_mut(&id) {
                        let failed = j.script.iter().any(|e| e["event"] == "runner_on_failed");
                        end(j, if failed { "failed" } else { "successful" }, now);
                        j.processing_finished = true;
                    }
                    return;
                }
                release(&mut s, id, per_tick.min(left));
            }
        })
    }
}

fn new_job(s: &mut Fake, id: i64, name: &str, template: Option<&Value>) -> Value {
    let now = s.now();
    let mut job = parse(&JOB.replace("/26/", &format!("/{id}/")));
    job["id"] = json!(id);
    job["name"] = json!(name);
    job["status"] = json!("pending");
    job["failed"] = json!(false);
    job["created"] = json!(stamp(now));
    job["modified"] = json!(stamp(now));
    job["started"] = Value::Null;
    job["finished"] = Value::Null;
    job["elapsed"] = json!(0.0);
    job["event_processing_finished"] = json!(false);
    job["launched_by"] = json!({"id": 3, "name": "playdeck-svc", "type": "user", "url": "/api/v2/users/3/"});
    if let Some(t) = template {
        let tid = t["id"].clone();
        let tname = t["name"].clone();
        job["job_template"] = tid.clone();
        job["unified_job_template"] = tid.clone();
        job["summary_fields"]["job_template"] = json!({"id": tid, "name": tname, "description": ""});
        job["summary_fields"]["unified_job_template"] =
            json!({"id": tid, "name": tname, "description": "", "unified_job_type": "job"});
    }
    job
}

fn end(j: &mut FakeJob, status: &str, now: DateTime<Utc>) {
    let started = j.job["started"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    j.job["status"] = json!(status);
    j.job["failed"] = json!(matches!(status, "failed" | "error"));
    j.job["started"] = json!(stamp(started));
    j.job["finished"] = json!(stamp(now));
    j.job["elapsed"] = json!(((now - started).num_milliseconds() as f64) / 1000.0);
    j.job["modified"] = json!(stamp(now));
}

fn release(s: &mut Fake, id: i64, n: usize) {
    let now = s.now();
    let mut next_event = s.next_event;
    let Some(j) = s.jobs.get_mut(&id) else { return };
    let upto = (j.released + n).min(j.script.len());
    for e in &mut j.script[j.released..upto] {
        e["id"] = json!(next_event);
        e["url"] = json!(format!("/api/v2/job_events/{next_event}/"));
        e["created"] = json!(stamp(now));
        e["modified"] = json!(stamp(now));
        next_event += 1;
    }
    if upto > j.released && matches!(j.job["status"].as_str(), Some("pending" | "waiting" | "new")) {
        j.job["status"] = json!("running");
        j.job["started"] = json!(stamp(now));
    }
    j.released = upto;
    j.job["modified"] = json!(stamp(now));
    s.next_event = next_event;
}

/// Builds a run's events one after the other, numbering counters and stdout lines.
struct Run {
    job: i64,
    summary_job: Value,
    out: Vec<Value>,
    line: i64,
}

const PLAY: &str = "Hello World Sample";
const PLAYBOOK: &str = "hello_world.yml";

impl Run {
    fn uuid(&self, counter: usize) -> String {
        format!("{:08x}-0000-4000-8000-{counter:012x}", self.job)
    }

    /// Adds an event; answers its counter.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        event: &str,
        display: &str,
        level: i64,
        parent: usize,
        host: Option<(usize, &str)>,
        task: &str,
        stdout: String,
        mut data: Value,
        failed: bool,
    ) -> usize {
        let counter = self.out.len() + 1;
        let lines = if stdout.is_empty() { 0 } else { stdout.matches("\r\n").count() as i64 + 1 };
        data["playbook"] = json!(PLAYBOOK);
        data["uuid"] = json!(self.uuid(counter));
        let parent = if parent == 0 { String::new() } else { self.uuid(parent) };
        let job = self.job;
        self.out.push(json!({
            "id": null, "type": "job_event", "url": null,
            "related": {"job": format!("/api/v2/jobs/{job}/"), "children": format!("/api/v2/job_events/{counter}/children/")},
            "summary_fields": {"job": self.summary_job, "role": {}},
            "created": null, "modified": null,
            "job": job, "event": event, "counter": counter, "event_display": display,
            "event_data": data, "event_level": level, "failed": failed, "changed": false,
            "uuid": self.uuid(counter), "parent_uuid": parent,
            "host": host.map(|(i, _)| i as i64 + 1), "host_name": host.map(|(_, h)| h).unwrap_or(""),
            "playbook": PLAYBOOK, "play": if event == "playbook_on_start" { "" } else { PLAY },
            "task": task, "role": "", "stdout": stdout, "start_line": self.line, "end_line": self.line + lines,
            "verbosity": 0
        }));
        self.line += lines;
        counter
    }
}

/// The events of a run in AWX's shape: playbook and play start, per task a task start and per
/// host a runner_on_start and its result (`failing` fails at the second task), then the stats.
fn script(
    job: i64,
    name: &str,
    hosts: &[String],
    tasks: &[String],
    failing: Option<&str>,
    padding: usize,
) -> Vec<Value> {
    let summary_job = json!({"id": job, "name": name, "description": "", "status": "running", "failed": false,
                             "elapsed": 0.0, "type": "job", "job_template_id": 7, "job_template_name": name});
    let mut run = Run { job, summary_job, out: Vec::new(), line: 0 };
    let start =
        run.push("playbook_on_start", "Playbook Started", 0, 0, None, "", String::new(), json!({}), false);
    let play = run.push(
        "playbook_on_play_start",
        &format!("Play Started ({PLAY})"),
        1,
        start,
        None,
        "",
        format!("\r\nPLAY [{PLAY}] {}", "*".repeat(54)),
        json!({"play": PLAY, "name": PLAY, "pattern": "all"}),
        false,
    );
    let mut stats: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    let mut failed_hosts: BTreeSet<String> = BTreeSet::new();
    let pad = "x".repeat(padding);
    for (t, task) in tasks.iter().enumerate() {
        let task_start = run.push(
            "playbook_on_task_start",
            &format!("Task Started ({task})"),
            2,
            play,
            None,
            task,
            format!("\r\nTASK [{task}] {}", "*".repeat(60usize.saturating_sub(task.len()))),
            json!({"play": PLAY, "task": task, "name": task, "task_action": "debug"}),
            false,
        );
        for (i, host) in hosts.iter().enumerate() {
            if failed_hosts.contains(host) {
                continue;
            }
            let data = json!({"play": PLAY, "task": task, "host": host, "remote_addr": host, "task_action": "debug"});
            run.push(
                "runner_on_start",
                "Host Started",
                3,
                task_start,
                Some((i, host)),
                task,
                String::new(),
                data.clone(),
                false,
            );
            let fails = failing == Some(host.as_str()) && t == 1;
            let (event, display, stdout, res) = if fails {
                failed_hosts.insert(host.clone());
                *stats.entry("failures").or_default().entry(host.clone()).or_default() += 1;
                ("runner_on_failed", "Host Failed",
                 format!("\u{1b}[0;31mfatal: [{host}]: FAILED! => {{\"changed\": false, \"msg\": \"boom\"}}\u{1b}[0m{pad}"),
                 json!({"changed": false, "failed": true, "msg": "boom"}))
            } else {
                *stats.entry("ok").or_default().entry(host.clone()).or_default() += 1;
                (
                    "runner_on_ok",
                    "Host OK",
                    format!("\u{1b}[0;32mok: [{host}] => {{\"msg\": \"Hello from {task}\"}}\u{1b}[0m{pad}"),
                    json!({"changed": false, "msg": format!("Hello from {task}")}),
                )
            };
            let mut data = data;
            data["res"] = res;
            run.push(event, display, 3, task_start, Some((i, host)), task, stdout, data, fails);
        }
    }
    for host in hosts {
        *stats.entry("processed").or_default().entry(host.clone()).or_default() += 1;
    }
    let mut recap =
        String::from("\r\nPLAY RECAP *********************************************************************");
    for host in hosts {
        let n = |k: &str| stats.get(k).and_then(|m| m.get(host)).copied().unwrap_or(0);
        recap.push_str(&format!(
            "\r\n{host:<26} : ok={}    changed=0    unreachable=0    failed={}    skipped=0",
            n("ok"),
            n("failures")
        ));
    }
    let map = |k: &str| json!(stats.get(k).cloned().unwrap_or_default());
    run.push(
        "playbook_on_stats",
        "Playbook Complete",
        1,
        start,
        None,
        "",
        recap,
        json!({"changed": {}, "dark": {}, "failures": map("failures"), "ignored": {}, "ok": map("ok"),
                    "processed": map("processed"), "rescued": {}, "skipped": {}, "artifact_data": {}}),
        false,
    );
    run.out
}

/// The host summaries AWX makes from a released `playbook_on_stats` event.
fn summaries(job: &FakeJob) -> Vec<Value> {
    let visible = &job.script[..job.released];
    let Some(stats) = visible.iter().find(|e| e["event"] == "playbook_on_stats") else {
        return Vec::new();
    };
    let data = &stats["event_data"];
    let id = job.job["id"].as_i64().unwrap_or(0);
    job.hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let n = |k: &str| data[k][host].as_i64().unwrap_or(0);
            json!({
                "id": id * 100 + i as i64, "type": "job_host_summary",
                "url": format!("/api/v2/job_host_summaries/{}/", id * 100 + i as i64),
                "related": {"job": format!("/api/v2/jobs/{id}/"), "host": format!("/api/v2/hosts/{}/", i + 1)},
                "summary_fields": {"host": {"id": i + 1, "name": host, "description": ""},
                                   "job": {"id": id, "name": job.job["name"], "status": job.job["status"]}},
                "created": stats["created"], "modified": stats["created"],
                "job": id, "host": i + 1, "constructed_host": null, "host_name": host,
                "changed": n("changed"), "dark": n("dark"), "failures": n("failures"), "ok": n("ok"),
                "processed": n("processed"), "skipped": n("skipped"), "failed": n("failures") + n("dark") > 0,
                "ignored": n("ignored"), "rescued": n("rescued")
            })
        })
        .collect()
}

fn json_response(prefix: &str, status: StatusCode, body: &Value) -> Response {
    // The fixtures' links say /api/v2/; a controller behind the gateway says its own prefix.
    let text = serde_json::to_string(body).unwrap_or_default().replace("/api/v2/", &format!("{prefix}/"));
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://fake{uri}")).expect("uri");
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// AWX's page: at most 200, `next`/`previous` as paths with the same query.
fn page(path: &str, q: &BTreeMap<String, String>, items: Vec<Value>) -> Value {
    let size = q.get("page_size").and_then(|v| v.parse::<usize>().ok()).unwrap_or(25).clamp(1, 200);
    let number = q.get("page").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).max(1);
    let count = items.len();
    let start = (number - 1) * size;
    let link = |n: usize| {
        let mut url = reqwest::Url::parse(&format!("http://fake{path}")).expect("path");
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in q.iter().filter(|(k, _)| k.as_str() != "page") {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("page", &n.to_string());
        }
        format!("{}?{}", url.path(), url.query().unwrap_or(""))
    };
    let results: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    json!({
        "count": count,
        "next": (start + size < count).then(|| link(number + 1)),
        "previous": (number > 1).then(|| link(number - 1)),
        "results": results,
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// The list serializer leaves out what only the detail has.
fn list_entry(job: &Value) -> Value {
    let mut j = job.clone();
    if let Some(o) = j.as_object_mut() {
        for k in [
            "event_processing_finished",
            "job_env",
            "job_args",
            "job_cwd",
            "artifacts",
            "host_status_counts",
            "playbook_counts",
            "custom_virtualenv",
            "result_traceback",
        ] {
            o.remove(k);
        }
    }
    j
}

fn detail(j: &FakeJob) -> Value {
    let mut job = j.job.clone();
    job["event_processing_finished"] = json!(j.processing_finished);
    job
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mode, fail, prefix, token) = {
        let mut s = state.lock().expect("state");
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", s.token));
        let line = format!("{method} {uri}{}", if authorized { "" } else { " [no valid bearer]" });
        s.requests.push(line);
        s.request_times.push(std::time::Instant::now());
        (s.mode.clone(), s.fail_next.pop_front(), s.prefix.clone(), s.token.clone())
    };
    if let Mode::Stall(d) = mode {
        tokio::time::sleep(d).await;
    }
    if let Some((status, retry_after)) = fail {
        let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "try later")
            .into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return resp;
    }
    if let Mode::Fail(status) = mode {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "<html>failing</html>",
        )
            .into_response();
    }
    let Some(rest) = uri.path().strip_prefix(prefix.as_str()) else {
        return (StatusCode::NOT_FOUND, "<h1>Not Found</h1>").into_response();
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let reply = |status: StatusCode, body: Value| json_response(&prefix, status, &body);
    // The API root and ping answer anyone, as AWX's do.
    match segments.as_slice() {
        [] => {
            return reply(
                StatusCode::OK,
                json!({"ping": "/api/v2/ping/", "jobs": "/api/v2/jobs/",
                                                 "job_templates": "/api/v2/job_templates/", "me": "/api/v2/me/"}),
            )
        }
        ["ping"] => {
            return reply(StatusCode::OK, json!({"ha": false, "version": "23.0.0", "active_node": "awx-1"}))
        }
        _ => {}
    }
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if mode == Mode::Unauthorized {
        return reply(StatusCode::UNAUTHORIZED, json!({"detail": "Invalid token."}));
    }
    if bearer != format!("Bearer {token}") {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Authentication credentials were not provided."}),
        );
    }
    let q = query(&uri);
    let path = uri.path().to_string();
    let not_found = || reply(StatusCode::NOT_FOUND, json!({"detail": "Not found."}));
    let body: Value =
        if body.is_empty() { json!({}) } else { serde_json::from_slice(&body).unwrap_or(json!({})) };
    let mut s = state.lock().expect("state");
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["me"]) => reply(
            StatusCode::OK,
            json!({"count": 1, "next": null, "previous": null,
                                                            "results": [{"id": 3, "type": "user", "username": "playdeck-svc"}]}),
        ),
        (Method::GET, ["jobs"]) => {
            let since = q.get("modified__gte").and_then(|v| parse_time(v));
            let mut jobs: Vec<&Value> = s.jobs.values().map(|j| &j.job).collect();
            jobs.retain(|j| match since {
                None => true,
                Some(t) => j["modified"].as_str().and_then(parse_time).is_some_and(|m| m >= t),
            });
            if q.get("order_by").map(String::as_str) == Some("modified") {
                jobs.sort_by_key(|j| (j["modified"].as_str().unwrap_or("").to_string(), j["id"].as_i64()));
            }
            let items = jobs.into_iter().map(list_entry).collect();
            reply(StatusCode::OK, page(&path, &q, items))
        }
        (Method::GET, ["jobs", id]) => match id.parse::<i64>().ok().and_then(|id| s.jobs.get(&id)) {
            Some(j) => reply(StatusCode::OK, detail(j)),
            None => not_found(),
        },
        (Method::GET, ["jobs", id, "job_events"]) => {
            if id.parse::<i64>().is_ok_and(|id| s.broken_events.contains(&id)) {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"detail": "A server error has occurred."}),
                );
            }
            let Some(j) = id.parse::<i64>().ok().and_then(|id| s.jobs.get(&id)) else { return not_found() };
            let after = q.get("counter__gt").and_then(|v| v.parse::<i64>().ok());
            let mut events: Vec<Value> = j.script[..j.released]
                .iter()
                .filter(|e| {
                    let c = e["counter"].as_i64().unwrap_or(0);
                    !j.hidden.contains(&c) && after.is_none_or(|a| c > a)
                })
                .cloned()
                .collect();
            if q.get("order_by").map(String::as_str) == Some("counter") {
                events.sort_by_key(|e| e["counter"].as_i64());
            } else {
                events.sort_by_key(|e| (e["start_line"].as_i64(), e["counter"].as_i64()));
            }
            if q.get("no_truncate").map(String::as_str) != Some("1") {
                for e in &mut events {
                    if let Some(out) = e["stdout"].as_str() {
                        if out.chars().count() > 1024 {
                            e["stdout"] = json!(out.chars().take(1024).collect::<String>());
                        }
                    }
                }
            }
            reply(StatusCode::OK, page(&path, &q, events))
        }
        (Method::GET, ["jobs", id, "job_host_summaries"]) => {
            let Some(j) = id.parse::<i64>().ok().and_then(|id| s.jobs.get(&id)) else { return not_found() };
            reply(StatusCode::OK, page(&path, &q, summaries(j)))
        }
        (Method::POST, ["jobs", id, "cancel"]) => {
            let Some(id) = id.parse::<i64>().ok().filter(|id| s.jobs.contains_key(id)) else {
                return not_found();
            };
            let now = s.now();
            let Some(j) = s.jobs.get_mut(&id) else { return not_found() };
            if matches!(j.job["status"].as_str(), Some("new" | "pending" | "waiting" | "running")) {
                end(j, "canceled", now);
                j.job["job_explanation"] = json!("");
                j.processing_finished = true;
                (StatusCode::ACCEPTED, "").into_response()
            } else {
                reply(StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"POST\" not allowed."}))
            }
        }
        (Method::POST, ["jobs", id, "relaunch"]) => {
            let Some(old) = id.parse::<i64>().ok().and_then(|id| s.jobs.get(&id)) else { return not_found() };
            let hosts: Vec<String> = match body["hosts"].as_str().unwrap_or("all") {
                "all" => old.hosts.clone(),
                "failed" => {
                    let failed: Vec<String> = old.failing.iter().cloned().collect();
                    if failed.is_empty() || old.job["status"] != "failed" {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            json!({"hosts": ["No failed hosts found for relaunch on failed hosts."]}),
                        );
                    }
                    failed
                }
                other => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"hosts": [format!("\"{other}\" is not a valid choice.")]}),
                    )
                }
            };
            let (name, tasks, failing, template) = (
                old.job["name"].as_str().unwrap_or("").to_string(),
                old.tasks.clone(),
                old.failing.clone().filter(|f| hosts.contains(f)),
                old.job["summary_fields"]["job_template"].clone(),
            );
            let new_id = s.next_job;
            s.next_job += 1;
            let mut job = new_job(&mut s, new_id, &name, Some(&template));
            job["launch_type"] = json!("relaunch");
            let padding = s.stdout_padding;
            let events = script(new_id, &name, &hosts, &tasks, failing.as_deref(), padding);
            // AWX answers the new job's detail, plus `job` as older versions did.
            let mut answer = job.clone();
            answer["event_processing_finished"] = json!(false);
            answer["job"] = json!(new_id);
            s.jobs.insert(new_id, FakeJob::pending(job, events, hosts, tasks, failing));
            reply(StatusCode::CREATED, answer)
        }
        (Method::GET, ["schedules"]) => {
            // The fixtures' schedules, plus one of "Patch servers" (template 8) every weekday
            // evening in Berlin, in the same shape.
            let mut items = parse(SCHEDULES)["results"].as_array().cloned().unwrap_or_default();
            if let Some(mut patch) = items
                .iter()
                .find(|i| i["summary_fields"]["unified_job_template"]["unified_job_type"] == "job")
                .cloned()
            {
                patch["id"] = json!(7);
                patch["name"] = json!("Patch every weekday evening");
                patch["rrule"] = json!("DTSTART;TZID=Europe/Berlin:20261201T220000 RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;INTERVAL=1");
                patch["timezone"] = json!("Europe/Berlin");
                patch["next_run"] = json!("2027-01-04T21:00:00Z");
                patch["summary_fields"]["unified_job_template"] =
                    json!({"id": 8, "name": "Patch servers", "description": "", "unified_job_type": "job"});
                items.push(patch);
            }
            reply(StatusCode::OK, page(&path, &q, items))
        }
        (Method::GET, ["job_templates"]) => {
            let mut items: Vec<Value> = s.templates.values().cloned().collect();
            if let Some(name) = q.get("name") {
                items.retain(|t| t["name"].as_str() == Some(name.as_str()));
            }
            if q.get("order_by").map(String::as_str) == Some("name") {
                items.sort_by_key(|t| t["name"].as_str().unwrap_or("").to_string());
            }
            reply(StatusCode::OK, page(&path, &q, items))
        }
        (Method::GET, ["job_templates", id]) => {
            match id.parse::<i64>().ok().and_then(|id| s.templates.get(&id)) {
                Some(t) => reply(StatusCode::OK, t.clone()),
                None => not_found(),
            }
        }
        (Method::GET, ["job_templates", id, "survey_spec"]) => {
            match id.parse::<i64>().ok().and_then(|id| s.surveys.get(&id)) {
                Some(spec) => reply(StatusCode::OK, spec.clone()),
                None => reply(StatusCode::OK, json!({})),
            }
        }
        (Method::GET, ["job_templates", id, "launch"]) => {
            match id.parse::<i64>().ok().and_then(|id| s.templates.get(&id)) {
                Some(_) => reply(StatusCode::OK, parse(LAUNCH_INFO)),
                None => not_found(),
            }
        }
        (Method::POST, ["job_templates", id, "launch"]) => {
            let Some(t) = id.parse::<i64>().ok().and_then(|id| s.templates.get(&id)).cloned() else {
                return not_found();
            };
            let tid = t["id"].as_i64().unwrap_or(0);
            let asks = |k: &str| t[k].as_bool().unwrap_or(false);
            let prompts = [
                ("limit", "ask_limit_on_launch"),
                ("job_tags", "ask_tags_on_launch"),
                ("skip_tags", "ask_skip_tags_on_launch"),
                ("inventory", "ask_inventory_on_launch"),
                ("verbosity", "ask_verbosity_on_launch"),
                ("diff_mode", "ask_diff_mode_on_launch"),
                ("job_type", "ask_job_type_on_launch"),
            ];
            let mut ignored = Map::new();
            let mut accepted = Map::new();
            for (field, ask) in prompts {
                if let Some(v) = body.get(field) {
                    if asks(ask) {
                        accepted.insert(field.into(), v.clone());
                    } else {
                        ignored.insert(field.into(), v.clone());
                    }
                }
            }
            // Survey answers are taken; other variables only if the template prompts for them.
            let survey_vars: Vec<String> = s
                .surveys
                .get(&tid)
                .filter(|_| asks("survey_enabled"))
                .and_then(|sp| sp["spec"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|q| q["variable"].as_str().map(str::to_string))
                .collect();
            if let Some(Value::Object(vars)) = body.get("extra_vars") {
                let mut ignored_vars = Map::new();
                for (k, v) in vars {
                    if !(asks("ask_variables_on_launch") || survey_vars.contains(k)) {
                        ignored_vars.insert(k.clone(), v.clone());
                    }
                }
                if !ignored_vars.is_empty() {
                    ignored.insert("extra_vars".into(), Value::Object(ignored_vars));
                }
            }
            if asks("survey_enabled") {
                let spec = s.surveys.get(&tid).cloned().unwrap_or(json!({}));
                for q in spec["spec"].as_array().cloned().unwrap_or_default() {
                    let var = q["variable"].as_str().unwrap_or("");
                    let given = body["extra_vars"].get(var).is_some();
                    if q["required"] == true && !given && q["default"].as_str().unwrap_or("").is_empty() {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            json!({"variables_needed_to_start": [format!("'{var}' value missing")]}),
                        );
                    }
                }
            }
            let new_id = s.next_job;
            s.next_job += 1;
            let name = t["name"].as_str().unwrap_or("").to_string();
            let mut job = new_job(&mut s, new_id, &name, Some(&t));
            if let Some(limit) = accepted.get("limit") {
                job["limit"] = limit.clone();
            }
            let (hosts, tasks, padding) = (s.launch_hosts.clone(), s.launch_tasks.clone(), s.stdout_padding);
            let events = script(new_id, &name, &hosts, &tasks, None, padding);
            let mut answer = job.clone();
            answer["event_processing_finished"] = json!(false);
            answer["job"] = json!(new_id);
            answer["ignored_fields"] = Value::Object(ignored);
            s.jobs.insert(new_id, FakeJob::pending(job, events, hosts, tasks, None));
            reply(StatusCode::CREATED, answer)
        }
        (Method::GET, ["inventories"]) => {
            let all = vec![json!({"id": 1, "type": "inventory", "name": "Demo Inventory"})];
            let items =
                all.into_iter().filter(|i| q.get("name").is_none_or(|n| i["name"] == n.as_str())).collect();
            reply(StatusCode::OK, page(&path, &q, items))
        }
        _ => not_found(),
    }
}
