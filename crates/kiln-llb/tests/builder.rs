//! Graphs built with the builder, marshalled and dumped: one insta snapshot per graph.
//!
//! Every case also checks what must hold for any graph: building it twice marshals to the same
//! bytes, the definition decodes into a valid [`Graph`], every op re-encodes to its own bytes,
//! and the definition survives an encode/decode round trip.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use kiln_llb::ops::{CacheSharing, MountContentCache, NetMode, ProxyEnv, SecurityMode};
use kiln_llb::*;

fn linux_amd64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        ..Platform::default()
    }
}

fn opts() -> MarshalOpts {
    MarshalOpts {
        platform: Some(linux_amd64()),
        ..MarshalOpts::default()
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// Builds the graph twice, checks the invariants, and snapshots the `dump-llb` JSON.
fn check(name: &str, build: fn() -> State) {
    let def = build().marshal(&opts()).expect("marshal");
    let again = build().marshal(&opts()).expect("marshal again");
    assert_eq!(def, again, "{name}: marshal is not deterministic");
    assert_eq!(def.encode(), again.encode(), "{name}: bytes differ");

    let graph = Graph::from_definition(&def).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        graph.vertices.len() + 1,
        def.def.len(),
        "{name}: ops are not unique"
    );
    for dt in &def.def {
        let op = Operation::decode(dt).expect("decode op");
        assert_eq!(
            &op.encode(),
            dt,
            "{name}: op does not re-encode to its bytes"
        );
        assert_eq!(Operation::from_pb(op.to_pb()).expect("from_pb"), op);
    }
    let decoded = Definition::decode(&def.encode()).expect("decode definition");
    assert_eq!(decoded, def, "{name}: definition round trip");
    assert_eq!(Definition::from_pb(def.to_pb()).expect("from_pb"), def);

    let dump = dump_json(&def).expect("dump");
    insta::assert_json_snapshot!(name, dump);
}

macro_rules! cases {
    ($($name:ident => $build:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name), $build);
            }
        )*
    };
}

cases! {
    image_run => || {
        State::image("busybox", ImageOpts::default())
            .add_env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .dir("/work")
            .user("nobody")
            .run(RunOpts {
                args: sh("echo hello > out"),
                env: vec![("GREETING".into(), "hi".into())],
                vertex: VertexOpts::named("[1/1] RUN echo hello > out"),
                ..RunOpts::default()
            })
            .root()
    };
    local_copy => || {
        let ctx = State::local(
            "context",
            LocalOpts {
                session_id: Some("s3ss10n".into()),
                shared_key_hint: Some("context".into()),
                include_patterns: vec!["src".into(), "Cargo.*".into()],
                exclude_patterns: vec!["target".into(), "<weird>&".into()],
                follow_paths: vec!["src".into()],
                vertex: VertexOpts::named("load build context"),
                ..LocalOpts::default()
            },
        );
        State::scratch().file(
            FileActions::new().copy(
                &ctx,
                "src",
                "/app/",
                CopyInfo {
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    follow_symlinks: true,
                    copy_dir_contents_only: true,
                    ..CopyInfo::default()
                },
            ),
            VertexOpts::named("COPY src /app/"),
        )
    };
    file_chain => || {
        let other = State::image("alpine:3.20", ImageOpts::default()).dir("/etc");
        State::image("debian:bookworm", ImageOpts::default())
            .dir("/work")
            .file(
                FileActions::new()
                    .mkdir("foo", 0o755, MkdirOpts { make_parents: true, ..MkdirOpts::default() })
                    .mkfile(
                        "foo/bar",
                        0o644,
                        "data\n",
                        MkfileOpts { chown: Some(Chown::parse("app:staff")), created_time: Some(0) },
                    )
                    .copy(
                        &other,
                        "os-release",
                        "foo/.",
                        CopyInfo {
                            mode: Some(CopyMode::Bits(0o600)),
                            chown: Some(Chown::ids(1000, 1000)),
                            ..CopyInfo::default()
                        },
                    )
                    .rm("tmp/*", RmOpts { allow_not_found: true, allow_wildcard: true })
                    .symlink("bar", "/work/foo/link", SymlinkOpts::default()),
                VertexOpts::default(),
            )
    };
    copy_options => || {
        let src = State::local("context", LocalOpts { session_id: Some("s".into()), ..LocalOpts::default() });
        State::image("busybox:1.36", ImageOpts::default()).file(
            FileActions::new().copy(
                &src,
                "/",
                "/dst",
                CopyInfo {
                    mode: Some(CopyMode::Symbolic("u+x".into())),
                    include_patterns: vec!["*.go".into()],
                    exclude_patterns: vec!["*_test.go".into()],
                    required_paths: vec!["main.go".into()],
                    attempt_unpack: true,
                    always_replace_existing_dest_paths: true,
                    chown: Some(Chown::parse("root:1")),
                    created_time: Some(1_700_000_000_000_000_000),
                    ..CopyInfo::default()
                },
            ),
            VertexOpts::default(),
        )
    };
    mounts_of_every_kind => || {
        let base = State::image("golang:1.23", ImageOpts::default()).dir("/src");
        let ctx = State::local("context", LocalOpts { session_id: Some("s".into()), ..LocalOpts::default() });
        let cache_seed = State::image("busybox", ImageOpts::default());
        let exec = base.run(RunOpts {
            args: sh("go build -o /out/app ./..."),
            mounts: vec![
                RunMount { readonly: true, selector: Some("/src".into()), ..RunMount::bind("/src", ctx) },
                RunMount::of_kind(
                    "/root/.cache/go-build",
                    MountKind::Cache { id: "gocache".into(), sharing: CacheSharing::Locked },
                ),
                RunMount {
                    source: cache_seed,
                    ..RunMount::of_kind("/go/pkg/mod", MountKind::Cache { id: "gomod".into(), sharing: CacheSharing::Private })
                },
                RunMount::of_kind("/tmp", MountKind::Tmpfs { size: 64 << 20 }),
                RunMount { content_cache: MountContentCache::On, ..RunMount::bind("/out", State::scratch()) },
                RunMount::of_kind(
                    "/run/secrets/token",
                    MountKind::Secret { id: "token".into(), uid: 0, gid: 0, mode: 0o400, optional: false, env: None },
                ),
                RunMount::of_kind(
                    "",
                    MountKind::Secret { id: "aws".into(), uid: 0, gid: 0, mode: 0o400, optional: true, env: Some("AWS_KEY".into()) },
                ),
                RunMount::of_kind(
                    "",
                    MountKind::Ssh { id: "default".into(), uid: 0, gid: 0, mode: 0o600, optional: false },
                ),
            ],
            ..RunOpts::default()
        });
        let out = exec.get_mount("/out").expect("out mount");
        exec.root().file(
            FileActions::new().copy(&out, "/app", "/usr/local/bin/app", CopyInfo::default()),
            VertexOpts::default(),
        )
    };
    run_settings => || {
        State::image("alpine", ImageOpts::default())
            .network(NetMode::Host)
            .security(SecurityMode::Insecure)
            .hostname("builder")
            .add_extra_host("registry.local", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
            .add_ulimit("nofile", 1024, 2048)
            .cgroup_parent("/kiln")
            .run(RunOpts {
                args: vec!["true".into()],
                proxy_env: Some(ProxyEnv { http_proxy: "http://proxy:3128".into(), ..ProxyEnv::default() }),
                valid_exit_codes: Some(vec![0, 1]),
                readonly_rootfs: false,
                ..RunOpts::default()
            })
            .root()
    };
    readonly_rootfs => || {
        let exec = State::image("alpine", ImageOpts::default()).run(RunOpts {
            args: vec!["touch".into(), "/out/x".into()],
            readonly_rootfs: true,
            mounts: vec![RunMount::bind("/out", State::scratch())],
            ..RunOpts::default()
        });
        exec.get_mount("/out").expect("out mount")
    };
    merge_and_diff => || {
        let base = State::image("alpine", ImageOpts::default());
        let a = base.run(RunOpts { args: sh("apk add curl"), ..RunOpts::default() }).root();
        let b = base.run(RunOpts { args: sh("apk add git"), ..RunOpts::default() }).root();
        let da = State::diff(&base, &a, VertexOpts::default());
        let db = State::diff(&base, &b, VertexOpts::named("diff git"));
        State::merge(&[base, da, State::scratch(), db], VertexOpts::named("merge"))
    };
    git_sources => || {
        let https = State::git(
            "https://github.com/moby/buildkit.git",
            "v0.16.0:frontend",
            GitOpts { keep_git_dir: true, checksum: Some("a".repeat(40)), ..GitOpts::default() },
        );
        let ssh = State::git(
            "git@github.com:moby/buildkit.git",
            "",
            GitOpts {
                known_ssh_hosts: Some("github.com ssh-ed25519 AAAA".into()),
                auth_token_secret: Some("MY_TOKEN".into()),
                skip_submodules: true,
                ..GitOpts::default()
            },
        );
        let bare = State::git("github.com/foo/bar.git", "ref", GitOpts::default());
        State::merge(&[https, ssh, bare], VertexOpts::default())
    };
    http_source => || {
        let dl = State::http(
            "https://example.com/tool.tar.gz",
            HttpOpts {
                checksum: Some(Digest::parse(&format!("sha256:{}", "0".repeat(64))).expect("digest")),
                filename: Some("tool.tar.gz".into()),
                perm: Some(0o755),
                uid: Some(1000),
                gid: Some(1000),
                ..HttpOpts::default()
            },
        );
        State::scratch().file(
            FileActions::new().copy(&dl, "tool.tar.gz", "/opt/", CopyInfo::default()),
            VertexOpts::default(),
        )
    };
    oci_layout_and_image_options => || {
        let layout = State::oci_layout(
            &format!("app@sha256:{}", "b".repeat(64)),
            OciLayoutOpts { session_id: Some("s".into()), store_id: Some("store".into()), layer_limit: Some(2), ..OciLayoutOpts::default() },
        );
        let img = State::image(
            "registry.local:5000/team/app:v1",
            ImageOpts {
                resolve_mode: ResolveMode::ForcePull,
                record_type: Some("internal".into()),
                layer_limit: Some(3),
                vertex: VertexOpts {
                    platform: Some(Platform { os: "linux".into(), architecture: "arm64".into(), ..Platform::default() }),
                    ..VertexOpts::default()
                },
            },
        );
        // The run inherits the image's platform.
        let ran = img.run(RunOpts { args: vec!["true".into()], ..RunOpts::default() }).root();
        State::merge(&[layout, ran], VertexOpts::default())
    };
    vertex_metadata => || {
        let map = SourceMap::new("Dockerfile", "FROM alpine\nRUN true\n");
        let map = std::sync::Arc::new(SourceMap { language: "Dockerfile".into(), ..(*map).clone() });
        State::image(
            "alpine",
            ImageOpts {
                vertex: VertexOpts { locations: vec![map.location(vec![Range::lines(1, 1)])], ..VertexOpts::default() },
                ..ImageOpts::default()
            },
        )
        .run(RunOpts {
            args: vec!["true".into()],
            vertex: VertexOpts {
                custom_name: Some("[2/2] RUN true".into()),
                ignore_cache: true,
                export_cache: Some(true),
                progress_group: Some(ProgressGroup { id: "stage-0".into(), name: "build".into(), weak: false }),
                worker_constraints: vec!["labels.os==linux".into()],
                description: BTreeMap::from([("com.example.step".into(), "2".into())]),
                locations: vec![map.location(vec![Range::lines(2, 2)])],
                ..VertexOpts::default()
            },
            ..RunOpts::default()
        })
        .root()
    };
    deduplicated_ops => || {
        // Two separately built but identical images and runs marshal once; metadata merges.
        let a = State::image("alpine", ImageOpts { vertex: VertexOpts::named("a"), ..ImageOpts::default() });
        let b = State::image("alpine", ImageOpts { vertex: VertexOpts { ignore_cache: true, ..VertexOpts::default() }, ..ImageOpts::default() });
        let ra = a.run(RunOpts { args: vec!["true".into()], ..RunOpts::default() }).root();
        let rb = b.run(RunOpts { args: vec!["true".into()], ..RunOpts::default() }).root();
        State::merge(&[ra, rb], VertexOpts::default())
    };
}

#[test]
fn marshal_scratch_is_empty() {
    let def = State::scratch().marshal(&opts()).expect("marshal");
    assert_eq!(def, Definition::default());
}

#[test]
fn state_settings() {
    let s = State::scratch();
    assert_eq!(s.get_dir(), "/");
    let s = s.dir("a").dir("../b/./c").dir("/abs/../x");
    assert_eq!(
        s.get_dir(),
        "/abs/../x",
        "absolute dirs are kept as given, as in BuildKit"
    );
    let s = State::scratch().dir("/w").dir("sub/..//d");
    assert_eq!(s.get_dir(), "/w/d");
    let s = s.add_env("A", "1").add_env("B", "2").add_env("A", "3");
    assert_eq!(s.env_list(), vec!["B=2".to_string(), "A=3".to_string()]);
    assert_eq!(s.get_env("A"), Some("3"));
    assert_eq!(s.del_env("A").get_env("A"), None);

    let cfg = br#"{"architecture":"arm64","os":"linux","config":{"Env":["PATH=/bin","EMPTY","=bad"],"WorkingDir":"/app"}}"#;
    let s = State::scratch().with_image_config(cfg).expect("config");
    assert_eq!(
        s.env_list(),
        vec!["PATH=/bin".to_string(), "EMPTY=".to_string()]
    );
    assert_eq!(s.get_dir(), "/app");
    assert_eq!(
        s.get_platform().map(|p| p.architecture.as_str()),
        Some("arm64")
    );
    assert!(State::scratch().with_image_config(b"{").is_err());

    // Run keeps the settings of the state it was called on, not the per-run overrides.
    let root = State::image("alpine", ImageOpts::default())
        .run(RunOpts {
            args: vec!["true".into()],
            env: vec![("X".into(), "1".into())],
            dir: Some("/tmp".into()),
            ..RunOpts::default()
        })
        .root();
    assert_eq!(root.get_env("X"), None);
    assert_eq!(root.get_dir(), "/");
}

/// Errors reported when marshalling, each checked against the expected message.
#[test]
fn marshal_errors() {
    let img = || State::image("alpine", ImageOpts::default());
    let cases: Vec<(&str, Result<State, Error>, &str)> = vec![
        (
            "run without args",
            Ok(img().run(RunOpts::default()).root()),
            "arguments are required",
        ),
        (
            "tmpfs as parent",
            img()
                .run(RunOpts {
                    args: vec!["true".into()],
                    mounts: vec![RunMount::of_kind("/t", MountKind::Tmpfs { size: 0 })],
                    ..RunOpts::default()
                })
                .get_mount("/t"),
            "tmpfs mount for /t can't be used as a parent",
        ),
        (
            "cache as parent",
            img()
                .run(RunOpts {
                    args: vec!["true".into()],
                    mounts: vec![RunMount::of_kind(
                        "/c",
                        MountKind::Cache {
                            id: "c".into(),
                            sharing: CacheSharing::Shared,
                        },
                    )],
                    ..RunOpts::default()
                })
                .get_mount("/c"),
            "invalid mount: /c",
        ),
        (
            "tmpfs with a source",
            Ok(img()
                .run(RunOpts {
                    args: vec!["true".into()],
                    mounts: vec![RunMount {
                        kind: MountKind::Tmpfs { size: 0 },
                        ..RunMount::bind("/t", img())
                    }],
                    ..RunOpts::default()
                })
                .root()),
            "tmpfs mounts must use scratch",
        ),
        (
            "bad image reference",
            Ok(State::image("Not/Valid", ImageOpts::default())),
            "invalid image reference \"Not/Valid\": invalid reference format: repository name (Valid) must be lowercase",
        ),
        (
            "empty file op",
            Ok(img().file(FileActions::new(), VertexOpts::default())),
            "action is required",
        ),
        (
            "unknown mount",
            img()
                .run(RunOpts {
                    args: vec!["true".into()],
                    ..RunOpts::default()
                })
                .get_mount("/nope"),
            "exec has no mount at /nope",
        ),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, state, want)| {
            let got = state.and_then(|s| s.marshal(&opts()).map(|_| ()));
            match got {
                Err(e) if e.to_string() == want => None,
                other => Some(format!("{name}: got {other:?}, want error {want:?}")),
            }
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn local_unique_id_only_when_given() {
    let local = State::local("context", LocalOpts::default());
    let without = local.marshal(&opts()).expect("marshal");
    let with = local
        .marshal(&MarshalOpts {
            local_unique_id: Some("u1".into()),
            ..opts()
        })
        .expect("marshal");
    let attrs = |def: &Definition| match &Operation::decode(&def.def[0]).expect("op").op {
        Some(Op::Source(s)) => s.attrs.clone(),
        other => panic!("not a source: {other:?}"),
    };
    assert!(!attrs(&without).contains_key("local.unique"));
    assert_eq!(
        attrs(&with).get("local.unique").map(String::as_str),
        Some("u1")
    );
}

#[test]
fn dump_dot_output() {
    let def = State::image("alpine", ImageOpts::default())
        .run(RunOpts {
            args: sh("echo \"hi\""),
            mounts: vec![RunMount::bind(
                "/m",
                State::local(
                    "ctx",
                    LocalOpts {
                        session_id: Some("s".into()),
                        ..LocalOpts::default()
                    },
                ),
            )],
            ..RunOpts::default()
        })
        .root()
        .file(
            FileActions::new().mkdir("/x", 0o755, MkdirOpts::default()),
            VertexOpts::default(),
        )
        .marshal(&opts())
        .expect("marshal");
    insta::assert_snapshot!(dump_dot(&def).expect("dot"));
}

#[test]
fn source_locations_are_collected() {
    let dockerfile = SourceMap::new("Dockerfile", "FROM alpine\nRUN true\nRUN true\n");
    let other = SourceMap::new("other.Dockerfile", "FROM scratch\n");
    let at = |map: &std::sync::Arc<SourceMap>, line| VertexOpts {
        locations: vec![map.location(vec![Range::lines(line, line)])],
        ..VertexOpts::default()
    };
    let img = State::image(
        "alpine",
        ImageOpts {
            vertex: at(&dockerfile, 1),
            ..ImageOpts::default()
        },
    );
    let run = |vertex| {
        img.run(RunOpts {
            args: vec!["true".into()],
            vertex,
            ..RunOpts::default()
        })
        .root()
    };
    // Lines 2 and 3 produce the same op: both ranges are kept, in walk order.
    let mut twice = at(&dockerfile, 3);
    twice
        .locations
        .push(other.location(vec![Range::lines(1, 1)]));
    let merged = State::merge(
        &[run(at(&dockerfile, 2)), run(twice)],
        VertexOpts::default(),
    );
    let def = merged.marshal(&opts()).expect("marshal");
    let digests = def.digests();
    let source = def.source.expect("source map");

    assert_eq!(
        source
            .infos
            .iter()
            .map(|i| i.filename.as_str())
            .collect::<Vec<_>>(),
        vec!["Dockerfile", "other.Dockerfile"]
    );
    assert_eq!(source.infos[0].data, b"FROM alpine\nRUN true\nRUN true\n");
    let expected = BTreeMap::from([
        (
            digests[0].clone(),
            vec![Location {
                source_index: 0,
                ranges: vec![Range::lines(1, 1)],
            }],
        ),
        (
            digests[1].clone(),
            vec![
                Location {
                    source_index: 0,
                    ranges: vec![Range::lines(2, 2), Range::lines(3, 3)],
                },
                Location {
                    source_index: 1,
                    ranges: vec![Range::lines(1, 1)],
                },
            ],
        ),
    ]);
    assert_eq!(source.locations, expected);
}
