//! The outbound-URL guard: every request Playdeck makes to a URL someone gave it (webhooks, chat
//! notifiers, URL inventories, Galaxy servers, HashiCorp Vault) is checked here first. Loopback,
//! link-local and private addresses are refused unless `PLAYDECK_WEBHOOK_ALLOW` lists them, and
//! the request goes to the address that was checked, so a second DNS lookup cannot redirect it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::infra::config::DeliveryConfig;

/// What kind of non-public address this is, if it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                // 192.0.0.0/24: IETF protocol assignments (DS-Lite, NAT64 discovery…).
                Some("protocol assignments")
            } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
                // 198.18.0.0/15: network benchmarking, routed inside labs.
                Some("benchmarking")
            } else if (o[0] == 192 && o[1] == 0 && o[2] == 2)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
            {
                Some("documentation")
            } else if o[0] == 192 && o[1] == 88 && o[2] == 99 {
                Some("6to4 relay anycast")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let first = seg[0];
            // Addresses that carry an IPv4 address inside are judged by it: NAT64
            // (64:ff9b::/96, and the local-use 64:ff9b:1::/48), 6to4 (2002::/16, the IPv4 in
            // bits 16-48) and the deprecated IPv4-compatible form (::a.b.c.d).
            let embedded = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) {
                return non_public(IpAddr::V4(embedded(seg[6], seg[7])));
            }
            if first == 0x2002 {
                return non_public(IpAddr::V4(embedded(seg[1], seg[2])));
            }
            if seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
                return Some("IPv4-compatible (deprecated)");
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0 {
                Some("link-local")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private")
            } else if v6.is_multicast() {
                Some("reserved")
            } else if first == 0x2001 && seg[1] == 0x0db8 || first == 0x3fff && seg[1] & 0xf000 == 0 {
                Some("documentation")
            } else if first == 0x2001 && seg[1] & 0xfe00 == 0 {
                // 2001::/23: IETF protocol assignments (Teredo 2001::/32 among them).
                Some("protocol assignments")
            } else if first == 0x0100 && seg[1..4] == [0, 0, 0] {
                Some("discard-only")
            } else {
                None
            }
        }
    }
}

/// Cloud providers' instance-metadata services beyond link-local 169.254.0.0/16: AWS's IPv6
/// endpoint, Alibaba's, Azure's wire server.
const METADATA: [&str; 3] = ["fd00:ec2::254", "100.100.100.200", "168.63.129.16"];

async fn resolved(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((bare, port)))
                .await
                .map_err(|_| format!("{host}: the name did not resolve within 5 s"))?
                .map_err(|e| format!("{host}: the name does not resolve ({e})"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host}: the name has no addresses"));
        }
        Ok(addrs)
    }
}

/// Checks a mail server and answers the addresses to connect to. Mail relays usually live on
/// private networks, so those are allowed; loopback, link-local (169.254.169.254 among them),
/// unspecified and cloud metadata addresses are not, unless `PLAYDECK_WEBHOOK_ALLOW` lists them
/// (a relay on the same host: `127.0.0.1`). A name that does not resolve is an error only when
/// `must_resolve` (a delivery; a notifier being saved may name a relay that resolves later).
pub async fn check_mail_server(
    config: &DeliveryConfig,
    host: &str,
    port: u16,
    must_resolve: bool,
) -> Result<Vec<SocketAddr>, String> {
    let addrs = match resolved(host, port).await {
        Ok(addrs) => addrs,
        Err(_) if !must_resolve => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if config.host_allowed(bare) {
        return Ok(addrs);
    }
    for a in &addrs {
        let ip = a.ip();
        let metadata = METADATA.iter().any(|m| m.parse::<IpAddr>().ok() == Some(ip));
        let kind = match non_public(ip) {
            _ if metadata => Some("cloud metadata"),
            Some(k @ ("loopback" | "link-local" | "unspecified")) => Some(k),
            _ => None,
        };
        if let Some(kind) = kind.filter(|_| !config.ip_allowed(ip)) {
            return Err(format!(
                "{host} is {}a {kind} address ({ip}); mail servers there are refused unless \
                 PLAYDECK_WEBHOOK_ALLOW lists them",
                if bare.parse::<IpAddr>().is_ok() { "" } else { "resolves to " },
            ));
        }
    }
    Ok(addrs)
}

/// Checks a receiver URL against the policy and answers the addresses a delivery may connect to.
pub async fn check_url(
    config: &DeliveryConfig,
    url: &str,
) -> Result<(reqwest::Url, Vec<SocketAddr>), String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https URLs can receive webhooks"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("put no credentials in a webhook URL; receivers check the signature instead".into());
    }
    let host = parsed.host_str().ok_or_else(|| format!("{url:?} has no host"))?.to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let addrs = resolved(&host, port).await?;
    if !config.host_allowed(&bare) {
        for a in &addrs {
            if let Some(kind) = non_public(a.ip()) {
                if !config.ip_allowed(a.ip()) {
                    return Err(format!(
                        "{host} is {}a {kind} address ({}); webhooks to loopback, link-local and private \
                         addresses are refused unless PLAYDECK_WEBHOOK_ALLOW lists them",
                        if bare.parse::<IpAddr>().is_ok() { "" } else { "resolves to " },
                        a.ip()
                    ));
                }
            }
        }
    }
    Ok((parsed, addrs))
}

/// An HTTP client that connects only to the addresses `check_url` answered, follows no redirect
/// and gives up after the timeout.
pub(crate) fn pinned_client(
    cfg: &DeliveryConfig,
    url: &reqwest::Url,
    addrs: &[SocketAddr],
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .resolve_to_addrs(url.host_str().unwrap_or_default(), addrs)
        .user_agent(concat!("Playdeck-Webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// How a URL someone gave us is asked with a stored credential's secret.
pub enum UrlAuth<'a> {
    Bearer(&'a str),
    Basic(&'a str, Option<&'a str>),
}

/// GETs a URL that `check_url` answered for, from only the addresses it answered, following no
/// redirect, within `timeout`, at most `max` bytes. Errors name the URL without its query (which
/// may carry a token), after `what` ("the inventory at ").
pub async fn get_checked(
    checked: &reqwest::Url,
    addrs: &[SocketAddr],
    auth: Option<UrlAuth<'_>>,
    accept: &str,
    (timeout, max): (std::time::Duration, usize),
    what: &str,
) -> Result<Vec<u8>, String> {
    let full = checked.as_str();
    let shown = format!("{what}{}", full.split(['?', '#']).next().unwrap_or(full));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve_to_addrs(checked.host_str().unwrap_or_default(), addrs)
        .user_agent(concat!("Playdeck/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut req = client.get(checked.clone()).header("accept", accept);
    req = match auth {
        Some(UrlAuth::Bearer(token)) => req.bearer_auth(token),
        Some(UrlAuth::Basic(user, password)) => req.basic_auth(user, password),
        None => req,
    };
    let mut resp = req.send().await.map_err(|e| format!("{shown} cannot be fetched: {}", root_cause(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{shown} answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{shown}: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            return Err(format!("{shown} is larger than {} MiB", max >> 20));
        }
    }
    Ok(body)
}

/// The innermost cause of an error, which is what a person can act on ("connection refused").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `https://user:token@host/x` → `https://host/x`: credentials are never recorded.
pub fn strip_userinfo(repo: &str) -> String {
    if let Some((scheme, rest)) = repo.split_once("://") {
        let (authority, path) =
            rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    repo.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for (ip, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("::1", Some("loopback")),
            ("fe80::1", Some("link-local")),
            ("fd00::1", Some("private")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("93.184.216.34", None),
            ("2606:4700::1111", None),
            // IANA's special-purpose registries.
            ("192.0.0.8", Some("protocol assignments")),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("198.20.0.1", None),
            ("192.0.2.1", Some("documentation")),
            ("203.0.113.7", Some("documentation")),
            ("192.88.99.1", Some("6to4 relay anycast")),
            ("2001:db8::1", Some("documentation")),
            ("2001::1", Some("protocol assignments")),
            ("100::1", Some("discard-only")),
            // IPv4 inside IPv6 is judged by the IPv4 it carries.
            ("64:ff9b::10.0.0.1", Some("private")),
            ("64:ff9b::169.254.169.254", Some("link-local")),
            ("64:ff9b:1::127.0.0.1", Some("loopback")),
            ("64:ff9b::93.184.216.34", None),
            ("2002:7f00:1::", Some("loopback")),
            ("2002:a9fe:a9fe::1", Some("link-local")),
            ("2002:5db8:d822::1", None),
            ("::127.0.0.1", Some("IPv4-compatible (deprecated)")),
            ("::10.0.0.1", Some("IPv4-compatible (deprecated)")),
        ] {
            assert_eq!(non_public(ip.parse().expect("ip")), kind, "{ip}");
        }
    }

    #[test]
    fn credentials_leave_repo_urls() {
        assert_eq!(
            strip_userinfo("https://u:tok@git.example.com/a/b.git"),
            "https://git.example.com/a/b.git"
        );
        assert_eq!(strip_userinfo("git@github.com:a/b.git"), "git@github.com:a/b.git");
    }
}
