//! `EXPOSE` port specifications, as BuildKit's `convert_expose.go` reads them, with the
//! `ExposeProtoCasing` and `ExposeInvalidFormat` checks.

use std::net::IpAddr;

use kiln_dockerfile_parser::LineRange;
use kiln_gostd::strconv::quote;

use super::Linter;
use super::rules::{self, messages};
use crate::error::Error;

/// Turns expanded `EXPOSE` ports (`[ip:][host:]port[-end][/proto]`) into the image config's
/// `port/proto` entries, running the two `EXPOSE` checks on each.
///
/// Call it when dispatching `EXPOSE`, after expanding [`crate::ExposeCommand::ports`]
/// (BuildKit checks the expanded values). The protocol defaults to `tcp` and is lower-cased;
/// a range gives one entry per port. Errors are BuildKit's (`invalid port: "x": no port
/// specified`, `invalid containerPort: x`, ...), without location.
pub fn parse_expose_ports(
    ports: &[String],
    lines: LineRange,
    linter: &mut Linter,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for raw in ports {
        out.extend(parse_port(raw, lines, linter)?);
    }
    Ok(out)
}

fn parse_port(raw: &str, lines: LineRange, linter: &mut Linter) -> Result<Vec<String>, Error> {
    let (ip, host_port, container_port) = split_parts(raw);
    let (proto, container_port) = split_proto_port(container_port)
        .map_err(|e| Error::new(format!("invalid port: {}: {e}", quote(raw))))?;
    if proto != proto.to_lowercase() {
        linter.run(
            &rules::EXPOSE_PROTO_CASING,
            lines,
            messages::expose_proto_casing(raw),
        );
    }
    if !ip.is_empty() || !host_port.is_empty() {
        linter.run(
            &rules::EXPOSE_INVALID_FORMAT,
            lines,
            messages::expose_invalid_format(raw),
        );
    }

    let mut ip = ip.to_string();
    if ip.starts_with('[') {
        let with_port = format!("{ip}:");
        let host = split_host_port(&with_port)
            .map_err(|e| Error::new(format!("invalid IP address {ip}: {e}")))?;
        ip = host;
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(Error::new(format!("invalid IP address: {ip}")));
    }

    let (start, end) = parse_port_range(container_port)
        .ok_or_else(|| Error::new(format!("invalid containerPort: {container_port}")))?;
    if !host_port.is_empty() {
        let (host_start, host_end) = parse_port_range(host_port)
            .ok_or_else(|| Error::new(format!("invalid hostPort: {host_port}")))?;
        if end - start != host_end - host_start && end != start {
            return Err(Error::new(format!(
                "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            )));
        }
    }
    let proto = proto.to_lowercase();
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Splits `[ip:][host:]container` at the colons.
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [container] => ("", "", container),
        [host, container] => ("", host, container),
        [ip, host, container] => (ip, host, container),
        _ => {
            // More than three parts: everything before the last two is the (IPv6) address.
            let n = parts.len();
            let ip_len: usize = parts[..n - 2].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
            (&raw[..ip_len], parts[n - 2], parts[n - 1])
        }
    }
}

fn split_proto_port(raw: &str) -> Result<(&str, &str), String> {
    let (port, proto) = raw.split_once('/').unwrap_or((raw, ""));
    if port.is_empty() {
        return Err("no port specified".to_string());
    }
    match proto.to_lowercase().as_str() {
        "" => Ok(("tcp", port)),
        "tcp" | "udp" | "sctp" => Ok((proto, port)),
        _ => Err(format!("invalid proto: {proto}")),
    }
}

fn parse_port_range(ports: &str) -> Option<(u32, u32)> {
    if ports.is_empty() {
        return None;
    }
    let (start, end) = match ports.split_once('-') {
        Some((s, e)) => (s, Some(e)),
        None => (ports, None),
    };
    let start_port = parse_port_number(start)?;
    let Some(end) = end.filter(|e| *e != start) else {
        return Some((start_port, start_port));
    };
    let end_port = parse_port_number(end)?;
    if end_port < start_port {
        return None;
    }
    Some((start_port, end_port))
}

/// Go's `strconv.ParseInt(s, 10, 0)`, then a range check to 0..=65535.
fn parse_port_number(raw: &str) -> Option<u32> {
    // A negative number is out of range, anything else that is not digits is invalid.
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    if value > 65535 {
        return None;
    }
    u32::try_from(value).ok()
}

/// Go's `net.SplitHostPort`, returning the host (the port is not needed here).
fn split_host_port(hostport: &str) -> Result<String, String> {
    let addr_err = |why: &str| format!("address {hostport}: {why}");
    let Some(i) = hostport.rfind(':') else {
        return Err(addr_err("missing port in address"));
    };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err(addr_err("missing ']' in address"));
        };
        if end + 1 == hostport.len() {
            return Err(addr_err("missing port in address"));
        } else if end + 1 != i {
            if hostport.as_bytes().get(end + 1) == Some(&b':') {
                return Err(addr_err("too many colons in address"));
            }
            return Err(addr_err("missing port in address"));
        }
        host = hostport[1..end].to_string();
        j = 1;
        k = end + 1;
    } else {
        host = hostport[..i].to_string();
        if host.contains(':') {
            return Err(addr_err("too many colons in address"));
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') {
        return Err(addr_err("unexpected '[' in address"));
    }
    if hostport[k..].contains(']') {
        return Err(addr_err("unexpected ']' in address"));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linter::CheckConfig;

    fn check(ports: &[&str], expected: Result<&[&str], &str>, expected_warnings: &[&str]) {
        let mut linter = Linter::new(CheckConfig::default());
        let ports: Vec<String> = ports.iter().map(|s| (*s).to_string()).collect();
        let got = parse_expose_ports(&ports, LineRange { start: 1, end: 1 }, &mut linter);
        let expected = expected
            .map(|v| v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
            .map_err(str::to_string);
        assert_eq!(got.map_err(|e| e.message), expected, "{ports:?}");
        let warnings: Vec<String> = linter
            .warnings()
            .iter()
            .map(|w| w.message.clone())
            .collect();
        assert_eq!(warnings, expected_warnings, "{ports:?}");
    }

    #[test]
    fn ports() {
        check(&["80"], Ok(&["80/tcp"]), &[]);
        check(
            &["80/UDP"],
            Ok(&["80/udp"]),
            &["Defined protocol '80/UDP' in EXPOSE instruction should be lowercase"],
        );
        check(
            &["8000-8002/sctp"],
            Ok(&["8000/sctp", "8001/sctp", "8002/sctp"]),
            &[],
        );
        check(
            &["127.0.0.1:80:80"],
            Ok(&["80/tcp"]),
            &[
                "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
            ],
        );
        check(
            &["[::1]:8080:8080"],
            Ok(&["8080/tcp"]),
            &[
                "EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'",
            ],
        );
        check(
            &["5000:5000"],
            Ok(&["5000/tcp"]),
            &[
                "EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'",
            ],
        );
        check(
            &["/tcp"],
            Err("invalid port: \"/tcp\": no port specified"),
            &[],
        );
        check(
            &["80/xyz"],
            Err("invalid port: \"80/xyz\": invalid proto: xyz"),
            &[],
        );
        check(&["abc"], Err("invalid containerPort: abc"), &[]);
        check(&["70000"], Err("invalid containerPort: 70000"), &[]);
        check(&["90-80"], Err("invalid containerPort: 90-80"), &[]);
        check(&["80-80"], Ok(&["80/tcp"]), &[]);
        check(
            &["1.2.3:80:80"],
            Err("invalid IP address: 1.2.3"),
            &[
                "EXPOSE instruction should not define an IP address or host-port mapping, found '1.2.3:80:80'",
            ],
        );
        check(
            &["1-3:80-81"],
            Err("invalid ranges specified for container and host Ports: 80-81 and 1-3"),
            &[
                "EXPOSE instruction should not define an IP address or host-port mapping, found '1-3:80-81'",
            ],
        );
    }
}
