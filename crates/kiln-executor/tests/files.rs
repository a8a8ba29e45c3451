//! The files and values the executor derives without running anything: users, `/etc/hosts`,
//! `/etc/resolv.conf`, paths inside a root, exit statuses, runtime logs.

use std::net::IpAddr;
use std::path::Path;

use kiln_executor::resolvconf::{HOST_RESOLV_CONF, SYSTEMD_RESOLV_CONF, host_source, resolv_conf};
use kiln_executor::{
    DnsConfig, ExitStatus, Termination, cgroups_path, hosts_file, log_errors,
    resolve_in_root_relative, resolve_user_in,
};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh

  bob:x:2000:2000::/home/bob:/bin/sh  
weird:x:notanumber:3000::/:/bin/sh
";

const GROUP: &str = "root:x:0:
daemon:x:1:
wheel:x:10:root,alice
audio:x:29:alice,bob
alice:x:1000:
bob:x:2000:
staff:x:50:
";

/// `Ok((uid, gid, additional gids))` or `Err(part of the message)`.
type Expected = Result<(u32, u32, Vec<u32>), &'static str>;

fn check_users(cases: &[(&str, Option<&str>, Option<&str>, Expected)]) {
    let mut failures = Vec::new();
    for (user, passwd, group, expected) in cases {
        let got = resolve_user_in(user, *passwd, *group)
            .map(|u| (u.uid, u.gid, u.additional_gids))
            .map_err(|e| e.to_string());
        let ok = match (&got, expected) {
            (Ok(g), Ok(e)) => g == e,
            (Err(g), Err(e)) => g.contains(e),
            _ => false,
        };
        if !ok {
            failures.push(format!("user {user:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "user resolution failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn users_resolve_as_buildkit_and_runc_do() {
    let p = Some(PASSWD);
    let g = Some(GROUP);
    check_users(&[
        // Root by default, with the groups that list "root", primary group first.
        ("", p, g, Ok((0, 0, vec![0, 10]))),
        ("", None, None, Ok((0, 0, vec![0]))),
        ("", Some("garbage"), None, Ok((0, 0, vec![0]))),
        ("root", p, g, Ok((0, 0, vec![0, 10]))),
        ("0", p, g, Ok((0, 0, vec![0, 10]))),
        // By name and by number: the passwd group, plus the groups listing the name.
        ("alice", p, g, Ok((1000, 1000, vec![1000, 10, 29]))),
        ("1000", p, g, Ok((1000, 1000, vec![1000, 10, 29]))),
        ("bob", p, g, Ok((2000, 2000, vec![2000, 29]))),
        ("daemon", p, g, Ok((1, 1, vec![1]))),
        // An explicit group replaces the primary group and drops the supplementary ones.
        ("alice:audio", p, g, Ok((1000, 29, vec![29]))),
        ("alice:50", p, g, Ok((1000, 50, vec![50]))),
        ("alice:4242", p, g, Ok((1000, 4242, vec![4242]))),
        ("4242:staff", p, g, Ok((4242, 50, vec![50]))),
        // uid:gid numbers (or root) skip the files entirely.
        ("1000:1000", p, g, Ok((1000, 1000, vec![1000]))),
        ("1000:1000", None, None, Ok((1000, 1000, vec![1000]))),
        ("root:root", None, None, Ok((0, 0, vec![0]))),
        ("5:root", None, None, Ok((5, 0, vec![0]))),
        // A number unknown to passwd is accepted, with gid 0.
        ("4242", p, g, Ok((4242, 0, vec![0]))),
        ("4242", None, None, Ok((4242, 0, vec![0]))),
        // Names that do not exist.
        (
            "nobody",
            p,
            g,
            Err("unable to find user nobody: no matching entries in passwd file"),
        ),
        (
            "nobody",
            None,
            None,
            Err("no matching entries in passwd file"),
        ),
        (
            "alice:nogroup",
            p,
            g,
            Err("unable to find group nogroup: no matching entries in group file"),
        ),
        (
            "alice:nogroup",
            p,
            None,
            Err("unable to find group nogroup"),
        ),
        // Out of range.
        ("-1", p, g, Err("uids and gids must be in range")),
        ("4294967296", p, g, Err("uids and gids must be in range")),
        ("alice:-5", p, g, Err("uids and gids must be in range")),
        // Leading and trailing blanks are trimmed from passwd lines; bad numbers read as 0.
        ("bob", p, None, Ok((2000, 2000, vec![2000]))),
        ("weird", p, g, Ok((0, 3000, vec![3000]))),
    ]);
}

/// A hostname, extra hosts, and the expected file.
type HostsCase<'a> = (&'a str, Vec<(String, IpAddr)>, &'a str);

fn check_hosts(cases: &[HostsCase<'_>]) {
    let mut failures = Vec::new();
    for (hostname, extra, expected) in cases {
        let got = hosts_file(hostname, extra);
        if got != *expected {
            failures.push(format!(
                "hostname {hostname:?}, extra {extra:?}:\nexpected {expected:?}\ngot      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "hosts file failures:\n{}",
        failures.join("\n")
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a test address")
}

#[test]
fn hosts_file_is_buildkits() {
    check_hosts(&[
        (
            "",
            vec![],
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        (
            "builder",
            vec![
                ("db".into(), ip("10.0.0.2")),
                ("v6".into(), ip("fd00::1")),
                ("mapped".into(), ip("::ffff:192.0.2.1")),
            ],
            "127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\nfd00::1\tv6\n192.0.2.1\tmapped\n",
        ),
    ]);
}

/// One resolv.conf case.
struct ResolvCase<'a> {
    name: &'a str,
    host: Option<&'a str>,
    host_network: bool,
    dns: Option<DnsConfig>,
    expected: Result<&'a str, &'a str>,
}

fn case<'a>(
    name: &'a str,
    host: Option<&'a str>,
    host_network: bool,
    dns: Option<DnsConfig>,
    expected: Result<&'a str, &'a str>,
) -> ResolvCase<'a> {
    ResolvCase {
        name,
        host,
        host_network,
        dns,
        expected,
    }
}

fn check_resolv(cases: &[ResolvCase<'_>]) {
    let mut failures = Vec::new();
    for ResolvCase {
        name,
        host,
        host_network,
        dns,
        expected,
    } in cases
    {
        let got = resolv_conf(*host, *host_network, dns.as_ref()).map_err(|e| e.to_string());
        let ok = match (&got, expected) {
            (Ok(g), Ok(e)) => g == e,
            (Err(g), Err(e)) => g.contains(e),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}:\nexpected {expected:?}\ngot      {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "resolv.conf failures:\n{}",
        failures.join("\n")
    );
}

const DEFAULTS: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n";

#[test]
fn resolv_conf_is_derived_as_buildkit_does() {
    let host = "# generated\n; comment\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver not-an-ip\ndomain old.example\nsearch a.example b.example\noptions ndots:2\noptions edns0 trust-ad\nsortlist 10.0.0.0\n  # indented comment is kept\n";
    check_resolv(&[
        case(
            "host network keeps loopback nameservers",
            Some(host),
            true,
            None,
            Ok(
                "nameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch a.example b.example\noptions ndots:2 edns0 trust-ad\nsortlist 10.0.0.0\n  # indented comment is kept\n",
            ),
        ),
        case(
            "own network drops loopback nameservers",
            Some(host),
            false,
            None,
            Ok(
                "nameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch a.example b.example\noptions ndots:2 edns0 trust-ad\nsortlist 10.0.0.0\n  # indented comment is kept\n",
            ),
        ),
        case(
            "own network, only loopback: defaults",
            Some("nameserver 127.0.0.1\nnameserver ::1\nnameserver ::ffff:127.0.0.1\n"),
            false,
            None,
            Ok(DEFAULTS),
        ),
        case(
            "host network, only loopback: kept",
            Some("nameserver 127.0.0.1\n"),
            true,
            None,
            Ok("nameserver 127.0.0.1\n"),
        ),
        case(
            "host network, no file: defaults",
            None,
            true,
            None,
            Ok(DEFAULTS),
        ),
        case(
            "own network, empty file: defaults",
            Some(""),
            false,
            None,
            Ok(DEFAULTS),
        ),
        case(
            "search only",
            Some("search x.example\n"),
            true,
            None,
            Ok(&format!("{DEFAULTS}search x.example\n")),
        ),
        case(
            "overrides",
            Some(host),
            false,
            Some(DnsConfig {
                nameservers: vec!["127.0.0.11".into(), "1.1.1.1".into()],
                search_domains: vec![".".into(), "c.example".into()],
                options: vec!["ndots:0".into()],
            }),
            // Overridden nameservers are kept as given, even loopback ones.
            Ok(
                "nameserver 127.0.0.11\nnameserver 1.1.1.1\nsearch c.example\noptions ndots:0\nsortlist 10.0.0.0\n  # indented comment is kept\n",
            ),
        ),
        case(
            "bad override",
            Some(host),
            false,
            Some(DnsConfig {
                nameservers: vec!["dns.example".into()],
                ..DnsConfig::default()
            }),
            Err("invalid nameserver address \"dns.example\""),
        ),
    ]);
}

#[test]
fn resolv_conf_source_follows_systemd_resolved() {
    let cases: &[(Option<&str>, bool, &str)] = &[
        (Some("nameserver 127.0.0.53\n"), false, SYSTEMD_RESOLV_CONF),
        (Some("nameserver 127.0.0.53\n"), true, HOST_RESOLV_CONF),
        (
            Some("nameserver 127.0.0.53\nnameserver 10.0.0.1\n"),
            false,
            HOST_RESOLV_CONF,
        ),
        (Some("nameserver 10.0.0.1\n"), false, HOST_RESOLV_CONF),
        (None, false, HOST_RESOLV_CONF),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(content, host, expected)| {
            let got = host_source(*content, *host);
            (got != Path::new(expected)).then(|| {
                format!(
                    "{content:?} host={host}: expected {expected}, got {}",
                    got.display()
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn paths_resolve_inside_the_root() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/real")).expect("mkdir");
    std::fs::create_dir_all(r.join("usr/lib")).expect("mkdir");
    std::os::unix::fs::symlink("/usr/lib", r.join("lib")).expect("symlink");
    std::os::unix::fs::symlink("../../../../..", r.join("etc/escape")).expect("symlink");
    std::os::unix::fs::symlink("/etc/../../../outside", r.join("abs-escape")).expect("symlink");
    std::os::unix::fs::symlink("real", r.join("etc/rel")).expect("symlink");
    std::os::unix::fs::symlink("loop2", r.join("loop1")).expect("symlink");
    std::os::unix::fs::symlink("loop1", r.join("loop2")).expect("symlink");
    std::os::unix::fs::symlink("../run/stub.conf", r.join("etc/resolv.conf")).expect("symlink");
    let cases: &[(&str, Result<&str, i32>)] = &[
        ("/", Ok("")),
        ("/etc", Ok("etc")),
        ("etc/./real/", Ok("etc/real")),
        ("/lib/x", Ok("usr/lib/x")),
        ("/etc/escape/etc", Ok("etc")),
        ("/abs-escape/x", Ok("outside/x")),
        ("/etc/rel/file", Ok("etc/real/file")),
        ("/missing/../etc", Ok("etc")),
        // After a missing component, `..` climbs back and the links met after it are followed
        // (securejoin), so `/lib` cannot be used to leave the root.
        ("/missing/../lib/x", Ok("usr/lib/x")),
        ("/../../etc/hosts", Ok("etc/hosts")),
        ("/etc/resolv.conf", Ok("run/stub.conf")),
        ("/loop1/x", Err(40)),
    ];
    let mut failures = Vec::new();
    for (input, expected) in cases {
        let got = resolve_in_root_relative(r, Path::new(input))
            .map_err(|e| e.raw_os_error().unwrap_or(-1));
        let ok = match (&got, expected) {
            (Ok(g), Ok(e)) => g == Path::new(e),
            (Err(g), Err(e)) => g == e,
            _ => false,
        };
        if !ok {
            failures.push(format!("{input}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exit_codes_read_as_exits_or_signals() {
    let cases: &[(i32, Termination, &str)] = &[
        (0, Termination::Exited(0), "exit code: 0"),
        (1, Termination::Exited(1), "exit code: 1"),
        (127, Termination::Exited(127), "exit code: 127"),
        (128, Termination::Exited(128), "exit code: 128"),
        (130, Termination::Signaled(2), "exit code: 130 (signal 2)"),
        (137, Termination::Signaled(9), "exit code: 137 (signal 9)"),
        (192, Termination::Signaled(64), "exit code: 192 (signal 64)"),
        (193, Termination::Exited(193), "exit code: 193"),
        (255, Termination::Exited(255), "exit code: 255"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(code, term, text)| {
            let s = ExitStatus::from_code(*code);
            let ok =
                s.termination() == *term && s.to_string() == *text && s.success() == (*code == 0);
            (!ok).then(|| format!("{code}: got {:?} {:?}", s.termination(), s.to_string()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn runtime_log_errors_are_extracted() {
    let log = r#"{"level":"warning","msg":"a warning","time":"2026-01-01T00:00:00Z"}
{"level":"error","msg":"runc run failed: unable to start container process: exec: \"/x\": stat /x: no such file or directory","time":"2026-01-01T00:00:00Z"}
not json
{"msg": "cgroups in hybrid mode not supported", "level": "error", "time": "2026-01-01T00:00:00.000000Z"}
"#;
    assert_eq!(
        log_errors(log),
        vec![
            "runc run failed: unable to start container process: exec: \"/x\": stat /x: no such file or directory".to_string(),
            "cgroups in hybrid mode not supported".to_string(),
        ]
    );
}

#[test]
fn cgroup_parents_follow_buildkit() {
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some(""), None),
        (Some("kiln"), Some("/kiln/buildkit/ID")),
        (Some("/a/b/"), Some("/a/b/buildkit/ID")),
        (Some("system.slice:kiln:"), Some("system.slice:kiln:ID")),
        (Some("system.slice"), Some("/system.slice/buildkit/ID")),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(parent, expected)| {
            let got = cgroups_path(*parent, "ID");
            (got.as_deref() != *expected)
                .then(|| format!("{parent:?}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
