//! `DATABASE_URL` read as libpq reads it. tokio-postgres's own parser knows `sslmode` =
//! `disable`, `prefer` and `require` only, and none of the certificate files, so those are taken
//! out here (from the URL, else from `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) and
//! the rest is handed to tokio-postgres.

use std::path::PathBuf;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, nothing checked (libpq's default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is checked against `sslrootcert` when one is given.
    Require,
    /// TLS, the chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS, the chain checked and the host name matched.
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plain text first; TLS when offered is the safer reading.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the root CA comes from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the public roots (webpki-roots).
    System,
}

/// How Playdeck talks TLS to PostgreSQL, for the pool and the LISTEN connection alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseTls {
    pub mode: SslMode,
    pub root: Option<RootCert>,
    /// A client certificate and its key (`sslcert`, `sslkey`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl DatabaseTls {
    /// No TLS: the embedded cluster, on loopback.
    pub fn disabled() -> DatabaseTls {
        DatabaseTls { mode: SslMode::Disable, ..Default::default() }
    }

    /// The settings as a person wrote them, for error messages.
    pub fn describe(&self) -> String {
        let mut s = format!("sslmode={}", self.mode.as_str());
        match &self.root {
            Some(RootCert::File(p)) => s.push_str(&format!(", sslrootcert={}", p.display())),
            Some(RootCert::System) => s.push_str(", sslrootcert=system"),
            None => {}
        }
        if let Some(c) = &self.cert {
            s.push_str(&format!(", sslcert={}", c.display()));
        }
        s
    }
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The `key=value` words of a libpq keyword/value string, quotes (`'…'`, `\'`) understood.
fn words(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    out
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Reads `DATABASE_URL` (a URL or libpq's keyword/value form) and the `PGSSL*` variables `env`
/// gives; a setting that cannot work is an error that names it.
pub fn parse_database_url(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(tokio_postgres::Config, DatabaseTls), String> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if TLS_KEYS.contains(&k) {
                        found.push((
                            k.to_string(),
                            String::from_utf8_lossy(&crate::infra::text::percent_decode(v, false))
                                .into_owned(),
                        ));
                    } else {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (k, v) in words(url) {
            if TLS_KEYS.contains(&k.as_str()) {
                found.push((k, v));
            } else {
                kept.push(format!("{k}={}", quote(&v)));
            }
        }
        kept.join(" ")
    };
    let setting = |name: &str, var: &str| {
        found
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| env(var))
            .filter(|v| !v.is_empty())
    };
    let mode = match setting("sslmode", "PGSSLMODE") {
        None => SslMode::Prefer,
        Some(m) => SslMode::parse(&m).ok_or_else(|| {
            format!("DATABASE_URL sslmode={m:?} is not one of disable, allow, prefer, require, verify-ca, verify-full")
        })?,
    };
    let file = |name: &str, var: &str| -> Result<Option<PathBuf>, String> {
        match setting(name, var) {
            None => Ok(None),
            Some(p) => {
                let path = PathBuf::from(&p);
                if !path.is_file() {
                    return Err(format!("DATABASE_URL {name}={p}: no such file"));
                }
                Ok(Some(path))
            }
        }
    };
    let root = match setting("sslrootcert", "PGSSLROOTCERT") {
        Some(s) if s == "system" => Some(RootCert::System),
        _ => file("sslrootcert", "PGSSLROOTCERT")?.map(RootCert::File),
    };
    let cert = file("sslcert", "PGSSLCERT")?;
    let key = file("sslkey", "PGSSLKEY")?;
    if cert.is_some() != key.is_some() {
        return Err("DATABASE_URL: a client certificate needs both sslcert and sslkey".into());
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root.is_none() {
        return Err(format!(
            "DATABASE_URL sslmode={} needs sslrootcert: the CA file that signed the server's certificate (or `system` for the public roots)",
            mode.as_str()
        ));
    }
    let mut pg: tokio_postgres::Config =
        rest.parse().map_err(|e| format!("DATABASE_URL cannot be read: {e}"))?;
    pg.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    Ok((pg, DatabaseTls { mode, root, cert, key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn libpq_settings_are_read_from_the_url_the_keywords_or_the_environment() {
        let ca = std::env::temp_dir().join(format!("playdeck-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "x").expect("write");
        let ca_s = ca.display().to_string();

        let (pg, tls) = parse_database_url(
            &format!("postgres://u:p@db.example.com:5433/app?sslmode=verify-full&sslrootcert={ca_s}&application_name=pd"),
            no_env,
        )
        .expect("parse");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root, Some(RootCert::File(ca.clone())));
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(pg.get_application_name(), Some("pd"));
        assert_eq!(pg.get_dbname(), Some("app"));

        let (pg, tls) = parse_database_url(
            &format!("host=db port=5432 user=u sslmode=verify-ca sslrootcert='{ca_s}' password='a b'"),
            no_env,
        )
        .expect("keywords");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(pg.get_password(), Some(&b"a b"[..]));

        // The environment, when the URL says nothing; the URL wins over it.
        let env = |v: &str| match v {
            "PGSSLMODE" => Some("require".to_string()),
            _ => None,
        };
        assert_eq!(parse_database_url("postgres://u@h/d", env).expect("env").1.mode, SslMode::Require);
        assert_eq!(
            parse_database_url("postgres://u@h/d?sslmode=disable", env).expect("url").1.mode,
            SslMode::Disable
        );
        assert_eq!(parse_database_url("postgres://u@h/d", no_env).expect("default").1.mode, SslMode::Prefer);
        let (_, tls) = parse_database_url("postgres://u@h/d?sslmode=verify-full&sslrootcert=system", no_env)
            .expect("system");
        assert_eq!(tls.root, Some(RootCert::System));

        for (url, says) in [
            ("postgres://u@h/d?sslmode=verify-full", "needs sslrootcert"),
            ("postgres://u@h/d?sslmode=sometimes", "not one of"),
            (
                "postgres://u@h/d?sslmode=require&sslrootcert=/nonexistent/ca.pem",
                "sslrootcert=/nonexistent/ca.pem: no such file",
            ),
        ] {
            let e = parse_database_url(url, no_env).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        }
        let e = parse_database_url(&format!("postgres://u@h/d?sslcert={ca_s}"), no_env)
            .expect_err("half a client cert");
        assert!(e.contains("both sslcert and sslkey"), "{e}");
        let _ = std::fs::remove_file(&ca);
    }
}
