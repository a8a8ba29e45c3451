//! A small JSON reader with the semantics of Go's `encoding/json` in the two places BuildKit's
//! parser uses it: the exec form (`RUN ["a", "b"]`, read with `json.Decoder.Decode` into
//! `[]interface{}`) and the JSON form of the `syntax` directive (`json.Unmarshal` into
//! `map[string]any`).
//!
//! Only the top level is kept (array elements or object members, with string values decoded);
//! nested values are checked for syntax and skipped. Go's rules are followed where they differ
//! from other JSON libraries: a lone UTF-16 surrogate escape decodes to U+FFFD instead of being
//! an error, nesting may go 10000 levels deep, and a number too large for a `float64` makes the
//! whole decode fail (Go reports an `UnmarshalTypeError`), not just that element. The reader is
//! iterative, so deep nesting cannot exhaust the stack.

/// Go's `maxNestingDepth` in `encoding/json`.
const MAX_DEPTH: usize = 10_000;

/// The top-level value of a successfully decoded document.
#[derive(Debug)]
pub(crate) enum TopValue {
    /// An array: for each element, its value when it is a string.
    Array(Vec<Option<String>>),
    /// An object: for each member in order, the key and its value when it is a string.
    Object(Vec<(String, Option<String>)>),
    /// Any other value.
    Scalar,
}

struct Reader<'a> {
    bytes: &'a [u8],
    src: &'a str,
    pos: usize,
    number_out_of_range: bool,
}

/// Why reading failed; callers only need to know that it did.
#[derive(Debug)]
struct Invalid;

type Res<T> = Result<T, Invalid>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

impl<'a> Reader<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            bytes: src.as_bytes(),
            src,
            pos: 0,
            number_out_of_range: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Res<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn literal(&mut self, word: &str) -> Res<()> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn hex4(&mut self) -> Res<u32> {
        let digits = self.src.get(self.pos..self.pos + 4).ok_or(Invalid)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Invalid);
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| Invalid)
    }

    /// A string starting at the opening quote, decoded as Go decodes it.
    fn string(&mut self) -> Res<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(self.src.get(start..self.pos).ok_or(Invalid)?);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = self.peek().ok_or(Invalid)?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            out.push(self.finish_unicode_escape(unit));
                        }
                        _ => return Err(Invalid),
                    }
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Turns a `\uXXXX` code unit into a character, consuming a following low-surrogate escape
    /// when the two form a pair (Go's `unquote` logic).
    fn finish_unicode_escape(&mut self, unit: u32) -> char {
        if (0xd800..0xdc00).contains(&unit) {
            let save = self.pos;
            if self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u") {
                self.pos += 2;
                if let Ok(low) = self.hex4()
                    && (0xdc00..0xe000).contains(&low)
                {
                    let combined = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                    return char::from_u32(combined).unwrap_or('\u{fffd}');
                }
            }
            self.pos = save;
            return '\u{fffd}';
        }
        char::from_u32(unit).unwrap_or('\u{fffd}')
    }

    fn number(&mut self) -> Res<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(Invalid),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Invalid);
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Invalid);
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        let text = self.src.get(start..self.pos).ok_or(Invalid)?;
        // Go decodes numbers into float64 and fails the decode when the value overflows.
        if text.parse::<f64>().map_or(true, f64::is_infinite) {
            self.number_out_of_range = true;
        }
        Ok(())
    }

    /// Reads one object key and the colon after it.
    fn key(&mut self) -> Res<String> {
        self.skip_ws();
        let key = self.string()?;
        self.skip_ws();
        self.expect(b':')?;
        Ok(key)
    }

    /// Checks and skips one value of any kind; `depth` is the number of containers already open.
    fn skip_value(&mut self, depth: usize) -> Res<()> {
        let mut stack: Vec<Container> = Vec::new();
        loop {
            // Read a value; containers are opened and the loop goes on with their first value.
            self.skip_ws();
            let mut opened_empty = false;
            match self.peek().ok_or(Invalid)? {
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                open @ (b'[' | b'{') => {
                    self.pos += 1;
                    if depth + stack.len() + 1 > MAX_DEPTH {
                        return Err(Invalid);
                    }
                    self.skip_ws();
                    if open == b'[' {
                        stack.push(Container::Array);
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            opened_empty = true;
                        } else {
                            continue;
                        }
                    } else {
                        stack.push(Container::Object);
                        if self.peek() == Some(b'}') {
                            self.pos += 1;
                            opened_empty = true;
                        } else {
                            self.key()?;
                            continue;
                        }
                    }
                }
                _ => return Err(Invalid),
            }
            if opened_empty {
                stack.pop();
            }
            // After a value: close containers or move on to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match (top, self.peek()) {
                    (Container::Array, Some(b',')) => {
                        self.pos += 1;
                        break;
                    }
                    (Container::Object, Some(b',')) => {
                        self.pos += 1;
                        self.key()?;
                        break;
                    }
                    (Container::Array, Some(b']')) | (Container::Object, Some(b'}')) => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return Err(Invalid),
                }
            }
        }
    }

    /// A value whose string content is kept when it is a string.
    fn member_value(&mut self) -> Res<Option<String>> {
        self.skip_ws();
        if self.peek() == Some(b'"') {
            Ok(Some(self.string()?))
        } else {
            self.skip_value(1)?;
            Ok(None)
        }
    }

    /// The first value of the input (leading whitespace allowed); what follows it is not read.
    fn top_value(&mut self) -> Res<TopValue> {
        self.skip_ws();
        match self.peek().ok_or(Invalid)? {
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(TopValue::Array(items));
                }
                loop {
                    items.push(self.member_value()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(TopValue::Array(items));
                        }
                        _ => return Err(Invalid),
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(TopValue::Object(members));
                }
                loop {
                    let key = self.key()?;
                    members.push((key, self.member_value()?));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(TopValue::Object(members));
                        }
                        _ => return Err(Invalid),
                    }
                }
            }
            _ => {
                self.skip_value(0)?;
                Ok(TopValue::Scalar)
            }
        }
    }
}

/// Go's `json.NewDecoder(strings.NewReader(s)).Decode(&v)`: decodes the first JSON value of `s`
/// and ignores whatever follows it. `None` when that fails (syntax error, end of input, too
/// deep, or a number out of the `float64` range).
pub(crate) fn decode_first(s: &str) -> Option<TopValue> {
    let mut reader = Reader::new(s);
    let value = reader.top_value().ok()?;
    if reader.number_out_of_range {
        return None;
    }
    Some(value)
}

/// Go's `json.Unmarshal(s, &v)`: the whole input must be exactly one JSON value, with only
/// whitespace around it.
pub(crate) fn unmarshal(s: &str) -> Option<TopValue> {
    let mut reader = Reader::new(s);
    let value = reader.top_value().ok()?;
    reader.skip_ws();
    if reader.pos != reader.bytes.len() || reader.number_out_of_range {
        return None;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(s: &str) -> Option<Vec<Option<String>>> {
        match decode_first(s)? {
            TopValue::Array(items) => Some(items),
            _ => None,
        }
    }

    #[test]
    fn go_specific_decoding() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(array(r#"["a"] trailing"#), Some(vec![s("a")]));
        assert_eq!(array(r#"["\ud800x"]"#), Some(vec![s("\u{fffd}x")]));
        assert_eq!(array(r#"["\ud83d\ude00"]"#), Some(vec![s("\u{1f600}")]));
        assert_eq!(
            array(r#"["\udc00\ud800\u0041"]"#),
            Some(vec![s("\u{fffd}\u{fffd}A")])
        );
        assert_eq!(array(r#"["a", 1e400]"#), None);
        assert_eq!(array(r#"["a", 1e-400]"#), Some(vec![s("a"), None]));
        assert_eq!(array("[\"a\nb\"]"), None);
        assert_eq!(
            array(r#"["a", [[{"x": [1, true, null]}]]]"#),
            Some(vec![s("a"), None])
        );
        assert_eq!(array(r#"["a", 01]"#), None);
        assert_eq!(array(r#"["a",]"#), None);
        let deep_ok = format!("[{}{}]", "[".repeat(9_998), "]".repeat(9_998));
        assert_eq!(array(&deep_ok), Some(vec![None]));
        let too_deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(array(&too_deep), None);
        assert!(unmarshal(r#"{"a": 1} x"#).is_none());
        assert!(unmarshal(" {\"a\": \"b\"} \n").is_some());
    }
}
