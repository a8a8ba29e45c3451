//! The runtime configuration (`config.json`) of a container, as BuildKit generates it
//! (containerd's default Unix spec with BuildKit's changes: `executor/oci/spec.go`,
//! `spec_unix.go`, `mounts.go`, `util/entitlements/security`).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceBuilder,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use crate::caps::DEFAULT_CAPABILITIES;
use crate::hosts::DEFAULT_HOSTNAME;
use crate::rootpath::clean_absolute;
use crate::user::ResolvedUser;
use crate::{Error, MountKind, Network, RunSpec, Security, seccomp};

/// Paths hidden from a sandboxed container (runc's default spec, plus containerd's powercap).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// Paths a sandboxed container sees read-only (runc's default spec).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The umask of the process.
pub const UMASK: u32 = 0o022;

/// What the spec depends on besides the run itself: facts about the host, probed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Whether a cgroup namespace can be used (cgroup v2 only, as BuildKit checks).
    pub cgroup_namespace: bool,
    /// The executor's own effective capabilities (granted to insecure containers).
    pub capabilities: Vec<Capability>,
    /// The architecture (`std::env::consts::ARCH`), for the seccomp filter.
    pub arch: String,
    /// How many `/dev/loopN` devices an insecure container gets.
    pub loop_devices: u32,
}

impl HostFacts {
    /// Probes the running host.
    pub fn probe() -> HostFacts {
        let cgroup_namespace = Path::new("/proc/self/ns/cgroup").exists()
            && Path::new("/sys/fs/cgroup/cgroup.subtree_control").exists();
        // BuildKit adds the loop devices up to the first free one plus 7; without the ioctl,
        // kiln takes the highest existing one plus 8.
        let highest = std::fs::read_dir("/dev")
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_prefix("loop"))
                            .and_then(|n| n.parse::<u32>().ok())
                    })
                    .max()
            })
            .ok()
            .flatten();
        HostFacts {
            cgroup_namespace,
            capabilities: crate::caps::current(),
            arch: std::env::consts::ARCH.to_string(),
            loop_devices: highest.map_or(8, |h| h.saturating_add(8)),
        }
    }
}

/// Everything the configuration of one container is made from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// The container id.
    pub id: &'a str,
    /// The run.
    pub run: &'a RunSpec,
    /// The resolved user.
    pub user: &'a ResolvedUser,
    /// The host file mounted on `/etc/hosts`.
    pub hosts_file: &'a Path,
    /// The host file mounted on `/etc/resolv.conf`.
    pub resolv_conf: &'a Path,
    /// Facts about the host.
    pub host: &'a HostFacts,
}

fn mount(
    dest: &str,
    typ: &str,
    source: impl Into<PathBuf>,
    options: &[&str],
) -> Result<Mount, Error> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source.into())
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn namespace(typ: LinuxNamespaceType) -> Result<LinuxNamespace, Error> {
    Ok(LinuxNamespaceBuilder::default().typ(typ).build()?)
}

fn device(path: &str, typ: LinuxDeviceType, major: i64, minor: i64) -> Result<LinuxDevice, Error> {
    Ok(LinuxDeviceBuilder::default()
        .path(path)
        .typ(typ)
        .major(major)
        .minor(minor)
        .build()?)
}

fn device_rule(allow: bool, typ: Option<LinuxDeviceType>) -> Result<LinuxDeviceCgroup, Error> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access("rwm");
    if let Some(typ) = typ {
        b = b.typ(typ);
    }
    Ok(b.build()?)
}

/// The standard mounts, in BuildKit's order (containerd's defaults without `/run`, then the
/// generated `/etc/resolv.conf` and `/etc/hosts`, then the cgroup filesystem).
fn standard_mounts(input: &SpecInput<'_>) -> Result<Vec<Mount>, Error> {
    let insecure = input.run.security == Security::Insecure;
    let sys_mode = if insecure { "rw" } else { "ro" };
    let etc = ["nosuid", "noexec", "nodev", "rbind", "ro"];
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount("/etc/resolv.conf", "bind", input.resolv_conf, &etc)?,
        mount("/etc/hosts", "bind", input.hosts_file, &etc)?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_mode, "nosuid", "noexec", "nodev"],
        )?,
    ])
}

/// The extra mounts of the run, as runtime mounts.
fn extra_mounts(run: &RunSpec) -> Result<Vec<Mount>, Error> {
    run.mounts
        .iter()
        .map(|m| {
            let dest = clean_absolute(&m.dest);
            match &m.kind {
                MountKind::Bind { readonly } => {
                    let opts: &[&str] = if *readonly {
                        &["rbind", "ro"]
                    } else {
                        &["rbind"]
                    };
                    mount(&dest, "bind", m.source.clone(), opts)
                }
                MountKind::Tmpfs { size, readonly } => {
                    let mut opts = vec!["nosuid".to_string()];
                    if *readonly {
                        opts.push("ro".to_string());
                    }
                    if let Some(size) = size {
                        opts.push(format!("size={size}"));
                    }
                    Ok(MountBuilder::default()
                        .destination(dest.as_str())
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(opts)
                        .build()?)
                }
                MountKind::Other { fs_type, options } => Ok(MountBuilder::default()
                    .destination(dest.as_str())
                    .typ(fs_type.as_str())
                    .source(m.source.clone())
                    .options(options.clone())
                    .build()?),
            }
        })
        .collect()
}

/// A later mount on the same destination replaces an earlier one, in the earlier one's place
/// (BuildKit's `dedupMounts`).
fn dedup_mounts(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::with_capacity(mounts.len());
    for m in mounts {
        match out.iter_mut().find(|o| o.destination() == m.destination()) {
            Some(slot) => *slot = m,
            None => out.push(m),
        }
    }
    out
}

/// BuildKit's cgroups path for a cgroup parent.
pub fn cgroups_path(parent: Option<&str>, id: &str) -> Option<String> {
    let parent = parent.filter(|p| !p.is_empty())?;
    if parent.contains(".slice") && parent.ends_with(':') {
        Some(format!("{parent}{id}"))
    } else {
        Some(clean_absolute(&format!("/{parent}/buildkit/{id}")))
    }
}

fn rlimits(run: &RunSpec) -> Result<Vec<PosixRlimit>, Error> {
    run.ulimits
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let name = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
            let typ: PosixRlimitType = serde_json::from_value(serde_json::Value::String(name))
                .map_err(|_| {
                    Error::invalid(
                        format!("ulimits[{i}].name"),
                        format!("unknown limit {:?}", u.name),
                    )
                })?;
            Ok(PosixRlimitBuilder::default()
                .typ(typ)
                .soft(u.soft)
                .hard(u.hard)
                .build()?)
        })
        .collect()
}

/// The devices an insecure container gets besides the runtime's defaults.
fn insecure_devices(loop_devices: u32) -> Result<Vec<LinuxDevice>, Error> {
    let c = LinuxDeviceType::C;
    let mut devices = vec![
        device("/dev/kmsg", c, 1, 11)?,
        device("/dev/cuse", c, 10, 203)?,
        device("/dev/fuse", c, 10, 229)?,
        device("/dev/kvm", c, 10, 232)?,
        device("/dev/net/tun", c, 10, 200)?,
        device("/dev/loop-control", c, 10, 237)?,
    ];
    for i in 0..loop_devices {
        devices.push(device(
            &format!("/dev/loop{i}"),
            LinuxDeviceType::B,
            7,
            i64::from(i),
        )?);
    }
    Ok(devices)
}

/// Builds the configuration of one container. The root path is `run.rootfs`.
pub fn build_spec(input: &SpecInput<'_>) -> Result<Spec, Error> {
    let run = input.run;
    let insecure = run.security == Security::Insecure;

    let mut caps: Vec<Capability> = DEFAULT_CAPABILITIES.to_vec();
    if insecure {
        for c in &input.host.capabilities {
            if !caps.contains(c) {
                caps.push(*c);
            }
        }
    }
    let caps_set: std::collections::HashSet<Capability> = caps.iter().copied().collect();
    // containerd sets the bounding, effective and permitted sets; BuildKit's insecure mode
    // adds every capability to all five.
    let extra = if insecure {
        caps_set.clone()
    } else {
        std::collections::HashSet::new()
    };
    let cap_builder = LinuxCapabilitiesBuilder::default()
        .bounding(caps_set.clone())
        .effective(caps_set.clone())
        .permitted(caps_set)
        .inheritable(extra.clone())
        .ambient(extra);

    let user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid)
        .umask(UMASK)
        .additional_gids(input.user.additional_gids.clone())
        .build()?;

    let cwd = if run.cwd.is_empty() {
        "/".to_string()
    } else {
        clean_absolute(&run.cwd)
    };
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(run.args.clone())
        .env(run.effective_env())
        .cwd(cwd)
        .capabilities(cap_builder.build()?)
        .no_new_privileges(false);
    let limits = rlimits(run)?;
    if !limits.is_empty() {
        process = process.rlimits(limits);
    }
    let mut process = process.build()?;
    if run.ulimits.is_empty() {
        // Inherit the executor's limits, as BuildKit does (containerd's default NOFILE 1024
        // is removed).
        process.set_rlimits(None);
    }

    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid)?,
        namespace(LinuxNamespaceType::Ipc)?,
        namespace(LinuxNamespaceType::Uts)?,
        namespace(LinuxNamespaceType::Mount)?,
    ];
    if run.network == Network::None {
        namespaces.push(namespace(LinuxNamespaceType::Network)?);
    }
    if input.host.cgroup_namespace {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup)?);
    }

    let device_rules = if insecure {
        vec![
            device_rule(true, Some(LinuxDeviceType::C))?,
            device_rule(true, Some(LinuxDeviceType::B))?,
        ]
    } else {
        vec![device_rule(false, None)?]
    };
    let mut linux = LinuxBuilder::default().namespaces(namespaces).resources(
        LinuxResourcesBuilder::default()
            .devices(device_rules)
            .build()?,
    );
    if insecure {
        linux = linux
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new())
            .devices(insecure_devices(input.host.loop_devices)?);
    } else {
        linux = linux
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .seccomp(seccomp::profile(&input.host.arch)?);
    }
    if let Some(path) = cgroups_path(run.cgroup_parent.as_deref(), input.id) {
        linux = linux.cgroups_path(PathBuf::from(path));
    }

    let mut mounts = standard_mounts(input)?;
    mounts.extend(extra_mounts(run)?);

    let hostname = if run.hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        &run.hostname
    };
    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(
            RootBuilder::default()
                .path(run.rootfs.clone())
                .readonly(run.readonly_rootfs)
                .build()?,
        )
        .process(process)
        .hostname(hostname)
        .mounts(dedup_mounts(mounts))
        .linux(linux.build()?)
        .build()?;
    spec.set_annotations(None);
    Ok(spec)
}
