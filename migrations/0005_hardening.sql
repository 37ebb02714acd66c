-- Audit log, and retention of raw events.

-- Who did what, for admins: sign-ins (and refused ones), key changes, launches, cancels, KB edits.
create table audit_log (
    id     bigserial primary key,
    at     timestamptz not null default now(),
    actor  text not null,
    action text not null,
    target text,
    detail jsonb not null default '{}'
);

create index audit_log_at on audit_log (at desc);

-- Set when a job's raw events were deleted by retention; its summary, hosts and history stay.
alter table jobs add column events_expired timestamptz;

-- Retention finds finished jobs whose events are still kept, oldest first.
create index jobs_retention on jobs (finished) where events_expired is null and finished is not null;
