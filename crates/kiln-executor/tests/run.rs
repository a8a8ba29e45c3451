//! Running real containers (as root) in a busybox root filesystem built by the test.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{Output, busybox_rootfs, executor, run, sh, temp_dir, tree};
use kiln_executor::{
    CancellationToken, DEFAULT_PATH, Error, Executor, ExecutorConfig, MountKind, MountSpec,
    Network, OutputSink, ProcessIo, RunSpec, Runtime, RuntimeKind, Security, Termination,
};

/// Runs each `(name, spec)` and compares `(exit code, stdout, stderr)` with the expectation;
/// collects every mismatch before failing.
async fn check(exec: &Executor, cases: Vec<(&str, RunSpec, (i32, &str, &str))>) {
    let mut failures = Vec::new();
    for (name, spec, (code, stdout, stderr)) in cases {
        let out: Output = run(exec, spec).await;
        let got = (out.code(), out.stdout.as_str(), out.stderr.as_str());
        if got != (Ok(code), stdout, stderr) {
            failures.push(format!(
                "{name}: expected ({code}, {stdout:?}, {stderr:?}), got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_exit_codes() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    check(
        &exec,
        vec![
            (
                "stdout and stderr apart",
                sh(r, "echo out; echo err >&2; echo out2"),
                (0, "out\nout2\n", "err\n"),
            ),
            (
                "true",
                RunSpec::new(r, vec!["/bin/true".into()]),
                (0, "", ""),
            ),
            (
                "false",
                RunSpec::new(r, vec!["/bin/false".into()]),
                (1, "", ""),
            ),
            ("exit 3", sh(r, "exit 3"), (3, "", "")),
            ("exit 255", sh(r, "exit 255"), (255, "", "")),
            (
                "not found in the shell",
                sh(r, "nonexistent-command"),
                (127, "", "/bin/sh: nonexistent-command: not found\n"),
            ),
            (
                "PATH lookup of the command",
                RunSpec::new(r, vec!["echo".into(), "via PATH".into()]),
                (0, "via PATH\n", ""),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_cwd_and_users() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    let with = |script: &str, f: &dyn Fn(&mut RunSpec)| {
        let mut s = sh(r, script);
        f(&mut s);
        s
    };
    check(
        &exec,
        vec![
            (
                "env, default PATH and secrets",
                with("echo $FOO; echo $PATH; echo $TOKEN", &|s| {
                    s.env = vec!["FOO=bar".into(), "TOKEN=public".into()];
                    s.secret_env = vec![("TOKEN".into(), "secret".into())];
                }),
                (0, &format!("bar\n{DEFAULT_PATH}\nsecret\n"), ""),
            ),
            (
                "explicit PATH kept",
                with("echo $PATH", &|s| s.env = vec!["PATH=/bin".into()]),
                (0, "/bin\n", ""),
            ),
            (
                "cwd created",
                with("pwd; stat -c '%u:%g %a' .", &|s| {
                    s.cwd = "/work/dir".into();
                    s.user = "alice".into();
                }),
                (0, "/work/dir\n1000:1000 755\n", ""),
            ),
            (
                "root by default",
                sh(r, "id"),
                (0, "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n", ""),
            ),
            (
                "user by name",
                with("id", &|s| s.user = "alice".into()),
                (
                    0,
                    "uid=1000(alice) gid=1000(alice) groups=10(wheel),29(audio),1000(alice)\n",
                    "",
                ),
            ),
            (
                "user by number",
                with("id", &|s| s.user = "1000".into()),
                (
                    0,
                    "uid=1000(alice) gid=1000(alice) groups=10(wheel),29(audio),1000(alice)\n",
                    "",
                ),
            ),
            (
                "name:group",
                with("id", &|s| s.user = "alice:audio".into()),
                (0, "uid=1000(alice) gid=29(audio) groups=29(audio)\n", ""),
            ),
            (
                "uid:gid",
                with("id", &|s| s.user = "2000:10".into()),
                (0, "uid=2000(bob) gid=10(wheel) groups=10(wheel)\n", ""),
            ),
            (
                "unknown uid",
                with("id", &|s| s.user = "4242".into()),
                (0, "uid=4242 gid=0(root) groups=0(root)\n", ""),
            ),
            ("umask", sh(r, "umask"), (0, "0022\n", "")),
        ],
    )
    .await;
    let out = run(&exec, with("id", &|s| s.user = "nobody".into())).await;
    assert!(
        matches!(&out.status, Err(Error::User { user, reason }) if user == "nobody" && reason.contains("no matching entries in passwd file")),
        "unknown user: {:?}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_hosts_and_resolv_conf() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    let mut named = sh(r, "hostname; cat /etc/hosts");
    named.hostname = "builder".into();
    named.extra_hosts = vec![
        (
            "db.internal".into(),
            "10.1.2.3".parse::<IpAddr>().expect("ip"),
        ),
        ("v6host".into(), "fd00::2".parse::<IpAddr>().expect("ip")),
    ];
    let etc = std::fs::read_to_string("/etc/resolv.conf").ok();
    let resolv_host =
        kiln_executor::resolvconf::resolv_conf(etc.as_deref(), true, None).expect("resolv.conf");
    let none_source = kiln_executor::resolvconf::host_source(etc.as_deref(), false);
    let none_content = std::fs::read_to_string(none_source).ok();
    let resolv_none = kiln_executor::resolvconf::resolv_conf(none_content.as_deref(), false, None)
        .expect("resolv.conf");
    let mut cat_none = sh(r, "cat /etc/resolv.conf");
    cat_none.network = Network::None;
    check(
        &exec,
        vec![
            ("default hostname", sh(r, "hostname"), (0, "buildkitsandbox\n", "")),
            (
                "hosts with extra hosts",
                named,
                (0, "builder\n127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tdb.internal\nfd00::2\tv6host\n", ""),
            ),
            ("resolv.conf, host network", sh(r, "cat /etc/resolv.conf"), (0, &resolv_host, "")),
            ("resolv.conf, no network", cat_none, (0, &resolv_none, "")),
            ("hosts and resolv.conf are read-only", sh(r, "echo x >> /etc/hosts || echo refused"), (0, "refused\n", "/bin/sh: can't create /etc/hosts: Read-only file system\n")),
        ],
    )
    .await;
}

/// The interface names in a `/proc/net/dev` listing.
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut names: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_none_and_host() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let mut none = sh(rootfs.path(), "cat /proc/net/dev");
    none.network = Network::None;
    let out = run(&exec, none).await;
    assert_eq!(out.code(), Ok(0), "{out:?}");
    assert_eq!(
        interfaces(&out.stdout),
        vec!["lo".to_string()],
        "only lo: {}",
        out.stdout
    );

    let mut lo_up = sh(
        rootfs.path(),
        "ip -o link show lo | grep -o '<[A-Z_,]*>'; ip -o addr show lo | grep -o 'inet [0-9./]*'",
    );
    lo_up.network = Network::None;
    let out = run(&exec, lo_up).await;
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Ok(0), "<LOOPBACK,UP,LOWER_UP>\ninet 127.0.0.1/8\n"),
        "lo is up: {out:?}"
    );

    let out = run(&exec, sh(rootfs.path(), "cat /proc/net/dev")).await;
    assert_eq!(out.code(), Ok(0), "{out:?}");
    let host = std::fs::read_to_string("/proc/net/dev").expect("host /proc/net/dev");
    assert_eq!(
        interfaces(&out.stdout),
        interfaces(&host),
        "host network shares the host's interfaces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_tmpfs_mounts_leave_no_trace() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    // /etc exists but has no hosts or resolv.conf; /proc, /dev, /sys, /mnt, /run do not exist.
    let data = temp_dir("kiln-executor-data-");
    std::fs::write(data.path().join("data.txt"), "hello from the host\n").expect("write data");
    let secret = temp_dir("kiln-executor-secret-");
    std::fs::write(secret.path().join("token"), "t0k3n").expect("write token");
    let etc_mtime = std::fs::metadata(r.join("etc"))
        .and_then(|m| m.modified())
        .expect("etc mtime");
    let before = tree(r);

    let mut spec = sh(
        r,
        "cat /mnt/ro/data.txt; touch /mnt/ro/new 2>/dev/null || echo ro-refused; \
         cat /run/secrets/token; echo; echo scratch > /mnt/tmp/file; cat /mnt/tmp/file; \
         grep -c ' /mnt/tmp tmpfs ' /proc/mounts; echo written > /written.txt",
    );
    spec.mounts = vec![
        MountSpec {
            dest: "/mnt/ro".into(),
            source: data.path().into(),
            kind: MountKind::Bind { readonly: true },
        },
        MountSpec {
            dest: "/run/secrets/token".into(),
            source: secret.path().join("token"),
            kind: MountKind::Bind { readonly: true },
        },
        MountSpec {
            dest: "/mnt/tmp".into(),
            source: "".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
                readonly: false,
            },
        },
    ];
    let out = run(&exec, spec).await;
    assert_eq!(out.code(), Ok(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "hello from the host\nro-refused\nt0k3n\nscratch\n1\n"
    );

    let mut after = tree(r);
    let written = after.remove(std::path::Path::new("written.txt"));
    assert!(
        written.is_some_and(|e| e.kind == "file" && e.size == 8),
        "the process's own file stays"
    );
    // As with BuildKit (runc creates them), /dev, /proc and /sys stay, as empty directories.
    for d in ["dev", "proc", "sys"] {
        let entry = after.remove(std::path::Path::new(d));
        assert!(
            entry.is_some_and(|e| e.kind == "dir"),
            "/{d} stays as an empty directory"
        );
        assert_eq!(
            std::fs::read_dir(r.join(d)).map(|e| e.count()).ok(),
            Some(0),
            "/{d} is empty"
        );
    }
    // The root directory itself changed (written.txt); every other entry is as before.
    assert_eq!(
        after, before,
        "nothing else was added, removed or modified in the rootfs"
    );
    assert_eq!(
        std::fs::metadata(r.join("etc"))
            .and_then(|m| m.modified())
            .expect("etc mtime"),
        etc_mtime,
        "the mtime of /etc is restored after its stubs are removed"
    );
    assert_eq!(
        std::fs::read_dir(data.path()).map(|d| d.count()).ok(),
        Some(1),
        "the read-only source is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stubs_the_process_used_stay() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    // The process writes into /mnt, a directory created only as the parent of a mount point.
    let mut spec = sh(r, "echo kept > /mnt/keep.txt");
    spec.mounts = vec![MountSpec {
        dest: "/mnt/cache".into(),
        source: "".into(),
        kind: MountKind::Tmpfs {
            size: None,
            readonly: false,
        },
    }];
    let out = run(&exec, spec).await;
    assert_eq!(out.code(), Ok(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(r.join("mnt/keep.txt"))
            .ok()
            .as_deref(),
        Some("kept\n")
    );
    assert!(
        !r.join("mnt/cache").exists(),
        "the unused mount point is removed"
    );
    // /dev, /proc and /sys stay as empty directories, as with BuildKit.
    for d in ["dev", "proc", "sys"] {
        assert_eq!(
            std::fs::read_dir(r.join(d)).map(|e| e.count()).ok(),
            Some(0),
            "/{d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_rootfs_and_security_modes() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    let mut ro = sh(r, "touch /x 2>/dev/null || echo refused");
    ro.readonly_rootfs = true;
    let caps = "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status";
    let mut insecure = sh(
        r,
        &format!("{caps} | grep -v CapEff; touch /sys/kernel/x 2>&1 | grep -c Read-only; true"),
    );
    insecure.security = Security::Insecure;
    let status = std::fs::read_to_string("/proc/self/status").expect("own status");
    let own_bnd = status
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap_or_default()
        .to_string();
    check(
        &exec,
        vec![
            ("read-only root", ro, (0, "refused\n", "")),
            (
                "sandbox",
                sh(r, &format!("{caps}; touch /sys/kernel/x 2>&1 | grep -c Read-only")),
                (0, "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n1\n", ""),
            ),
            ("insecure", insecure, (0, &format!("{own_bnd}\nNoNewPrivs:\t0\nSeccomp:\t0\n0\n"), "")),
            ("seccomp denies unshare", sh(r, "unshare -U true 2>&1; echo $?"), (0, "unshare: unshare(0x10000000): Operation not permitted\n1\n", "")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_and_callback_sinks() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = seen.clone();
    let io = ProcessIo {
        stdin: Some(Box::new(std::io::Cursor::new(
            b"line one\nline two\n".to_vec(),
        ))),
        stdout: OutputSink::Callback(Box::new(move |chunk| {
            if let Ok(mut v) = sink.lock() {
                v.extend_from_slice(chunk);
            }
        })),
        stderr: OutputSink::Discard,
    };
    let status = exec
        .run(
            sh(rootfs.path(), "tr a-z A-Z"),
            io,
            CancellationToken::new(),
        )
        .await
        .expect("run");
    assert_eq!(status.code(), 0);
    assert_eq!(
        seen.lock().map(|v| v.clone()).unwrap_or_default(),
        b"LINE ONE\nLINE TWO\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_streams_while_running() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let (io, mut out_rx, _err_rx) = ProcessIo::channels(16);
    let spec = sh(rootfs.path(), "echo first; sleep 2; echo second");
    let started = Instant::now();
    let handle = tokio::spawn(async move {
        let first = out_rx.recv().await;
        (first, started.elapsed())
    });
    let run = exec.run(spec, io, CancellationToken::new());
    let (status, first) = tokio::join!(run, handle);
    let (first, at) = first.expect("receiver task");
    assert_eq!(status.map(|s| s.code()).ok(), Some(0));
    assert_eq!(first.as_deref(), Some(&b"first\n"[..]));
    assert!(
        at < Duration::from_millis(1500),
        "the first line arrived after {at:?}, before the process ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_kills_and_cleans_up() {
    let (exec, state) = executor().await;
    let rootfs = busybox_rootfs();
    let before = tree(rootfs.path());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let result = exec
        .run(
            RunSpec::new(rootfs.path(), vec!["/bin/sleep".into(), "100".into()]),
            ProcessIo::default(),
            cancel,
        )
        .await;
    let took = started.elapsed();
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert!(took < Duration::from_secs(5), "cancellation took {took:?}");
    let kind = exec.runtime_info().kind;
    let leftovers = |dir: &str| {
        std::fs::read_dir(state.path().join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(leftovers("bundles"), 0, "no bundle left");
    assert_eq!(leftovers(kind.name()), 0, "no container state left");
    assert_eq!(
        without_runtime_dirs(tree(rootfs.path())),
        before,
        "no mount stub left"
    );
    // Nothing of the container is still running.
    let sleeping = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| c == b"/bin/sleep\x00100\x00")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(sleeping, 0, "the sleep process is gone");

    // A run cancelled before it starts does nothing.
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let result = exec
        .run(
            sh(rootfs.path(), "echo never > /never"),
            ProcessIo::default(),
            cancelled,
        )
        .await;
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert_eq!(
        without_runtime_dirs(tree(rootfs.path())),
        before,
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_by_a_signal() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    // A unique command line, so the test can find the container's process from the host.
    let marker = format!("{}.25", 1000 + std::process::id() % 1000);
    let spec = RunSpec::new(rootfs.path(), vec!["/bin/sleep".into(), marker.clone()]);
    let killer = tokio::spawn(async move {
        let wanted = format!("/bin/sleep\0{marker}\0").into_bytes();
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let found = std::fs::read_dir("/proc").ok().and_then(|d| {
                d.flatten().find_map(|e| {
                    let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                    (cmd == wanted)
                        .then(|| e.file_name().to_string_lossy().parse::<i32>().ok())
                        .flatten()
                })
            });
            if let Some(pid) = found {
                return std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .is_ok();
            }
        }
        false
    });
    let status = exec
        .run(spec, ProcessIo::default(), CancellationToken::new())
        .await
        .expect("run");
    assert!(
        killer.await.unwrap_or(false),
        "the test found and killed the process"
    );
    assert_eq!(
        (status.code(), status.termination()),
        (137, Termination::Signaled(9))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_errors_and_invalid_specs() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let r = rootfs.path();
    let out = run(&exec, RunSpec::new(r, vec!["/nonexistent".into()])).await;
    assert!(
        matches!(&out.status, Err(Error::Runtime { message, .. }) if message.contains("/nonexistent")),
        "{out:?}"
    );
    let mut relative = sh(r, "true");
    relative.cwd = "relative".into();
    let mut bad_mount = sh(r, "true");
    bad_mount.mounts = vec![MountSpec {
        dest: "mnt".into(),
        source: "/tmp".into(),
        kind: MountKind::Bind { readonly: true },
    }];
    let cases = vec![
        ("empty args", RunSpec::new(r, vec![]), "args"),
        ("relative cwd", relative, "cwd"),
        ("relative mount destination", bad_mount, "mounts[0].dest"),
        ("missing rootfs", sh(&r.join("missing"), "true"), "missing"),
    ];
    let mut failures = Vec::new();
    for (name, spec, needle) in cases {
        let out = run(&exec, spec).await;
        match &out.status {
            Err(e) if e.to_string().contains(needle) => {}
            other => failures.push(format!(
                "{name}: expected an error naming {needle:?}, got {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_choice_is_explained() {
    let state = temp_dir("kiln-executor-state-");
    let exec = Executor::new(ExecutorConfig {
        runtime: Runtime::Runc,
        ..ExecutorConfig::new(state.path())
    })
    .await
    .expect("runc works on this host");
    let info = exec.runtime_info();
    assert_eq!(info.kind, RuntimeKind::Runc);
    assert!(
        info.probed && info.version.starts_with("runc version"),
        "{info:?}"
    );

    // crun either works, or is rejected with its own reason.
    let state = temp_dir("kiln-executor-state-");
    match Executor::new(ExecutorConfig {
        runtime: Runtime::Crun,
        ..ExecutorConfig::new(state.path())
    })
    .await
    {
        Ok(exec) => assert_eq!(exec.runtime_info().kind, RuntimeKind::Crun),
        Err(Error::NoRuntime { tried }) => {
            assert!(tried.starts_with("crun: crun version"), "{tried}")
        }
        Err(other) => panic!("unexpected error for crun: {other}"),
    }

    // Auto picks one, and lists the rejected ones with reasons.
    let (exec, _state) = executor().await;
    let info = exec.runtime_info();
    assert!(
        info.rejected
            .iter()
            .all(|r| r.kind != info.kind && !r.reason.is_empty()),
        "{info:?}"
    );

    let missing = Executor::new(ExecutorConfig {
        runtime: Runtime::Runc,
        runtime_path: Some("/nonexistent/runc".into()),
        ..ExecutorConfig::new(state.path())
    })
    .await;
    assert!(
        matches!(&missing, Err(Error::NoRuntime { tried }) if tried.contains("/nonexistent/runc")),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs() {
    let (exec, _state) = executor().await;
    let expected: Vec<(Result<i32, String>, String, String)> = (0..4)
        .map(|i| (Ok(0), format!("{i}\n"), String::new()))
        .collect();
    let collect = |outs: [Output; 4]| -> Vec<(Result<i32, String>, String, String)> {
        outs.into_iter()
            .map(|o| (o.code(), o.stdout, o.stderr))
            .collect()
    };

    // Separate root filesystems run in parallel.
    let roots: Vec<_> = (0..4).map(|_| busybox_rootfs()).collect();
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| sh(roots[i].path(), &format!("echo {i}")));
    let outs = tokio::join!(run(&exec, a), run(&exec, b), run(&exec, c), run(&exec, d));
    assert_eq!(
        collect([outs.0, outs.1, outs.2, outs.3]),
        expected,
        "separate root filesystems"
    );

    // Runs on one root filesystem wait for each other, so their mount points do not collide.
    let shared = busybox_rootfs();
    let r = shared.path();
    let before = tree(r);
    let outs = tokio::join!(
        run(&exec, sh(r, "echo 0")),
        run(&exec, sh(r, "echo 1")),
        run(&exec, sh(r, "echo 2")),
        run(&exec, sh(r, "echo 3")),
    );
    assert_eq!(
        collect([outs.0, outs.1, outs.2, outs.3]),
        expected,
        "one root filesystem"
    );
    assert_eq!(without_runtime_dirs(tree(r)), before, "no mount point left");
}

/// Runs the runtime directly on a bundle made with the same configuration the executor
/// writes, without the executor: the baseline for the executor's own overhead.
fn bare_runtime_run(
    exec: &Executor,
    rootfs: &std::path::Path,
    dir: &std::path::Path,
    n: usize,
) -> Duration {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    for name in ["hosts", "resolv.conf"] {
        std::fs::write(bundle.join(name), "").expect("bundle file");
    }
    for stub in ["proc", "dev", "sys"] {
        std::fs::create_dir_all(rootfs.join(stub)).expect("stub");
    }
    for stub in ["etc/hosts", "etc/resolv.conf"] {
        std::fs::write(rootfs.join(stub), "").expect("stub");
    }
    let run = RunSpec::new(rootfs, vec!["/bin/true".into()]);
    let user = kiln_executor::ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: vec![0],
    };
    let spec = kiln_executor::build_spec(&kiln_executor::SpecInput {
        id: "bare",
        run: &run,
        user: &user,
        hosts_file: &bundle.join("hosts"),
        resolv_conf: &bundle.join("resolv.conf"),
        host: &kiln_executor::HostFacts::probe(),
    })
    .expect("spec");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).expect("json"),
    )
    .expect("config");
    let info = exec.runtime_info();
    let started = Instant::now();
    for i in 0..n {
        let status = std::process::Command::new(&info.path)
            .arg("--root")
            .arg(dir.join("state"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("bare-{i}"))
            .stdin(std::process::Stdio::null())
            .status()
            .expect("run the runtime");
        assert!(status.success(), "bare runtime run failed: {status}");
    }
    let took = started.elapsed() / u32::try_from(n).unwrap_or(1);
    for stub in ["proc", "dev", "sys", "etc/hosts", "etc/resolv.conf"] {
        let p = rootfs.join(stub);
        let _ = std::fs::remove_dir(&p).or_else(|_| std::fs::remove_file(&p));
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn a_trivial_container_is_fast() {
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let scratch = temp_dir("kiln-executor-bare-");
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    // Interleaved, so that both see the same load on the machine.
    for _ in 0..5 {
        for _ in 0..2 {
            let started = Instant::now();
            let status = exec
                .run(
                    RunSpec::new(rootfs.path(), vec!["/bin/true".into()]),
                    ProcessIo::default(),
                    CancellationToken::new(),
                )
                .await
                .expect("run true");
            ours.push(started.elapsed());
            assert!(status.success());
        }
        bare.push(bare_runtime_run(&exec, rootfs.path(), scratch.path(), 2));
    }
    ours.sort();
    bare.sort();
    let median = |v: &[Duration]| v.get(v.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "trivial `true` with {}: executor end to end min {:?}, median {:?}; the runtime alone on the same config: min {:?}, median {:?}",
        exec.runtime_info().kind,
        ours.first().copied().unwrap_or_default(),
        median(&ours),
        bare.first().copied().unwrap_or_default(),
        median(&bare),
    );
    assert!(
        median(&ours) < Duration::from_millis(500),
        "median {:?}",
        median(&ours)
    );
}

/// The number of processes whose command line is exactly `cmdline`.
fn processes_with(cmdline: &[u8]) -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| c == cmdline)
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_cleans_up() {
    let (exec, state) = executor().await;
    let rootfs = busybox_rootfs();
    let before = tree(rootfs.path());
    let spec = RunSpec::new(rootfs.path(), vec!["/bin/sleep".into(), "101".into()]);
    let result = tokio::time::timeout(
        Duration::from_millis(500),
        exec.run(spec, ProcessIo::default(), CancellationToken::new()),
    )
    .await;
    assert!(result.is_err(), "the run was still going: {result:?}");
    let kind = exec.runtime_info().kind;
    let count = |dir: &str| {
        std::fs::read_dir(state.path().join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(
        (count("bundles"), count(kind.name())),
        (0, 0),
        "no bundle or container state left"
    );
    assert_eq!(
        without_runtime_dirs(tree(rootfs.path())),
        before,
        "no mount stub left"
    );
    assert_eq!(
        processes_with(b"/bin/sleep\x00101\x00"),
        0,
        "the container's process is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_executor_removes_what_a_crashed_one_left() {
    let state = temp_dir("kiln-executor-state-");
    let rootfs = busybox_rootfs();
    let first = Executor::new(ExecutorConfig::new(state.path()))
        .await
        .expect("executor");
    let kind = first.runtime_info().kind;
    // Simulate a crash: the run is never finished nor dropped.
    let mut run = Box::pin(first.run(
        RunSpec::new(rootfs.path(), vec!["/bin/sleep".into(), "102".into()]),
        ProcessIo::default(),
        CancellationToken::new(),
    ));
    let _ = tokio::time::timeout(Duration::from_millis(500), &mut run).await;
    std::mem::forget(run);
    let count = |dir: &str| {
        std::fs::read_dir(state.path().join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(
        (count("bundles"), count(kind.name())),
        (1, 1),
        "the crashed run left a bundle and a container"
    );
    assert_eq!(processes_with(b"/bin/sleep\x00102\x00"), 1);

    let _second = Executor::new(ExecutorConfig::new(state.path()))
        .await
        .expect("executor");
    assert_eq!(
        (count("bundles"), count(kind.name())),
        (0, 0),
        "the leftovers are gone"
    );
    let mut gone = false;
    for _ in 0..40 {
        if processes_with(b"/bin/sleep\x00102\x00") == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the leftover container was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_removal_never_follows_planted_symlinks() {
    // CVE-2024-23652: the process swaps a directory of mount stubs for a symlink to a host
    // directory that holds an empty directory of the same name as a stub.
    let (exec, _state) = executor().await;
    let rootfs = busybox_rootfs();
    let canary = temp_dir("kiln-executor-canary-");
    std::fs::create_dir(canary.path().join("b")).expect("canary dir");
    let mut spec = sh(
        rootfs.path(),
        &format!(
            "mv /mnt/a /mnt/moved && ln -s {} /mnt/a && echo planted",
            canary.path().display()
        ),
    );
    spec.mounts = vec![MountSpec {
        dest: "/mnt/a/b".into(),
        source: "".into(),
        kind: MountKind::Tmpfs {
            size: None,
            readonly: false,
        },
    }];
    let out = run(&exec, spec).await;
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Ok(0), "planted\n"),
        "{out:?}"
    );
    assert!(
        std::fs::symlink_metadata(rootfs.path().join("mnt/a"))
            .is_ok_and(|m| m.file_type().is_symlink()),
        "the symlink was planted"
    );
    assert!(
        canary.path().join("b").is_dir(),
        "the host directory behind the symlink is untouched"
    );
}

/// A tree without the `/dev`, `/proc` and `/sys` directories the executor leaves in a root
/// filesystem that lacked them (as BuildKit does).
fn without_runtime_dirs(
    mut t: std::collections::BTreeMap<std::path::PathBuf, common::Entry>,
) -> std::collections::BTreeMap<std::path::PathBuf, common::Entry> {
    for d in ["dev", "proc", "sys"] {
        t.remove(std::path::Path::new(d));
    }
    t
}
