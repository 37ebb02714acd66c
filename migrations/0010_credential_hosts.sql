-- Credentials bound to hosts: a credential with hosts is sent only to those (an inventory URL, a
-- git repository, a Galaxy server). Expand-only: an older replica ignores the column, and rows it
-- writes get the empty list (any host), as before.

alter table credentials add column hosts text[] not null default '{}';
