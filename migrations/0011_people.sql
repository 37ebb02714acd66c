-- Teams, part 1: people sign in as themselves (OpenID Connect, LDAP, a trusted proxy), service
-- accounts, personal tokens, the sessions of people and the audit log's actor. Expand-only: the
-- previous release still reads api_keys, sessions and audit_log as they were.

create table users (
    id           bigserial primary key,
    -- 'oidc' (issuer + subject), 'ldap' (subject: the entry's DN), 'proxy' (subject: the user name
    -- the proxy sends) or 'service' (a service account: no sign-in, tokens only).
    kind         text not null check (kind in ('oidc', 'ldap', 'proxy', 'service')),
    issuer       text not null default '',
    subject      text not null,
    -- What people type and what the audit log shows (preferred_username, uid, the proxy's user).
    username     text not null,
    display_name text not null default '',
    email        text,
    groups       text[] not null default '{}',
    -- A service account's role; a person's role comes from their groups at each request.
    role         text check (role in ('viewer', 'operator', 'admin')),
    created      timestamptz not null default now(),
    created_by   text,
    last_seen    timestamptz,
    disabled     timestamptz,
    unique (kind, issuer, subject)
);

create index users_username on users (lower(username));

-- A key belongs to a user: a person's personal token or a service account's token.
alter table api_keys add column user_id bigint references users (id);
alter table api_keys add column expires timestamptz;
alter table api_keys add column created_by text;
create index api_keys_user on api_keys (user_id) where revoked is null;

-- Every existing key becomes a service account of its own name, so it is listed as one.
insert into users (kind, subject, username, display_name, role, created, created_by)
select 'service', 'key:' || id, name, name, role, created, 'migration 0011' from api_keys;
update api_keys k set user_id = u.id
  from users u where u.kind = 'service' and u.subject = 'key:' || k.id;

-- A session is a person's (user_id) or an API key's (key_id, the key form of the sign-in page).
alter table sessions alter column key_id drop not null;
alter table sessions add column id bigserial;
create unique index sessions_id on sessions (id);
alter table sessions add column user_id bigint references users (id) on delete cascade;
alter table sessions add column last_seen timestamptz not null default now();
alter table sessions add column method text not null default 'key';
alter table sessions add column client text;
alter table sessions add column user_agent text;
-- The ID token of an OpenID Connect session: the `id_token_hint` of the provider's logout.
alter table sessions add column id_token text;
create index sessions_user on sessions (user_id);

-- OpenID Connect sign-ins under way: the state (hashed), nonce and PKCE verifier, used once.
create table oidc_logins (
    state_hash text primary key,
    nonce      text not null,
    verifier   text not null,
    return_to  text not null default '/',
    created    timestamptz not null default now()
);

-- Who did it: the person or service account, and the token when one was used.
alter table audit_log add column user_id bigint;
alter table audit_log add column key_id bigint;
create index audit_log_user on audit_log (user_id, id desc);
create index audit_log_action on audit_log (action, id desc);
