//! The seccomp filter of a sandboxed container.
//!
//! BuildKit applies Docker's default profile, an allowlist of about 350 system calls. kiln
//! writes the complement instead: everything is allowed except the system calls that Docker's
//! profile leaves out for a container without `CAP_SYS_ADMIN` and the other privileged
//! capabilities, as the Docker documentation lists them ("Significant syscalls blocked by the
//! default profile"). Those fail with `EPERM`; `clone3` fails with `ENOSYS` so that the C
//! library falls back to `clone`, whose namespace flags can be inspected (`clone` with any of
//! them fails with `EPERM`). The filter covers the 32-bit ABIs of the host architecture too.
//!
//! The difference from Docker's allowlist: system calls newer than the profile are allowed
//! here and denied there. The denied list is what matters for the build sandbox: namespaces,
//! mounts, kernel modules, keyrings, clocks, reboot, swap, BPF, perf, io_uring, NUMA policy,
//! and the kernel's handle-based file access. `ptrace` and `process_vm_*` stay allowed, as in
//! Docker's profile on kernels from 4.8 on.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use crate::Error;

/// System calls that fail with `EPERM`.
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "clock_settime64",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "move_pages",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
];

/// The namespace flags of `clone(2)` a sandboxed process may not use.
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The seccomp architectures for the host architecture (`std::env::consts::ARCH`): the native
/// one and its 32-bit companions; empty (the runtime's native default) for others.
pub fn architectures(arch: &str) -> Vec<Arch> {
    match arch {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "x86" => vec![Arch::ScmpArchX86],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "arm" => vec![Arch::ScmpArchArm],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "powerpc64" => vec![Arch::ScmpArchPpc64le],
        _ => Vec::new(),
    }
}

/// The filter for a sandboxed container on `arch`.
pub fn profile(arch: &str) -> Result<LinuxSeccomp, Error> {
    let mut syscalls: Vec<LinuxSyscall> = vec![
        LinuxSyscallBuilder::default()
            .names(DENIED.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(EPERM)
            .build()?,
        LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(ENOSYS)
            .build()?,
    ];
    // On s390 the flags are the second argument of clone.
    let flags_arg: usize = if arch == "s390x" { 1 } else { 0 };
    for flag in CLONE_NAMESPACE_FLAGS {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(EPERM)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(flags_arg)
                        .value(flag)
                        .value_two(flag)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                        .build()?,
                ])
                .build()?,
        );
    }
    let mut builder = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls);
    let archs = architectures(arch);
    if !archs.is_empty() {
        builder = builder.architectures(archs);
    }
    Ok(builder.build()?)
}
