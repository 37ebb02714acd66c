//! LDAP / Active Directory sign-in: search-then-bind with the service account, groups from
//! `memberOf` and a group search, LDAPS or StartTLS (with `PLAYDECK_LDAP_CA_FILE` as the root).
//! What the person typed goes into filters escaped (RFC 4515); an empty password is refused
//! before any bind, since a simple bind with no password is an anonymous bind that "succeeds".

use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use tokio_rustls::rustls;

use crate::infra::auth::Identity;
use crate::infra::config::auth::LdapConfig;
use crate::infra::error::AppError;
use crate::infra::state::App;
use crate::infra::tls;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Who the directory says someone is.
struct Person {
    dn: String,
    username: String,
    display_name: String,
    email: Option<String>,
    groups: Vec<String>,
}

fn wrong() -> AppError {
    AppError::Unauthorized("wrong user name or password".into())
}

fn unreachable(e: impl std::fmt::Display) -> AppError {
    AppError::BadGateway(format!("the directory (LDAP) cannot be reached: {e}"))
}

/// Checks a user name and password against the directory and remembers the person.
pub(super) async fn sign_in(app: &App, username: &str, password: &str) -> Result<Identity, AppError> {
    let Some(config) = &app.config.auth.ldap else {
        return Err(AppError::Unprocessable(
            "signing in with a user name and password needs LDAP (PLAYDECK_LDAP_URL); sign in with a key or single sign-on".into(),
        ));
    };
    let username = username.trim();
    if username.is_empty() || username.chars().count() > 256 {
        return Err(wrong());
    }
    if password.is_empty() {
        return Err(AppError::Unauthorized("a password is needed".into()));
    }
    let person = authenticate(config, username, password).await?;
    let (user_id, display_name) = super::remember(
        app,
        super::Seen {
            kind: "ldap",
            issuer: "",
            subject: &person.dn,
            username: &person.username,
            display_name: &person.display_name,
            email: person.email.as_deref(),
            groups: &person.groups,
        },
    )
    .await?;
    let access = crate::infra::auth::person_access(app, &person.username, &person.groups).await?;
    Ok(Identity {
        user_id: Some(user_id),
        key_id: None,
        token_name: None,
        session_id: None,
        role: access.max_role(),
        access,
        name: person.username.clone(),
        via_cookie: true,
        kind: "ldap".into(),
        display_name,
        email: person.email.clone(),
        groups: person.groups.clone(),
    })
}

fn tls_config(config: &LdapConfig) -> Result<Option<Arc<rustls::ClientConfig>>, AppError> {
    let Some(path) = &config.ca_file else { return Ok(None) };
    let roots = tls::roots(path).map_err(|e| AppError::BadGateway(format!("PLAYDECK_LDAP_CA_FILE {e}")))?;
    let config = tls::client_config(tls::Check::Full(roots), None).map_err(AppError::BadGateway)?;
    Ok(Some(Arc::new(config)))
}

async fn authenticate(config: &LdapConfig, username: &str, password: &str) -> Result<Person, AppError> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(TIMEOUT).set_starttls(config.starttls);
    if let Some(tls) = tls_config(config)? {
        settings = settings.set_config(tls);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url).await.map_err(unreachable)?;
    ldap3::drive!(conn);
    let bind_as_service = |ldap: &mut ldap3::Ldap| {
        let dn = config.bind_dn.clone().unwrap_or_default();
        let pw = config.bind_password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
        let mut ldap = ldap.clone();
        async move {
            if dn.is_empty() {
                return Ok(());
            }
            ldap.with_timeout(TIMEOUT)
                .simple_bind(&dn, &pw)
                .await
                .map_err(unreachable)?
                .success()
                .map(|_| ())
                .map_err(|e| {
                    unreachable(format!("the service account (PLAYDECK_LDAP_BIND_DN) cannot bind: {e}"))
                })
        }
    };
    bind_as_service(&mut ldap).await?;
    let filter = config.user_filter.replace("{username}", &ldap_escape(username));
    let attrs = vec!["uid", "sAMAccountName", "cn", "displayName", "mail", "memberOf"];
    let (entries, _) = ldap
        .with_timeout(TIMEOUT)
        .search(&config.user_base, Scope::Subtree, &filter, attrs)
        .await
        .map_err(unreachable)?
        .success()
        .map_err(|e| unreachable(format!("the user search failed: {e}")))?;
    // Nobody, or more than one entry (an ambiguous filter): the same answer as a wrong password.
    let [entry] = <[_; 1]>::try_from(entries).map_err(|_| wrong())?;
    let entry = SearchEntry::construct(entry);
    let bound = ldap.with_timeout(TIMEOUT).simple_bind(&entry.dn, password).await.map_err(unreachable)?;
    if bound.rc != 0 {
        let _ = ldap.unbind().await;
        return Err(wrong());
    }
    let first = |name: &str| entry.attrs.get(name).and_then(|v| v.first()).cloned();
    let mut groups: Vec<String> = entry.attrs.get("memberOf").cloned().unwrap_or_default();
    if let Some(base) = &config.group_base {
        bind_as_service(&mut ldap).await?;
        let filter = config
            .group_filter
            .replace("{dn}", &ldap_escape(&entry.dn))
            .replace("{username}", &ldap_escape(username));
        let (found, _) = ldap
            .with_timeout(TIMEOUT)
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await
            .map_err(unreachable)?
            .success()
            .map_err(|e| unreachable(format!("the group search failed: {e}")))?;
        for g in found {
            let dn = SearchEntry::construct(g).dn;
            if !groups.iter().any(|have| have.eq_ignore_ascii_case(&dn)) {
                groups.push(dn);
            }
        }
    }
    let _ = ldap.unbind().await;
    let username_attr =
        first("uid").or_else(|| first("sAMAccountName")).unwrap_or_else(|| username.to_string());
    Ok(Person {
        display_name: first("displayName").or_else(|| first("cn")).unwrap_or_else(|| username_attr.clone()),
        username: username_attr,
        email: first("mail"),
        groups,
        dn: entry.dn,
    })
}
