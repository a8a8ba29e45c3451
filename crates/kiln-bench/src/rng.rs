//! A small seeded pseudo-random generator, so that every workload is the same bytes on every
//! run and on every machine (no dependency whose algorithm could change under us).

/// Marsaglia's xorshift64 generator (shifts 13, 7, 17): fast, full period over the non-zero
/// 64-bit states, and good enough for benchmark data that only needs to look random to
/// compressors and hashers.
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator for `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Self {
        // Mix the seed so that small seeds do not start with runs of small numbers, and keep
        // the state non-zero (zero is xorshift's one fixed point).
        let state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        Self {
            state: if state == 0 { 1 } else { state },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A number in `0..n` (`0` when `n` is 0). The modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low).saturating_add(1))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(bytes.get(..n).unwrap_or(&bytes));
        }
    }

    /// `len` bytes of random binary data.
    pub fn binary(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.fill(&mut buf);
        buf
    }

    /// `len` bytes that compress like executables and libraries do (to about half with gzip):
    /// 64-byte pieces that are either a copy of an earlier piece within the last 32 KiB (what
    /// a compressor's matches find in code), bytes of a small alphabet (tables, padding,
    /// instruction fields), or random bytes (constants, hashes), in equal shares.
    pub fn structured(&mut self, len: usize) -> Vec<u8> {
        const PIECE: usize = 64;
        const WINDOW: usize = 32 << 10;
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let n = PIECE.min(len - buf.len());
            let kind = self.below(3);
            if kind == 0 && buf.len() >= PIECE {
                let back =
                    usize::try_from(self.between(PIECE as u64, buf.len().min(WINDOW) as u64))
                        .unwrap_or(PIECE);
                let from = buf.len() - back;
                for i in 0..n {
                    let byte = buf.get(from + i).copied().unwrap_or(0);
                    buf.push(byte);
                }
            } else if kind == 1 {
                for _ in 0..n {
                    buf.push((self.below(16) as u8) << 2);
                }
            } else {
                let mut piece = [0u8; PIECE];
                self.fill(&mut piece);
                buf.extend_from_slice(piece.get(..n).unwrap_or(&piece));
            }
        }
        buf
    }

    /// About `len` bytes (exactly `len`) of English-looking text: lines of words from a fixed
    /// list, which compresses like source code or prose does.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "kiln",
            "build",
            "layer",
            "cache",
            "stage",
            "image",
            "context",
            "digest",
            "snapshot",
            "mount",
            "overlay",
            "registry",
            "manifest",
            "config",
            "platform",
            "runc",
            "the",
            "of",
            "and",
            "a",
            "to",
            "in",
            "is",
            "that",
            "for",
            "it",
            "with",
            "as",
            "on",
            "be",
            "at",
            "by",
            "this",
            "from",
            "or",
            "an",
            "are",
            "which",
            "files",
            "step",
            "run",
            "copy",
            "env",
            "workdir",
            "user",
            "label",
            "arg",
            "entrypoint",
            "volume",
            "expose",
            "shell",
            "healthcheck",
            "onbuild",
            "stopsignal",
            "frontend",
            "solver",
            "vertex",
            "edge",
            "blob",
            "index",
            "export",
            "import",
            "prune",
            "alpha",
        ];
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            let words = self.between(4, 14);
            for i in 0..words {
                if i > 0 {
                    out.push(b' ');
                }
                let idx = usize::try_from(self.below(WORDS.len() as u64)).unwrap_or(0);
                out.extend_from_slice(WORDS.get(idx).copied().unwrap_or("kiln").as_bytes());
            }
            out.push(b'\n');
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    /// The first bytes for a seed are pinned (computed independently of this code), so a change
    /// to the generator, which would change every workload, fails here; texts are reproducible
    /// and exactly as long as asked.
    #[test]
    fn deterministic() {
        let check = |seed: u64, expected: &str| {
            assert_eq!(
                hex::encode(XorShift::new(seed).binary(8)),
                expected,
                "seed {seed}"
            );
        };
        check(1, "b4a5eb56db9b5848");
        assert_eq!(XorShift::new(7).text(1000), XorShift::new(7).text(1000));
        assert_eq!(XorShift::new(7).text(1000).len(), 1000);
        assert_ne!(XorShift::new(7).text(100), XorShift::new(8).text(100));
    }
}
