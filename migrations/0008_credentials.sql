-- Credentials for the run-playbook API, and the commit a job ran. Expand-only.

create table credentials (
    id          bigserial primary key,
    name        text not null unique,
    kind        text not null check (kind in ('ssh_key', 'password', 'become_password', 'vault_password',
                                              'api_token', 'hashicorp_vault', 'environment')),
    description text not null default '',
    -- The inputs, sealed with AES-256-GCM under the credential key (PLAYDECK_CREDENTIAL_KEY):
    -- version, key id, nonce, ciphertext and tag. Never returned by the API.
    sealed      bytea not null,
    -- Which key sealed it (the first bytes of the key's SHA-256), so a wrong key is named as such.
    key_id      text not null,
    created     timestamptz not null default now(),
    created_by  text not null,
    last_used   timestamptz
);

-- The git commit a job ran (git, role sources and git inventories), like AWX's scm_revision.
alter table jobs add column scm_revision text;
