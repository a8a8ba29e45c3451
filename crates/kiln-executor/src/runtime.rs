//! The OCI runtime binaries: finding them, invoking them, and the probe program.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Which runtime the executor should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// The first of `crun`, `runc` that runs a container on this host.
    #[default]
    Auto,
    /// `runc` only.
    Runc,
    /// `crun` only.
    Crun,
}

/// A concrete runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// `runc`.
    Runc,
    /// `crun`.
    Crun,
}

impl RuntimeKind {
    /// The binary name.
    pub fn name(&self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime the executor did not pick, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The runtime.
    pub kind: RuntimeKind,
    /// Why (`not found in PATH`, the runtime's own error, ...).
    pub reason: String,
}

/// The runtime the executor uses, and the ones it rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The runtime in use.
    pub kind: RuntimeKind,
    /// Its binary.
    pub path: PathBuf,
    /// The first line of its `--version` output.
    pub version: String,
    /// Whether a trivial container was run successfully (`false` on architectures without a
    /// probe program, where only `--version` was checked).
    pub probed: bool,
    /// The runtimes tried before it, or after it for information, that do not work here.
    pub rejected: Vec<Rejected>,
}

/// Directories searched after `PATH` (runc lives in `/usr/sbin` on Debian, which is not in
/// every user's `PATH`).
const FALLBACK_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Finds an executable named `name` in `PATH` or the usual system directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One runtime binary with its state directory.
#[derive(Debug, Clone)]
pub(crate) struct OciRuntime {
    pub kind: RuntimeKind,
    pub path: PathBuf,
    /// The `--root` of the runtime: its container state, private to this executor.
    pub state_root: PathBuf,
}

impl OciRuntime {
    /// A command with the global options (`--root`, and the JSON log file when given).
    pub fn command(&self, log: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.state_root);
        if let Some(log) = log {
            let mut opt = std::ffi::OsString::from("--log=");
            opt.push(log);
            cmd.arg(opt).arg("--log-format=json");
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a short runtime command and returns its combined output on failure.
    async fn simple(&self, args: &[&str]) -> Result<(), String> {
        let out = self
            .command(None)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("start {}: {e}", self.path.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if msg.is_empty() {
                msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            Err(msg)
        }
    }

    /// `kill ID KILL`.
    pub async fn kill(&self, id: &str) -> Result<(), String> {
        self.simple(&["kill", id, "KILL"]).await
    }

    /// `delete --force ID`.
    pub async fn delete_force(&self, id: &str) -> Result<(), String> {
        self.simple(&["delete", "--force", id]).await
    }

    /// `delete --force ID`, blocking (for cleanup from `Drop`).
    pub fn delete_force_blocking(&self, id: &str) {
        let _ = std::process::Command::new(&self.path)
            .arg("--root")
            .arg(&self.state_root)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Whether the runtime still has state for container `id`.
    pub fn has_state(&self, id: &str) -> bool {
        self.state_root.join(id).exists()
    }

    /// The first line of `--version`.
    pub async fn version(&self) -> Result<String, String> {
        let out = Command::new(&self.path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("start {}: {e}", self.path.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} --version failed: {}",
                self.path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string())
    }
}

/// The error messages (`"level":"error"` entries) of a runtime's JSON log.
pub fn log_errors(log: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        level: String,
        #[serde(default)]
        msg: String,
    }
    log.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter(|e| e.level == "error" || e.level == "fatal")
        .map(|e| e.msg)
        .collect()
}

/// A minimal static program for `arch` that exits with status 0 (`exit_group(0)`), used to
/// check that a runtime can run a container here without depending on any host file. `None`
/// for architectures without one.
pub fn probe_program(arch: &str) -> Option<Vec<u8>> {
    // The machine code, and the ELF machine number.
    let (machine, code): (u16, Vec<u8>) = match arch {
        // mov eax, 231; xor edi, edi; syscall
        "x86_64" => (
            0x3e,
            vec![0xb8, 0xe7, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05],
        ),
        // mov x0, #0; mov x8, #94; svc #0
        "aarch64" => (
            0xb7,
            [0xd280_0000u32, 0xd280_0bc8, 0xd400_0001]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect(),
        ),
        _ => return None,
    };
    const BASE: u64 = 0x40_0000;
    const EHDR: u64 = 64;
    const PHDR: u64 = 56;
    let size = EHDR + PHDR + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: executable
    elf.extend_from_slice(&machine.to_le_bytes()); // e_machine
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + EHDR + PHDR).to_le_bytes()); // e_entry
    elf.extend_from_slice(&EHDR.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    // One PT_LOAD segment, readable and executable, mapping the whole file.
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1_0000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    Some(elf)
}
