//! Golden cache keys: the encoding must never change without a new version tag.
//!
//! The expected digests were computed independently of this crate, from the encoding in the
//! documentation of `CacheKey` (a Python `hashlib` script over big-endian length-prefixed
//! fields).

mod toy;

use kiln_solver::{CacheKey, CacheKeyInput, ContentDigest, InputKey, Selector};

fn key(hex: &str) -> CacheKey {
    CacheKey::parse(&format!("sha256:{hex}")).unwrap()
}

const EMPTY: &str = "7c8cd176097bc77a233cc9b063bafa1c2887a08092c08207af7f21f402a450a5";
const HELLO: &str = "848faed5fa6b86f598703e6432cce151b6570b06e0ebcf98d7950b2d13d09867";

/// Computes each key and compares it with its golden value.
fn check(cases: &[(&str, CacheKeyInput, Vec<InputKey>, &str)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, op, inputs, expected)| {
            let got = CacheKey::compute(op, inputs).hex();
            (got != *expected).then(|| format!("{name}: {got}, expected {expected}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_keys() {
    check(&[
        (
            "empty op, no inputs",
            CacheKeyInput::new("v1", Vec::new()),
            vec![],
            EMPTY,
        ),
        (
            "op bytes",
            CacheKeyInput::new("exec.v1", b"hello".to_vec()),
            vec![],
            HELLO,
        ),
        (
            "key, content and output-index inputs",
            CacheKeyInput::new("copy.v1", b"\x00\x01/src".to_vec()),
            vec![
                InputKey::Key {
                    key: key(HELLO),
                    output: 0,
                },
                InputKey::Content {
                    digest: ContentDigest::new(format!("sha256:{}", "ab".repeat(32))),
                    selector: Selector::new(b"/app/*.go".to_vec()),
                },
                InputKey::Key {
                    key: key(EMPTY),
                    output: 2,
                },
            ],
            "82d49b3b4719fd154eaa4f0ab9c2ce4ee822e30d6b69b9a51bf7f56535464921",
        ),
        // Length prefixes keep field boundaries: ("v1", "ab") and ("v1a", "b") differ.
        (
            "boundary 1",
            CacheKeyInput::new("v1", b"ab".to_vec()),
            vec![],
            "fdb910948ef2a9e518d330ebc016865d70c89d243ecc08a65cd68b5618e20c13",
        ),
        (
            "boundary 2",
            CacheKeyInput::new("v1a", b"b".to_vec()),
            vec![],
            "896b801b9fcb5694664a93ed34ab47c3af3b1f490f86361134fecbf6e6860ee9",
        ),
    ]);
}

#[test]
fn key_text() {
    // (text, parses back to itself)
    let cases: &[(&str, bool)] = &[
        (&format!("sha256:{EMPTY}"), true),
        (EMPTY, false),
        (&format!("sha512:{EMPTY}"), false),
        (&format!("sha256:{}", &EMPTY[1..]), false),
        (&format!("sha256:{}A", &EMPTY[1..]), false),
        (&format!("sha256:{}g", &EMPTY[1..]), false),
        ("sha256:", false),
        ("", false),
        ("sha256:é", false),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, valid)| {
            let parsed = CacheKey::parse(text).map(|k| k.to_string());
            let ok = match parsed {
                Ok(ref back) => *valid && back == text,
                Err(ref e) => !*valid && e.to_string() == format!("invalid cache key {text:?}"),
            };
            (!ok).then(|| format!("{text:?}: {parsed:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        format!("{:?}", key(EMPTY)),
        format!("CacheKey(sha256:{EMPTY})")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_solver_stores_results_under_these_keys() {
    let world = toy::World::new(2);
    let (result, _) = world
        .solve("a = src k=A\n b = copy b <- a\n c = split c <- b", "c.1")
        .await;
    assert_eq!(toy::outcome(&result), "c.1[b<A>]");
    let a = CacheKey::compute(&CacheKeyInput::new("toy.v1", b"src k".to_vec()), &[]);
    let b = CacheKey::compute(
        &CacheKeyInput::new("toy.v1", b"copy b".to_vec()),
        &[InputKey::Content {
            digest: ContentDigest::new("text:A"),
            selector: Selector::new(b"/".to_vec()),
        }],
    );
    let c = CacheKey::compute(
        &CacheKeyInput::new("toy.v1", b"split c".to_vec()),
        &[InputKey::Key { key: b, output: 0 }],
    );
    let mut expected = vec![a, b, c];
    expected.sort();
    assert_eq!(world.store.inner.keys(), expected);
}
