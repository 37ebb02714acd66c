-- The spine: jobs, their events, per-host results, status history, API keys and browser sessions.
--
-- Migrations are expand/contract: a migration only adds (tables, nullable columns, indexes) so the
-- previous release keeps running against the new schema during a rolling update; removals come in a
-- later release once no old pod reads the column.

create table jobs (
    id              bigserial primary key,
    -- 'local' or a controller's name; external_id is the job's id there.
    source          text not null,
    external_id     text not null,
    name            text not null default '',
    template        text,
    inventory       text,
    project         text,
    launched_by     text,
    "limit"         text,
    extra_vars      jsonb,
    status          text not null default 'new'
                    check (status in ('new','pending','waiting','running','successful','failed','error','canceled')),
    -- Set once a source states the status itself; from then on events no longer move it.
    status_explicit boolean not null default false,
    created         timestamptz not null default now(),
    modified        timestamptz not null default now(),
    started         timestamptz,
    finished        timestamptz,
    elapsed         double precision,
    -- Hosts per final state (one state per host); recomputed from job_hosts at each batch.
    hosts_ok          integer not null default 0,
    hosts_changed     integer not null default 0,
    hosts_failed      integer not null default 0,
    hosts_skipped     integer not null default 0,
    hosts_unreachable integer not null default 0,
    current_play    text,
    current_task    text,
    -- Counter of the event that set current_play/current_task, so late events don't move them back.
    current_counter bigint not null default 0,
    plays           integer not null default 0,
    tasks           integer not null default 0,
    event_count     bigint not null default 0,
    -- Arrival order of this job's events: the last seq given out. Assigned under the job row's lock,
    -- so a reader that sees seq n committed has every seq below n too (what cursors rely on).
    last_seq        bigint not null default 0,
    -- Global order of changes to job rows, for catching up after the LISTEN connection broke.
    change_seq      bigint not null default 0,
    unique (source, external_id)
);

create sequence job_change_seq;

-- The grid's filters, newest first.
create index jobs_status_started on jobs (status, started desc nulls last, id desc);
create index jobs_template_started on jobs (template, started desc nulls last, id desc);
create index jobs_inventory_started on jobs (inventory, started desc nulls last, id desc);
create index jobs_launched_by_started on jobs (launched_by, started desc nulls last, id desc);
create index jobs_started on jobs (started desc nulls last, id desc);
create index jobs_change_seq on jobs (change_seq);

create table job_events (
    job_id      bigint not null references jobs (id) on delete cascade,
    counter     bigint not null,
    seq         bigint not null,
    event       text not null,
    uuid        text,
    parent_uuid text,
    created     timestamptz,
    host        text,
    play        text,
    task        text,
    role        text,
    stdout      text not null default '',
    start_line  bigint not null default 0,
    end_line    bigint not null default 0,
    failed      boolean not null default false,
    changed     boolean not null default false,
    event_data  jsonb not null default '{}',
    primary key (job_id, counter)
);

-- Live delivery and catch-up read by arrival order.
create unique index job_events_seq on job_events (job_id, seq);

create table job_hosts (
    job_id        bigint not null references jobs (id) on delete cascade,
    host          text not null,
    ok            integer not null default 0,
    changed       integer not null default 0,
    failures      integer not null default 0,
    dark          integer not null default 0,
    skipped       integer not null default 0,
    rescued       integer not null default 0,
    ignored       integer not null default 0,
    last_task     text,
    last_counter  bigint not null default 0,
    -- True once playbook_on_stats gave Ansible's own summary; rolling counts stop then.
    final_summary boolean not null default false,
    primary key (job_id, host)
);

create table job_status_history (
    id       bigserial primary key,
    job_id   bigint not null references jobs (id) on delete cascade,
    status   text not null,
    previous text,
    at       timestamptz not null default now(),
    by       text not null
);

create index job_status_history_job on job_status_history (job_id, id);

create table api_keys (
    id        bigserial primary key,
    name      text not null,
    role      text not null check (role in ('viewer','operator','admin')),
    -- sha256 of the key: keys are 256-bit random, so a fast hash is enough and lookups are exact.
    key_hash  text not null unique,
    prefix    text not null,
    created   timestamptz not null default now(),
    last_used timestamptz,
    revoked   timestamptz
);

create table sessions (
    token_hash text primary key,
    key_id     bigint not null references api_keys (id) on delete cascade,
    created    timestamptz not null default now(),
    expires    timestamptz not null
);
