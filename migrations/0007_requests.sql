-- The request box: what an operator asked for in plain words, what Playdeck understood, the
-- conversation, and the job it launched once confirmed. Expand-only, like every migration.

create table requests (
    id             bigserial primary key,
    created        timestamptz not null default now(),
    modified       timestamptz not null default now(),
    -- The API key's name that typed the first message.
    created_by     text not null,
    -- The first message, as typed (control characters replaced).
    text           text not null,
    status         text not null
                   check (status in ('needs_input', 'refused', 'ready', 'launching', 'launched')),
    -- The catalog action, once clear.
    action         text,
    -- The latest interpretation: understood, missing, refused, would_run and the answer.
    interpretation jsonb not null,
    -- The action's phases as they were when the request was confirmed.
    phases         jsonb not null default '[]',
    job_id         bigint references jobs (id) on delete set null,
    confirmed      timestamptz,
    confirmed_by   text
);

create index requests_status on requests (status, id desc);
create index requests_job on requests (job_id) where job_id is not null;

create table request_messages (
    id         bigserial primary key,
    request_id bigint not null references requests (id) on delete cascade,
    at         timestamptz not null default now(),
    -- 'operator' (typed by the key `by`) or 'playdeck' (its answer).
    author     text not null check (author in ('operator', 'playdeck')),
    by         text not null,
    text       text not null
);

create index request_messages_request on request_messages (request_id, id);
