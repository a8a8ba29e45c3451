//! `parse_mount` fixtures (`tests/data/mounts.json`) and a property test that it never
//! panics.

use kiln_dockerfile::{Expander, Mount, parse_mount};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
struct Case {
    input: String,
    expand: String,
    #[serde(default)]
    mount: Option<Map<String, Value>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    helpers: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

fn render(m: &Mount) -> Map<String, Value> {
    let value = json!({
        "type": m.mount_type.as_str(),
        "from": m.from,
        "source": m.source,
        "target": m.target,
        "read_only": m.read_only,
        "size_limit": m.size_limit,
        "cache_id": m.cache_id,
        "cache_sharing": m.cache_sharing.map(|s| s.as_str()),
        "required": m.required,
        "env": m.env,
        "mode": m.mode,
        "uid": m.uid,
        "gid": m.gid,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn helpers(m: &Mount, wanted: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for key in wanted.keys() {
        let value = match key.as_str() {
            "secret_id" => m
                .secret_id()
                .map(Value::from)
                .unwrap_or_else(|e| Value::from(format!("error: {e}"))),
            "secret_target" => m
                .secret_target()
                .map(|t| json!(t))
                .unwrap_or_else(|e| Value::from(format!("error: {e}"))),
            "secret_env" => m
                .secret_env_name()
                .map(|t| json!(t))
                .unwrap_or_else(|e| Value::from(format!("error: {e}"))),
            "cache_id" => Value::from(m.effective_cache_id()),
            "ssh_id" => Value::from(m.ssh_id()),
            other => Value::from(format!("unknown helper {other}")),
        };
        out.insert(key.clone(), value);
    }
    out
}

fn run(case: &Case) -> Result<Mount, String> {
    let mut identity = |w: &str| Ok::<String, String>(w.to_string());
    let mut env = |w: &str| match w {
        "$DIR" => Ok("/expanded".to_string()),
        "$BAD" => Err("failed to expand $BAD".to_string()),
        other => Ok(other.to_string()),
    };
    let expander: Option<Expander> = match case.expand.as_str() {
        "identity" => Some(&mut identity),
        "env" => Some(&mut env),
        _ => None,
    };
    parse_mount(&case.input, expander).map_err(|e| e.message)
}

fn check(case: &Case) -> Option<String> {
    match (run(case), &case.error, &case.mount) {
        (Err(got), Some(expected), _) if got == *expected => None,
        (Err(got), _, _) => Some(format!(
            "error {got:?}, expected {:?} / {:?}",
            case.error, case.mount
        )),
        (Ok(m), None, Some(fields)) => {
            let mut expected = render(&Mount::default());
            for (k, v) in fields {
                expected.insert(k.clone(), v.clone());
            }
            let got = render(&m);
            if got != expected {
                return Some(format!(
                    "got {}, expected {}",
                    Value::Object(got),
                    Value::Object(expected)
                ));
            }
            let wanted = case.helpers.clone().unwrap_or_default();
            let got_helpers = helpers(&m, &wanted);
            (got_helpers != wanted).then(|| {
                format!(
                    "helpers {}, expected {}",
                    Value::Object(got_helpers),
                    Value::Object(wanted)
                )
            })
        }
        (Ok(m), _, _) => Some(format!("parsed as {m:?}, expected error {:?}", case.error)),
    }
}

#[test]
fn mount_fixtures() {
    let cases: Cases =
        serde_json::from_str(include_str!("data/mounts.json")).expect("valid mounts.json");
    let failures: Vec<String> = cases
        .cases
        .iter()
        .filter_map(|c| check(c).map(|why| format!("{:?} ({}): {why}", c.input, c.expand)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.cases.len(),
        failures.join("\n")
    );
}

proptest! {
    #[test]
    fn parse_mount_never_panics(value in ".{0,80}", expand in any::<bool>()) {
        let mut identity = |w: &str| Ok::<String, String>(w.to_string());
        let expander: Option<Expander> =
            if expand { Some(&mut identity) } else { None };
        let _ = parse_mount(&value, expander);
    }

    #[test]
    fn parse_mount_never_panics_on_mount_like_input(
        value in "((type|from|source|src|target|dst|ro|rw|readonly|readwrite|id|sharing|required|size|mode|uid|gid|env|x)(=[a-z0-9$/\".,=-]{0,6})?,){0,6}",
    ) {
        let mut identity = |w: &str| Ok::<String, String>(w.to_string());
        let _ = parse_mount(&value, Some(&mut identity));
        let _ = parse_mount(&value, None);
    }
}
