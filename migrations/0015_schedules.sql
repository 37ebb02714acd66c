-- Schedules (issue "Schedules"): a launch body fired by cron in a time zone, or once. Expand-only.
create table schedules (
    id           bigserial primary key,
    name         text not null,
    cron         text,
    once_at      timestamp,                      -- local, in time_zone
    time_zone    text not null,
    exclusions   jsonb not null default '[]',
    overlap      text not null default 'skip' check (overlap in ('skip', 'queue', 'run')),
    catch_up     text not null default 'once' check (catch_up in ('once', 'skip')),
    enabled      boolean not null default true,
    -- The launch as a job's record shows it (secrets masked), and the body itself, sealed under
    -- the credential key like the engine's queue (what only the run may see).
    launch       jsonb not null,
    launch_sealed jsonb not null,
    -- For lists and access checks: `local` or the controller, and the playbook or template.
    source       text not null,
    target       text not null,
    inventory    text,
    -- Who made it, and whose access each run is launched with: the token it was made with
    -- (revoked: runs stop), or the person.
    created_by   text not null,
    owner_user   bigint references users (id) on delete set null,
    owner_key    bigint references api_keys (id) on delete set null,
    created      timestamptz not null default now(),
    modified     timestamptz not null default now(),
    -- The next time it comes due (null: paused, or a one-time schedule that came due).
    next_run     timestamptz,
    check ((cron is null) <> (once_at is null))
);
create index schedules_due on schedules (next_run) where enabled and next_run is not null;

-- Each time a schedule came due. One row per (schedule, time): whichever replica inserts it
-- fires it, so each run is fired once.
create table schedule_runs (
    id            bigserial primary key,
    schedule_id   bigint not null references schedules (id) on delete cascade,
    scheduled_for timestamptz not null,
    state         text not null check (state in ('launching', 'waiting', 'fired', 'skipped', 'failed')),
    job_id        bigint references jobs (id) on delete set null,
    reason        text,
    created       timestamptz not null default now(),
    modified      timestamptz not null default now(),
    unique (schedule_id, scheduled_for)
);
create index schedule_runs_open on schedule_runs (schedule_id) where state in ('launching', 'waiting');
create index schedule_runs_latest on schedule_runs (schedule_id, scheduled_for desc);

-- The job a run launched says so: a run whose launcher died is finished from here, never
-- launched twice (the unique index refuses a second job for one run).
alter table jobs add column schedule_run_id bigint;
create unique index jobs_schedule_run on jobs (schedule_run_id) where schedule_run_id is not null;

-- The request box: "… tonight at 22:00" is confirmed as a one-time schedule, in the person's zone.
alter table requests add column time_zone text;
alter table requests add column schedule_id bigint references schedules (id) on delete set null;
alter table requests drop constraint requests_status_check;
alter table requests add constraint requests_status_check
    check (status in ('needs_input', 'refused', 'ready', 'launching', 'launched', 'scheduled'));

-- "A schedule could not launch": its run is recorded as an `error` job that never started, whose
-- explanation says why. Receivers of `schedule.failed` get it as that event (instead of
-- `job.error`); the others as before. Same triggers as 0004 and 0009 otherwise.
create or replace function playdeck_enqueue_webhooks() returns trigger language plpgsql as $$
declare
    refused boolean := new.schedule_run_id is not null and new.status = 'error' and new.started is null;
begin
    if new.status in ('successful', 'failed', 'error', 'canceled')
       and old.status not in ('successful', 'failed', 'error', 'canceled') then
        insert into webhook_deliveries (job_id, webhook_id, url, event)
        select new.id, w.id, w.url,
               case when refused and 'schedule.failed' = any (w.events) then 'schedule.failed'
                    else 'job.' || new.status end
          from webhooks w
         where w.active and ('job.finished' = any (w.events) or 'job.' || new.status = any (w.events)
                             or (refused and 'schedule.failed' = any (w.events)));
        insert into webhook_deliveries (job_id, url, event)
        select new.id, e.callback_url, 'job.' || new.status
          from engine_jobs e
         where e.job_id = new.id and e.callback_url is not null;
    end if;
    return new;
end $$;

create or replace function playdeck_enqueue_notifications() returns trigger language plpgsql as $$
declare
    refused boolean := new.schedule_run_id is not null and new.status = 'error' and new.started is null;
begin
    if new.status in ('successful', 'failed', 'error', 'canceled')
       and old.status not in ('successful', 'failed', 'error', 'canceled') then
        insert into notifier_deliveries (job_id, notifier_id, event)
        select new.id, n.id,
               case when refused and 'schedule.failed' = any (n.events) then 'schedule.failed'
                    else 'job.' || new.status end
          from notifiers n
         where n.active
           and ('job.finished' = any (n.events) or 'job.' || new.status = any (n.events)
                or (refused and 'schedule.failed' = any (n.events)))
           and (cardinality(n.templates) = 0 or new.template = any (n.templates));
    end if;
    return new;
end $$;
