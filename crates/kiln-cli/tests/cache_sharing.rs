//! `RUN --mount=type=cache` end to end on the embedded builder: the three sharing modes with two
//! stages running at the same time, the owner and mode of a cache's root, seeding from another
//! stage, persistence across builds, and the `exec.cachemount` records `du` and `prune` see.

mod common;

use common::{assert_success, busybox, context_with, kiln, kiln_build, state_dir};

use std::path::Path;

use kiln_worker::{Filter, Storage, UsageRecord};

/// Builds `dockerfile` with `BASE` and `args` as build arguments into `dest` (`-o type=local`),
/// without garbage collection; returns the progress log.
fn build(state: &Path, dockerfile: &str, base: &str, args: &[&str], dest: &Path) -> String {
    let context = context_with(&[("Dockerfile", dockerfile)]);
    let mut cmd = kiln_build(state);
    cmd.args(["--progress", "plain", "--build-arg"])
        .arg(format!("BASE={base}"));
    for a in args {
        cmd.args(["--build-arg", a]);
    }
    let out = cmd
        .arg("-o")
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(context.path())
        .env("KILN_GC", "0")
        .output()
        .expect("run kiln build");
    assert_success(&out)
}

/// The cache mount records of the state directory.
fn cache_records(state: &Path) -> Vec<UsageRecord> {
    let _lock = kiln_worker::StateLock::acquire(state, |_| {}).expect("lock");
    Storage::open(state)
        .expect("storage")
        .disk_usage(
            &Filter::parse("type==exec.cachemount").expect("filter"),
            &[],
        )
        .expect("du")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Two stages `a` and `b` that run at the same time, gathered by a last stage. Each first meets
/// the other in a shared cache (`/met` says whether it saw the other arrive: proof that the
/// stages overlap), then appends `start-<stage>`, sleeps, appends `end-<stage>` to `/c/log` in
/// the cache `lk` mounted with `sharing`, and keeps a copy of the log as it saw it.
fn two_stages(sharing: &str) -> String {
    let stage = |name: &str, other: &str| {
        format!(
            "FROM ${{BASE}} AS {name}\n\
             RUN --mount=type=cache,id=meet,target=/meet touch /meet/{name} && i=0 && \
             while [ ! -e /meet/{other} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; \
             if [ -e /meet/{other} ]; then echo together; else echo alone; fi > /met\n\
             RUN --mount=type=cache,id=lk,target=/c,sharing={sharing} echo start-{name} >> /c/log \
             && sleep 1 && echo end-{name} >> /c/log && cp /c/log /seen\n"
        )
    };
    format!(
        "ARG BASE\n{}{}FROM ${{BASE}}\nCOPY --from=a /met /seen /a/\nCOPY --from=b /met /seen /b/\n",
        stage("a", "b"),
        stage("b", "a")
    )
}

/// What the two stages must have seen of the cache `lk`.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One directory, one step after the other: no log interleaves, and the second step's log
    /// holds the first step's markers before its own.
    TakeTurns,
    /// One directory at the same time: each step saw the other start while it ran.
    OneDirectoryAtOnce,
    /// A directory each: each log holds only its own step's markers.
    OwnDirectories,
}

/// Whether a log is whole start/end pairs of one stage each.
fn in_turns(log: &[String]) -> bool {
    log.chunks(2).all(|pair| match pair {
        [start, end] => start
            .strip_prefix("start-")
            .is_some_and(|s| end.strip_prefix("end-") == Some(s)),
        _ => false,
    })
}

fn check_sharing(sharing: &str, expect: Expect, instances: usize) {
    let (_registry, base) = busybox();
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("result");
    build(state.path(), &two_stages(sharing), &base, &[], &dest);

    let mut failures = Vec::new();
    for stage in ["a", "b"] {
        let met = lines(&dest.join(stage).join("met"));
        if met != ["together"] {
            failures.push(format!(
                "stage {stage} did not run while the other ran ({met:?}): the test proves nothing"
            ));
        }
    }
    let a = lines(&dest.join("a/seen"));
    let b = lines(&dest.join("b/seen"));
    let own = |s: &str| vec![format!("start-{s}"), format!("end-{s}")];
    match expect {
        Expect::TakeTurns => {
            let (first, second) = if a.len() <= b.len() {
                (&a, &b)
            } else {
                (&b, &a)
            };
            let ok = in_turns(first)
                && in_turns(second)
                && first.len() == 2
                && second.len() == 4
                && second.starts_with(first);
            if !ok {
                failures.push(format!(
                    "the steps did not take turns: a saw {a:?}, b saw {b:?}"
                ));
            }
        }
        Expect::OneDirectoryAtOnce => {
            if !a.contains(&"start-b".to_string()) || !b.contains(&"start-a".to_string()) {
                failures.push(format!(
                    "the steps did not share one directory at once: a saw {a:?}, b saw {b:?}"
                ));
            }
        }
        Expect::OwnDirectories => {
            if a != own("a") || b != own("b") {
                failures.push(format!(
                    "the steps did not get a directory each: a saw {a:?}, b saw {b:?}"
                ));
            }
        }
    }
    // `meet` and the instances of `lk`, each an `exec.cachemount` record.
    let records = cache_records(state.path());
    if records.len() != 1 + instances {
        failures.push(format!(
            "expected {} cache mount records, found {records:#?}",
            1 + instances
        ));
    }
    if let Some(r) = records.iter().find(|r| !r.mutable || r.in_use) {
        failures.push(format!(
            "a cache mount record is immutable or in use: {r:#?}"
        ));
    }
    assert!(failures.is_empty(), "sharing={sharing}: {failures:#?}");
}

#[test]
fn locked_steps_take_turns() {
    check_sharing("locked", Expect::TakeTurns, 1);
}

#[test]
fn shared_steps_use_one_directory_at_once() {
    check_sharing("shared", Expect::OneDirectoryAtOnce, 1);
}

#[test]
fn private_steps_get_a_directory_each() {
    check_sharing("private", Expect::OwnDirectories, 2);
}

const PERMISSIONS: &str = r#"ARG BASE
FROM ${BASE} AS seed
RUN mkdir -p /data && echo seeded > /data/file && chown -R 42:43 /data && chmod 0711 /data
FROM ${BASE}
RUN --mount=type=cache,target=/owned,uid=1234,gid=567,mode=0750 \
    --mount=type=cache,target=/plain \
    --mount=type=cache,target=/seeded,from=seed,source=/data \
    stat -c '%u %g %a' /owned /plain /seeded > /stat && cat /seeded/file > /content \
    && touch /owned/mark
RUN --mount=type=cache,target=/owned,uid=1234,gid=567,mode=0750 \
    --mount=type=cache,target=/other,id=/owned \
    ls /owned > /same && ls /other > /different
"#;

#[test]
fn cache_roots_take_the_mount_owner_and_mode() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("result");
    build(state.path(), PERMISSIONS, &base, &[], &dest);
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "stat",
            &["1234 567 750", "0 0 755", "42 43 711"],
            "uid/gid/mode, the defaults, and a root seeded from another stage",
        ),
        ("content", &["seeded"], "from/source seed the cache"),
        (
            "same",
            &["mark"],
            "the same id and permissions: the same cache",
        ),
        (
            "different",
            &[],
            "the same id with other permissions: another cache (the key includes them)",
        ),
    ];
    let mut failures = Vec::new();
    for (file, want, what) in cases {
        let got = lines(&dest.join(file));
        if got != *want {
            failures.push(format!("{file}: {what}: got {got:?}, expected {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

const PERSIST: &str = r#"ARG BASE
FROM ${BASE}
ARG N
RUN --mount=type=cache,target=/c echo build-$N >> /c/log && cp /c/log /seen
"#;

#[test]
fn cache_contents_persist_across_builds_and_stay_out_of_the_image() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let mut failures = Vec::new();
    let run = |n: &str, want: &[&str], failures: &mut Vec<String>| {
        let dest = out.path().join(n);
        build(state.path(), PERSIST, &base, &[&format!("N={n}")], &dest);
        let seen = lines(&dest.join("seen"));
        if seen != want {
            failures.push(format!("build {n}: saw {seen:?}, expected {want:?}"));
        }
        if dest.join("c/log").exists() {
            failures.push(format!("build {n}: the cache's contents are in the image"));
        }
    };
    run("1", &["build-1"], &mut failures);
    run("2", &["build-1", "build-2"], &mut failures);

    let records = cache_records(state.path());
    if records.len() != 1 {
        failures.push(format!(
            "expected one cache mount record, found {records:#?}"
        ));
    }
    let pruned = kiln()
        .args([
            "prune",
            "--force",
            "--filter",
            "type=exec.cachemount",
            "--root",
        ])
        .arg(state.path())
        .output()
        .expect("run kiln prune");
    assert_success(&pruned);
    let left = cache_records(state.path());
    if !left.is_empty() {
        failures.push(format!("prune left cache mounts: {left:#?}"));
    }
    run("3", &["build-3"], &mut failures);
    assert!(failures.is_empty(), "{failures:#?}");
}
