//! Settings of the outbox (webhooks and notifiers): where deliveries may go, how they are signed
//! and retried. The outbound-URL guard (`infra::outbound`) reads the allow-list.

use std::net::IpAddr;
use std::time::Duration;

use crate::infra::secrets::Secret;

/// Where webhooks may go and how deliveries are retried.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Addresses, networks (CIDR) and host names allowed even though private (`PLAYDECK_WEBHOOK_ALLOW`).
    pub allow: Vec<AllowRule>,
    /// Signs deliveries to jobs' `callback_url` (`PLAYDECK_WEBHOOK_SECRET`; unset: generated into
    /// `$PLAYDECK_DATA_DIR/webhook.secret`).
    pub secret: Option<Secret>,
    /// The wait before the first retry; each next one waits twice as long, up to an hour.
    pub backoff: Duration,
    /// Attempts before a delivery is given up (`failed`).
    pub max_attempts: i32,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// How often the dispatcher looks for due deliveries.
    pub poll: Duration,
    /// Extra CAs (PEM) mail servers' certificates may chain to, beside the public ones
    /// (`PLAYDECK_MAIL_CA_FILE`: an internal relay's CA).
    pub mail_ca: Option<Vec<u8>>,
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    Net(IpAddr, u8),
    Host(String),
}

impl AllowRule {
    pub fn parse(s: &str) -> Result<AllowRule, String> {
        let s = s.trim();
        if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| format!("{s:?} is not a network (address/bits)"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 =
                bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?;
            return Ok(AllowRule::Net(ip, bits));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowRule::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("{s:?} is not an address, a network or a host name"));
        }
        Ok(AllowRule::Host(s.to_ascii_lowercase()))
    }

    pub(crate) fn allows_ip(&self, ip: IpAddr) -> bool {
        let AllowRule::Net(net, bits) = self else { return false };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if *bits == 0 { 0 } else { u32::MAX << (32 - *bits as u32) };
                u32::from(*n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if *bits == 0 { 0 } else { u128::MAX << (128 - *bits as u32) };
                u128::from(*n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

impl DeliveryConfig {
    pub fn from_env() -> Result<DeliveryConfig, String> {
        use super::env::{positive as num, var};
        let allow = match var("PLAYDECK_WEBHOOK_ALLOW") {
            None => Vec::new(),
            Some(v) => v
                .split([',', ' '])
                .filter(|s| !s.trim().is_empty())
                .map(AllowRule::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("PLAYDECK_WEBHOOK_ALLOW: {e}"))?,
        };
        Ok(DeliveryConfig {
            allow,
            secret: var("PLAYDECK_WEBHOOK_SECRET").map(Secret),
            backoff: Duration::from_secs(num("PLAYDECK_WEBHOOK_BACKOFF_SECS", 10)?),
            max_attempts: num("PLAYDECK_WEBHOOK_MAX_ATTEMPTS", 8)?.min(100) as i32,
            timeout: Duration::from_secs(num("PLAYDECK_WEBHOOK_TIMEOUT_SECS", 10)?),
            poll: Duration::from_secs(1),
            mail_ca: match var("PLAYDECK_MAIL_CA_FILE") {
                None => None,
                Some(path) => {
                    let pem =
                        std::fs::read(&path).map_err(|e| format!("PLAYDECK_MAIL_CA_FILE {path}: {e}"))?;
                    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                        return Err(format!("PLAYDECK_MAIL_CA_FILE {path} holds no PEM certificate"));
                    }
                    Some(pem)
                }
            },
        })
    }

    /// Nothing allowed beyond public addresses; quick retries.
    pub fn for_tests() -> DeliveryConfig {
        DeliveryConfig {
            allow: Vec::new(),
            secret: None,
            backoff: Duration::from_millis(200),
            max_attempts: 5,
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(200),
            mail_ca: None,
        }
    }

    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|r| matches!(r, AllowRule::Host(h) if *h == host))
    }

    pub(crate) fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|r| r.allows_ip(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_rules_match_networks_and_hosts() {
        let r = AllowRule::parse("10.0.0.0/8").expect("cidr");
        assert!(r.allows_ip("10.9.8.7".parse().expect("ip")));
        assert!(!r.allows_ip("11.0.0.1".parse().expect("ip")));
        assert_eq!(
            AllowRule::parse("hooks.internal").expect("host"),
            AllowRule::Host("hooks.internal".into())
        );
        assert!(AllowRule::parse("10.0.0.0/40").is_err());
    }
}
