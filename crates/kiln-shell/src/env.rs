//! Where the lexer looks variables up.

use std::collections::{BTreeMap, HashMap};

/// A read-only set of variables for expansion.
///
/// Names are compared exactly (BuildKit's Unix behaviour; on Windows upstream compares them
/// case-insensitively, which kiln does not do because its builds run on Linux). A variable
/// that is present with an empty value is *set*: `${V-x}` gives the empty string, not `x`.
pub trait EnvGetter {
    /// The value of `name`, or `None` when it is not set.
    fn get(&self, name: &str) -> Option<&str>;
    /// All variable names, each once, in a stable order (used for "did you mean" hints).
    fn keys(&self) -> Vec<String>;
}

/// Names of a list of pairs, each once, in order of first appearance.
fn unique_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        if seen.insert(name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// A list of `(name, value)` pairs; when a name appears more than once the last one wins,
/// like a sequence of `ENV`/`ARG` instructions.
impl EnvGetter for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<String> {
        unique_names(self.iter().map(|(k, _)| k.as_str()))
    }
}

/// Same as the slice form: the last pair for a name wins.
impl EnvGetter for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        EnvGetter::get(self.as_slice(), name)
    }
    fn keys(&self) -> Vec<String> {
        EnvGetter::keys(self.as_slice())
    }
}

/// A sorted map; keys come out in sorted order.
impl EnvGetter for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
    fn keys(&self) -> Vec<String> {
        BTreeMap::keys(self).cloned().collect()
    }
}

/// A hash map; [`EnvGetter::keys`] sorts the names so that the result is deterministic.
impl<S: std::hash::BuildHasher> EnvGetter for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = HashMap::keys(self).cloned().collect();
        keys.sort();
        keys
    }
}

/// A list of `NAME=value` strings, the form Go's `os.Environ` and BuildKit's
/// `shell.EnvsFromSlice` use.
///
/// Each entry is split at its first `=`; an entry without `=` sets the variable to the empty
/// string. When a name appears more than once the last entry wins.
#[derive(Debug, Clone, Copy)]
pub struct KeyValueList<'a>(pub &'a [String]);

impl KeyValueList<'_> {
    fn split(entry: &str) -> (&str, &str) {
        entry.split_once('=').unwrap_or((entry, ""))
    }
}

impl EnvGetter for KeyValueList<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .map(|e| Self::split(e))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
    fn keys(&self) -> Vec<String> {
        unique_names(self.0.iter().map(|e| Self::split(e).0))
    }
}

/// Any reference to an environment is an environment.
impl<T: EnvGetter + ?Sized> EnvGetter for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
    fn keys(&self) -> Vec<String> {
        (**self).keys()
    }
}

/// Turns `NAME=value` strings into `(name, value)` pairs, in order (duplicates are kept; the
/// [`EnvGetter`] impl of the result lets the last one win).
///
/// Each entry is split at its first `=`; an entry without `=` gives an empty value. This is
/// how BuildKit reads `ENV`-style lists and build-arg lists.
pub fn env_key_value_list<S: AsRef<str>>(entries: &[S]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            let (k, v) = KeyValueList::split(e.as_ref());
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_entry_wins_and_keys_are_unique() {
        let list: Vec<String> = ["a=1", "b", "a=2=3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let kv = KeyValueList(&list);
        assert_eq!(kv.get("a"), Some("2=3"));
        assert_eq!(kv.get("b"), Some(""));
        assert_eq!(kv.get("c"), None);
        assert_eq!(kv.keys(), vec!["a".to_string(), "b".to_string()]);

        let pairs = env_key_value_list(&list);
        assert_eq!(EnvGetter::get(&pairs, "a"), Some("2=3"));
        assert_eq!(EnvGetter::keys(&pairs), kv.keys());
    }
}
