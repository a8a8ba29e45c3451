//! Capabilities: BuildKit's default set, and every capability the executor itself holds
//! (what an insecure container gets).

use oci_spec::runtime::Capability;

/// The capabilities of a sandboxed container: Docker's and BuildKit's default set
/// (containerd's `defaultUnixCaps`).
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Capabilities by their number in the kernel's bit sets.
const BY_NUMBER: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The capabilities in the `CapEff:` line of a `/proc/<pid>/status` file (bits the table does
/// not know are ignored).
pub fn effective_from_status(status: &str) -> Vec<Capability> {
    let Some(hex) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(str::trim)
    else {
        return Vec::new();
    };
    let Ok(bits) = u64::from_str_radix(hex, 16) else {
        return Vec::new();
    };
    BY_NUMBER
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The effective capabilities of the executor's own process (containerd's `cap.Current`).
pub fn current() -> Vec<Capability> {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| effective_from_status(&s))
        .unwrap_or_default()
}
