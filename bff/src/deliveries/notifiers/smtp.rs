//! A small SMTP client for the mail notifier: one message per connection, over STARTTLS, implicit
//! TLS or (when chosen) plain TCP, with AUTH PLAIN or LOGIN.
//!
//! Hand-written rather than a mail crate because it needs so little: the conversation is a dozen
//! lines, and TLS comes from the rustls already in the tree. Every read and write is bounded by a
//! timeout, replies by a size limit, and a password is never sent over a connection that is not
//! encrypted unless the notifier says `tls: none`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use shared::notifiers::MailTls;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Where and how to connect.
pub struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: MailTls,
    /// User name and password, for AUTH.
    pub credentials: Option<(&'a str, &'a str)>,
    /// For each step (connect, each reply, each write).
    pub timeout: Duration,
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
    /// Whether trying again cannot help (a 5xx reply, a server without STARTTLS).
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

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Longest reply line read, and most lines in one reply.
const MAX_LINE: u64 = 4096;
const MAX_LINES: usize = 100;

struct Conn {
    io: BufReader<Box<dyn Io>>,
    timeout: Duration,
}

impl Conn {
    /// A reply: its code and its lines' texts.
    async fn reply(&mut self) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        let timeout = self.timeout;
        loop {
            let mut raw = Vec::new();
            let n = match tokio::time::timeout(
                timeout,
                (&mut self.io).take(MAX_LINE).read_until(b'\n', &mut raw),
            )
            .await
            {
                Err(_) => {
                    return Err(SmtpError::transient(format!(
                        "the mail server did not answer within {} s",
                        timeout.as_secs()
                    )))
                }
                Ok(Err(e)) => return Err(SmtpError::transient(format!("mail server connection: {e}"))),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                return Err(SmtpError::transient("the mail server closed the connection"));
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok()).filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(SmtpError::transient(format!(
                    "the mail server answered {:?}",
                    truncate(line, 200)
                )));
            };
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines));
            }
            if lines.len() >= MAX_LINES {
                return Err(SmtpError::transient("the mail server's reply is too long"));
            }
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), SmtpError> {
        let io = self.io.get_mut();
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, async {
            io.write_all(data).await?;
            io.flush().await
        })
        .await
        {
            Err(_) => Err(SmtpError::transient(format!(
                "the mail server did not take the data within {} s",
                timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(SmtpError::transient(format!("mail server connection: {e}"))),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Sends a command and expects a reply of the given class (2: done, 3: go on). `shown` is what
    /// an error quotes (AUTH lines carry credentials).
    async fn command(&mut self, line: &str, class: u16, shown: &str) -> Result<Vec<String>, SmtpError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.expect(class, shown).await
    }

    async fn expect(&mut self, class: u16, after: &str) -> Result<Vec<String>, SmtpError> {
        let (code, lines) = self.reply().await?;
        if code / 100 == class {
            return Ok(lines);
        }
        Err(SmtpError {
            message: format!(
                "the mail server answered {after} with {code} {}",
                truncate(&lines.join(" "), 300)
            ),
            code: Some(code),
            permanent: code >= 500,
        })
    }

    async fn ehlo(&mut self, me: &str) -> Result<Vec<String>, SmtpError> {
        let lines = self.command(&format!("EHLO {me}"), 2, "EHLO").await?;
        // The first line is the server's greeting; the others its extensions.
        Ok(lines.into_iter().skip(1).map(|l| l.to_ascii_uppercase()).collect())
    }

    async fn start_tls(self, host: &str) -> Result<Conn, SmtpError> {
        // Anything the server sent beyond its answer to STARTTLS would be read as if it came over
        // TLS (the STARTTLS injection attack): refuse.
        if !self.io.buffer().is_empty() {
            return Err(SmtpError::permanent("the mail server sent data before the TLS handshake"));
        }
        let timeout = self.timeout;
        let io = tls(self.io.into_inner(), host, timeout).await?;
        Ok(Conn { io: BufReader::new(io), timeout })
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, SmtpError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = crate::infra::tls::client_config(crate::infra::tls::Check::Full(roots), None)
        .map_err(|e| SmtpError::permanent(format!("TLS: {e}")))?;
    Ok(Arc::new(config))
}

async fn tls(io: Box<dyn Io>, host: &str, timeout: Duration) -> Result<Box<dyn Io>, SmtpError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| SmtpError::permanent(format!("{host:?} is not a name TLS can check")))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config()?);
    match tokio::time::timeout(timeout, connector.connect(name, io)).await {
        Err(_) => {
            Err(SmtpError::transient(format!("the TLS handshake took longer than {} s", timeout.as_secs())))
        }
        Ok(Err(e)) => Err(SmtpError::transient(format!("TLS with the mail server: {e}"))),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
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

/// Sends one message; answers once the server has accepted it.
pub async fn send(server: &Server<'_>, mail: &Mail<'_>) -> Result<(), SmtpError> {
    let tcp = match tokio::time::timeout(server.timeout, TcpStream::connect((server.host, server.port))).await
    {
        Err(_) => {
            return Err(SmtpError::transient(format!(
                "cannot reach the mail server {}:{} within {} s",
                server.host,
                server.port,
                server.timeout.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(SmtpError::transient(format!(
                "cannot reach the mail server {}:{}: {e}",
                server.host, server.port
            )))
        }
        Ok(Ok(s)) => s,
    };
    let io: Box<dyn Io> = match server.tls {
        MailTls::Tls => tls(Box::new(tcp), server.host, server.timeout).await?,
        MailTls::Starttls | MailTls::None => Box::new(tcp),
    };
    let conn = Conn { io: BufReader::new(io), timeout: server.timeout };
    let mut conn = converse(conn, server, mail).await?;
    // The message is accepted; how QUIT goes does not matter.
    let _ = conn.command("QUIT", 2, "QUIT").await;
    Ok(())
}

async fn converse(mut conn: Conn, server: &Server<'_>, mail: &Mail<'_>) -> Result<Conn, SmtpError> {
    let me = my_name();
    conn.expect(2, "the connection").await?;
    let mut extensions = conn.ehlo(&me).await?;
    if server.tls == MailTls::Starttls {
        if !extensions.iter().any(|e| e == "STARTTLS") {
            return Err(SmtpError::permanent(
                "the mail server does not offer STARTTLS; choose `tls: tls` if it speaks TLS from the start, \
                 or `tls: none` to send in clear",
            ));
        }
        conn.command("STARTTLS", 2, "STARTTLS").await?;
        conn = conn.start_tls(server.host).await?;
        extensions = conn.ehlo(&me).await?;
    }
    if let Some((user, password)) = server.credentials {
        // `tls: none` is the operator's explicit choice; otherwise the connection is encrypted here.
        auth(&mut conn, &extensions, user, password).await?;
    }
    let eight_bit = extensions.iter().any(|e| e == "8BITMIME");
    let (message, encoding) = format_message(mail, eight_bit, &domain_of(mail.from))?;
    let body_param = if encoding == "8bit" { " BODY=8BITMIME" } else { "" };
    conn.command(&format!("MAIL FROM:<{}>{body_param}", mail.from), 2, "MAIL FROM").await?;
    for rcpt in mail.to {
        conn.command(&format!("RCPT TO:<{rcpt}>"), 2, &format!("RCPT TO:<{rcpt}>")).await?;
    }
    conn.command("DATA", 3, "DATA").await?;
    conn.write(&dot_stuff(&message)).await?;
    conn.expect(2, "the message").await?;
    Ok(conn)
}

async fn auth(conn: &mut Conn, extensions: &[String], user: &str, password: &str) -> Result<(), SmtpError> {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let mechanisms: Vec<&str> = extensions
        .iter()
        .filter_map(|e| e.strip_prefix("AUTH ").or_else(|| e.strip_prefix("AUTH=")))
        .flat_map(|m| m.split_whitespace())
        .collect();
    if mechanisms.contains(&"PLAIN") {
        let token = b64(format!("\0{user}\0{password}").as_bytes());
        conn.command(&format!("AUTH PLAIN {token}"), 2, "AUTH PLAIN").await?;
        Ok(())
    } else if mechanisms.contains(&"LOGIN") {
        conn.command("AUTH LOGIN", 3, "AUTH LOGIN").await?;
        conn.command(&b64(user.as_bytes()), 3, "the user name").await?;
        conn.command(&b64(password.as_bytes()), 2, "the password").await?;
        Ok(())
    } else {
        Err(SmtpError::permanent(format!(
            "the mail server offers no AUTH PLAIN or LOGIN (it offers {})",
            if mechanisms.is_empty() { "no AUTH at all".to_string() } else { mechanisms.join(", ") }
        )))
    }
}

fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_else(|| "playdeck.localdomain".into())
}

/// Whether a header value can be written as it is: no line breaks (header injection), no other
/// control characters.
pub fn header_safe(value: &str) -> bool {
    !value.chars().any(|c| c.is_control())
}

/// A plain address (`local@domain`), safe in a header and in `MAIL FROM:<…>`.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    a.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && header_safe(a)
        && !a.chars().any(|c| c.is_whitespace() || "<>,;:\"()[]\\".contains(c))
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// The message as sent (headers and body, CRLF line ends, not yet dot-stuffed) and the body's
/// transfer encoding.
pub fn format_message(
    mail: &Mail<'_>,
    eight_bit: bool,
    domain: &str,
) -> Result<(String, &'static str), SmtpError> {
    for (name, value) in [("From", mail.from), ("Subject", mail.subject)] {
        if !header_safe(value) {
            return Err(SmtpError::permanent(format!(
                "the {name} header holds a line break or a control character"
            )));
        }
    }
    if let Some(bad) = mail.to.iter().find(|t| !valid_address(t)) {
        return Err(SmtpError::permanent(format!("{bad:?} is not a mail address")));
    }
    let body = mail.body.replace("\r\n", "\n").replace('\r', "\n");
    let longest = body.lines().map(str::len).max().unwrap_or(0);
    let (encoding, body) = if body.is_ascii() && longest <= 998 {
        ("7bit", body)
    } else if eight_bit && longest <= 998 {
        ("8bit", body)
    } else {
        ("quoted-printable", quoted_printable(&body))
    };
    let id = crate::infra::secrets::random_bytes::<12>();
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("From", mail.from);
    header("To", &mail.to.join(", "));
    header("Subject", &encode_subject(mail.subject));
    header("Date", &chrono::Utc::now().to_rfc2822());
    header("Message-ID", &format!("<{}@{domain}>", hex::encode(id)));
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", encoding);
    // RFC 3834: a machine wrote this; auto-responders stay quiet.
    header("Auto-Submitted", "auto-generated");
    out.push_str("\r\n");
    for line in body.split('\n') {
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok((out, encoding))
}

/// ASCII as it is; anything else as RFC 2047 encoded words, folded.
fn encode_subject(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?utf-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 2045 quoted-printable of `\n`-separated text, lines at most 76 characters.
pub fn quoted_printable(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let bytes = line.as_bytes();
        let mut current = String::new();
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let token = match b {
                b' ' | b'\t' if !last => (b as char).to_string(),
                33..=60 | 62..=126 => (b as char).to_string(),
                _ => format!("={b:02X}"),
            };
            if current.len() + token.len() > 75 {
                current.push('=');
                out.push(std::mem::take(&mut current));
            }
            current.push_str(&token);
        }
        out.push(current);
    }
    out.join("\n")
}

/// CRLF-terminated lines to the DATA stream: a line that starts with `.` gets another, and the
/// end marker follows.
fn dot_stuff(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    if !message.ends_with("\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_at_line_starts_are_doubled() {
        let stuffed = dot_stuff("a\r\n.b\r\n..c\r\n.\r\n");
        assert_eq!(String::from_utf8_lossy(&stuffed), "a\r\n..b\r\n...c\r\n..\r\n.\r\n");
    }

    #[test]
    fn quoted_printable_encodes_and_keeps_lines_short() {
        assert_eq!(quoted_printable("Grüße = 1 "), "Gr=C3=BC=C3=9Fe =3D 1=20");
        let long = "x".repeat(200);
        let qp = quoted_printable(&long);
        assert!(qp.lines().all(|l| l.len() <= 76), "{qp}");
        assert_eq!(qp.replace("=\n", ""), long);
    }

    #[test]
    fn headers_refuse_line_breaks() {
        let to = vec!["ops@example.com".to_string()];
        let mail = Mail { from: "a@example.com", to: &to, subject: "hi\r\nBcc: x@evil.test", body: "b" };
        assert!(format_message(&mail, true, "example.com").is_err());
        assert!(!valid_address("a@example.com>\r\nRCPT TO:<x@evil.test"));
        assert!(valid_address("alerts+prod@mail.example.com"));
    }

    #[test]
    fn non_ascii_subjects_are_encoded_words() {
        let s = encode_subject("Job 1 ✗ failed");
        assert!(s.starts_with("=?utf-8?B?"), "{s}");
        assert!(s.is_ascii());
    }
}
