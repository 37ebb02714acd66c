//! The mail notifier's sending, through `lettre` (rustls on ring, Tokio): STARTTLS, implicit TLS
//! or (when chosen) plain TCP; AUTH PLAIN or LOGIN with a password, or XOAUTH2 (Microsoft 365,
//! Gmail) with an access token got from the notifier's OAuth token endpoint; SMTPUTF8 when an
//! address needs it; headers encoded and folded by lettre.
//!
//! Each notifier keeps a small pool of connections ([`Mailers`]), so a burst of failed jobs is
//! sent over one connection instead of a handshake per message. The connection goes to the
//! address the outbound guard checked (`infra::outbound::check_mail_server`), while TLS checks
//! the certificate against the host name given.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shared::notifiers::{MailOAuth, MailTls};

use crate::infra::config::DeliveryConfig;

/// Where and how to connect.
pub struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: MailTls,
    pub login: Login<'a>,
}

/// How to sign in.
pub enum Login<'a> {
    None,
    Password {
        user: &'a str,
        password: &'a str,
    },
    /// XOAUTH2 as `user`, with an access token from `oauth`'s endpoint.
    Xoauth2 {
        user: &'a str,
        oauth: &'a MailOAuth,
        client_secret: &'a str,
        refresh_token: Option<&'a str>,
    },
}

/// One message.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

/// Why a message did not go out.
#[derive(Debug)]
pub struct SmtpError {
    pub message: String,
    /// The server's reply code, when a reply ended the attempt.
    pub code: Option<u16>,
    /// Whether trying again cannot help (a 5xx reply, a server without STARTTLS, a refused address).
    pub permanent: bool,
}

impl SmtpError {
    pub fn transient(message: impl Into<String>) -> SmtpError {
        SmtpError { message: message.into(), code: None, permanent: false }
    }
    pub fn permanent(message: impl Into<String>) -> SmtpError {
        SmtpError { message: message.into(), code: None, permanent: true }
    }
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The notifiers' open connections and access tokens, by notifier; a changed notifier (another
/// server, address, login) gets a new pool.
#[derive(Default)]
pub struct Mailers {
    transports: Mutex<HashMap<String, (u64, Transport)>>,
    tokens: Mutex<HashMap<String, (u64, String, Instant)>>,
}

/// RFC 3834: a machine wrote this; auto-responders stay quiet.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

fn fingerprint(parts: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl Mailers {
    /// Sends one message through notifier `key`'s pool; answers once the server has accepted it.
    pub async fn send(
        &self,
        cfg: &DeliveryConfig,
        key: &str,
        server: &Server<'_>,
        mail: &Mail<'_>,
    ) -> Result<(), SmtpError> {
        let message = message(mail)?;
        let addrs = crate::infra::outbound::check_mail_server(cfg, server.host, server.port, true)
            .await
            .map_err(SmtpError::permanent)?;
        let credentials = match &server.login {
            Login::None => None,
            Login::Password { user, password } => Some((
                Credentials::new(user.to_string(), password.to_string()),
                vec![Mechanism::Plain, Mechanism::Login],
                format!("password {user} {password}"),
            )),
            Login::Xoauth2 { user, oauth, client_secret, refresh_token } => {
                let token = self.token(cfg, key, oauth, client_secret, *refresh_token).await?;
                let print = format!("xoauth2 {user} {token}");
                Some((Credentials::new(user.to_string(), token), vec![Mechanism::Xoauth2], print))
            }
        };
        let transport = self.transport(cfg, key, server, addrs[0], credentials)?;
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // A pool whose server went away is dropped with it.
                self.transports.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                if matches!(server.login, Login::Xoauth2 { .. })
                    && e.status().is_some_and(|c| u16::from(c) == 535)
                {
                    // A revoked token: the next attempt gets a new one.
                    self.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                }
                Err(smtp_error(&e, server))
            }
        }
    }

    fn transport(
        &self,
        cfg: &DeliveryConfig,
        key: &str,
        server: &Server<'_>,
        addr: SocketAddr,
        credentials: Option<(Credentials, Vec<Mechanism>, String)>,
    ) -> Result<Transport, SmtpError> {
        // Another server, address or login (a new XOAUTH2 token among them): a new pool.
        let login = credentials.as_ref().map(|c| c.2.as_str()).unwrap_or("");
        let tls = format!("{:?}", server.tls);
        let print = fingerprint(&[server.host, &server.port.to_string(), &tls, &addr.to_string(), login]);
        let mut pools = self.transports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((p, t)) = pools.get(key) {
            if *p == print {
                return Ok(t.clone());
            }
        }
        let parameters = || -> Result<TlsParameters, SmtpError> {
            let mut b = TlsParameters::builder(server.host.to_string());
            if let Some(pem) = &cfg.mail_ca {
                for block in pem_blocks(pem) {
                    let cert = Certificate::from_pem(block.as_bytes())
                        .map_err(|e| SmtpError::permanent(format!("PLAYDECK_MAIL_CA_FILE: {e}")))?;
                    b = b.add_root_certificate(cert);
                }
            }
            b.build().map_err(|e| SmtpError::permanent(format!("TLS: {e}")))
        };
        let tls = match server.tls {
            MailTls::Starttls => Tls::Required(parameters()?),
            MailTls::Tls => Tls::Wrapper(parameters()?),
            MailTls::None => Tls::None,
        };
        let mut builder = Transport::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .tls(tls)
            .timeout(Some(cfg.timeout))
            .hello_name(ClientId::Domain(my_name()))
            .pool_config(PoolConfig::new().max_size(2).idle_timeout(Duration::from_secs(60)));
        if let Some((c, mechanisms, _)) = credentials {
            builder = builder.credentials(c).authentication(mechanisms);
        }
        let transport = builder.build();
        pools.insert(key.to_string(), (print, transport.clone()));
        Ok(transport)
    }

    /// An access token for XOAUTH2: the one got before while it has a minute left, else a new one
    /// from the token endpoint (refresh-token grant with one, client credentials without).
    async fn token(
        &self,
        cfg: &DeliveryConfig,
        key: &str,
        oauth: &MailOAuth,
        client_secret: &str,
        refresh_token: Option<&str>,
    ) -> Result<String, SmtpError> {
        use oauth2::basic::BasicClient;
        use oauth2::{
            ClientId, ClientSecret, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
        };
        let print =
            fingerprint(&[&oauth.token_url, &oauth.client_id, client_secret, refresh_token.unwrap_or("")]);
        if let Some((p, token, until)) = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            if *p == print && Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (url, addrs) = crate::infra::outbound::check_url(cfg, &oauth.token_url)
            .await
            .map_err(|e| SmtpError::permanent(format!("the OAuth token endpoint: {e}")))?;
        let http = crate::infra::outbound::pinned_client(cfg, &url, &addrs).map_err(SmtpError::transient)?;
        let client = BasicClient::new(ClientId::new(oauth.client_id.clone()))
            .set_client_secret(ClientSecret::new(client_secret.to_string()))
            .set_token_uri(
                TokenUrl::new(oauth.token_url.clone())
                    .map_err(|e| SmtpError::permanent(format!("token_url: {e}")))?,
            );
        let scopes: Vec<Scope> =
            oauth.scope.iter().flat_map(|s| s.split_whitespace()).map(|s| Scope::new(s.into())).collect();
        let answer = match refresh_token {
            Some(r) => {
                let r = RefreshToken::new(r.to_string());
                client.exchange_refresh_token(&r).add_scopes(scopes).request_async(&http).await
            }
            None => client.exchange_client_credentials().add_scopes(scopes).request_async(&http).await,
        };
        let token = answer.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => SmtpError::permanent(format!(
                "the OAuth token endpoint refused: {}{}",
                r.error(),
                r.error_description().map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            RequestTokenError::Request(e) => SmtpError::transient(format!(
                "the OAuth token endpoint: {}",
                crate::infra::outbound::root_cause(&e)
            )),
            other => SmtpError::transient(format!("the OAuth token endpoint: {other}")),
        })?;
        let lifetime = token.expires_in().unwrap_or(Duration::from_secs(300));
        let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(60));
        let secret = token.access_token().secret().clone();
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), (print, secret.clone(), until));
        Ok(secret)
    }
}

/// The PEM certificates in a file, one block each.
fn pem_blocks(pem: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(pem);
    let mut blocks = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let Some(end) = rest[start..].find(end_marker) else { break };
        let end = start + end + end_marker.len();
        blocks.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    blocks
}

fn smtp_error(e: &lettre::transport::smtp::Error, server: &Server<'_>) -> SmtpError {
    let code = e.status().map(u16::from);
    let mut message = match code {
        Some(c) => format!("the mail server answered {c}: {}", crate::infra::outbound::root_cause(e)),
        None => {
            format!("mail server {}:{}: {}", server.host, server.port, crate::infra::outbound::root_cause(e))
        }
    };
    if message.contains("STARTTLS is not supported") {
        message =
            "the mail server does not offer STARTTLS; choose `tls: tls` if it speaks TLS from the start, \
                   or `tls: none` to send in clear"
                .into();
    }
    if message.contains("No compatible authentication mechanism") {
        message = format!(
            "the mail server offers none of the sign-in mechanisms this notifier uses ({})",
            match server.login {
                Login::Xoauth2 { .. } => "XOAUTH2",
                _ => "PLAIN, LOGIN",
            }
        );
    }
    // A 5xx, a refused configuration (no STARTTLS, no mechanism): trying again cannot help.
    let permanent = e.is_permanent() || e.is_client();
    SmtpError { message: super::message::clip(&message, 400), code, permanent }
}

fn message(mail: &Mail<'_>) -> Result<Message, SmtpError> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>().map_err(|e| SmtpError::permanent(format!("{a:?} is not a mail address: {e}")))
    };
    if !header_safe(mail.subject) {
        return Err(SmtpError::permanent("the Subject header holds a line break or a control character"));
    }
    let domain = mail.from.rsplit_once('@').map(|(_, d)| d).unwrap_or("playdeck.localdomain");
    let id = hex::encode(crate::infra::secrets::random_bytes::<12>());
    let mut b = Message::builder()
        .from(mailbox(mail.from)?)
        .subject(mail.subject)
        .message_id(Some(format!("<{id}@{domain}>")))
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .header(AutoSubmitted);
    for to in mail.to {
        b = b.to(mailbox(to)?);
    }
    let body = mail.body.replace("\r\n", "\n");
    b.body(body).map_err(|e| SmtpError::permanent(format!("the message: {e}")))
}

/// The name this host greets with: its host name, if it is a plausible one.
fn my_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if !name.is_empty()
        && name.len() < 200
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        name.to_string()
    } else {
        "playdeck.localdomain".to_string()
    }
}

/// Whether a header value can be written as it is: no line breaks (header injection), no other
/// control characters.
pub fn header_safe(value: &str) -> bool {
    !value.chars().any(|c| c.is_control())
}

/// A plain address (`local@domain`, either part may be UTF-8: SMTPUTF8), safe in a header and in
/// `MAIL FROM:<…>`, and one lettre reads.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    a.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && header_safe(a)
        && !a.chars().any(|c| c.is_whitespace() || "<>,;:\"()[]\\".contains(c))
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && a.parse::<lettre::Address>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_refuse_line_breaks_and_addresses_are_checked() {
        let to = vec!["ops@example.com".to_string()];
        let mail = Mail { from: "a@example.com", to: &to, subject: "hi\r\nBcc: x@evil.test", body: "b" };
        assert!(message(&mail).is_err());
        assert!(!valid_address("a@example.com>\r\nRCPT TO:<x@evil.test"));
        assert!(valid_address("alerts+prod@mail.example.com"));
        assert!(valid_address("jürgen@example.com"), "SMTPUTF8 local parts");
    }

    #[test]
    fn long_non_ascii_subjects_are_encoded_and_folded() {
        let to = vec!["ops@example.com".to_string()];
        let subject = format!("Job 1 ✗ failed on {}", "web-01 ".repeat(20));
        let mail = Mail { from: "a@example.com", to: &to, subject: &subject, body: "Grüße\n" };
        let raw = String::from_utf8(message(&mail).expect("message").formatted()).expect("utf-8");
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        assert!(head.is_ascii(), "{head}");
        assert!(head.lines().all(|l| l.len() <= 78), "folded:\n{head}");
        assert!(head.contains("Auto-Submitted: auto-generated"), "{head}");
    }
}
