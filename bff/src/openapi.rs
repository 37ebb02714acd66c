//! `GET /api/v1/openapi.json`: the whole `/api/v1` described for other tools. The schemas are
//! generated from the `shared` types the handlers use (schemars), the routes listed here; a test
//! checks this list against the routers in the source and the served document against the
//! committed copy in `docs/openapi.json`.

use axum::Json;
use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// Who may call a route.
#[derive(Clone, Copy)]
enum Auth {
    None,
    Ingest,
    Viewer,
    Operator,
    Admin,
}

/// One operation: method, path (under `/api/v1`), what it does, who may, body and answer schemas.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
    body: Option<&'static str>,
    status: u16,
    answer: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    /// Another success status it may answer, without a body (e.g. 204 beside a 200).
    also: Option<u16>,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
) -> Op {
    Op { method, path, tag, summary, auth, body: None, status: 200, answer: None, query: &[], also: None }
}

impl Op {
    const fn body(mut self, schema: &'static str) -> Op {
        self.body = Some(schema);
        self
    }
    const fn answer(mut self, status: u16, schema: &'static str) -> Op {
        self.status = status;
        self.answer = Some(schema);
        self
    }
    const fn or(mut self, status: u16) -> Op {
        self.also = Some(status);
        self
    }
    const fn status(mut self, status: u16) -> Op {
        self.status = status;
        self
    }
    const fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Op {
        self.query = q;
        self
    }
}

const AUDIT_FILTERS: &[(&str, &str)] = &[
    ("actor", "part of who did it"),
    ("user_id", "exactly this person or service account"),
    ("action", "exactly this action"),
    ("target", "part of the object (job 42, key 3, user 7)"),
    ("since", "from this time (RFC 3339)"),
    ("until", "before this time (RFC 3339)"),
    ("page", "page number"),
    ("page_size", "1 to 200"),
];

const JOB_FILTERS: &[(&str, &str)] = &[
    ("status", "one status or several separated by commas"),
    ("template", "exact template name"),
    ("inventory", "exact inventory name"),
    ("launched_by", "who launched it"),
    ("source", "`local` or a controller's name"),
    ("external_id", "the job's id at its source"),
    ("started_after", "RFC 3339 time"),
    ("started_before", "RFC 3339 time"),
    ("q", "quick search over name, template, inventory, launched_by, limit, ids"),
    ("order_by", "id, started, finished, name, status, elapsed, template, modified; `-` for descending"),
    ("page", "from 1"),
    ("page_size", "1 to 200, default 25"),
    ("page_after", "keyset paging: the page after this job id in the chosen order (what `next` links use)"),
    ("page_before", "keyset paging: the page before this job id in the chosen order"),
];

/// Every operation of `/api/v1`. Keep in step with the routers (a test checks both ways).
fn operations() -> Vec<Op> {
    use Auth::*;
    vec![
        op("post", "/ingest/events", "ingest", "Ingest a batch of one job's events (gzip accepted)", Ingest)
            .body("IngestBatch")
            .answer(200, "IngestResult"),
        op(
            "post",
            "/ingest/aap-logging",
            "ingest",
            "Receive AAP external-logging records (JSON lines or Splunk-wrapped)",
            Ingest,
        ),
        op(
            "post",
            "/ingest/aap-logging/{controller}",
            "ingest",
            "Receive AAP external-logging records for one controller",
            Ingest,
        ),
        op("get", "/jobs", "jobs", "List jobs with filters, ordering and paging", Viewer)
            .answer(200, "Page_for_Job")
            .query(JOB_FILTERS),
        op(
            "post",
            "/jobs",
            "jobs",
            "Launch: an AAP template (`template`) or a local playbook (`source`)",
            Operator,
        )
        .answer(201, "Job"),
        op("get", "/jobs/{id}", "jobs", "One job, with its failures' explanations", Viewer)
            .answer(200, "Job"),
        op("get", "/jobs/{id}/events", "jobs", "A job's events in counter order", Viewer)
            .answer(200, "Page_for_JobEvent")
            .query(&[
                ("after_counter", "only events after this counter"),
                ("limit", "1 to 1000, default 100"),
                ("host", "only this host's events"),
            ]),
        op("get", "/jobs/{id}/hosts", "jobs", "Per-host results", Viewer).answer(200, "Page_for_JobHost"),
        op("get", "/jobs/{id}/stdout", "jobs", "The output rebuilt from the events (text/plain)", Viewer)
            .query(&[("format", "`txt` (default, colours stripped) or `ansi`")]),
        op("get", "/jobs/{id}/history", "jobs", "Every status change, who and when", Viewer)
            .answer(200, "Page_for_StatusChange"),
        op(
            "get",
            "/jobs/{id}/stream",
            "live",
            "Follow a job's events over Server-Sent Events (`Last-Event-ID` resumes)",
            Viewer,
        )
        .query(&[("cursor", "resume after this cursor when Last-Event-ID cannot be sent")]),
        op("post", "/jobs/{id}/cancel", "jobs", "Cancel a job on its engine", Operator),
        op("post", "/jobs/{id}/relaunch", "jobs", "Relaunch on all or only the failed hosts", Operator),
        op(
            "get",
            "/ws",
            "live",
            "WebSocket: job changes and followed jobs' events (ClientMessage / ServerMessage)",
            Viewer,
        )
        .status(101),
        op(
            "get",
            "/live",
            "live",
            "The WebSocket's messages over Server-Sent Events (one ServerMessage per `data:`), for the subscription in the query; for browsers behind proxies that refuse upgrades",
            Viewer,
        )
        .query(&[
            ("jobs", "`true`: every job's changes"),
            ("job", "one job's events and changes"),
            ("cursor", "where that job's events resume"),
        ]),
        op("get", "/live/poll", "live", "One job's state and next page of events past a cursor, as the feed's messages (the last resort when neither a WebSocket nor SSE gets through)", Viewer)
            .answer(200, "LivePoll")
            .query(&[("job", "the job (required)"), ("cursor", "resume after this cursor")]),
        op(
            "get",
            "/templates",
            "aap",
            "The controllers' job templates with their launch prompts and surveys",
            Operator,
        )
        .answer(200, "TemplatePage"),
        op("get", "/controllers", "aap", "Configured controllers and their health", Viewer),
        op("get", "/session", "session", "Who is signed in, with their groups and role (none: which groups grant access)", Viewer)
            .answer(200, "SessionInfo"),
        op(
            "post",
            "/session",
            "session",
            "Sign in with an API key (`key`) or a user name and password (LDAP); sets an HttpOnly session cookie",
            None,
        )
        .body("SessionRequest")
        .answer(200, "SessionInfo"),
        op("delete", "/session", "session", "Sign out; after single sign-on, 200 with the provider's logout page", None)
            .answer(200, "SignedOut")
            .or(204),
        op("get", "/session/options", "session", "What the sign-in page offers (no sign-in needed)", None)
            .answer(200, "SignInOptions"),
        op("get", "/session/sessions", "session", "The caller's sessions (browsers signed in)", Viewer)
            .answer(200, "Page_for_UserSession"),
        op("delete", "/session/sessions/{id}", "session", "Sign one of the caller's sessions out", Viewer).status(204),
        op(
            "get",
            "/session/oidc/start",
            "session",
            "Single sign-on: sends the browser to the OpenID provider (code flow with PKCE)",
            None,
        )
        .query(&[("return_to", "a path of this site to open after signing in")])
        .status(303),
        op(
            "get",
            "/session/oidc/callback",
            "session",
            "Single sign-on: the provider's redirect URI ({PLAYDECK_PUBLIC_URL}/api/v1/session/oidc/callback)",
            None,
        )
        .query(&[("code", "the authorization code"), ("state", "the state this browser was given")])
        .status(303),
        op("get", "/keys", "keys", "API keys of service accounts (never the keys themselves)", Admin)
            .answer(200, "Page_for_ApiKey"),
        op("post", "/keys", "keys", "Create an API key (and its service account); the answer is the only time it is shown", Admin)
            .body("NewApiKey")
            .answer(201, "CreatedApiKey"),
        op("delete", "/keys/{id}", "keys", "Revoke a key and end its sessions", Admin).status(204),
        op("get", "/tokens", "tokens", "The caller's tokens (admins: `user_id` for anyone's)", Viewer)
            .answer(200, "Page_for_Token")
            .query(&[("user_id", "admins: whose tokens")]),
        op(
            "post",
            "/tokens",
            "tokens",
            "Make a personal token (or, admins, a service account's); the answer is the only time it is shown",
            Viewer,
        )
        .body("NewToken")
        .answer(201, "CreatedToken"),
        op("delete", "/tokens/{id}", "tokens", "Revoke a token (own; admins: any)", Viewer).status(204),
        op("get", "/users", "users", "People who signed in and service accounts", Admin)
            .answer(200, "Page_for_User")
            .query(&[("kind", "oidc, ldap, proxy or service"), ("q", "part of the name or e-mail")]),
        op("post", "/users", "users", "Make a service account (tokens only, no sign-in)", Admin)
            .body("NewServiceAccount")
            .answer(201, "User"),
        op("patch", "/users/{id}", "users", "Disable or enable someone (sessions and tokens stop at once); a service account's role", Admin)
            .body("UserPatch")
            .answer(200, "User"),
        op("get", "/audit", "audit", "The audit log, newest first", Admin).query(AUDIT_FILTERS),
        op("post", "/session/handoff", "session", "A one-time code (60 s) with which a framed page of this browser signs in with this session's sign-in (`POST /session` with `handoff`)", Viewer)
            .answer(200, "SessionHandoff"),
        op("get", "/bindings", "people", "Every role binding in force: from the group settings, PLAYDECK_ACCESS_CONFIG and the Settings page", Admin)
            .answer(200, "Page_for_RoleBinding"),
        op("post", "/bindings", "people", "Add a role binding: a user or group, a role, and the sources, templates and inventories it holds over", Admin)
            .body("NewRoleBinding")
            .answer(201, "RoleBinding"),
        op("delete", "/bindings/{id}", "people", "Delete a binding made on the Settings page", Admin).status(204),
        op("get", "/audit/csv", "audit", "The same selection as CSV (at most 100000 rows)", Admin).query(AUDIT_FILTERS),
        op("get", "/audit/actions", "audit", "The actions recorded, for the filter", Admin),
        op("get", "/kb", "kb", "Knowledge base entries", Viewer)
            .answer(200, "Page_for_KbEntry")
            .query(&[("q", "search title, solution, pattern"), ("tag", "only entries with this tag")]),
        op("post", "/kb", "kb", "Add an entry", Operator).body("KbEntryInput").answer(201, "KbEntry"),
        op("post", "/kb/try", "kb", "Which recent failures a rule would match", Viewer)
            .body("KbEntryInput")
            .answer(200, "Page_for_KbTryMatch"),
        op("get", "/kb/{id}", "kb", "One entry", Viewer).answer(200, "KbEntry"),
        op("put", "/kb/{id}", "kb", "Change an entry (seeding never overwrites it afterwards)", Operator)
            .body("KbEntryInput")
            .answer(200, "KbEntry"),
        op("delete", "/kb/{id}", "kb", "Delete an entry", Operator).status(204),
        op("get", "/stats", "stats", "The dashboard's figures", Viewer)
            .answer(200, "Stats")
            .query(&[("window", "`24h` (default), `7d` or `30d`")]),
        op("get", "/requests", "requests", "Recent requests in plain words", Viewer),
        op(
            "post",
            "/requests",
            "requests",
            "Interpret a request: what was understood, what is missing, what would run",
            Operator,
        )
        .body("RequestText")
        .answer(201, "Request"),
        op("get", "/requests/{id}", "requests", "A request, its conversation, its job and progress", Viewer)
            .answer(200, "Request"),
        op("post", "/requests/{id}/reply", "requests", "Answer the request's question", Operator)
            .body("RequestText")
            .answer(200, "Request"),
        op("post", "/requests/{id}/confirm", "requests", "Launch what the request would run", Operator)
            .answer(200, "Request"),
        op(
            "get",
            "/credentials",
            "credentials",
            "Credentials by name and kind (never their inputs)",
            Operator,
        )
        .answer(200, "Page_for_Credential"),
        op("post", "/credentials", "credentials", "Store a credential (inputs sealed at rest)", Admin)
            .body("NewCredential")
            .answer(201, "Credential"),
        op("get", "/credentials/{name}", "credentials", "One credential, by name or id", Operator)
            .answer(200, "Credential"),
        op("delete", "/credentials/{name}", "credentials", "Delete a credential", Admin).status(204),
        op("get", "/controllers/schedules", "schedules", "The AAP controllers' own schedules of their templates, read-only, with the next run each controller computed", Viewer)
            .answer(200, "ControllerSchedules")
            .query(&[("controller", "only this controller")]),
        op("get", "/schedules", "schedules", "Schedules the caller may see, the next to fire first", Viewer)
            .answer(200, "Page_for_Schedule")
            .query(&[("enabled", "true: running ones; false: paused ones"), ("page", "from 1"), ("page_size", "1 to 200, default 25")]),
        op("post", "/schedules", "schedules", "Schedule a launch (a POST /jobs body): cron in a time zone or once, exclusions, overlap, catch-up; refused with 422 when the launch would be refused now", Operator)
            .body("ScheduleInput")
            .answer(201, "Schedule"),
        op("post", "/schedules/preview", "schedules", "The next run times of a timing, with their offsets in its zone", Viewer)
            .body("PreviewRequest")
            .answer(200, "Preview"),
        op("get", "/schedules/{id}", "schedules", "One schedule, with its next and last run", Viewer).answer(200, "Schedule"),
        op("patch", "/schedules/{id}", "schedules", "Change, pause (`enabled: false`) or resume a schedule (its owner or an admin)", Operator)
            .body("ScheduleInput")
            .answer(200, "Schedule"),
        op("delete", "/schedules/{id}", "schedules", "Delete a schedule (its owner or an admin); its runs' jobs stay", Operator).status(204),
        op("get", "/schedules/{id}/runs", "schedules", "Each time it came due, newest first: the job it launched, or why it launched none", Viewer)
            .answer(200, "Page_for_ScheduleRun")
            .query(&[("page", "from 1"), ("page_size", "1 to 200, default 25")]),
        op("get", "/playbooks", "launch", "The local engine's playbooks (PLAYDECK_PLAYBOOK_DIR) with their plays, vars_prompt and survey (`<playbook>.survey.yml`, or `survey_error`)", Operator)
            .answer(200, "Page_for_Playbook")
            .query(&[("repo", "a git repository to list instead (as `source.repo`)"), ("branch", "its branch (default: its default branch)"), ("credential", "the stored credential to fetch it with")]),
        op("post", "/playbooks/survey", "launch", "A local playbook's survey with each question's choices resolved for an inventory and the answers so far (from the inventory's hosts or groups, or a URL)", Operator)
            .body("SurveyRequest")
            .answer(200, "ResolvedSurvey"),
        op("post", "/playbooks/hosts", "launch", "The hosts a launch would touch, per play, as `ansible-playbook --list-hosts` says with its inventory, limit and extra vars", Operator)
            .body("HostsRequest")
            .answer(200, "HostCount"),
        op("get", "/inventories", "launch", "The inventory files (PLAYDECK_INVENTORY_DIR) with their groups and host counts, as `ansible-inventory` reads them", Operator)
            .answer(200, "Page_for_InventoryFile"),
        op("get", "/inventories/{name}/hosts", "launch", "One inventory file's groups and hosts (`name` is its path in the directory, `/` as `%2F`)", Operator)
            .answer(200, "InventoryFile"),
        op("get", "/webhooks", "webhooks", "Registered webhooks", Admin).answer(200, "Page_for_Webhook"),
        op("post", "/webhooks", "webhooks", "Register a webhook (HMAC-SHA256 signed deliveries)", Admin)
            .body("NewWebhook")
            .answer(201, "CreatedWebhook"),
        op("get", "/webhooks/{id}", "webhooks", "One webhook", Admin).answer(200, "Webhook"),
        op("delete", "/webhooks/{id}", "webhooks", "Remove a webhook", Admin).status(204),
        op("get", "/webhooks/deliveries", "webhooks", "Deliveries with their attempts", Admin)
            .answer(200, "Page_for_WebhookDelivery"),
        op("get", "/webhooks/deliveries/{id}", "webhooks", "One delivery", Admin)
            .answer(200, "WebhookDelivery"),
        op("post", "/webhooks/deliveries/{id}/redeliver", "webhooks", "Deliver again", Admin).status(202),
        op("get", "/notifiers", "notifiers", "Mail and chat notifiers (never their secrets)", Admin)
            .answer(200, "Page_for_Notifier"),
        op(
            "post",
            "/notifiers",
            "notifiers",
            "Add a mail (SMTP) or chat (Slack, Mattermost, Teams) notifier",
            Admin,
        )
        .body("NewNotifier")
        .answer(201, "Notifier"),
        op("get", "/notifiers/{id}", "notifiers", "One notifier", Admin).answer(200, "Notifier"),
        op(
            "patch",
            "/notifiers/{id}",
            "notifiers",
            "Turn a notifier off or on, change its events, templates or settings",
            Admin,
        )
        .body("NotifierPatch")
        .answer(200, "Notifier"),
        op(
            "get",
            "/notifiers/deliveries",
            "notifiers",
            "Notifications sent or due, with their attempts",
            Admin,
        )
        .query(&[
            ("notifier_id", "only this notifier's"),
            ("job_id", "only this job's"),
            ("state", "`pending`, `delivered` or `failed`"),
            ("page", "from 1"),
            ("page_size", "1 to 200, default 25"),
        ])
        .answer(200, "Page_for_NotifierDelivery"),
        op("post", "/notifiers/deliveries/{id}/redeliver", "notifiers", "Send a notification again", Admin)
            .status(202),
        op(
            "delete",
            "/notifiers/{id}",
            "notifiers",
            "Remove a notifier (its pending messages are dropped)",
            Admin,
        )
        .status(204),
        op("post", "/notifiers/{id}/test", "notifiers", "Send a test message now and say how it went", Admin)
            .answer(200, "NotifierTest"),
        op("get", "/openapi.json", "meta", "This document", None),
    ]
}

/// Operations whose answer depends on a service asked on the caller's behalf: the AAP
/// controllers (launch, cancel, relaunch, templates, the request box's confirm) and sign-in
/// (LDAP, the OpenID provider).
fn upstream(method: &str, path: &str) -> bool {
    (path == "/jobs" && method == "post")
        || path.ends_with("/cancel")
        || path.ends_with("/relaunch")
        || path.starts_with("/templates")
        || path.starts_with("/controllers")
        || path.ends_with("/confirm")
        || path.starts_with("/session")
        || (path == "/schedules" && method == "post")
        || (path == "/schedules/{id}" && method == "patch")
}

/// Every route of `/api/v1` as (method, path), for the drift test.
pub fn documented_routes() -> Vec<(String, String)> {
    operations().iter().map(|o| (o.method.to_string(), o.path.to_string())).collect()
}

fn schemas() -> Map<String, Value> {
    let mut gen = SchemaGenerator::new(SchemaSettings::openapi3());
    fn add<T: JsonSchema>(gen: &mut SchemaGenerator) {
        gen.subschema_for::<T>();
    }
    use shared::*;
    add::<Job>(&mut gen);
    add::<Page<Job>>(&mut gen);
    add::<Page<JobEvent>>(&mut gen);
    add::<Page<JobHost>>(&mut gen);
    add::<Page<StatusChange>>(&mut gen);
    add::<Page<ApiKey>>(&mut gen);
    add::<Page<kb::KbEntry>>(&mut gen);
    add::<Page<kb::KbTryMatch>>(&mut gen);
    add::<Page<engine::Webhook>>(&mut gen);
    add::<Page<shared::credentials::Credential>>(&mut gen);
    add::<shared::credentials::NewCredential>(&mut gen);
    add::<shared::credentials::Credential>(&mut gen);
    add::<Page<engine::WebhookDelivery>>(&mut gen);
    add::<IngestBatch>(&mut gen);
    add::<IngestResult>(&mut gen);
    add::<SessionRequest>(&mut gen);
    add::<SessionInfo>(&mut gen);
    add::<SessionHandoff>(&mut gen);
    add::<people::SignInOptions>(&mut gen);
    add::<people::SignedOut>(&mut gen);
    add::<Page<people::UserSession>>(&mut gen);
    add::<Page<people::Token>>(&mut gen);
    add::<people::NewToken>(&mut gen);
    add::<people::CreatedToken>(&mut gen);
    add::<Page<people::User>>(&mut gen);
    add::<people::User>(&mut gen);
    add::<people::NewServiceAccount>(&mut gen);
    add::<people::UserPatch>(&mut gen);
    add::<Page<people::RoleBinding>>(&mut gen);
    add::<people::RoleBinding>(&mut gen);
    add::<people::NewRoleBinding>(&mut gen);
    add::<NewApiKey>(&mut gen);
    add::<CreatedApiKey>(&mut gen);
    add::<ErrorBody>(&mut gen);
    add::<ClientMessage>(&mut gen);
    add::<ServerMessage>(&mut gen);
    add::<LivePoll>(&mut gen);
    add::<kb::KbEntryInput>(&mut gen);
    add::<kb::KbEntry>(&mut gen);
    add::<stats::Stats>(&mut gen);
    add::<aap::TemplatePage>(&mut gen);
    add::<aap::TemplateLaunch>(&mut gen);
    add::<aap::TemplateLaunched>(&mut gen);
    add::<aap::Controller>(&mut gen);
    add::<engine::LaunchRequest>(&mut gen);
    add::<engine::JobRun>(&mut gen);
    add::<engine::NewWebhook>(&mut gen);
    add::<engine::CreatedWebhook>(&mut gen);
    add::<engine::Webhook>(&mut gen);
    add::<engine::WebhookDelivery>(&mut gen);
    add::<engine::WebhookPayload>(&mut gen);
    add::<Page<notifiers::Notifier>>(&mut gen);
    add::<notifiers::NewNotifier>(&mut gen);
    add::<notifiers::Notifier>(&mut gen);
    add::<notifiers::NotifierTest>(&mut gen);
    add::<notifiers::NotifierPatch>(&mut gen);
    add::<Page<notifiers::NotifierDelivery>>(&mut gen);
    add::<aap::ControllerSchedules>(&mut gen);
    add::<Page<playbooks::Playbook>>(&mut gen);
    add::<Page<playbooks::InventoryFile>>(&mut gen);
    add::<playbooks::InventoryFile>(&mut gen);
    add::<playbooks::SurveyRequest>(&mut gen);
    add::<playbooks::ResolvedSurvey>(&mut gen);
    add::<playbooks::HostsRequest>(&mut gen);
    add::<playbooks::HostCount>(&mut gen);
    add::<Page<schedules::Schedule>>(&mut gen);
    add::<Page<schedules::ScheduleRun>>(&mut gen);
    add::<schedules::Schedule>(&mut gen);
    add::<schedules::ScheduleInput>(&mut gen);
    add::<schedules::PreviewRequest>(&mut gen);
    add::<schedules::Preview>(&mut gen);
    add::<requests::RequestText>(&mut gen);
    add::<requests::Request>(&mut gen);
    add::<requests::RequestSummary>(&mut gen);
    let defs = gen.take_definitions();
    let mut out = Map::new();
    for (name, schema) in defs {
        out.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    out
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let mut operation = Map::new();
        operation.insert("tags".into(), json!([o.tag]));
        operation.insert("summary".into(), json!(o.summary));
        operation.insert(
            "operationId".into(),
            json!(format!("{}{}", o.method, o.path.replace(['/', '{', '}', '.', '-'], "_"))),
        );
        let security = match o.auth {
            Auth::None => json!([]),
            Auth::Ingest => json!([{"ingestToken": []}]),
            Auth::Viewer | Auth::Operator | Auth::Admin => json!([{"apiKey": []}, {"session": []}]),
        };
        operation.insert("security".into(), security);
        let role = match o.auth {
            Auth::Operator => Some("operator"),
            Auth::Admin => Some("admin"),
            _ => None,
        };
        if let Some(role) = role {
            operation.insert("x-playdeck-role".into(), json!(role));
        }
        let mut params: Vec<Value> = Vec::new();
        for seg in o.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            let schema = if name == "id" {
                json!({"type": "integer", "minimum": 1})
            } else {
                json!({"type": "string"})
            };
            params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
        for (name, description) in o.query {
            params.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}}));
        }
        if !params.is_empty() {
            operation.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = o.body {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": reference(body)}}}),
            );
        }
        let mut responses = Map::new();
        let ok = match o.answer {
            Some(schema) => {
                json!({"description": "OK", "content": {"application/json": {"schema": reference(schema)}}})
            }
            None => json!({"description": "OK"}),
        };
        responses.insert(o.status.to_string(), ok);
        if let Some(also) = o.also {
            responses.insert(also.to_string(), json!({"description": "OK"}));
        }
        responses.insert(
            "4XX".into(),
            json!({"description": "Refused: the detail says why", "content": {"application/json": {"schema": reference("ErrorBody")}}}),
        );
        // The 5xx an operation can answer without a bug (a 500 is always one): 503 when the
        // database is away or every connection is busy (with Retry-After), 507 when a write
        // finds the database's disk full (with Retry-After), and 502/504 where
        // the answer depends on a service asked on the caller's behalf.
        let error = |what: &str| {
            json!({"description": what, "content": {"application/json": {"schema": reference("ErrorBody")}},
                   "headers": {"Retry-After": {"description": "seconds to wait (503, 507)", "schema": {"type": "integer"}}}})
        };
        if !matches!(o.auth, Auth::None) || o.path.starts_with("/session") {
            responses.insert(
                "503".into(),
                error("The database is not reachable, or every connection is in use: try again"),
            );
            if o.method != "get" {
                responses.insert(
                    "507".into(),
                    error(
                        "The database's disk is full: nothing was stored; send it again once space is freed",
                    ),
                );
            }
        }
        if upstream(o.method, o.path) {
            responses.insert(
                "502".into(),
                error(
                    "A service asked on the caller's behalf (controller, directory, OpenID provider) failed",
                ),
            );
            responses.insert("504".into(), error("That service did not answer in time"));
        }
        operation.insert("responses".into(), Value::Object(responses));
        let path = paths.entry(format!("/api/v1{}", o.path)).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(p) = path {
            p.insert(o.method.into(), Value::Object(operation));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Playdeck",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A live console and API for Ansible jobs on AAP/AWX or local ansible-core. \
                            Errors are {\"errors\":[{\"detail\":\"…\"}]}; lists are {count, next, previous, results}."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (roles viewer, operator, admin)"},
                "ingestToken": {"type": "http", "scheme": "bearer", "description": "The ingest token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "playdeck_session",
                            "description": "Browser session; writes also need the x-playdeck-csrf header"}
            }
        }
    })
}

pub async fn serve() -> Json<Value> {
    Json(document())
}
