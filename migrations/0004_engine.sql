-- The local engine's queue, and webhooks with their outbox. Additive only (expand/contract).

create table engine_jobs (
    job_id       bigint primary key references jobs (id) on delete cascade,
    state        text not null default 'queued' check (state in ('queued', 'running', 'done')),
    -- The launch request as recorded: secrets in extra_vars and host vars masked.
    spec         jsonb not null,
    -- What the run needs that is not recorded (extra_vars and the inline inventory, unmasked), held
    -- only while the job waits in the queue: cleared by the worker that takes it.
    pending      jsonb,
    -- Whether masking hid anything (such a job cannot be relaunched from its record).
    has_secrets  boolean not null default false,
    timeout_secs integer not null,
    callback_url text,
    queued_at    timestamptz not null default now(),
    -- The Playdeck process running it and its pulse: a running job whose pulse stopped was left
    -- behind by a crash.
    worker       text,
    hostname     text,
    pid          integer,
    heartbeat    timestamptz,
    started_at   timestamptz,
    ended_at     timestamptz,
    exit_code    integer,
    cancel_requested_at timestamptz,
    cancel_requested_by text
);

create index engine_jobs_queued on engine_jobs (job_id) where state = 'queued';
create index engine_jobs_running on engine_jobs (heartbeat) where state = 'running';

create table webhooks (
    id         bigserial primary key,
    url        text not null,
    -- The HMAC key the receiver checks signatures with; never returned after creation.
    secret     text not null,
    events     text[] not null,
    active     boolean not null default true,
    created    timestamptz not null default now(),
    created_by text not null
);

-- The outbox: one row per receiver per finished job, written in the transaction that finished it.
create table webhook_deliveries (
    id           bigserial primary key,
    job_id       bigint not null references jobs (id) on delete cascade,
    -- null: the job's own callback_url.
    webhook_id   bigint references webhooks (id) on delete set null,
    url          text not null,
    event        text not null,
    state        text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
    attempts     integer not null default 0,
    next_attempt timestamptz not null default now(),
    -- The signed body, fixed at the first attempt so every retry sends the same bytes.
    body         text,
    last_status  integer,
    last_error   text,
    created      timestamptz not null default now(),
    delivered    timestamptz
);

create index webhook_deliveries_due on webhook_deliveries (next_attempt) where state = 'pending';
create index webhook_deliveries_job on webhook_deliveries (job_id, id);

create table webhook_attempts (
    delivery_id bigint not null references webhook_deliveries (id) on delete cascade,
    attempt     integer not null,
    at          timestamptz not null default now(),
    status_code integer,
    error       text,
    duration_ms integer not null,
    primary key (delivery_id, attempt)
);

-- Every job that finishes, whatever its source (local engine, controller sync, ingest), gets its
-- deliveries in the same transaction that finished it, so none is lost to a crash in between.
create function playdeck_enqueue_webhooks() returns trigger language plpgsql as $$
begin
    if new.status in ('successful', 'failed', 'error', 'canceled')
       and old.status not in ('successful', 'failed', 'error', 'canceled') then
        insert into webhook_deliveries (job_id, webhook_id, url, event)
        select new.id, w.id, w.url, 'job.' || new.status
          from webhooks w
         where w.active and ('job.finished' = any (w.events) or 'job.' || new.status = any (w.events));
        insert into webhook_deliveries (job_id, url, event)
        select new.id, e.callback_url, 'job.' || new.status
          from engine_jobs e
         where e.job_id = new.id and e.callback_url is not null;
    end if;
    return new;
end $$;

create trigger jobs_finished_webhooks after update of status on jobs
    for each row execute function playdeck_enqueue_webhooks();
