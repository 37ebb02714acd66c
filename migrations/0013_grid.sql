-- The grid over a million jobs (issue "Data at scale"). Expand-only: indexes, and the trigram
-- extension when the server has it.
--
-- Each `order_by` of GET /api/v1/jobs reads an index in its order (descending with nulls last
-- here, as the list sorts, read backwards for ascending with nulls first), and so does each common filter with the default newest-first order;
-- keyset pages (`page_after`, `page_before`) start inside them.
create index jobs_status_id on jobs (status desc nulls last, id desc);
create index jobs_template_status_id on jobs (template, status, id desc);
create index jobs_template_id on jobs (template desc nulls last, id desc);
create index jobs_inventory_id on jobs (inventory, id desc);
create index jobs_launched_by_id on jobs (launched_by, id desc);
create index jobs_source_id on jobs (source, id desc);
create index jobs_finished_id on jobs (finished desc nulls last, id desc);
create index jobs_name_id on jobs (name desc nulls last, id desc);
create index jobs_elapsed_id on jobs (elapsed desc nulls last, id desc);
create index jobs_modified_id on jobs (modified desc nulls last, id desc);

-- The dashboard reads a window of jobs by creation time from an index alone: every job for the
-- counts, the jobs that finished on their own for the durations.
create index jobs_created_stats on jobs (created) include (status, template, name, elapsed, source, inventory);
create index jobs_finished_stats on jobs (created) include (template, name, elapsed, source, inventory)
    where status in ('successful', 'failed') and elapsed is not null;

-- The quick search (`q`): one trigram index over the searched columns, joined by a newline
-- (which the search box cannot send), so `ilike '%…%'` is answered from the index. pg_trgm is a
-- trusted extension (PostgreSQL 13+) that ships with PostgreSQL; where it cannot be created the
-- search still works, by a scan.
do $$
begin
    create extension if not exists pg_trgm;
    create index jobs_search on jobs using gin (
        (name || E'\n' || coalesce(template, '') || E'\n' || coalesce(inventory, '') || E'\n'
              || coalesce(launched_by, '') || E'\n' || coalesce("limit", '') || E'\n' || external_id)
        gin_trgm_ops);
exception when others then
    raise notice 'pg_trgm is not available (%); the quick search scans', sqlerrm;
end
$$;

-- How common a searched word is, for the planner: a word in a third of the jobs is found sooner
-- by reading the newest jobs in order than through the trigram index (expression statistics,
-- PostgreSQL 14+).
do $$
begin
    create statistics jobs_search_stats on (
        (name || E'\n' || coalesce(template, '') || E'\n' || coalesce(inventory, '') || E'\n'
              || coalesce(launched_by, '') || E'\n' || coalesce("limit", '') || E'\n' || external_id))
        from jobs;
exception when others then
    raise notice 'no expression statistics (%); the planner guesses how common a searched word is', sqlerrm;
end
$$;
