//! Decoding definitions into validated graphs, and the errors bad definitions produce.

use std::collections::BTreeMap;

use kiln_llb::definition::OpMetadata;
use kiln_llb::ops::*;
use kiln_llb::*;

fn source(id: &str) -> Operation {
    Operation {
        op: Some(Op::Source(SourceOp {
            identifier: id.into(),
            attrs: BTreeMap::new(),
        })),
        ..Operation::default()
    }
}

fn terminal(digest: &Digest, index: i64) -> Operation {
    Operation {
        inputs: vec![Input {
            digest: digest.clone(),
            index,
        }],
        ..Operation::default()
    }
}

fn def_of(ops: &[Operation]) -> Definition {
    Definition {
        def: ops.iter().map(Operation::encode).collect(),
        ..Definition::default()
    }
}

fn exec_on(input: &Digest, mount_input: i64, output: i64) -> Operation {
    Operation {
        inputs: vec![Input {
            digest: input.clone(),
            index: 0,
        }],
        op: Some(Op::Exec(ExecOp {
            meta: Meta {
                args: vec!["true".into()],
                cwd: "/".into(),
                ..Meta::default()
            },
            mounts: vec![Mount {
                input: mount_input,
                dest: "/".into(),
                output,
                ..Mount::default()
            }],
            ..ExecOp::default()
        })),
        ..Operation::default()
    }
}

fn fake_digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
}

/// Each case is a definition and the error it must produce (`None` when it is valid).
fn check(cases: Vec<(&str, Result<Graph, Error>, Option<&str>)>) {
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, got, want)| match (&got, want) {
            (Ok(_), None) => None,
            (Err(e), Some(w)) if e.to_string() == w => None,
            _ => Some(format!("{name}: got {got:?}, want {want:?}")),
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn decoding_errors() {
    let img = source("docker-image://docker.io/library/alpine:latest");
    let d_img = img.digest();
    let exec = exec_on(&d_img, 0, 0);
    let d_exec = exec.digest();
    let missing = fake_digest('f');

    let mut bad_meta = def_of(&[img.clone(), terminal(&d_img, 0)]);
    bad_meta
        .metadata
        .insert(missing.clone(), OpMetadata::default());

    let garbage = Definition {
        def: vec![vec![0xff, 0xff, 0xff]],
        ..Definition::default()
    };
    let mut bad_input_digest = terminal(&d_img, 0).to_pb();
    bad_input_digest.inputs[0].digest = "sha256:nope".into();
    let bad_input_digest = Definition {
        def: vec![img.encode(), prost_encode(&bad_input_digest)],
        ..Definition::default()
    };

    let file = Operation {
        inputs: vec![Input {
            digest: d_img.clone(),
            index: 0,
        }],
        op: Some(Op::File(FileOp {
            actions: vec![FileAction {
                input: 1,
                secondary_input: -1,
                output: 0,
                action: FileActionKind::Rm(FileActionRm {
                    path: "/x".into(),
                    ..FileActionRm::default()
                }),
            }],
        })),
        ..Operation::default()
    };

    check(vec![
        (
            "valid",
            Graph::from_definition(&def_of(&[img.clone(), exec.clone(), terminal(&d_exec, 0)])),
            None,
        ),
        (
            "empty",
            Graph::from_definition(&Definition::default()),
            Some("invalid empty definition"),
        ),
        (
            "garbage bytes",
            Graph::from_definition(&garbage),
            Some(
                "cannot decode op 0 of the definition: failed to decode Protobuf message: invalid varint",
            ),
        ),
        (
            "terminal without input",
            Graph::from_definition(&def_of(&[img.clone(), Operation::default()])),
            Some(&format!(
                "invalid definition: the terminal op {} has no input",
                Operation::default().digest()
            )),
        ),
        (
            "terminal with a body",
            Graph::from_definition(&def_of(std::slice::from_ref(&img))),
            Some(&format!(
                "invalid definition: the terminal op {d_img} is not a bare input pointer"
            )),
        ),
        (
            "unknown input",
            Graph::from_definition(&def_of(&[img.clone(), terminal(&missing, 0)])),
            Some(&format!(
                "invalid definition: op {} refers to unknown input {missing}",
                terminal(&missing, 0).digest()
            )),
        ),
        (
            "output index out of range",
            Graph::from_definition(&def_of(&[img.clone(), terminal(&d_img, 1)])),
            Some(&format!(
                "invalid definition: op {} uses output 1 of {d_img}, which has 1 outputs",
                terminal(&d_img, 1).digest()
            )),
        ),
        (
            "exec without root output used as input",
            Graph::from_definition(&def_of(&[
                img.clone(),
                exec_on(&d_img, 0, -1),
                terminal(&exec_on(&d_img, 0, -1).digest(), 0),
            ])),
            Some(&format!(
                "invalid definition: op {} uses output 0 of {}, which has 0 outputs",
                terminal(&exec_on(&d_img, 0, -1).digest(), 0).digest(),
                exec_on(&d_img, 0, -1).digest()
            )),
        ),
        (
            "mount input out of range",
            Graph::from_definition(&def_of(&[
                img.clone(),
                exec_on(&d_img, 3, 0),
                terminal(&d_img, 0),
            ])),
            Some(&format!(
                "invalid op {}: mount \"/\" refers to input 3, but the op has 1 inputs",
                exec_on(&d_img, 3, 0).digest()
            )),
        ),
        (
            "file action refers to a later action",
            Graph::from_definition(&def_of(&[img.clone(), file.clone(), terminal(&d_img, 0)])),
            Some(&format!(
                "invalid op {}: file action 0 has input 1, but only inputs 0..1 and earlier actions exist",
                file.digest()
            )),
        ),
        (
            "metadata for an unknown op",
            Graph::from_definition(&bad_meta),
            Some(&format!(
                "invalid definition: metadata for unknown op {missing}"
            )),
        ),
        (
            "input digest that is not a digest",
            Graph::from_definition(&bad_input_digest),
            Some(
                "invalid op input 0: invalid digest \"sha256:nope\": invalid checksum digest length",
            ),
        ),
    ]);
}

#[test]
fn cycles_are_rejected() {
    // A cycle needs a sha256 collision with real digests, but callers that rename vertices
    // (`Graph::from_operations`) can present one.
    let (a, b) = (fake_digest('a'), fake_digest('b'));
    let op_a = exec_on(&b, 0, 0);
    let op_b = exec_on(&a, 0, 0);
    let ops = vec![
        (a.clone(), op_a),
        (b.clone(), op_b),
        (fake_digest('c'), terminal(&a, 0)),
    ];
    let got = Graph::from_operations(&ops, &BTreeMap::new());
    match got {
        Err(Error::Cycle { .. }) => {}
        other => panic!("expected a cycle error, got {other:?}"),
    }
}

#[test]
fn graph_order_and_head() {
    let base = State::image("alpine", ImageOpts::default());
    let ctx = State::local(
        "ctx",
        LocalOpts {
            session_id: Some("s".into()),
            ..LocalOpts::default()
        },
    );
    let out = base
        .run(RunOpts {
            args: vec!["true".into()],
            mounts: vec![RunMount::bind("/ctx", ctx)],
            ..RunOpts::default()
        })
        .root();
    let def = out.marshal(&MarshalOpts::default()).expect("marshal");
    let graph = Graph::from_definition(&def).expect("graph");
    let order: Vec<&str> = graph
        .topological_order()
        .iter()
        .map(|v| v.op.op.as_ref().map(Op::kind).unwrap_or("none"))
        .collect();
    assert_eq!(order.len(), 3);
    assert_eq!(order.last(), Some(&"exec"));
    assert_eq!(
        graph.terminal_vertex().map(|v| v.output_count()),
        Some(2),
        "root and /ctx are writable"
    );
    assert_eq!(def.head().expect("head"), Some(graph.terminal.clone()));
}

fn prost_encode(op: &bollard_buildkit_proto::pb::Op) -> Vec<u8> {
    use prost::Message;
    op.encode_to_vec()
}
