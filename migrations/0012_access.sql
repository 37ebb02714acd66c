-- Role bindings made on the Settings page (issue "Teams, part 2"): a user or group, a role, and
-- the scope it holds over (empty arrays: every source / template / inventory). Bindings from
-- PLAYDECK_ACCESS_CONFIG and PLAYDECK_*_GROUPS are not stored; they are read at each start.
-- Expand-only: nothing existing changes.
create table role_bindings (
    id           bigserial primary key,
    subject_kind text not null check (subject_kind in ('user', 'group')),
    subject      text not null check (subject <> ''),
    role         text not null check (role in ('viewer', 'operator', 'admin')),
    sources      text[] not null default '{}',
    templates    text[] not null default '{}',
    inventories  text[] not null default '{}',
    -- The stored credentials its launches may use (empty: every one).
    credentials  text[] not null default '{}',
    created      timestamptz not null default now(),
    created_by   text not null
);

-- A framed page's single sign-on runs in a popup, whose session lives in the popup's (first-party)
-- cookie partition; the framed page gets a session of its own for the same sign-in by a one-time
-- code (60 s) the popup hands it.
create table session_handoffs (
    code_hash  text primary key,
    token_hash text not null,
    created    timestamptz not null default now()
);
