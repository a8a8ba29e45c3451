//! Instruction flags (`--from=stage`, `--link`, `--mount=...`), parsed as BuildKit's
//! `BFlags` parses them.
//!
//! Each instruction declares the flags it accepts, with a type (boolean, string, or
//! repeatable string) and a default, then parses the flag words the parser collected. Any
//! other flag is an error (`unknown flag: --foo`, with a suggestion when a declared flag is
//! close). A boolean flag is `--link`, `--link=true` or `--link=false` (any case); a string
//! flag needs `=value` (`--from=` gives the empty string); a non-repeatable flag may appear
//! only once. A word that is exactly `--` ends the flags.

use crate::suggest;

/// The type of a declared flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    String,
    Strings,
}

#[derive(Debug, Clone)]
struct Flag {
    name: &'static str,
    kind: Kind,
    value: String,
    values: Vec<String>,
    used: bool,
}

/// A handle to a declared flag, returned by the `add_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlagId(usize);

/// The declared flags of one instruction and the flag words written on it.
#[derive(Debug, Clone)]
pub(crate) struct FlagSet<'a> {
    args: &'a [String],
    flags: Vec<Flag>,
    used_order: Vec<&'static str>,
}

impl<'a> FlagSet<'a> {
    /// A flag set over the given flag words (each starting with `--`).
    pub(crate) fn new(args: &'a [String]) -> Self {
        Self {
            args,
            flags: Vec::new(),
            used_order: Vec::new(),
        }
    }

    fn add(&mut self, name: &'static str, kind: Kind, default: &str) -> FlagId {
        self.flags.push(Flag {
            name,
            kind,
            value: default.to_string(),
            values: Vec::new(),
            used: false,
        });
        FlagId(self.flags.len() - 1)
    }

    /// Declares a boolean flag.
    pub(crate) fn add_bool(&mut self, name: &'static str, default: bool) -> FlagId {
        self.add(name, Kind::Bool, if default { "true" } else { "false" })
    }

    /// Declares a string flag.
    pub(crate) fn add_string(&mut self, name: &'static str, default: &str) -> FlagId {
        self.add(name, Kind::String, default)
    }

    /// Declares a repeatable string flag.
    pub(crate) fn add_strings(&mut self, name: &'static str) -> FlagId {
        self.add(name, Kind::Strings, "")
    }

    /// Parses the flag words against the declared flags.
    pub(crate) fn parse(&mut self) -> Result<(), String> {
        for word in self.args {
            if word == "--" {
                return Ok(());
            }
            if !word.starts_with("--") {
                return Err(format!("arg should start with -- : {word}"));
            }
            let (flag_name, value) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (word.as_str(), None),
            };
            let name = &flag_name[2..];
            let Some(index) = self.flags.iter().position(|f| f.name == name) else {
                let candidates: Vec<&str> = self.flags.iter().map(|f| f.name).collect();
                return Err(suggest::wrap(
                    format!("unknown flag: {flag_name}"),
                    name,
                    &candidates,
                    true,
                ));
            };
            let flag = &mut self.flags[index];
            if flag.used && flag.kind != Kind::Strings {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            if !flag.used {
                self.used_order.push(flag.name);
            }
            flag.used = true;
            match flag.kind {
                Kind::Bool => {
                    if value == Some("") {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    }
                    let value = value.unwrap_or("");
                    match value.to_lowercase().as_str() {
                        "true" | "" => flag.value = "true".to_string(),
                        "false" => flag.value = "false".to_string(),
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag {flag_name}, not: {value}"
                            ));
                        }
                    }
                }
                Kind::String => {
                    let Some(value) = value else {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    };
                    flag.value = value.to_string();
                }
                Kind::Strings => {
                    let Some(value) = value else {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    };
                    flag.values.push(value.to_string());
                }
            }
        }
        Ok(())
    }

    /// The value of a boolean flag (its default when not written).
    pub(crate) fn bool(&self, id: FlagId) -> bool {
        self.flags.get(id.0).is_some_and(|f| f.value == "true")
    }

    /// The value of a string flag (its default when not written).
    pub(crate) fn string(&self, id: FlagId) -> String {
        self.flags
            .get(id.0)
            .map(|f| f.value.clone())
            .unwrap_or_default()
    }

    /// The values of a repeatable flag, in order.
    pub(crate) fn strings(&self, id: FlagId) -> Vec<String> {
        self.flags
            .get(id.0)
            .map(|f| f.values.clone())
            .unwrap_or_default()
    }

    /// Whether the flag was written.
    pub(crate) fn is_used(&self, id: FlagId) -> bool {
        self.flags.get(id.0).is_some_and(|f| f.used)
    }

    /// The names of the flags that were written, in order of first use.
    pub(crate) fn used(&self) -> Vec<String> {
        self.used_order.iter().map(|s| (*s).to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    /// Declares `str1` (default `HI`), `bool1` and the repeatable `many`, parses `args`, and
    /// renders the outcome.
    fn run(args: &[&str]) -> String {
        let args = words(args);
        let mut set = FlagSet::new(&args);
        let s = set.add_string("str1", "HI");
        let b = set.add_bool("bool1", false);
        let m = set.add_strings("many");
        match set.parse() {
            Ok(()) => format!(
                "str1={:?} bool1={} many={:?} used={:?}",
                set.string(s),
                set.bool(b),
                set.strings(m),
                set.used()
            ),
            Err(e) => format!("error: {e}"),
        }
    }

    fn check(args: &[&str], expected: &str) {
        assert_eq!(run(args), expected, "{args:?}");
    }

    #[test]
    fn builder_flags() {
        check(&[], r#"str1="HI" bool1=false many=[] used=[]"#);
        check(&["--"], r#"str1="HI" bool1=false many=[] used=[]"#);
        check(&["--str1"], "error: missing a value on flag: --str1");
        check(&["--str1="], r#"str1="" bool1=false many=[] used=["str1"]"#);
        check(
            &["--str1=BYE"],
            r#"str1="BYE" bool1=false many=[] used=["str1"]"#,
        );
        check(
            &["--bool1"],
            r#"str1="HI" bool1=true many=[] used=["bool1"]"#,
        );
        check(
            &["--bool1=true"],
            r#"str1="HI" bool1=true many=[] used=["bool1"]"#,
        );
        check(
            &["--bool1=TRUE"],
            r#"str1="HI" bool1=true many=[] used=["bool1"]"#,
        );
        check(
            &["--bool1=false"],
            r#"str1="HI" bool1=false many=[] used=["bool1"]"#,
        );
        check(&["--bool1="], "error: missing a value on flag: --bool1");
        check(
            &["--bool1=false1"],
            "error: expecting boolean value for flag --bool1, not: false1",
        );
        check(
            &["--bool2"],
            "error: unknown flag: --bool2 (did you mean bool1?)",
        );
        check(&["--nothing=1"], "error: unknown flag: --nothing");
        check(
            &["--str1=a", "--str1=b"],
            "error: duplicate flag specified: --str1",
        );
        check(
            &["--many=a", "--many=b"],
            r#"str1="HI" bool1=false many=["a", "b"] used=["many"]"#,
        );
        check(&["--many"], "error: missing a value on flag: --many");
        check(&["-x"], "error: arg should start with -- : -x");
        check(
            &["--bool1", "--str1=BYE"],
            r#"str1="BYE" bool1=true many=[] used=["bool1", "str1"]"#,
        );
        check(
            &["--str1=a=b"],
            r#"str1="a=b" bool1=false many=[] used=["str1"]"#,
        );
    }
}
