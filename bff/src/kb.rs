//! The knowledge base of known errors: entries (a match rule and a solution), the seed set shipped
//! with Playdeck, and failure explanations — every failed or unreachable event is matched at
//! ingest, whatever its source, and re-matched when an entry changes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::GenericClient;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::Value;
use shared::kb::{Explanation, KbEntry, KbEntryInput, KbField, KbMatch, KbMatchSummary, KbTryMatch};
use shared::{Page, Role};

use crate::infra::auth::Caller;
use crate::infra::error::{AppError, AppJson};
use crate::infra::extract::{path_id_type, Q};
use crate::infra::state::App;
use crate::infra::state::AppState;
use crate::store::events::Event;

/// What a failure says, in the fields rules look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failure {
    pub message: String,
    pub stderr: String,
    pub stdout: String,
    pub module: String,
    pub task: String,
}

impl Failure {
    /// The failure an event reports, if it is one (a failed task not ignored, or an unreachable
    /// host).
    pub fn of(ev: &Event) -> Option<Failure> {
        if !ev.failed
            || !matches!(
                ev.event.as_str(),
                "runner_on_failed"
                    | "runner_on_unreachable"
                    | "runner_item_on_failed"
                    | "runner_on_async_failed"
            )
        {
            return None;
        }
        let data = &ev.event_data;
        let res = &data["res"];
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let message = [&res["msg"], &res["reason"], &res["exception"]]
            .into_iter()
            .map(text)
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        let stdout = match text(&res["stdout"]) {
            s if s.is_empty() => crate::infra::text::strip_ansi(&ev.stdout),
            s => s,
        };
        let module = [&data["task_action"], &data["resolved_action"], &res["invocation"]["module_name"]]
            .into_iter()
            .map(text)
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        Some(Failure {
            message,
            stderr: text(&res["stderr"]),
            stdout,
            module,
            task: ev.task.clone().unwrap_or_default(),
        })
    }

    /// The error to show: the message, else stderr, else stdout (at most a few lines).
    pub fn error(&self) -> String {
        let s = [&self.message, &self.stderr, &self.stdout].into_iter().find(|s| !s.trim().is_empty());
        let s = s.map(|s| s.trim()).unwrap_or("(the task gave no message)");
        s.chars().take(2000).collect()
    }
}

enum Matcher {
    Substring(String),
    Regex(Regex),
}

/// An entry's rule, ready to match.
pub struct Rule {
    pub id: i64,
    field: KbField,
    matcher: Matcher,
    module: Option<String>,
    task: Option<String>,
}

const MAX_PATTERN: usize = 2000;

fn compile(kind: KbMatch, pattern: &str) -> Result<Matcher, String> {
    match kind {
        KbMatch::Substring => Ok(Matcher::Substring(pattern.to_lowercase())),
        KbMatch::Regex => RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(Matcher::Regex)
            .map_err(|e| format!("the pattern is not a valid regular expression: {e}")),
    }
}

/// `dnf` matches `ansible.builtin.dnf` and `dnf`; a full name matches only itself.
fn same_module(rule: &str, actual: &str) -> bool {
    let (rule, actual) = (rule.to_lowercase(), actual.to_lowercase());
    rule == actual || (!rule.contains('.') && actual.rsplit('.').next() == Some(rule.as_str()))
}

impl Rule {
    pub fn new(id: i64, input: &KbEntryInput) -> Result<Rule, String> {
        Ok(Rule {
            id,
            field: input.field,
            matcher: compile(input.kind, &input.pattern)?,
            module: input.module.clone().filter(|m| !m.trim().is_empty()),
            task: input.task.clone().filter(|t| !t.trim().is_empty()).map(|t| t.to_lowercase()),
        })
    }

    pub fn matches(&self, f: &Failure) -> bool {
        if let Some(m) = &self.module {
            if !same_module(m, &f.module) {
                return false;
            }
        }
        if let Some(t) = &self.task {
            if !f.task.to_lowercase().contains(t.as_str()) {
                return false;
            }
        }
        let hit = |text: &str| match &self.matcher {
            Matcher::Substring(s) => text.to_lowercase().contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(text),
        };
        match self.field {
            KbField::Any => [&f.message, &f.stderr, &f.stdout, &f.module].into_iter().any(|t| hit(t)),
            KbField::Message => hit(&f.message),
            KbField::Stderr => hit(&f.stderr),
            KbField::Stdout => hit(&f.stdout),
            KbField::Module => hit(&f.module),
        }
    }
}

fn field_str(f: KbField) -> &'static str {
    match f {
        KbField::Any => "any",
        KbField::Message => "message",
        KbField::Stderr => "stderr",
        KbField::Stdout => "stdout",
        KbField::Module => "module",
    }
}

fn parse_field(s: &str) -> KbField {
    match s {
        "message" => KbField::Message,
        "stderr" => KbField::Stderr,
        "stdout" => KbField::Stdout,
        "module" => KbField::Module,
        _ => KbField::Any,
    }
}

const ENTRY_COLUMNS: &str =
    "id, title, field, kind, pattern, module, task, solution, tags, seed_key, edited, created, modified, modified_by";

fn entry_from_row(r: &tokio_postgres::Row) -> KbEntry {
    KbEntry {
        id: r.get("id"),
        entry: KbEntryInput {
            title: r.get("title"),
            field: parse_field(r.get("field")),
            kind: if r.get::<_, &str>("kind") == "regex" { KbMatch::Regex } else { KbMatch::Substring },
            pattern: r.get("pattern"),
            module: r.get("module"),
            task: r.get("task"),
            solution: r.get("solution"),
            tags: r.get("tags"),
        },
        seeded: r.get::<_, Option<String>>("seed_key").is_some() && !r.get::<_, bool>("edited"),
        created: r.get("created"),
        modified: r.get("modified"),
        modified_by: r.get("modified_by"),
    }
}

/// The live entries' rules. An entry whose rule no longer compiles is skipped (and logged).
pub async fn rules<C: GenericClient>(db: &C) -> Result<Vec<Rule>, AppError> {
    let rows = db
        .query(&format!("select {ENTRY_COLUMNS} from kb_entries where deleted is null order by id"), &[])
        .await?;
    Ok(rows
        .iter()
        .map(entry_from_row)
        .filter_map(|e| match Rule::new(e.id, &e.entry) {
            Ok(r) => Some(r),
            Err(err) => {
                tracing::warn!(kb_id = e.id, error = %err, "knowledge base entry skipped");
                None
            }
        })
        .collect())
}

/// Records a batch's failures with the entries that explain them (called inside the ingest
/// transaction, with the batch's new events only).
pub async fn record_failures<C: GenericClient>(
    db: &C,
    job_id: i64,
    events: &[&Event],
) -> Result<(), AppError> {
    let failures: Vec<(&Event, Failure)> =
        events.iter().filter_map(|e| Failure::of(e).map(|f| (*e, f))).collect();
    if failures.is_empty() {
        return Ok(());
    }
    let rules = rules(db).await?;
    for (ev, f) in &failures {
        let ids: Vec<i64> = rules.iter().filter(|r| r.matches(f)).map(|r| r.id).collect();
        db.execute(
            "insert into job_failures (job_id, counter, host, task, module, event, message, stderr, stdout, created, kb_ids)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict do nothing",
            &[
                &job_id,
                &ev.counter,
                &ev.host,
                &ev.task,
                &Some(f.module.clone()).filter(|m| !m.is_empty()),
                &ev.event,
                &f.message,
                &f.stderr,
                &f.stdout.chars().take(20_000).collect::<String>(),
                &ev.created,
                &ids,
            ],
        )
        .await?;
    }
    Ok(())
}

fn failure_from_row(r: &tokio_postgres::Row) -> Failure {
    Failure {
        message: r.get("message"),
        stderr: r.get("stderr"),
        stdout: r.get("stdout"),
        module: r.get::<_, Option<String>>("module").unwrap_or_default(),
        task: r.get::<_, Option<String>>("task").unwrap_or_default(),
    }
}

/// Matches every stored failure again (after an entry was added, changed or deleted), in pages so
/// no query holds much. Returns how many failures changed their explanation.
pub async fn recheck(app: &App) -> Result<usize, AppError> {
    let db = app.pool.get().await?;
    let rules = rules(&db).await?;
    let (mut after_job, mut after_counter, mut changed) = (0i64, -1i64, 0usize);
    loop {
        let rows = db
            .query(
                "select job_id, counter, task, module, message, stderr, stdout, kb_ids from job_failures
                  where (job_id, counter) > ($1, $2) order by job_id, counter limit 1000",
                &[&after_job, &after_counter],
            )
            .await?;
        let Some(last) = rows.last() else { return Ok(changed) };
        (after_job, after_counter) = (last.get("job_id"), last.get("counter"));
        for r in &rows {
            let f = failure_from_row(r);
            let ids: Vec<i64> = rules.iter().filter(|rule| rule.matches(&f)).map(|rule| rule.id).collect();
            if ids != r.get::<_, Vec<i64>>("kb_ids") {
                db.execute(
                    "update job_failures set kb_ids = $3 where job_id = $1 and counter = $2",
                    &[&r.get::<_, i64>("job_id"), &r.get::<_, i64>("counter"), &ids],
                )
                .await?;
                changed += 1;
            }
        }
    }
}

fn spawn_recheck(app: &AppState) {
    let app = app.clone();
    tokio::spawn(async move {
        match recheck(&app).await {
            Ok(n) => tracing::info!(changed = n, "failures re-matched against the knowledge base"),
            Err(e) => tracing::warn!(error = %e, "re-matching failures failed"),
        }
    });
}

/// A job's failures with their explanations, in the order they happened.
pub async fn explanations<C: GenericClient>(db: &C, job_id: i64) -> Result<Vec<Explanation>, AppError> {
    let rows = db
        .query(
            "select f.counter, f.event, f.host, f.task, f.module, f.message, f.stderr, f.stdout, f.kb_ids
               from job_failures f where f.job_id = $1 order by f.counter",
            &[&job_id],
        )
        .await?;
    let ids: Vec<i64> = rows.iter().flat_map(|r| r.get::<_, Vec<i64>>("kb_ids")).collect();
    let entries = db
        .query(
            "select id, title, solution, tags from kb_entries where id = any($1) and deleted is null",
            &[&ids],
        )
        .await?;
    let summary = |id: i64| {
        entries.iter().find(|e| e.get::<_, i64>(0) == id).map(|e| KbMatchSummary {
            kb_id: id,
            title: e.get(1),
            solution: e.get(2),
            tags: e.get(3),
        })
    };
    Ok(rows
        .iter()
        .map(|r| {
            let f = failure_from_row(r);
            Explanation {
                counter: r.get("counter"),
                event: r.get("event"),
                host: r.get("host"),
                task: r.get("task"),
                module: r.get("module"),
                error: f.error(),
                matches: r.get::<_, Vec<i64>>("kb_ids").into_iter().filter_map(summary).collect(),
            }
        })
        .collect())
}

path_id_type!(
    /// A knowledge base entry's id from the path.
    KbId,
    "a knowledge base entry"
);

/// The entries shipped with Playdeck, for the failures every team meets.
struct Seed {
    key: &'static str,
    title: &'static str,
    field: &'static str,
    pattern: &'static str,
    tags: &'static [&'static str],
    solution: &'static str,
}

const SEEDS: &[Seed] = &[
    Seed {
        key: "ssh-auth",
        title: "SSH authentication failed",
        field: "any",
        pattern: r"(?i)(permission denied \(publickey|authentication failed|invalid/incorrect password|too many authentication failures|host key verification failed)",
        tags: &["ssh", "credentials", "unreachable"],
        solution: "Ansible reached the host but could not log in.\n\n\
            * Check the machine credential of the template (user name, private key, passphrase).\n\
            * Check that the key's public half is in `~/.ssh/authorized_keys` of that user on the host.\n\
            * **Host key verification failed**: the host was rebuilt; remove its old key from `known_hosts` \
            (or set `host_key_checking = False` for ephemeral hosts).",
    },
    Seed {
        key: "unreachable",
        title: "Host unreachable (network, DNS or SSH down)",
        field: "message",
        pattern: r"(?i)(no route to host|connection timed out|could not resolve hostname|connection refused|network is unreachable|failed to connect to the host via ssh)",
        tags: &["ssh", "network", "unreachable"],
        solution: "Ansible could not open a connection to the host.\n\n\
            * Is the host up? `ping` it and try `ssh user@host` from the execution node.\n\
            * **Could not resolve hostname**: fix the inventory name or DNS, or set `ansible_host`.\n\
            * **Connection refused**: sshd is not running or listens on another port (`ansible_port`).\n\
            * Firewalls between the execution environment and the host must allow port 22.",
    },
    Seed {
        key: "sudo-password",
        title: "sudo needs a password (become password missing)",
        field: "any",
        pattern: r"(?i)(missing sudo password|sudo: a password is required|incorrect sudo password|sudo: \d+ incorrect password)",
        tags: &["become", "sudo", "credentials"],
        solution: "The task runs with `become: true`, and sudo on the host asks for a password.\n\n\
            * Add the become password to the machine credential (or `--ask-become-pass` locally).\n\
            * Or allow the user passwordless sudo for the commands it needs (`NOPASSWD` in sudoers).",
    },
    Seed {
        key: "package-lock",
        title: "Package manager lock held by another process",
        field: "any",
        pattern: r"(?i)(could not get lock /var/lib/(dpkg|apt)|waiting for cache lock|dpkg was interrupted|holding the yum lock|rpmdb.*(lock|open failed)|another app is currently holding the (yum|dnf) lock)",
        tags: &["packages", "apt", "dnf", "yum"],
        solution: "Another package operation runs on the host (often unattended-upgrades, PackageKit or a \
            previous run).\n\n\
            * Wait and retry; consider `lock_timeout: 300` on `apt`/`dnf` tasks.\n\
            * **dpkg was interrupted**: run `dpkg --configure -a` on the host.\n\
            * Find the holder: `lsof /var/lib/dpkg/lock-frontend` or `ps aux | grep -E 'apt|dnf|yum'`.",
    },
    Seed {
        key: "package-conflict",
        title: "Package dependency conflict",
        field: "any",
        pattern: r"(?i)(dependency conflict|conflicting requests|nothing provides|unmet dependencies|problem with installed package|depsolve|held broken packages)",
        tags: &["packages", "dnf", "apt"],
        solution:
            "The package manager cannot satisfy the packages' dependencies.\n\n\
            * On the host, run the same update by hand (`dnf update --assumeno`, `apt-get -s upgrade`) to \
            see which package conflicts with which.\n\
            * Usual causes: a third-party repository with newer libraries, a version lock \
            (`dnf versionlock list`, `apt-mark showhold`), or a package excluded in the repo config.\n\
            * Patch the rest with `--skip-broken` / `exclude:` and open a ticket for the conflicting package.",
    },
    Seed {
        key: "disk-full",
        title: "No space left on device",
        field: "any",
        pattern: r"(?i)no space left on device",
        tags: &["disk", "capacity"],
        solution: "A file system on the host is full.\n\n\
            * Find it: `df -h` (and `df -i` for inodes).\n\
            * Usual culprits: `/var/log` (rotate, `journalctl --vacuum-size=200M`), `/var/cache/dnf` or \
            `/var/cache/apt` (`dnf clean all`, `apt-get clean`), old kernels in `/boot`.\n\
            * Add a pre-check task that fails early when free space is below what patching needs.",
    },
    Seed {
        key: "repo-metadata",
        title: "Package repository unreachable or broken",
        field: "any",
        pattern: r"(?i)(failed to download metadata for repo|cannot download repomd\.xml|errors during downloading metadata|failed to fetch .*(release|packages)|repository .* (not found|does not have a release file)|no more mirrors to try|cannot find a valid baseurl)",
        tags: &["packages", "repository", "dnf", "apt"],
        solution:
            "The host cannot read a package repository's metadata.\n\n\
            * Check the repository URL and the proxy settings on the host (`/etc/yum.repos.d`, \
            `/etc/apt/sources.list.d`).\n\
            * Satellite / subscription hosts: `subscription-manager refresh` and check the content view.\n\
            * Retry once the mirror is back; `dnf makecache` or `apt-get update` on the host shows the error.",
    },
    Seed {
        key: "service-start",
        title: "Service failed to start",
        field: "any",
        pattern: r"(?i)(unable to start service|job for .*\.service failed|failed to start .*service|could not find the requested service)",
        tags: &["systemd", "service"],
        solution: "systemd could not start the service.\n\n\
            * On the host: `systemctl status <service>` and `journalctl -u <service> -n 50`.\n\
            * A configuration file changed by the run may be invalid: most services have a check \
            (`nginx -t`, `httpd -t`, `sshd -t`); validate with the template module's `validate:`.\n\
            * **Could not find the requested service**: the package providing it is not installed.",
    },
    Seed {
        key: "timeout",
        title: "Task or connection timed out",
        field: "any",
        pattern: r"(?i)(timed out|timeout \(\d+s\) waiting|command timeout|async task did not complete within)",
        tags: &["timeout"],
        solution: "Something took longer than allowed.\n\n\
            * Reboots and long updates: raise `reboot_timeout`, or run the task `async` with a larger \
            timeout.\n\
            * Connection timeouts: raise `timeout` in `ansible.cfg`, check the network path.\n\
            * A job-level timeout: raise the template's or the run's `timeout` option.",
    },
];

/// Adds the shipped entries that are missing, and updates those nobody edited; an edited or deleted
/// entry is left alone.
pub async fn seed(app: &App) -> Result<(), String> {
    let db = app.pool.get().await.map_err(|e| format!("database: {e}"))?;
    for s in SEEDS {
        let tags: Vec<String> = s.tags.iter().map(|t| t.to_string()).collect();
        db.execute(
            "insert into kb_entries (title, field, kind, pattern, solution, tags, seed_key)
             values ($1, $2, 'regex', $3, $4, $5, $6)
             on conflict (seed_key) do update set
                 title = excluded.title, field = excluded.field, kind = excluded.kind,
                 pattern = excluded.pattern, solution = excluded.solution, tags = excluded.tags
             where not kb_entries.edited and kb_entries.deleted is null
               and (kb_entries.title, kb_entries.pattern, kb_entries.solution)
                   is distinct from (excluded.title, excluded.pattern, excluded.solution)",
            &[&s.title, &s.field, &s.pattern, &s.solution, &tags, &s.key],
        )
        .await
        .map_err(|e| format!("seeding the knowledge base: {e}"))?;
    }
    Ok(())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/try", post(try_rule))
        .route("/{id}", get(show).put(update).delete(remove))
}

fn validate(input: &mut KbEntryInput) -> Result<(), AppError> {
    input.title = input.title.trim().to_string();
    if input.title.is_empty() || input.title.chars().count() > 200 {
        return Err(AppError::Unprocessable("`title` must be 1 to 200 characters".into()));
    }
    if input.pattern.trim().is_empty() || input.pattern.len() > MAX_PATTERN {
        return Err(AppError::Unprocessable(format!("`pattern` must be 1 to {MAX_PATTERN} characters")));
    }
    if input.solution.len() > 20_000 {
        return Err(AppError::Unprocessable("`solution` is longer than 20000 characters".into()));
    }
    input.tags = input.tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
    input.tags.dedup();
    if input.tags.len() > 20 || input.tags.iter().any(|t| t.chars().count() > 50) {
        return Err(AppError::Unprocessable("at most 20 tags of at most 50 characters".into()));
    }
    for v in [&input.title, &input.pattern, &input.solution] {
        if v.contains('\0') {
            return Err(AppError::Unprocessable("text may not contain NUL characters".into()));
        }
    }
    Rule::new(0, input).map(|_| ()).map_err(AppError::Unprocessable)
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    tag: Option<String>,
}

async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    Q(q): Q<ListQuery>,
) -> Result<Json<Page<KbEntry>>, AppError> {
    let db = app.pool.get().await?;
    let pattern =
        q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(crate::infra::text::like_contains);
    let rows = db
        .query(
            &format!(
                "select {ENTRY_COLUMNS} from kb_entries
                  where deleted is null
                    and ($1::text is null or title ilike $1 or solution ilike $1 or pattern ilike $1)
                    and ($2::text is null or $2 = any(tags))
                  order by title"
            ),
            &[&pattern, &q.tag],
        )
        .await?;
    let results: Vec<KbEntry> = rows.iter().map(entry_from_row).collect();
    Ok(Json(crate::infra::extract::whole(results)))
}

async fn fetch(db: &deadpool_postgres::Object, id: i64) -> Result<KbEntry, AppError> {
    db.query_opt(&format!("select {ENTRY_COLUMNS} from kb_entries where id = $1 and deleted is null"), &[&id])
        .await?
        .map(|r| entry_from_row(&r))
        .ok_or_else(|| AppError::NotFound(format!("knowledge base entry {id} does not exist")))
}

async fn show(
    State(app): State<AppState>,
    _caller: Caller,
    KbId(id): KbId,
) -> Result<Json<KbEntry>, AppError> {
    let db = app.pool.get().await?;
    Ok(Json(fetch(&db, id).await?))
}

fn kind_str(k: KbMatch) -> &'static str {
    match k {
        KbMatch::Substring => "substring",
        KbMatch::Regex => "regex",
    }
}

/// Runs an insert or update of an entry: its columns are the parameters after the `id` (when
/// given), in `ENTRY_COLUMNS`' order, then who changed it.
async fn write_entry(
    db: &deadpool_postgres::Object,
    sql: &str,
    id: Option<&i64>,
    input: &KbEntryInput,
    by: &String,
) -> Result<Option<tokio_postgres::Row>, AppError> {
    let (field, kind) = (field_str(input.field), kind_str(input.kind));
    let columns: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &input.title,
        &field,
        &kind,
        &input.pattern,
        &input.module,
        &input.task,
        &input.solution,
        &input.tags,
        by,
    ];
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::with_capacity(10);
    if let Some(id) = id {
        params.push(id);
    }
    params.extend(columns);
    Ok(db.query_opt(sql, &params).await?)
}

async fn create(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(mut input): AppJson<KbEntryInput>,
) -> Result<(StatusCode, Json<KbEntry>), AppError> {
    caller.require(Role::Operator)?;
    validate(&mut input)?;
    let db = app.pool.get().await?;
    let sql = format!(
        "insert into kb_entries (title, field, kind, pattern, module, task, solution, tags, modified_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning {ENTRY_COLUMNS}"
    );
    let row = write_entry(&db, &sql, None, &input, &caller.name)
        .await?
        .ok_or_else(|| AppError::Internal("the new entry was not returned".into()))?;
    let entry = entry_from_row(&row);
    crate::infra::audit::record(
        &app,
        &caller,
        "kb entry created",
        Some(&format!("kb {}", entry.id)),
        serde_json::json!({"title": entry.entry.title}),
    )
    .await;
    spawn_recheck(&app);
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn update(
    State(app): State<AppState>,
    caller: Caller,
    KbId(id): KbId,
    AppJson(mut input): AppJson<KbEntryInput>,
) -> Result<Json<KbEntry>, AppError> {
    caller.require(Role::Operator)?;
    validate(&mut input)?;
    let db = app.pool.get().await?;
    let sql = format!(
        "update kb_entries set title = $2, field = $3, kind = $4, pattern = $5, module = $6, task = $7,
                solution = $8, tags = $9, modified_by = $10, modified = now(), edited = true
          where id = $1 and deleted is null returning {ENTRY_COLUMNS}"
    );
    let row = write_entry(&db, &sql, Some(&id), &input, &caller.name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("knowledge base entry {id} does not exist")))?;
    crate::infra::audit::record(
        &app,
        &caller,
        "kb entry changed",
        Some(&format!("kb {id}")),
        serde_json::json!({"title": input.title}),
    )
    .await;
    spawn_recheck(&app);
    Ok(Json(entry_from_row(&row)))
}

async fn remove(State(app): State<AppState>, caller: Caller, KbId(id): KbId) -> Result<StatusCode, AppError> {
    caller.require(Role::Operator)?;
    let db = app.pool.get().await?;
    // Kept, marked deleted: a shipped entry someone deleted is not seeded back.
    let n = db
        .execute("update kb_entries set deleted = now(), modified_by = $2, edited = true where id = $1 and deleted is null", &[&id, &caller.name])
        .await?;
    if n == 0 {
        return Err(AppError::NotFound(format!("knowledge base entry {id} does not exist")));
    }
    crate::infra::audit::record(
        &app,
        &caller,
        "kb entry deleted",
        Some(&format!("kb {id}")),
        serde_json::json!({}),
    )
    .await;
    spawn_recheck(&app);
    Ok(StatusCode::NO_CONTENT)
}

/// Which recent failures an entry would match, before it is saved.
async fn try_rule(
    State(app): State<AppState>,
    _caller: Caller,
    AppJson(mut input): AppJson<KbEntryInput>,
) -> Result<Json<Page<KbTryMatch>>, AppError> {
    if input.title.trim().is_empty() {
        input.title = "(trying)".into();
    }
    validate(&mut input)?;
    let rule = Rule::new(0, &input).map_err(AppError::Unprocessable)?;
    let db = app.pool.get().await?;
    let rows = db
        .query(
            "select f.job_id, j.name, f.counter, f.host, f.task, f.module, f.message, f.stderr, f.stdout, f.created
               from job_failures f join jobs j on j.id = f.job_id
              order by f.created desc nulls last, f.job_id desc limit 2000",
            &[],
        )
        .await?;
    let results: Vec<KbTryMatch> = rows
        .iter()
        .filter_map(|r| {
            let f = failure_from_row(r);
            rule.matches(&f).then(|| KbTryMatch {
                job_id: r.get("job_id"),
                job_name: r.get("name"),
                counter: r.get("counter"),
                host: r.get("host"),
                task: r.get("task"),
                error: f.error(),
                created: r.get("created"),
            })
        })
        .take(50)
        .collect();
    Ok(Json(crate::infra::extract::whole(results)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str, module: &str) -> Failure {
        Failure {
            message: message.into(),
            module: module.into(),
            task: "Update all packages".into(),
            ..Default::default()
        }
    }

    fn input(kind: KbMatch, pattern: &str) -> KbEntryInput {
        KbEntryInput {
            title: "t".into(),
            field: KbField::Any,
            kind,
            pattern: pattern.into(),
            module: None,
            task: None,
            solution: String::new(),
            tags: vec![],
        }
    }

    #[test]
    fn seeds_match_the_failures_they_are_for() {
        let cases = [
            ("ssh-auth", "Failed to connect to the host via ssh: user@web-01: Permission denied (publickey,password)."),
            ("unreachable", "Failed to connect to the host via ssh: ssh: connect to host web-01 port 22: No route to host"),
            ("sudo-password", "Missing sudo password"),
            ("package-lock", "Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)"),
            ("disk-full", "write error: No space left on device"),
            ("package-conflict", "pkg-1 failed to install on web-01 (simulated dependency conflict)"),
            ("repo-metadata", "Failed to download metadata for repo 'appstream': Cannot download repomd.xml"),
            ("service-start", "Unable to start service nginx: Job for nginx.service failed because the control process exited"),
            ("timeout", "Timeout (12s) waiting for privilege escalation prompt: "),
        ];
        for (key, message) in cases {
            let seed = SEEDS.iter().find(|s| s.key == key).expect("seed");
            let rule = Rule::new(1, &input(KbMatch::Regex, seed.pattern)).expect("compiles");
            assert!(rule.matches(&failure(message, "")), "{key} should match {message:?}");
            let others: Vec<&str> = SEEDS
                .iter()
                .filter(|s| {
                    s.key != key
                        && Rule::new(2, &input(KbMatch::Regex, s.pattern))
                            .expect("compiles")
                            .matches(&failure(message, ""))
                })
                .map(|s| s.key)
                .collect();
            assert!(others.len() <= 1, "{message:?} also matches {others:?}");
        }
        assert!(!Rule::new(1, &input(KbMatch::Regex, SEEDS[4].pattern))
            .expect("compiles")
            .matches(&failure("all good", "")));
    }

    #[test]
    fn limits_by_module_and_task_and_field() {
        let mut i = input(KbMatch::Substring, "REPOMD");
        i.module = Some("dnf".into());
        let r = Rule::new(1, &i).expect("rule");
        assert!(
            r.matches(&failure("Cannot download repomd.xml", "ansible.builtin.dnf")),
            "case-insensitive, short module name"
        );
        assert!(!r.matches(&failure("Cannot download repomd.xml", "ansible.builtin.yum")));
        i.module = None;
        i.task = Some("reboot".into());
        assert!(!Rule::new(1, &i).expect("rule").matches(&failure("Cannot download repomd.xml", "dnf")));
        let mut i = input(KbMatch::Substring, "boom");
        i.field = KbField::Stderr;
        let r = Rule::new(1, &i).expect("rule");
        assert!(!r.matches(&failure("boom", "")));
        assert!(r.matches(&Failure { stderr: "big boom".into(), ..Default::default() }));
        assert!(Rule::new(1, &input(KbMatch::Regex, "(unclosed")).is_err());
    }
}
