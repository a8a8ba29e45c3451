//! The generated `config.json`, pinned by snapshots.

use std::net::IpAddr;
use std::path::Path;

use kiln_executor::{
    HostFacts, MountKind, MountSpec, Network, ResolvedUser, RunSpec, Security, SpecInput, Ulimit,
    build_spec, probe_program,
};
use oci_spec::runtime::Capability;

fn host() -> HostFacts {
    HostFacts {
        cgroup_namespace: false,
        capabilities: vec![
            Capability::Chown,
            Capability::SysAdmin,
            Capability::NetAdmin,
        ],
        arch: "x86_64".to_string(),
        loop_devices: 2,
    }
}

/// The spec as JSON, with the capability sets (hash sets) sorted.
fn check(run: &RunSpec, user: &ResolvedUser, host: &HostFacts, name: &str) {
    let spec = build_spec(&SpecInput {
        id: "kiln-0123",
        run,
        user,
        hosts_file: Path::new("/state/bundles/kiln-0123/hosts"),
        resolv_conf: Path::new("/state/bundles/kiln-0123/resolv.conf"),
        host,
    })
    .expect("build spec");
    let mut json = serde_json::to_value(&spec).expect("serialise");
    if let Some(caps) = json
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    insta::assert_json_snapshot!(name, json);
}

fn root_user() -> ResolvedUser {
    ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: vec![0, 10],
    }
}

#[test]
fn sandbox_host_network() {
    let mut run = RunSpec::new(
        "/rootfs",
        vec!["/bin/sh".into(), "-c".into(), "make".into()],
    );
    run.env = vec!["HOME=/root".into(), "SECRET=old".into()];
    run.secret_env = vec![("SECRET".into(), "s3cr3t".into())];
    run.cwd = "/src/./app/".into();
    check(&run, &root_user(), &host(), "sandbox_host_network");
}

#[test]
fn insecure_no_network_with_mounts() {
    let mut run = RunSpec::new("/rootfs", vec!["true".into()]);
    run.readonly_rootfs = true;
    run.network = Network::None;
    run.security = Security::Insecure;
    run.hostname = "builder".into();
    run.env = vec!["PATH=/bin".into()];
    run.extra_hosts = vec![("db".into(), "10.0.0.2".parse::<IpAddr>().expect("ip"))];
    run.cgroup_parent = Some("kiln".into());
    run.ulimits = vec![Ulimit {
        name: "nofile".into(),
        soft: 1024,
        hard: 2048,
    }];
    run.mounts = vec![
        MountSpec {
            dest: "/cache".into(),
            source: "/state/cache/1".into(),
            kind: MountKind::Bind { readonly: false },
        },
        MountSpec {
            dest: "/run/secrets/token".into(),
            source: "/state/secrets/token".into(),
            kind: MountKind::Bind { readonly: true },
        },
        MountSpec {
            dest: "/tmp/".into(),
            source: "".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
                readonly: false,
            },
        },
        MountSpec {
            dest: "/src".into(),
            source: "overlay".into(),
            kind: MountKind::Other {
                fs_type: "overlay".into(),
                options: vec!["lowerdir=/l1:/l2".into()],
            },
        },
        // Replaces the first /cache mount, in its place.
        MountSpec {
            dest: "/cache/".into(),
            source: "/state/cache/2".into(),
            kind: MountKind::Bind { readonly: true },
        },
    ];
    let user = ResolvedUser {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![1000, 29],
    };
    let mut host = host();
    host.cgroup_namespace = true;
    check(&run, &user, &host, "insecure_no_network_with_mounts");
}

#[test]
fn probe_programs_are_minimal_elf_executables() {
    for (arch, machine) in [("x86_64", 0x3eu16), ("aarch64", 0xb7)] {
        let elf = probe_program(arch).expect("a probe program");
        assert_eq!(elf.get(..4), Some(&b"\x7fELF"[..]), "{arch}: magic");
        assert_eq!(
            elf.get(18..20),
            Some(&machine.to_le_bytes()[..]),
            "{arch}: machine"
        );
        let filesz = elf
            .get(96..104)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        assert_eq!(
            filesz,
            Some(elf.len() as u64),
            "{arch}: segment covers the file"
        );
    }
    assert_eq!(probe_program("mips"), None);
}
