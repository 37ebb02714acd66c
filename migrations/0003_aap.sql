-- The AAP/AWX connector's sync cursors: where each controller's job list and each of its jobs'
-- events were read up to, so a restart resumes there. Only additions (expand-only).

create table aap_controllers (
    name        text primary key,
    -- `modified` of the newest job read from the controller's job list; the next round asks for
    -- jobs modified since then (inclusive, so a job sharing that instant is not skipped).
    jobs_cursor timestamptz,
    updated     timestamptz not null default now()
);

create table aap_jobs (
    controller   text not null,
    -- The job's id on the controller.
    external_id  bigint not null,
    -- The Playdeck job, once stored.
    job_id       bigint references jobs (id) on delete cascade,
    -- Highest event counter the sync has read and stored; the next read asks for counters above.
    last_counter bigint not null default 0,
    -- The controller's `modified` of the job when last read.
    awx_modified timestamptz,
    -- What was last stored about the job's own fields, so unchanged jobs are not stored again.
    fingerprint  text,
    -- True once the job is finished, the controller has processed all its events and every one of
    -- them is stored: nothing more to follow.
    done         boolean not null default false,
    updated      timestamptz not null default now(),
    primary key (controller, external_id)
);

-- The sync's working set: each round follows the jobs not done.
create index aap_jobs_active on aap_jobs (controller, external_id) where not done;
