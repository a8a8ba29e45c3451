//! What the client lends one build: its secrets, its SSH agents, its OCI layouts and the
//! entitlements it was granted. This is BuildKit's session (secrets, SSH and OCI store
//! attachables, the solve request's entitlements) for the embedded builder, where the client is
//! the same process: no gRPC.
//!
//! Secret values are never held by the store: a secret is read from its file or variable when
//! an op needs it, written to a private tmpfs for the duration of one `RUN`, and forgotten. They
//! never take part in a cache key, an error message or the `Debug` output of these types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_llb::ops::{ExecOp, Mount, NetMode, SecretEnv, SecurityMode};

use crate::Parts;
use crate::error::{Error, Result};
use crate::mounts::{Mounted, unique_id};
use crate::sshagent::{self, Agent, Keyring};

/// BuildKit's limit on the size of one secret (`MaxSecretSize`, 500 KB).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The content of a file, read when the secret is used.
    File(PathBuf),
    /// The value of an environment variable of the client (empty when it is unset).
    Env(String),
}

/// A `--secret` flag as buildx parses it: an id and at most a file and a variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSpec {
    /// The secret id (`id=`).
    pub id: String,
    /// The file (`src=` or `source=`).
    pub file: Option<PathBuf>,
    /// The environment variable (`env=`).
    pub env: Option<String>,
}

/// The secrets of a build, by id (BuildKit's `secretsprovider` file store). Its `Debug` output
/// shows the ids and sources, never a value.
#[derive(Clone, Default)]
pub struct SecretStore {
    sources: BTreeMap<String, SecretSource>,
    /// The values of the variables the secrets name, captured from the client's environment.
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// A store of `specs`, with BuildKit's rules: an id is required; a secret with neither file
    /// nor variable comes from the variable named by its id when `env` has one, else from the
    /// file named by its id; a file must exist and hold at most [`MAX_SECRET_SIZE`] bytes. The
    /// variables a secret names are captured from `env` now (the client's environment).
    pub fn new(specs: &[SecretSpec], env: &BTreeMap<String, String>) -> Result<SecretStore> {
        let mut store = SecretStore::default();
        for s in specs {
            if s.id.is_empty() {
                return Err(Error::Invalid("secret missing ID".to_string()));
            }
            let source = match (&s.env, &s.file) {
                (Some(var), _) if !var.is_empty() => SecretSource::Env(var.clone()),
                (_, Some(file)) if !file.as_os_str().is_empty() => SecretSource::File(file.clone()),
                _ if env.contains_key(&s.id) => SecretSource::Env(s.id.clone()),
                _ => SecretSource::File(PathBuf::from(&s.id)),
            };
            match &source {
                SecretSource::File(path) => {
                    let meta = std::fs::metadata(path).map_err(|e| {
                        Error::Invalid(format!("failed to stat {}: {e}", path.display()))
                    })?;
                    if meta.len() > MAX_SECRET_SIZE {
                        return Err(Error::Invalid(format!(
                            "secret {} too big. max size 500KB",
                            s.id
                        )));
                    }
                }
                SecretSource::Env(var) => {
                    if let Some(v) = env.get(var) {
                        store.env.insert(var.clone(), v.clone());
                    }
                }
            }
            store.sources.insert(s.id.clone(), source);
        }
        Ok(store)
    }

    /// The ids of the secrets, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// The value of a secret, `None` when the build has no secret of that id.
    pub(crate) fn get(&self, id: &str) -> Result<Option<Vec<u8>>> {
        match self.sources.get(id) {
            None => Ok(None),
            Some(SecretSource::Env(var)) => Ok(Some(
                self.env.get(var).cloned().unwrap_or_default().into_bytes(),
            )),
            Some(SecretSource::File(path)) => std::fs::read(path)
                .map(Some)
                .map_err(|e| Error::io("reading secret", path, e)),
        }
    }
}

/// A `--ssh` flag as buildx parses it: `ID[=PATH[,PATH...]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSpec {
    /// The forwarding id (`default` for the mounts that name none).
    pub id: String,
    /// Agent sockets or key files; empty means the socket in `SSH_AUTH_SOCK`.
    pub paths: Vec<PathBuf>,
}

/// The SSH agents the build may forward, by id (BuildKit's `sshprovider`): the client's agent
/// at a socket, or kiln's own agent holding keys loaded from files. Its `Debug` output shows
/// socket paths and key types, never a key.
#[derive(Debug, Clone, Default)]
pub struct SshAgents {
    agents: BTreeMap<String, Arc<Agent>>,
}

impl SshAgents {
    /// The agents of `specs`, with BuildKit's rules; `auth_sock` is the client's
    /// `SSH_AUTH_SOCK`, used by the specs without paths. A path that is a socket is an agent to
    /// forward (one at most per id); other paths are private key files (OpenSSH or PEM format,
    /// unencrypted), loaded now into an agent of kiln's own. An id given twice is an error.
    pub fn new(specs: &[SshSpec], auth_sock: Option<&Path>) -> Result<SshAgents> {
        use std::os::unix::fs::FileTypeExt;
        let mut agents = SshAgents::default();
        for s in specs {
            let id = if s.id.is_empty() {
                "default"
            } else {
                s.id.as_str()
            };
            if agents.agents.contains_key(id) {
                return Err(Error::Invalid(format!("duplicate agent ID {id:?}")));
            }
            let from_env = match s.paths.as_slice() {
                [] => true,
                [only] => only.as_os_str().is_empty(),
                _ => false,
            };
            let paths: Vec<PathBuf> = if from_env {
                match auth_sock.filter(|p| !p.as_os_str().is_empty()) {
                    Some(p) => vec![p.to_path_buf()],
                    None => {
                        return Err(Error::Invalid(
                            "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
                                .to_string(),
                        ));
                    }
                }
            } else {
                s.paths.clone()
            };
            let mut socket: Option<PathBuf> = None;
            let mut keys: Vec<PathBuf> = Vec::new();
            for p in &paths {
                if socket.is_some() {
                    return Err(Error::Invalid("only single socket allowed".to_string()));
                }
                let meta = std::fs::metadata(p)
                    .map_err(|e| Error::Invalid(format!("failed to stat {}: {e}", p.display())))?;
                if meta.file_type().is_socket() {
                    socket = Some(p.clone());
                } else {
                    keys.push(p.clone());
                }
            }
            let agent = match socket {
                Some(_) if !keys.is_empty() => {
                    return Err(Error::Invalid(
                        "invalid combination of keys and sockets".to_string(),
                    ));
                }
                Some(sock) => Agent::Socket(sock),
                None => Agent::Keys(Keyring::load(&keys)?),
            };
            agents.agents.insert(id.to_string(), Arc::new(agent));
        }
        Ok(agents)
    }

    /// The ids of the agents, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// The agent of `id`, or BuildKit's error naming the id: `no SSH key "ID" forwarded from
    /// the client` when the build forwards no agent at all, `unset ssh forward key ID` when it
    /// forwards others.
    pub(crate) fn agent(&self, id: &str) -> Result<&Arc<Agent>> {
        self.agents.get(id).ok_or_else(|| {
            if self.agents.is_empty() {
                Error::Invalid(format!("no SSH key {id:?} forwarded from the client"))
            } else {
                Error::Invalid(format!("unset ssh forward key {id}"))
            }
        })
    }
}

/// The entitlements a build was granted (`--allow`). The embedded builder is its own daemon
/// and grants whatever its caller asks; the build still needs to ask, as with BuildKit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host`.
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure`.
    pub security_insecure: bool,
}

/// What the client lends one build.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The secrets (`--secret`).
    pub secrets: SecretStore,
    /// The SSH agents (`--ssh`).
    pub ssh: SshAgents,
    /// The entitlements (`--allow`).
    pub entitlements: Entitlements,
    /// The OCI layout directories lent to the build (`--build-context
    /// NAME=oci-layout://PATH`), by store id: BuildKit's session OCI stores, which
    /// `oci-layout://` sources name in their `oci.store` attribute.
    pub oci_layouts: BTreeMap<String, PathBuf>,
}

/// Refuses an exec op that needs an entitlement the build was not granted, with BuildKit's
/// message (`network.host is not allowed`), before anything runs.
pub(crate) fn check_entitlements(op: &ExecOp, granted: Entitlements) -> Result<()> {
    if op.network == NetMode::Host && !granted.network_host {
        return Err(Error::NotAllowed("network.host"));
    }
    if op.security == SecurityMode::Insecure && !granted.security_insecure {
        return Err(Error::NotAllowed("security.insecure"));
    }
    Ok(())
}

/// What a secret or SSH mount holds while its `RUN` runs: released (unmounted, removed) on
/// drop.
pub(crate) struct Held {
    /// The private tmpfs holding a secret file ([`Mounted`]), or the socket forwarding to an SSH
    /// agent ([`SshProxy`]).
    _guard: Box<dyn Send>,
}

/// A secret mount (`RUN --mount=type=secret`): the secret written, with the mount's owner and
/// mode, to a file on a private tmpfs in the session directory, which is bind-mounted
/// read-only at the destination. `None` for a missing optional secret.
pub(crate) fn secret_mount(
    parts: &Parts,
    session: &Session,
    m: &Mount,
) -> Result<Option<(kiln_executor::MountSpec, Held)>> {
    let Some(opt) = m.secret_opt.as_ref() else {
        return Err(Error::Invalid("invalid secret mount options".to_string()));
    };
    if opt.id.is_empty() {
        return Err(Error::Invalid(
            "secret ID missing from mount options".to_string(),
        ));
    }
    let Some(data) = session.secrets.get(&opt.id)? else {
        if opt.optional {
            return Ok(None);
        }
        return Err(Error::SecretNotFound(opt.id.clone()));
    };
    let tmpfs = kiln_snapshot::Mount {
        kind: "tmpfs".to_string(),
        source: "tmpfs".to_string(),
        options: ["nodev", "nosuid", "noexec", "mode=0700"]
            .map(str::to_string)
            .to_vec(),
    };
    let mounted = Mounted::new(&session_dir(&parts.root), &[tmpfs])?;
    let file = mounted.path().join("secret");
    write_secret(&file, &data, opt.uid, opt.gid, opt.mode & 0o777)?;
    let spec = kiln_executor::MountSpec {
        dest: m.dest.clone(),
        source: file,
        kind: kiln_executor::MountKind::Other {
            fs_type: "bind".to_string(),
            options: ["rbind", "ro", "nodev", "nosuid", "noexec"]
                .map(str::to_string)
                .to_vec(),
        },
    };
    Ok(Some((
        spec,
        Held {
            _guard: Box::new(mounted),
        },
    )))
}

fn write_secret(file: &Path, data: &[u8], uid: u32, gid: u32, mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| Error::io("creating secret file", file, e))?;
    f.write_all(data)
        .map_err(|e| Error::io("writing secret file", file, e))?;
    drop(f);
    std::os::unix::fs::chown(file, Some(uid), Some(gid))
        .map_err(|e| Error::io("changing the owner of", file, e))?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("changing the mode of", file, e))
}

/// The variables of the op's `secretenv`, name and value; missing optional secrets are
/// skipped.
pub(crate) fn secret_env(session: &Session, env: &[SecretEnv]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for s in env {
        match session.secrets.get(&s.id)? {
            Some(v) => out.push((s.name.clone(), String::from_utf8_lossy(&v).into_owned())),
            None if s.optional => {}
            None => return Err(Error::SecretNotFound(s.id.clone())),
        }
    }
    Ok(out)
}

/// An SSH mount (`RUN --mount=type=ssh`): a socket of the mount's owner and mode, bind-mounted
/// at the destination, where a read-only agent answers: kiln's own with the keys loaded from
/// files, or a filter relaying to the client's agent. `None` for a missing optional agent. Must
/// run within the tokio runtime.
pub(crate) fn ssh_mount(
    parts: &Parts,
    session: &Session,
    m: &Mount,
) -> Result<Option<(kiln_executor::MountSpec, Held)>> {
    let Some(opt) = m.ssh_opt.as_ref() else {
        return Err(Error::Invalid("invalid ssh mount options".to_string()));
    };
    let id = if opt.id.is_empty() {
        "default"
    } else {
        opt.id.as_str()
    };
    let Some(agent) = session.ssh.agents.get(id) else {
        if opt.optional {
            return Ok(None);
        }
        if session.ssh.agents.is_empty() {
            return Err(Error::Invalid(format!(
                "no SSH key {:?} forwarded from the client",
                opt.id
            )));
        }
        return Err(Error::Invalid(format!("unset ssh forward key {id}")));
    };
    let proxy = SshProxy::start(
        &session_dir(&parts.root),
        Arc::clone(agent),
        opt.uid,
        opt.gid,
        opt.mode & 0o777,
    )?;
    let spec = kiln_executor::MountSpec {
        dest: m.dest.clone(),
        source: proxy.socket.clone(),
        kind: kiln_executor::MountKind::Bind { readonly: false },
    };
    Ok(Some((
        spec,
        Held {
            _guard: Box::new(proxy),
        },
    )))
}

/// A listening socket where an agent ([`sshagent::serve`]) answers each connection; stopped and
/// removed on drop.
pub(crate) struct SshProxy {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl SshProxy {
    /// Listens on a new socket (owner `uid`:`gid`, `mode`) in a private directory under
    /// `parent`. Must run within the tokio runtime.
    pub(crate) fn start(
        parent: &Path,
        agent: Arc<Agent>,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<SshProxy> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = parent.join(unique_id("ssh-"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("creating", &dir, e))?;
        let socket = dir.join("agent.sock");
        let cleanup = |e: Error| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| cleanup(Error::io("listening on", &socket, e)))?;
        std::os::unix::fs::chown(&socket, Some(uid), Some(gid))
            .map_err(|e| cleanup(Error::io("changing the owner of", &socket, e)))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode))
            .map_err(|e| cleanup(Error::io("changing the mode of", &socket, e)))?;
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(sshagent::serve(conn, Arc::clone(&agent)));
            }
        });
        Ok(SshProxy { dir, socket, task })
    }

    /// The socket where the agent answers.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for SshProxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory, under the state directory `root`, where secrets (private tmpfs mounts) and SSH
/// agent sockets live while a `RUN` uses them.
pub(crate) fn session_dir(root: &Path) -> PathBuf {
    root.join("session")
}

/// Creates the session directory (mode 0700) and removes what an interrupted build left there:
/// secret tmpfs mounts and SSH sockets.
pub(crate) fn prepare_dir(session_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(session_dir).map_err(|e| Error::io("creating", session_dir, e))?;
    std::fs::set_permissions(session_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("restricting", session_dir, e))?;
    let canonical =
        std::fs::canonicalize(session_dir).map_err(|e| Error::io("resolving", session_dir, e))?;
    kiln_snapshot::unmount_under(&canonical)?;
    if let Ok(entries) = std::fs::read_dir(session_dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Builds a store of one spec and reads the secret back (or the error).
    fn check(spec: SecretSpec, vars: &[(&str, &str)], expected: Result<&str, &str>) {
        let got = SecretStore::new(std::slice::from_ref(&spec), &env(vars))
            .and_then(|s| s.get(&spec.id))
            .map(|v| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned())
            .map_err(|e| e.to_string());
        match expected {
            Ok(v) => assert_eq!(got.as_deref(), Ok(v), "{spec:?}"),
            Err(prefix) => assert!(
                got.as_ref().is_err_and(|e| e.starts_with(prefix)),
                "{spec:?}: {got:?}"
            ),
        }
    }

    #[test]
    fn secret_sources_follow_buildkit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tok");
        std::fs::write(&file, "from-file").expect("write");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).expect("write");
        let spec = |id: &str, file: Option<&Path>, var: Option<&str>| SecretSpec {
            id: id.to_string(),
            file: file.map(Path::to_path_buf),
            env: var.map(str::to_string),
        };
        check(spec("a", Some(&file), None), &[], Ok("from-file"));
        check(
            spec("a", None, Some("V")),
            &[("V", "from-env")],
            Ok("from-env"),
        );
        // An unset variable gives an empty secret, as BuildKit's os.Getenv does.
        check(spec("a", None, Some("V")), &[], Ok(""));
        // The variable wins over the file.
        check(spec("a", Some(&file), Some("V")), &[("V", "e")], Ok("e"));
        // `id=X` alone: the variable X when set, else the file X.
        check(spec("TOKEN", None, None), &[("TOKEN", "t")], Ok("t"));
        let by_id = file.to_string_lossy().into_owned();
        check(spec(&by_id, None, None), &[], Ok("from-file"));
        check(spec("", Some(&file), None), &[], Err("secret missing ID"));
        check(
            spec("a", Some(&dir.path().join("missing")), None),
            &[],
            Err("failed to stat"),
        );
        check(
            spec("big", Some(&big), None),
            &[],
            Err("secret big too big. max size 500KB"),
        );
    }

    #[test]
    fn debug_output_shows_no_value() {
        let spec = SecretSpec {
            id: "a".to_string(),
            file: None,
            env: Some("V".to_string()),
        };
        let store = SecretStore::new(&[spec], &env(&[("V", "hunter2")])).expect("store");
        let session = Session {
            secrets: store,
            ..Session::default()
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Env(\"V\")"), "{shown}");
    }

    #[test]
    fn missing_secrets_are_errors_unless_optional() {
        let session = Session::default();
        let env = |optional| SecretEnv {
            id: "x".to_string(),
            name: "X".to_string(),
            optional,
        };
        assert_eq!(
            secret_env(&session, &[env(true)]).map_err(|e| e.to_string()),
            Ok(Vec::new())
        );
        assert_eq!(
            secret_env(&session, &[env(false)]).map_err(|e| e.to_string()),
            Err("secret x: not found".to_string())
        );
    }

    #[test]
    fn entitlements_are_checked() {
        let op = |network, security| ExecOp {
            network,
            security,
            ..ExecOp::default()
        };
        let none = Entitlements::default();
        let all = Entitlements {
            network_host: true,
            security_insecure: true,
        };
        let cases = [
            (op(NetMode::Sandbox, SecurityMode::Sandbox), none, Ok(())),
            (op(NetMode::None, SecurityMode::Sandbox), none, Ok(())),
            (
                op(NetMode::Host, SecurityMode::Sandbox),
                none,
                Err("network.host is not allowed"),
            ),
            (
                op(NetMode::Sandbox, SecurityMode::Insecure),
                none,
                Err("security.insecure is not allowed"),
            ),
            (op(NetMode::Host, SecurityMode::Insecure), all, Ok(())),
        ];
        let mut failures = Vec::new();
        for (op, granted, expected) in cases {
            let got = check_entitlements(&op, granted).map_err(|e| e.to_string());
            if got.as_ref().map_err(String::as_str) != expected.as_ref().map_err(|e| *e) {
                failures.push(format!("{op:?} {granted:?}: {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[tokio::test]
    async fn ssh_proxy_relays_read_only_requests_and_cleans_up() {
        use crate::sshagent::{msg, read_message, write_message};
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = dir.path().join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&agent).expect("bind");
        // The client's agent: answers every request with an empty identity list and records
        // the request types it saw.
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let seen = Arc::clone(&seen2);
                tokio::spawn(async move {
                    while let Ok(Some(m)) = read_message(&mut c).await {
                        seen.lock().expect("lock").push(m.first().copied());
                        let _ = write_message(&mut c, &[msg::IDENTITIES_ANSWER, 0, 0, 0, 0]).await;
                    }
                });
            }
        });
        let proxy = SshProxy::start(
            dir.path(),
            Arc::new(Agent::Socket(agent.clone())),
            1000,
            1001,
            0o660,
        )
        .expect("proxy");
        let meta = std::fs::metadata(&proxy.socket).expect("stat");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.permissions().mode() & 0o777),
            (1000, 1001, 0o660)
        );
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut c = tokio::net::UnixStream::connect(&proxy.socket)
                .await
                .expect("connect");
            for request in [
                vec![msg::REQUEST_IDENTITIES],
                vec![17, 0, 0, 0, 0],
                vec![19],
            ] {
                write_message(&mut c, &request).await.expect("write");
                got.push(
                    read_message(&mut c)
                        .await
                        .expect("read")
                        .unwrap_or_default(),
                );
            }
        }
        let answer = vec![msg::IDENTITIES_ANSWER, 0, 0, 0, 0];
        let failure = vec![msg::FAILURE];
        assert_eq!(
            got,
            [
                answer.clone(),
                failure.clone(),
                failure.clone(),
                answer,
                failure.clone(),
                failure
            ]
        );
        assert_eq!(
            *seen.lock().expect("lock"),
            [Some(msg::REQUEST_IDENTITIES); 2],
            "only read-only requests reach the client's agent"
        );
        let proxy_dir = proxy.dir.clone();
        drop(proxy);
        assert!(!proxy_dir.exists(), "the proxy's directory is removed");
    }

    #[test]
    fn ssh_agents_follow_buildkit() {
        use crate::sshagent::tests::keygen;
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let key = keygen(dir.path(), "id_ed25519", &["-t", "ed25519"]);
        let key2 = keygen(dir.path(), "id_ecdsa", &["-t", "ecdsa"]);
        let encrypted = keygen(dir.path(), "id_enc", &["-t", "ed25519", "-N", "passw0rd"]);
        let missing = dir.path().join("missing");
        let spec = |id: &str, paths: &[&Path]| SshSpec {
            id: id.to_string(),
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        };
        let empty = Path::new("");
        // The specs, the client's SSH_AUTH_SOCK, and the agents (`Debug`) or the error.
        type Case<'a> = (Vec<SshSpec>, Option<&'a Path>, Result<String, String>);
        let cases: Vec<Case> = vec![
            (
                vec![spec("default", &[])],
                Some(&sock),
                Ok(format!("default=Socket({sock:?})")),
            ),
            (
                vec![spec("default", &[empty])],
                Some(&sock),
                Ok(format!("default=Socket({sock:?})")),
            ),
            (
                vec![spec("gh", &[&sock]), spec("", &[&key])],
                None,
                Ok(format!(
                    "default=Keys([\"ssh-ed25519 id_ed25519\"]) gh=Socket({sock:?})"
                )),
            ),
            (
                vec![spec("k", &[&key, &key2])],
                None,
                Ok(
                    "k=Keys([\"ssh-ed25519 id_ed25519\", \"ecdsa-sha2-nistp256 id_ecdsa\"])"
                        .to_string(),
                ),
            ),
            (
                vec![spec("default", &[])],
                None,
                Err("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set".to_string()),
            ),
            (
                vec![spec("k", &[&sock, &sock])],
                None,
                Err("only single socket allowed".to_string()),
            ),
            (
                vec![spec("k", &[&sock, &key])],
                None,
                Err("only single socket allowed".to_string()),
            ),
            (
                vec![spec("k", &[&key, &sock])],
                None,
                Err("invalid combination of keys and sockets".to_string()),
            ),
            (
                vec![spec("k", &[&key]), spec("k", &[&key2])],
                None,
                Err("duplicate agent ID \"k\"".to_string()),
            ),
            (
                vec![spec("k", &[&missing])],
                None,
                Err(format!(
                    "failed to stat {}: No such file or directory (os error 2)",
                    missing.display()
                )),
            ),
            (
                vec![spec("k", &[&encrypted])],
                None,
                Err(format!(
                    "failed to parse {}: this private key is passphrase protected",
                    encrypted.display()
                )),
            ),
        ];
        let mut failures = Vec::new();
        for (specs, auth, want) in cases {
            let got = SshAgents::new(&specs, auth)
                .map(|a| {
                    a.agents
                        .iter()
                        .map(|(id, agent)| format!("{id}={agent:?}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .map_err(|e| e.to_string());
            let matches = match (&got, &want) {
                (Ok(g), Ok(w)) => g == w,
                (Err(g), Err(w)) => g.starts_with(w.as_str()),
                _ => false,
            };
            if !matches {
                failures.push(format!("{specs:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
