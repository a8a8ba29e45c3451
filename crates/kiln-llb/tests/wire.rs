//! Byte-exact encodings: kiln must marshal an op to the very bytes Go BuildKit does, since the
//! vertex digest is the sha256 of those bytes.
//!
//! There are no hard-coded vertex digests in BuildKit's tests to pin, so the expected bytes are
//! (a) BuildKit's own golden `SourceOp.bin`, and (b) ops assembled by hand, field by field, from
//! the protobuf wire format and the ordering rules of Go's deterministic marshalling: fields in
//! number order except that a `oneof` comes last, and map entries always carry key and value.

use std::collections::BTreeMap;

use kiln_llb::definition::OpMetadata;
use kiln_llb::ops::*;
use kiln_llb::{Definition, Digest, DigestError, Platform};

const BUILDKIT_SOURCE_OP: &[u8] = include_bytes!("data/SourceOp.bin");

fn digest_a() -> Digest {
    Digest::parse(&format!("sha256:{}", "a".repeat(64))).expect("digest")
}

fn linux_amd64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        ..Platform::default()
    }
}

/// Protobuf field helpers for writing expected bytes by hand.
fn len_field(tag: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128, "single-byte lengths only");
    let mut out = vec![(tag << 3) | 2, body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `-1` as a varint: ten bytes, sign-extended.
const MINUS_ONE: [u8; 10] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];

fn platform_bytes() -> Vec<u8> {
    cat(&[&len_field(1, b"amd64"), &len_field(2, b"linux")])
}

fn input_bytes() -> Vec<u8> {
    let d = digest_a().to_string();
    let mut inner = vec![0x0a, d.len() as u8];
    inner.extend_from_slice(d.as_bytes());
    len_field(1, &inner)
}

struct Case {
    name: &'static str,
    op: Operation,
    expected: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let source = |identifier: &str, attrs: &[(&str, &str)]| {
        Some(Op::Source(SourceOp {
            identifier: identifier.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }))
    };
    let constraints = Some(WorkerConstraints::default());
    vec![
        Case {
            name: "buildkit SourceOp.bin wrapped in an op",
            op: Operation {
                op: source(
                    "docker-image://docker.io/library/foo:latest",
                    &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                ),
                ..Operation::default()
            },
            expected: cat(&[&[0x1a, BUILDKIT_SOURCE_OP.len() as u8], BUILDKIT_SOURCE_OP]),
        },
        Case {
            name: "image op: platform and constraints before the oneof",
            op: Operation {
                op: source("docker-image://docker.io/library/busybox:latest", &[]),
                platform: Some(linux_amd64()),
                constraints: constraints.clone(),
                ..Operation::default()
            },
            expected: cat(&[
                &len_field(10, &platform_bytes()),
                &[0x5a, 0x00],
                &len_field(
                    3,
                    &len_field(1, b"docker-image://docker.io/library/busybox:latest"),
                ),
            ]),
        },
        Case {
            name: "map entry with an empty value keeps the value",
            op: Operation {
                op: source("local://ctx", &[("k", "")]),
                ..Operation::default()
            },
            expected: len_field(
                3,
                &cat(&[
                    &len_field(1, b"local://ctx"),
                    &len_field(2, &[0x0a, 0x01, b'k', 0x12, 0x00]),
                ]),
            ),
        },
        Case {
            name: "terminal op",
            op: Operation {
                inputs: vec![Input {
                    digest: digest_a(),
                    index: 0,
                }],
                ..Operation::default()
            },
            expected: input_bytes(),
        },
        Case {
            name: "exec op",
            op: Operation {
                inputs: vec![Input {
                    digest: digest_a(),
                    index: 0,
                }],
                op: Some(Op::Exec(ExecOp {
                    meta: Meta {
                        args: vec!["true".into()],
                        cwd: "/".into(),
                        remove_mount_stubs_recursive: true,
                        valid_exit_codes: vec![0, 1],
                        ..Meta::default()
                    },
                    mounts: vec![Mount {
                        dest: "/".into(),
                        ..Mount::default()
                    }],
                    ..ExecOp::default()
                })),
                platform: Some(linux_amd64()),
                constraints: constraints.clone(),
            },
            expected: cat(&[
                &input_bytes(),
                &len_field(10, &platform_bytes()),
                &[0x5a, 0x00],
                &len_field(
                    2,
                    &cat(&[
                        &len_field(
                            1,
                            &cat(&[
                                &len_field(1, b"true"),
                                &len_field(3, b"/"),
                                &[0x58, 0x01],
                                &[0x62, 0x02, 0x00, 0x01],
                            ]),
                        ),
                        &len_field(2, &len_field(3, b"/")),
                    ]),
                ),
            ]),
        },
        Case {
            name: "file op with negative indexes and timestamps",
            op: Operation {
                op: Some(Op::File(FileOp {
                    actions: vec![FileAction {
                        input: 0,
                        secondary_input: -1,
                        output: 0,
                        action: FileActionKind::Mkdir(FileActionMkDir {
                            path: "/a".into(),
                            mode: 0o755,
                            timestamp: -1,
                            ..FileActionMkDir::default()
                        }),
                    }],
                })),
                constraints,
                ..Operation::default()
            },
            expected: cat(&[
                &[0x5a, 0x00],
                &len_field(
                    4,
                    &len_field(
                        2,
                        &cat(&[
                            &[0x10],
                            &MINUS_ONE,
                            &len_field(
                                6,
                                &cat(&[
                                    &len_field(1, b"/a"),
                                    &[0x10, 0xed, 0x03],
                                    &[0x28],
                                    &MINUS_ONE,
                                ]),
                            ),
                        ]),
                    ),
                ),
            ]),
        },
    ]
}

#[test]
fn ops_encode_like_buildkit() {
    let mut failures = Vec::new();
    for case in cases() {
        let got = case.op.encode();
        if got != case.expected {
            failures.push(format!(
                "{}: encoded\n  {}\nwant\n  {}",
                case.name,
                hex(&got),
                hex(&case.expected)
            ));
            continue;
        }
        match Operation::decode(&case.expected) {
            Ok(op) if op == case.op => {}
            other => failures.push(format!("{}: decodes to {other:?}", case.name)),
        }
        if case.op.digest() != Digest::of_bytes(&case.expected) {
            failures.push(format!(
                "{}: digest is not the sha256 of the bytes",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The digest of the simplest image op, computed from the hand-assembled bytes above and
/// pinned so that any change of encoding shows up.
#[test]
fn pinned_image_digest() {
    let op = Operation {
        op: Some(Op::Source(SourceOp {
            identifier: "docker-image://docker.io/library/busybox:latest".into(),
            attrs: BTreeMap::new(),
        })),
        platform: Some(linux_amd64()),
        constraints: Some(WorkerConstraints::default()),
        ..Operation::default()
    };
    assert_eq!(
        op.digest().to_string(),
        "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0"
    );
}

#[test]
fn definition_encodes_map_defaults_like_go() {
    let def = Definition {
        def: vec![b"x".to_vec()],
        metadata: BTreeMap::from([(
            digest_a(),
            OpMetadata {
                caps: BTreeMap::from([("a".to_string(), false)]),
                ..OpMetadata::default()
            },
        )]),
        source: None,
    };
    let metadata = len_field(5, &[0x0a, 0x01, b'a', 0x10, 0x00]);
    let d = digest_a().to_string();
    let mut entry = vec![0x0a, d.len() as u8];
    entry.extend_from_slice(d.as_bytes());
    entry.extend(len_field(2, &metadata));
    let expected = cat(&[&len_field(1, b"x"), &len_field(2, &entry)]);
    assert_eq!(hex(&def.encode()), hex(&expected));
    assert_eq!(Definition::decode(&expected).expect("decode"), def);
}

/// `kiln_llb::Digest` is `kiln_oci::Digest`: go-digest's validation, and sha256 of op bytes.
#[test]
fn digests_parse_and_validate() {
    let good = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let cases: Vec<(String, Result<(), DigestError>)> = vec![
        (good.clone(), Ok(())),
        (format!("sha512:{}", "ab".repeat(64)), Ok(())),
        ("sha256".into(), Err(DigestError::InvalidFormat)),
        (
            format!(":{}", "a".repeat(64)),
            Err(DigestError::InvalidFormat),
        ),
        (
            format!("md5:{}", "a".repeat(32)),
            Err(DigestError::Unsupported),
        ),
        ("sha256:abc".into(), Err(DigestError::InvalidLength)),
        (
            format!("sha256:{}", "A".repeat(64)),
            Err(DigestError::InvalidFormat),
        ),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(input, want)| {
            let got = Digest::parse(&input).map(|_| ());
            (got != want).then(|| format!("{input}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let d = Digest::parse(&good).expect("good");
    assert_eq!((d.algorithm(), d.encoded().len()), ("sha256", 64));
    assert_eq!(d.to_string(), good);
    assert_eq!(
        serde_json::to_string(&d).expect("json"),
        format!("\"{good}\"")
    );
    assert_eq!(
        Digest::of_bytes(b"").as_str(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
