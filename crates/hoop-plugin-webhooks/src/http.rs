//! Sending one attempt: one pooled reqwest client (rustls with ring, no proxies, redirects
//! never followed), a resolver that refuses non-public addresses unless
//! `allow_private_networks`, and the Standard Webhooks headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::settings::Settings;

/// How much of an answer's body is kept.
pub(crate) const RESPONSE_KEEP: usize = 1024;

/// Why an address may not be a destination without `allow_private_networks`, if it may not.
pub(crate) fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("a broadcast, multicast or reserved address")
    } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("a reserved address")
    } else if ip.is_documentation() {
        Some("a documentation address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// A destination refused because it is not a public address.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: {host} is {kind} ({ip}); set allow_private_networks = true in [plugins.webhooks] \
     to deliver there"
)]
pub(crate) struct Refused {
    host: String,
    ip: IpAddr,
    kind: &'static str,
}

/// Resolves names with the system resolver and keeps only the addresses allowed.
#[derive(Debug)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| forbidden(a.ip()).is_none())
                .collect();
            if allowed.is_empty()
                && let Some(first) = addrs.first()
            {
                let kind = forbidden(first.ip()).unwrap_or("not allowed");
                return Err(Box::new(Refused {
                    host,
                    ip: first.ip(),
                    kind,
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The HTTP status, if an answer came.
    pub(crate) status: Option<u16>,
    /// `Retry-After`, if the answer had one.
    pub(crate) retry_after: Option<Duration>,
    /// The first KiB of its body.
    pub(crate) body: String,
    /// Why there was no answer.
    pub(crate) error: Option<String>,
    /// How long the attempt took.
    pub(crate) latency: Duration,
}

/// Sends attempts with one pooled client.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

/// The headers of one attempt.
pub(crate) struct Signed<'a> {
    pub(crate) id: &'a str,
    pub(crate) timestamp: i64,
    pub(crate) signature: String,
}

impl Sender {
    /// A sender with the deployment's settings.
    ///
    /// # Errors
    /// The client could not be built (no TLS roots), in words.
    pub(crate) fn new(settings: &Settings) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(64)
            .user_agent(concat!("hoop-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            allow_private: settings.allow_private_networks,
            timeout: settings.timeout,
        })
    }

    /// Posts `body` to `url` with the Standard Webhooks headers.
    pub(crate) async fn send(&self, url: &str, signed: Signed<'_>, body: String) -> Answer {
        let start = Instant::now();
        let failed = |error: String| Answer {
            status: None,
            retry_after: None,
            body: String::new(),
            error: Some(error),
            latency: start.elapsed(),
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(url) => url,
            Err(e) => return failed(format!("bad URL: {e}")),
        };
        // Addresses written in the URL never reach the resolver: check them here.
        if !self.allow_private {
            let literal = parsed
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<IpAddr>().ok());
            if let Some(ip) = literal
                && let Some(kind) = forbidden(ip)
            {
                return failed(
                    Refused {
                        host: ip.to_string(),
                        ip,
                        kind,
                    }
                    .to_string(),
                );
            }
        }
        let request = self
            .client
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", signed.id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", signed.signature)
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return failed(self.describe(&err)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_KEEP {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        kept.truncate(RESPONSE_KEEP);
        Answer {
            status: Some(status),
            retry_after,
            body: String::from_utf8_lossy(&kept).into_owned(),
            error: None,
            latency: start.elapsed(),
        }
    }

    /// A reqwest error in words: the refusal of a destination as such, a timeout with its
    /// limit, anything else with its causes.
    fn describe(&self, err: &reqwest::Error) -> String {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut parts: Vec<String> = Vec::new();
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return refused.to_string();
            }
            let text = e.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            source = e.source();
        }
        if err.is_timeout() {
            return format!(
                "timed out after {}",
                humantime::format_duration(self.timeout)
            );
        }
        parts.join(": ")
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert_eq!(forbidden(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
