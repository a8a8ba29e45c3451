//! `chmod(1)` mode values, absolute (`755`, `4755`) and symbolic (`u+x,go=rX`), with the
//! semantics of BSD's `setmode(3)` as the `dchapes/mode` Go package ports it (which fsutil
//! uses for `COPY --chmod`), always with a file creation mask of 0.
//!
//! A symbolic value is a comma-separated list of clauses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`.
//! Without `ugoa` a clause applies to everyone (the mask being 0). `X` adds execute permission
//! only to directories and to files that already have some execute bit (in their mode before
//! any change). `u`, `g` or `o` after the operator copy that class's current bits.

use crate::error::Error;

const IS_UID: u32 = 0o4000;
const IS_GID: u32 = 0o2000;
const IS_TXT: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
const R_ALL: u32 = 0o444;
const W_ALL: u32 = 0o222;
const X_ALL: u32 = 0o111;
const STANDARD: u32 = IS_UID | IS_GID | RWXU | RWXG | RWXO;
/// The inverted creation mask: with a mask of 0, every bit.
const MASK: u32 = 0xffff;

/// Flags of a copy command (`u`, `g`, `o` after the operator).
const CLEAR: u8 = 1;
const SET: u8 = 2;
const G_BITS: u8 = 4;
const O_BITS: u8 = 8;
const U_BITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// Set `bits`.
    Add,
    /// Clear `bits`.
    Remove,
    /// Set `bits` if the original mode has an execute bit or is a directory.
    CondExec,
    /// Copy the class `from` (`b'u'`, `b'g'` or `b'o'`) under the control of `flags`.
    Copy { from: u8, flags: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BitCmd {
    cmd: Cmd,
    bits: u32,
}

/// A parsed mode value, ready to apply to any number of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModeSet {
    cmds: Vec<BitCmd>,
}

fn syntax(mode: &str) -> Error {
    Error::InvalidMode {
        mode: mode.to_owned(),
        reason: "invalid syntax",
    }
}

impl ModeSet {
    /// Parses an absolute or symbolic mode value.
    pub(crate) fn parse(value: &str) -> Result<ModeSet, Error> {
        let bytes = value.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(syntax(value));
        };
        let mut set = ModeSet { cmds: Vec::new() };
        if first.is_ascii_digit() {
            // Go's strconv.ParseInt(s, 8, 16): octal digits only, at most 0o77777.
            let parsed = i64::from_str_radix(value, 8)
                .ok()
                .filter(|v| *v <= i64::from(i16::MAX) && bytes.iter().all(u8::is_ascii_digit));
            let Some(v) = parsed else {
                return Err(Error::InvalidMode {
                    mode: value.to_owned(),
                    reason: "invalid octal number",
                });
            };
            let v = u32::try_from(v).map_err(|_| syntax(value))?;
            if v & !(STANDARD | IS_TXT) != 0 {
                return Err(syntax(value));
            }
            set.add(b'=', STANDARD | IS_TXT, v);
            return Ok(set);
        }

        let mut s = bytes;
        let mut equal_op_done = false;
        loop {
            // Who is affected.
            let mut who = 0u32;
            while let Some(&c) = s.first() {
                match c {
                    b'a' => who |= STANDARD,
                    b'u' => who |= IS_UID | RWXU,
                    b'g' => who |= IS_GID | RWXG,
                    b'o' => who |= RWXO,
                    _ => break,
                }
                s = s.get(1..).unwrap_or(&[]);
            }
            // One or more operator/permission groups.
            loop {
                let Some((&op, rest)) = s.split_first() else {
                    return Err(syntax(value));
                };
                s = rest;
                match op {
                    b'+' | b'-' => {}
                    b'=' => equal_op_done = false,
                    _ => return Err(syntax(value)),
                }
                who &= !IS_TXT;
                let mut perm = 0u32;
                let mut perm_x = 0u32;
                loop {
                    let b = s.first().copied().unwrap_or(0);
                    match b {
                        b'r' => perm |= R_ALL,
                        b's' => {
                            // Set-id bits make no sense for "other" alone.
                            if who == 0 || who & !RWXO != 0 {
                                perm |= IS_UID | IS_GID;
                            }
                        }
                        b't' => {
                            if who == 0 || who & !RWXO != 0 {
                                who |= IS_TXT;
                                perm |= IS_TXT;
                            }
                        }
                        b'w' => perm |= W_ALL,
                        b'X' => {
                            if op == b'+' {
                                perm_x = X_ALL;
                            }
                        }
                        b'x' => perm |= X_ALL,
                        b'u' | b'g' | b'o' => {
                            if perm != 0 {
                                set.add(op, who, perm);
                                perm = 0;
                            }
                            if op == b'=' {
                                equal_op_done = true;
                            }
                            if perm_x != 0 {
                                set.add(b'X', who, perm_x);
                                perm_x = 0;
                            }
                            set.add_copy(b, who, op);
                        }
                        _ => {
                            if perm != 0 || (op == b'=' && !equal_op_done) {
                                if op == b'=' {
                                    equal_op_done = true;
                                }
                                set.add(op, who, perm);
                            }
                            if perm_x != 0 {
                                set.add(b'X', who, perm_x);
                            }
                            break;
                        }
                    }
                    s = s.get(1..).unwrap_or(&[]);
                }
                match s.first() {
                    None => return Ok(set),
                    Some(b',') => {
                        s = s.get(1..).unwrap_or(&[]);
                        break;
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// Adds a `+`, `-`, `X` or `=` command.
    fn add(&mut self, op: u8, who: u32, arg: u32) {
        let limited = |arg: u32| if who != 0 { who & arg } else { MASK & arg };
        match op {
            b'=' => {
                self.cmds.push(BitCmd {
                    cmd: Cmd::Remove,
                    bits: if who != 0 { who } else { STANDARD },
                });
                self.cmds.push(BitCmd {
                    cmd: Cmd::Add,
                    bits: limited(arg),
                });
            }
            b'+' => self.cmds.push(BitCmd {
                cmd: Cmd::Add,
                bits: limited(arg),
            }),
            b'-' => self.cmds.push(BitCmd {
                cmd: Cmd::Remove,
                bits: limited(arg),
            }),
            _ => self.cmds.push(BitCmd {
                cmd: Cmd::CondExec,
                bits: limited(arg),
            }),
        }
    }

    /// Adds a copy command: class `from` copied with operator `op` onto `who`.
    fn add_copy(&mut self, from: u8, who: u32, op: u8) {
        let mut flags = 0u8;
        let bits = if who != 0 {
            if who & 0o400 != 0 {
                flags |= U_BITS;
            }
            if who & 0o040 != 0 {
                flags |= G_BITS;
            }
            if who & 0o004 != 0 {
                flags |= O_BITS;
            }
            u32::MAX
        } else {
            flags = U_BITS | G_BITS | O_BITS;
            MASK
        };
        flags |= match op {
            b'+' => SET,
            b'-' => CLEAR,
            _ => SET | CLEAR,
        };
        self.cmds.push(BitCmd {
            cmd: Cmd::Copy { from, flags },
            bits,
        });
    }

    /// The new permission and special bits (`0o7777`) for a file whose current ones are
    /// `old`; `is_dir` matters for `X`.
    pub(crate) fn apply(&self, old: u32, is_dir: bool) -> u32 {
        let original = old & 0o7777;
        let mut mode = original;
        for c in &self.cmds {
            match c.cmd {
                Cmd::Add => mode |= c.bits,
                Cmd::Remove => mode &= !c.bits,
                Cmd::CondExec => {
                    if original & X_ALL != 0 || is_dir {
                        mode |= c.bits;
                    }
                }
                Cmd::Copy { from, flags } => {
                    let value = match from {
                        b'u' => (mode & RWXU) >> 6,
                        b'g' => (mode & RWXG) >> 3,
                        _ => mode & RWXO,
                    };
                    if flags & CLEAR != 0 {
                        let clear = if flags & SET != 0 { RWXO } else { value };
                        if flags & U_BITS != 0 {
                            mode &= !((clear << 6) & c.bits);
                        }
                        if flags & G_BITS != 0 {
                            mode &= !((clear << 3) & c.bits);
                        }
                        if flags & O_BITS != 0 {
                            mode &= !(clear & c.bits);
                        }
                    }
                    if flags & SET != 0 {
                        if flags & U_BITS != 0 {
                            mode |= (value << 6) & c.bits;
                        }
                        if flags & G_BITS != 0 {
                            mode |= (value << 3) & c.bits;
                        }
                        if flags & O_BITS != 0 {
                            mode |= value & c.bits;
                        }
                    }
                }
            }
        }
        mode & 0o7777
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (mode value, old bits, is a directory, expected bits). The first group restates the
    /// zero-umask cases of dchapes/mode's own tests; the rest are chmod(1) examples.
    const APPLY_CASES: &[(&str, u32, bool, u32)] = &[
        ("=", 0o777, false, 0),
        ("+", 0o777, false, 0o777),
        ("+", 0o421, false, 0o421),
        ("-", 0o777, false, 0o777),
        ("-", 0o421, false, 0o421),
        ("+t", 0o421, false, 0o1421),
        ("-t", 0o1421, false, 0o421),
        ("u+r", 0, false, 0o400),
        ("u+w", 0, false, 0o200),
        ("u+x", 0, false, 0o100),
        ("u+X", 0, false, 0),
        ("u+X", 0o001, false, 0o101),
        ("u+X", 0, true, 0o100),
        ("u+s", 0, false, 0o4000),
        ("g+r", 0, false, 0o040),
        ("g+w", 0, false, 0o020),
        ("g+x", 0, false, 0o010),
        ("g+X", 0, false, 0),
        ("g+X", 0o100, false, 0o110),
        ("g+X", 0, true, 0o010),
        ("g+s", 0, false, 0o2000),
        ("o+r", 0, false, 0o004),
        ("o+w", 0, false, 0o002),
        ("o+x", 0, false, 0o001),
        ("o+X", 0, false, 0),
        ("o+X", 0o100, false, 0o101),
        ("o+X", 0, true, 0o001),
        ("o+s", 0, false, 0),
        ("0421", 0, false, 0o421),
        ("07421", 0, false, 0o7421),
        ("+r", 0, false, 0o444),
        ("+w", 0, false, 0o222),
        ("+x", 0, false, 0o111),
        ("+X", 0, false, 0),
        ("+X", 0o010, false, 0o111),
        ("+X", 0, true, 0o111),
        ("+s", 0, false, 0o6000),
        ("-r", 0o777, false, 0o333),
        ("-w", 0o777, false, 0o555),
        ("-x", 0o777, false, 0o666),
        ("-X", 0o777, false, 0o777),
        ("-X", 0o777, true, 0o777),
        ("-s", 0o6777, false, 0o777),
        ("u-r", 0o777, false, 0o377),
        ("u-w", 0o777, false, 0o577),
        ("u-x", 0o777, false, 0o677),
        ("u-X", 0o777, false, 0o777),
        ("u-X", 0o777, true, 0o777),
        ("u-s", 0o4777, false, 0o777),
        ("u=rw", 0, false, 0o600),
        ("u=rw", 0o777, false, 0o677),
        ("u=", 0o777, false, 0o077),
        ("=rw", 0, false, 0o666),
        ("=rw", 0o777, false, 0o666),
        ("u=g", 0o042, false, 0o442),
        ("u=g", 0o742, false, 0o442),
        ("u=g-w", 0o722, false, 0o022),
        ("u=g-w", 0o742, false, 0o442),
        ("u=g-w", 0o762, false, 0o462),
        ("u=g-w", 0o772, false, 0o572),
        ("u+o", 0o021, false, 0o121),
        ("u+g", 0o021, false, 0o221),
        ("u+go", 0o021, false, 0o321),
        ("a=r,ug=rw,u+x", 0, false, 0o764),
        ("a=r,ug=rw,u+x", 0o777, false, 0o764),
        ("o+r,g+w,a+t,g-s,u+og", 0, false, 0o1624),
        ("o+r,g+w,a+t,g-s,u+og", 0o2100, false, 0o1724),
        ("o+r,g+w,a+t,g-s,u+og", 0o6000, true, 0o5624),
        ("644", 0o777, false, 0o644),
        ("go-w", 0o777, false, 0o755),
        ("u=rwx,go=rx", 0, false, 0o755),
        ("u=rwx,go=u-w", 0, false, 0o755),
        ("go=", 0o777, false, 0o700),
        ("go=u-w", 0o770, false, 0o755),
        ("go=u-w", 0o670, false, 0o644),
        ("go=u-w", 0o570, false, 0o555),
        ("go=u-w", 0o370, false, 0o311),
        // chmod(1)-style values as Dockerfiles write them.
        ("755", 0o644, false, 0o755),
        ("4755", 0o644, false, 0o4755),
        ("0", 0o4777, false, 0),
        ("=rw,+X", 0o644, false, 0o666),
        ("=rw,+X", 0o744, false, 0o777),
        ("=rw,+X", 0o644, true, 0o777),
        ("+X", 0o600, true, 0o711),
        // dchapes/mode honours `X` only with `+`: with `=` it is ignored.
        ("go=rX", 0o700, true, 0o744),
        ("go+rX", 0o700, true, 0o755),
        ("g=u", 0o640, false, 0o660),
        ("u-x,g+w", 0o755, false, 0o675),
        ("u+rw-x", 0o100, false, 0o600),
    ];

    #[test]
    fn symbolic_and_absolute() {
        let mut failures = Vec::new();
        for (value, old, is_dir, want) in APPLY_CASES {
            match ModeSet::parse(value) {
                Ok(set) => {
                    let got = set.apply(*old, *is_dir);
                    if got != *want {
                        failures.push(format!(
                            "{value:?} on {old:#o} (dir {is_dir}): got {got:#o}, want {want:#o}"
                        ));
                    }
                }
                Err(e) => failures.push(format!("{value:?}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn invalid_values() {
        let invalid = [
            "",
            ",",
            "q+r",
            "017777",
            "01000000000000000007777",
            "9",
            "z",
            "u",
            "g",
            "o",
            "go",
            "8",
            "10000",
            "u+r,",
            "u+rz",
            "+x,,",
        ];
        let accepted: Vec<&str> = invalid
            .iter()
            .copied()
            .filter(|v| ModeSet::parse(v).is_ok())
            .collect();
        assert!(accepted.is_empty(), "accepted invalid values: {accepted:?}");
    }
}
