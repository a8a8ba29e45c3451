//! Decoding untrusted bytes never panics: it either succeeds or returns an error.

use kiln_llb::{Definition, Graph, Operation, dump_json};
use proptest::prelude::*;

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_does_not_panic(a in proptest::collection::vec(any::<u8>(), 0..256),
                                               b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Operation::decode(&a);
        let _ = Definition::decode(&a);
        let def = Definition { def: vec![a, b], ..Definition::default() };
        let _ = Graph::from_definition(&def);
        let _ = dump_json(&def);
    }

    #[test]
    fn ops_with_arbitrary_indexes_validate_without_panic(index in any::<i64>(), mount_input in any::<i64>(), output in any::<i64>()) {
        use kiln_llb::ops::*;
        let src = Operation {
            op: Some(Op::Source(SourceOp { identifier: "local://x".into(), ..SourceOp::default() })),
            ..Operation::default()
        };
        let exec = Operation {
            inputs: vec![Input { digest: src.digest(), index }],
            op: Some(Op::Exec(ExecOp {
                mounts: vec![Mount { input: mount_input, output, dest: "/".into(), ..Mount::default() }],
                ..ExecOp::default()
            })),
            ..Operation::default()
        };
        let terminal = Operation { inputs: vec![Input { digest: exec.digest(), index: output }], ..Operation::default() };
        let def = Definition { def: vec![src.encode(), exec.encode(), terminal.encode()], ..Definition::default() };
        let _ = Graph::from_definition(&def);
    }
}
