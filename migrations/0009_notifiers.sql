-- Notifiers: mail (SMTP) and chat (incoming webhooks) told when a job ends. Expand-only.

create table notifiers (
    id         bigserial primary key,
    name       text not null unique,
    kind       text not null check (kind in ('mail', 'chat')),
    events     text[] not null,
    -- Empty: every job; else the job's template must be one of these (a local job's playbook path,
    -- an AAP job's template name).
    templates  text[] not null default '{}',
    -- What the API shows: the mail server, sender and recipients; the chat's style and host.
    config     jsonb not null,
    -- The SMTP password or the chat URL (it carries the channel's token), sealed under the
    -- credential key like credentials (0008); null: a mail notifier without a password.
    sealed     bytea,
    key_id     text not null,
    active     boolean not null default true,
    created    timestamptz not null default now(),
    created_by text not null
);

-- Their outbox, as webhook_deliveries but a table of its own: during a rollout, replicas of the
-- previous version run their webhook dispatcher against this schema and must not take these rows.
create table notifier_deliveries (
    id           bigserial primary key,
    job_id       bigint not null references jobs (id) on delete cascade,
    notifier_id  bigint references notifiers (id) on delete set null,
    event        text not null,
    state        text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
    attempts     integer not null default 0,
    next_attempt timestamptz not null default now(),
    last_error   text,
    created      timestamptz not null default now(),
    delivered    timestamptz
);

create index notifier_deliveries_due on notifier_deliveries (next_attempt) where state = 'pending';
create index notifier_deliveries_job on notifier_deliveries (job_id, id);

create table notifier_attempts (
    delivery_id bigint not null references notifier_deliveries (id) on delete cascade,
    attempt     integer not null,
    at          timestamptz not null default now(),
    -- The SMTP reply code or the HTTP status that ended the attempt, if any.
    code        integer,
    error       text,
    duration_ms integer not null,
    primary key (delivery_id, attempt)
);

-- Like the webhooks' trigger (0004): the deliveries are written in the transaction that finished
-- the job, whatever its source, so none is lost to a crash in between.
create function playdeck_enqueue_notifications() returns trigger language plpgsql as $$
begin
    if new.status in ('successful', 'failed', 'error', 'canceled')
       and old.status not in ('successful', 'failed', 'error', 'canceled') then
        insert into notifier_deliveries (job_id, notifier_id, event)
        select new.id, n.id, 'job.' || new.status
          from notifiers n
         where n.active
           and ('job.finished' = any (n.events) or 'job.' || new.status = any (n.events))
           and (cardinality(n.templates) = 0 or new.template = any (n.templates));
    end if;
    return new;
end $$;

create trigger jobs_finished_notifiers after update of status on jobs
    for each row execute function playdeck_enqueue_notifications();
