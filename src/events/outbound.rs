//! Calls to receivers, which admins name and keymint then calls from inside
//! the network: the guard against server-side request forgery.
//!
//! A receiver must be `https` on public addresses. Loopback, private,
//! link-local (cloud metadata included), shared, documentation, multicast and
//! other special-purpose addresses are refused unless they fall in
//! `events.allowed_networks`, where `http` is accepted too. The check runs on
//! the URL at registration and again at every delivery, on the addresses DNS
//! gives at connect time ([`GuardedResolver`]), so a name that later resolves
//! elsewhere is caught. No redirect is followed, no proxy used, and only the
//! first bytes of a response are read.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ipnet::IpNet;
use url::{Host, Url};

/// The longest receiver URL.
pub const MAX_URL_LEN: usize = 2048;
/// How long a registration waits for DNS.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a receiver's answer is read (for the error it may explain).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// Special-purpose ranges (IANA's registries, RFC 6890 and after): never a
/// receiver unless allowed by configuration.
static NOT_PUBLIC: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
});

/// Whether `ip` is an ordinary public address.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        // An IPv4 address carried in IPv6 (mapped, or NAT64's well-known
        // prefix) is judged as the IPv4 address it reaches.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                    let [a, b] = s[6].to_be_bytes();
                    let [c, d] = s[7].to_be_bytes();
                    IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
                } else {
                    ip
                }
            }
        },
        v4 => v4,
    };
    !NOT_PUBLIC.iter().any(|net| net.contains(&ip))
}

/// The rule, as configured.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<IpNet>,
}

impl Guard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Whether keymint may connect to `ip` at all.
    pub fn reachable(&self, ip: IpAddr) -> bool {
        self.allows(ip) || is_public(ip)
    }

    /// Whether a receiver at `ip` is acceptable over this scheme.
    fn admits(&self, ip: IpAddr, https: bool) -> bool {
        self.allows(ip) || (https && is_public(ip))
    }

    /// The URL's form: absolute `https` (or `http`), a host, no user
    /// information or fragment, at most [`MAX_URL_LEN`]. Addresses are
    /// checked by [`Self::check_addresses`].
    pub fn parse(&self, raw: &str) -> Result<Url, String> {
        if raw.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let url = Url::parse(raw).map_err(|e| format!("is not an absolute URL ({e})"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("must be an https URL".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry user information; use bearer_secret".to_owned());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment".to_owned());
        }
        if url.host().is_none() {
            return Err("must name a host".to_owned());
        }
        Ok(url)
    }

    /// Resolves the URL's host and checks every address it gives; the
    /// message says which address was refused and why.
    pub async fn check_addresses(&self, url: &Url) -> Result<(), String> {
        let https = url.scheme() == "https";
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => {
                let lookup = tokio::net::lookup_host((name, port));
                match tokio::time::timeout(DNS_TIMEOUT, lookup).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    Ok(Err(_)) => return Err(format!("host `{name}` does not resolve")),
                    Err(_) => return Err(format!("host `{name}` did not resolve in time")),
                }
            }
            None => return Err("must name a host".to_owned()),
        };
        if addresses.is_empty() {
            return Err("the host has no address".to_owned());
        }
        for ip in addresses {
            if !self.admits(ip, https) {
                return Err(if self.allows(ip) || is_public(ip) {
                    format!("{ip} may only be reached over https")
                } else {
                    format!(
                        "{ip} is not a public address (loopback, private, link-local and \
                         metadata addresses are refused unless in events.allowed_networks)"
                    )
                });
            }
        }
        Ok(())
    }

    /// The HTTP client deliveries use: every name it connects to is
    /// resolved through the guard, no redirects, no proxies.
    pub fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                guard: self.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("keymint/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// Resolves names for the delivery client, dropping every address the guard
/// refuses; a name with none left fails to connect.
struct GuardedResolver {
    guard: Guard,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| guard.reachable(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "`{}` resolves to no address events may reach",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_by_form_and_address() {
        let strict = Guard::default();
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "/relative",
        ] {
            assert!(strict.parse(bad).is_err(), "{bad}");
        }
        for refused in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://[::ffff:192.168.0.1]/",
            "http://1.1.1.1/",
        ] {
            let url = strict.parse(refused).unwrap();
            assert!(strict.check_addresses(&url).await.is_err(), "{refused}");
        }
        let url = strict.parse("https://1.1.1.1/events").unwrap();
        assert!(strict.check_addresses(&url).await.is_ok());

        let lab = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        let url = lab.parse("http://127.0.0.1:9/x").unwrap();
        assert!(lab.check_addresses(&url).await.is_ok());
        let url = lab.parse("http://10.0.0.1/").unwrap();
        assert!(lab.check_addresses(&url).await.is_err());
    }
}
