-- Who asked for what: every launch, cancel and relaunch, with the API key's name, whatever the
-- engine. And why a job ended as it did, when its events cannot say (timeout, crash, cancel).

create table job_actions (
    id      bigserial primary key,
    job_id  bigint references jobs (id) on delete cascade,
    action  text not null check (action in ('launch', 'cancel', 'relaunch')),
    by      text not null,
    at      timestamptz not null default now(),
    -- What was asked (secrets masked) and what the engine answered.
    detail  jsonb not null default '{}'
);

create index job_actions_job on job_actions (job_id, id);

alter table jobs add column explanation text;
