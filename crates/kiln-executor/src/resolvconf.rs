//! The container's `/etc/resolv.conf`, as BuildKit derives it from the host's
//! (`executor/oci/resolvconf.go` over moby's `libnetwork/resolvconf`).
//!
//! - With host networking the host's `/etc/resolv.conf` is used as is (re-rendered), since
//!   the container shares the host's loopback; only when it lists no nameserver do the
//!   defaults below get added.
//! - Without host networking the host file is `/run/systemd/resolve/resolv.conf` when
//!   `/etc/resolv.conf` only names systemd-resolved's stub (`127.0.0.53`); loopback
//!   nameservers are then removed (they are unreachable from another network namespace), and
//!   when none is left Google's public resolvers are used (IPv4 and IPv6).
//!
//! The file is re-rendered: `nameserver` lines first, then one `search` line (the last
//! `search`/`domain` directive wins), then one `options` line (all options, in order), then
//! any other line as it was. Comments and blank lines are dropped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The host's resolver configuration.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// The upstream configuration systemd-resolved writes next to its stub.
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// DNS settings that replace the host's (buildkitd's `[dns]` section); an empty list keeps the
/// host's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Nameserver addresses (IPv6 may carry a `%zone`).
    pub nameservers: Vec<String>,
    /// Search domains.
    pub search_domains: Vec<String>,
    /// Resolver options (`ndots:2`, `edns0`, ...).
    pub options: Vec<String>,
}

/// A nameserver address, with the zone of a scoped IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nameserver {
    addr: IpAddr,
    zone: Option<String>,
}

impl Nameserver {
    fn parse(s: &str) -> Option<Nameserver> {
        if let Some((addr, zone)) = s.split_once('%') {
            let v6: Ipv6Addr = addr.parse().ok()?;
            if zone.is_empty() {
                return None;
            }
            return Some(Nameserver {
                addr: IpAddr::V6(v6),
                zone: Some(zone.to_string()),
            });
        }
        Some(Nameserver {
            addr: s.parse().ok()?,
            zone: None,
        })
    }

    /// Go's `netip.Addr.IsLoopback`: IPv4-mapped addresses are unmapped first.
    fn is_loopback(&self) -> bool {
        match self.addr {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.is_loopback(),
                None => v6.is_loopback(),
            },
        }
    }
}

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's netip prints IPv4-mapped IPv6 as `::ffff:1.2.3.4`, as Rust does.
        write!(f, "{}", self.addr)?;
        if let Some(zone) = &self.zone {
            write!(f, "%{zone}")?;
        }
        Ok(())
    }
}

/// A parsed `resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ResolvConf {
    nameservers: Vec<Nameserver>,
    search: Vec<String>,
    options: Vec<String>,
    other: Vec<String>,
    ns_override: bool,
}

impl ResolvConf {
    fn parse(content: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in content.lines() {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(first) = fields.first() else {
                continue;
            };
            let rest = fields.get(1..).unwrap_or_default();
            match *first {
                "nameserver" => {
                    if let Some(ns) = rest.first().and_then(|a| Nameserver::parse(a)) {
                        rc.nameservers.push(ns);
                    }
                }
                "domain" | "search" => {
                    if !rest.is_empty() {
                        rc.search = rest.iter().map(|s| s.to_string()).collect();
                    }
                }
                "options" => rc.options.extend(rest.iter().map(|s| s.to_string())),
                _ => rc.other.push(line.to_string()),
            }
        }
        rc
    }

    /// moby's `TransformForLegacyNw(true)`.
    fn transform_for_legacy_network(&mut self) {
        if self.ns_override {
            return;
        }
        self.nameservers.retain(|ns| !ns.is_loopback());
        if self.nameservers.is_empty() {
            self.nameservers = [
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
                IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844)),
            ]
            .into_iter()
            .map(|addr| Nameserver { addr, zone: None })
            .collect();
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        for line in &self.other {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// An invalid nameserver in a [`DnsConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid nameserver address {0:?}")]
pub struct InvalidNameserver(pub String);

/// The container's `resolv.conf` from the host's file content (`None` when the host has no
/// such file), for a container with (`host_network`) or without the host's network.
pub fn resolv_conf(
    host_content: Option<&str>,
    host_network: bool,
    dns: Option<&DnsConfig>,
) -> Result<String, InvalidNameserver> {
    let mut rc = ResolvConf::parse(host_content.unwrap_or(""));
    if let Some(dns) = dns {
        if !dns.nameservers.is_empty() {
            rc.nameservers = dns
                .nameservers
                .iter()
                .map(|s| Nameserver::parse(s).ok_or_else(|| InvalidNameserver(s.clone())))
                .collect::<Result<_, _>>()?;
            rc.ns_override = true;
        }
        if !dns.search_domains.is_empty() {
            rc.search = dns
                .search_domains
                .iter()
                .filter(|s| *s != ".")
                .cloned()
                .collect();
        }
        if !dns.options.is_empty() {
            rc.options = dns.options.clone();
        }
    }
    if !host_network || rc.nameservers.is_empty() {
        rc.transform_for_legacy_network();
    }
    Ok(rc.render())
}

/// Which host file to read: `/etc/resolv.conf`, or systemd-resolved's upstream file when the
/// container has its own network and `/etc/resolv.conf` only names the local stub.
/// `etc_resolv_conf` is the content of `/etc/resolv.conf` (`None` when missing).
pub fn host_source(etc_resolv_conf: Option<&str>, host_network: bool) -> PathBuf {
    if !host_network && let Some(content) = etc_resolv_conf {
        let rc = ResolvConf::parse(content);
        if let [only] = rc.nameservers.as_slice()
            && only.zone.is_none()
            && only.addr == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53))
        {
            return PathBuf::from(SYSTEMD_RESOLV_CONF);
        }
    }
    PathBuf::from(HOST_RESOLV_CONF)
}

/// Reads a host file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
