-- Two copies of one controller job's events: the callback plugin's, sent from inside the
-- execution environment, and the controller's own (the sync, AAP's external logging). Each event
-- is stored once (see `ingest::copies`).
--
-- match_key, match_n: what both copies carry (the event type, the play's or task's uuid, the
--     host) and which occurrence of that key this event is in its copy's order.
-- plugin_counter: the plugin's own counter, once the plugin's copy of the event has come.
-- provisional: only the plugin's copy is here; its `counter` is 1 000 000 000 + the plugin's
--     counter until the controller's copy replaces it with the controller's counter.
alter table job_events
    add column match_key text,
    add column match_n integer,
    add column plugin_counter bigint,
    add column provisional boolean not null default false;

create index job_events_match on job_events (job_id, match_key, match_n) where match_key is not null;
create unique index job_events_plugin_counter on job_events (job_id, plugin_counter)
    where plugin_counter is not null;
