-- The knowledge base of known errors, and the failures of each job with the entries that
-- explain them.

create table kb_entries (
    id          bigserial primary key,
    title       text not null,
    -- Where to look: the failure's message, stderr, stdout, module, or any of them.
    field       text not null default 'any' check (field in ('any', 'message', 'stderr', 'stdout', 'module')),
    kind        text not null default 'substring' check (kind in ('substring', 'regex')),
    pattern     text not null,
    -- Optional limits: only failures of this module / of tasks whose name contains this.
    module      text,
    task        text,
    solution    text not null default '',
    tags        text[] not null default '{}',
    -- Entries shipped with Playdeck carry a key; an edited one is never overwritten by seeding.
    seed_key    text unique,
    edited      boolean not null default false,
    created     timestamptz not null default now(),
    modified    timestamptz not null default now(),
    modified_by text not null default 'playdeck',
    deleted     timestamptz
);

-- One row per failed or unreachable event: what failed, and which entries explain it.
create table job_failures (
    job_id   bigint not null references jobs (id) on delete cascade,
    counter  bigint not null,
    host     text,
    task     text,
    module   text,
    event    text not null,
    message  text not null default '',
    stderr   text not null default '',
    stdout   text not null default '',
    created  timestamptz,
    kb_ids   bigint[] not null default '{}',
    primary key (job_id, counter)
);

create index job_failures_recent on job_failures (created desc);
