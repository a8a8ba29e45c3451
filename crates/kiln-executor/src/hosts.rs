//! The container's `/etc/hosts`, as BuildKit writes it (`executor/oci/hosts.go`).

use std::fmt::Write as _;
use std::net::IpAddr;

/// The hostname of a build container when none is given.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// The content of `/etc/hosts` for a container named `hostname` (the default when empty),
/// with one `IP<TAB>NAME` line per extra host, in order.
pub fn hosts_file(hostname: &str, extra_hosts: &[(String, IpAddr)]) -> String {
    let hostname = if hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        hostname
    };
    let mut out =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (name, ip) in extra_hosts {
        let _ = writeln!(out, "{}\t{name}", go_ip_string(ip));
    }
    out
}

/// An address as Go's `net.IP.String` prints it: IPv4-mapped IPv6 addresses print as IPv4.
pub(crate) fn go_ip_string(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
    }
}
