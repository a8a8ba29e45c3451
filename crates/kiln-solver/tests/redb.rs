//! The redb-backed cache index: persistence across a reopened database, records, removal,
//! and results that are gone.

mod toy;

use kiln_progress::{ProgressSink, Recorder};
use kiln_solver::{CacheKey, CacheKeyInput, CacheStore, Edge, RedbKeyIndex, ResultCodec, Solver};
use redb::{Database, ReadableDatabase, TableHandle};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use toy::{Log, outcome};

/// Values are stored as `v:VALUE`; values listed in `gone` no longer exist.
#[derive(Default)]
struct Codec {
    gone: Mutex<HashSet<String>>,
}

impl ResultCodec<String> for Codec {
    fn encode(&self, value: &String) -> String {
        format!("v:{value}")
    }

    fn decode(&self, text: &str) -> Option<String> {
        let value = text.strip_prefix("v:")?;
        (!self.gone.lock().unwrap().contains(value)).then(|| value.to_owned())
    }
}

struct Engine {
    index: Arc<RedbKeyIndex<String>>,
    solver: Solver<String>,
    codec: Arc<Codec>,
    log: Arc<Log>,
}

fn open(path: &Path) -> Engine {
    let db = Arc::new(Database::create(path).unwrap());
    let codec = Arc::new(Codec::default());
    let index = Arc::new(
        RedbKeyIndex::new(db, Arc::clone(&codec) as Arc<dyn ResultCodec<String>>).unwrap(),
    );
    let solver = Solver::with_concurrency(Arc::clone(&index) as Arc<dyn CacheStore<String>>, 2);
    Engine {
        index,
        solver,
        codec,
        log: Arc::new(Log::default()),
    }
}

impl Engine {
    /// Solves `target` of `spec`; returns the value (or error) and the vertices that ran.
    async fn solve(&self, spec: &str, target: &str) -> (String, Vec<String>) {
        let sink: Arc<dyn ProgressSink> = Arc::new(Recorder::new());
        let result = self
            .solver
            .solve(toy::graph(spec, &self.log), Edge::new(target, 0), sink)
            .await;
        (outcome(&result), self.log.take_execs())
    }
}

const BASE: &str = "
    a = src k=A
    b = cat b <- a
    c = cat c <- b
    d = cat d <- c a
";
const D: &str = "d[c[b[A]]+A]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persists_across_a_reopened_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");

    let engine = open(&path);
    assert_eq!(
        engine.solve(BASE, "d").await,
        (
            D.to_owned(),
            vec!["a", "b", "c", "d"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    drop(engine);

    // A new process, in effect: nothing runs.
    let engine = open(&path);
    assert_eq!(engine.solve(BASE, "d").await, (D.to_owned(), Vec::new()));

    // The index lists its entries (sorted by key), with the encoded values.
    let entries = engine.index.entries().unwrap();
    let mut values: Vec<String> = entries.iter().flat_map(|e| e.outputs.clone()).collect();
    values.sort();
    assert_eq!(values, ["v:A", "v:b[A]", "v:c[b[A]]", &format!("v:{D}")]);
    let keys: Vec<CacheKey> = entries.iter().map(|e| e.key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for entry in &entries {
        assert_eq!(entry.record.outputs, 1);
        assert!(
            entry.last_used >= entry.record.created && entry.record.created <= SystemTime::now()
        );
        assert!(
            entry.record.id.starts_with(&entry.key.hex()),
            "{}",
            entry.record.id
        );
    }
    // Loading the target touched it.
    let d = entries
        .iter()
        .find(|e| e.outputs == [format!("v:{D}")])
        .unwrap();
    assert!(d.last_used > d.record.created);

    // Every table of the index is in the solver's namespace.
    let tables: Vec<String> = {
        let db = Database::open(dir.path().join("other.redb")).err();
        assert!(db.is_some(), "opening a missing database fails");
        drop(engine);
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        txn.list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect()
    };
    assert_eq!(
        tables,
        [
            "kiln.solver.v1.keys",
            "kiln.solver.v1.outputs",
            "kiln.solver.v1.results"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_results_replaced_results_and_removal() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("meta.redb"));
    engine.solve(BASE, "d").await;
    let before = engine.index.entries().unwrap();

    // d's snapshot was garbage-collected: d runs again, and its entry is replaced.
    engine.codec.gone.lock().unwrap().insert(D.to_owned());
    assert_eq!(
        engine.solve(BASE, "d").await,
        (D.to_owned(), vec!["d".to_owned()])
    );
    engine.codec.gone.lock().unwrap().clear();
    let after = engine.index.entries().unwrap();
    assert_eq!(after.len(), 4);
    let changed: Vec<&str> = after
        .iter()
        .zip(&before)
        .filter(|(a, b)| a.record.id != b.record.id)
        .map(|(a, _)| a.outputs[0].as_str())
        .collect();
    assert_eq!(changed, [format!("v:{D}")]);

    // Removing an entry makes it a miss.
    let d_key = after
        .iter()
        .find(|e| e.outputs[0] == format!("v:{D}"))
        .unwrap()
        .key;
    assert!(engine.index.remove(&d_key).unwrap());
    assert!(!engine.index.remove(&d_key).unwrap());
    assert_eq!(engine.index.lookup(&d_key).unwrap(), None);
    assert_eq!(engine.index.entries().unwrap().len(), 3);
    assert_eq!(
        engine.solve(BASE, "d").await,
        (D.to_owned(), vec!["d".to_owned()])
    );

    // Unknown keys: a miss, and touching them is harmless.
    let unknown = CacheKey::compute(&CacheKeyInput::new("none", Vec::new()), &[]);
    assert_eq!(engine.index.lookup(&unknown).unwrap(), None);
    engine.index.touch(&unknown).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_outputs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let spec = "a = src k=A\n m = split m <- a\n x = cat x <- m.1";
    let engine = open(&path);
    assert_eq!(engine.solve(spec, "x").await.0, "x[m.1[A]]");
    drop(engine);
    let engine = open(&path);
    let spec_y = "a = src k=A\n m = split m <- a\n y = cat y <- m.0 m.1";
    assert_eq!(
        engine.solve(spec_y, "y").await,
        ("y[m.0[A]+m.1[A]]".to_owned(), vec!["y".to_owned()])
    );
    let m = engine
        .index
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.record.outputs == 2)
        .unwrap();
    assert_eq!(m.outputs, ["v:m.0[A]", "v:m.1[A]"]);
}
