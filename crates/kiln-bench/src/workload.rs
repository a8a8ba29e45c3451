//! The four workloads: their Dockerfiles and their build contexts, generated from fixed seeds so
//! that every run builds the same bytes.
//!
//! Each workload lives in its own directory: `Dockerfile` next to `context/`, so the Dockerfile
//! is not part of the context and changing one context file changes exactly one input.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

use crate::rng::XorShift;

/// One generated workload.
pub struct Workload {
    /// Its short name (`a-context`, …), as printed in the table.
    pub name: &'static str,
    /// The Dockerfile (outside the context).
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// The context file the one-file rebuild changes.
    pub changed_file: PathBuf,
    /// That file's generated contents, written back after each one-file rebuild.
    original: Vec<u8>,
    /// Number of files in the context.
    pub files: u64,
    /// Total bytes of the context's files.
    pub bytes: u64,
    /// SHA-256 over every context path and its contents, in generation order: the same on every
    /// run, which shows the generators are deterministic.
    pub fingerprint: String,
}

impl Workload {
    /// Changes the one-file rebuild's file: appends a line (the same line on every run, as each
    /// run starts from an empty cache).
    pub fn change(&self) -> Result<()> {
        let mut changed = self.original.clone();
        changed.extend_from_slice(b"changed by kiln-bench\n");
        fs::write(&self.changed_file, changed)
            .with_context(|| format!("change {}", self.changed_file.display()))
    }

    /// Writes the changed file's generated contents back.
    pub fn restore(&self) -> Result<()> {
        fs::write(&self.changed_file, &self.original)
            .with_context(|| format!("restore {}", self.changed_file.display()))
    }
}

/// Writes the files of a context and keeps its statistics.
struct ContextWriter {
    root: PathBuf,
    files: u64,
    bytes: u64,
    hasher: Sha256,
}

impl ContextWriter {
    fn new(root: PathBuf) -> Result<Self> {
        fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        Ok(Self {
            root,
            files: 0,
            bytes: 0,
            hasher: Sha256::new(),
        })
    }

    fn write(&mut self, rel: &str, contents: &[u8]) -> Result<PathBuf> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
        self.files += 1;
        self.bytes += contents.len() as u64;
        self.hasher.update(rel.as_bytes());
        self.hasher.update([0]);
        self.hasher.update((contents.len() as u64).to_le_bytes());
        self.hasher.update(contents);
        Ok(path)
    }

    fn finish(
        self,
        name: &'static str,
        dir: &Path,
        dockerfile: &str,
        changed: PathBuf,
    ) -> Result<Workload> {
        let dockerfile_path = dir.join("Dockerfile");
        fs::write(&dockerfile_path, dockerfile)
            .with_context(|| format!("write {}", dockerfile_path.display()))?;
        let original = fs::read(&changed).with_context(|| format!("read {}", changed.display()))?;
        let mut hasher = self.hasher;
        hasher.update(dockerfile.as_bytes());
        Ok(Workload {
            name,
            dockerfile: dockerfile_path,
            context: self.root,
            changed_file: changed,
            original,
            files: self.files,
            bytes: self.bytes,
            fingerprint: hex::encode(hasher.finalize()),
        })
    }
}

/// The names of the workloads, in the order they run.
pub const NAMES: [&str; 5] = ["a-context", "b-stages", "c-bigrun", "d-chain", "e-export"];

/// The workload whose scenarios are image exports (issue 5) rather than builds (issue 4).
pub const EXPORT: &str = "e-export";

/// Generates the workload `name` (one of [`NAMES`]) into `dir/name`, replacing what was there.
pub fn generate(name: &str, dir: &Path) -> Result<Workload> {
    let wdir = dir.join(name);
    if wdir.exists() {
        fs::remove_dir_all(&wdir).with_context(|| format!("remove {}", wdir.display()))?;
    }
    let ctx = ContextWriter::new(wdir.join("context"))?;
    match name {
        "a-context" => context_copy(ctx, &wdir),
        "b-stages" => stages(ctx, &wdir),
        "c-bigrun" => big_run(ctx, &wdir),
        "d-chain" => chain(ctx, &wdir),
        "e-export" => export(ctx, &wdir),
        other => anyhow::bail!("unknown workload {other:?} (known: {})", NAMES.join(", ")),
    }
}

/// (a) 20,000 files, about 160 MB, 60% text and 40% binary, in nested directories, copied into
/// the image, then listed by a RUN step.
fn context_copy(mut ctx: ContextWriter, wdir: &Path) -> Result<Workload> {
    let mut rng = XorShift::new(0xA);
    let mut changed = None;
    for i in 0..20_000u64 {
        // 25 top directories of 8 subdirectories of 100 files; every 10th file sits two levels
        // deeper.
        let top = i % 25;
        let sub = (i / 25) % 8;
        let deep = if i % 10 == 9 { "deep/er/" } else { "" };
        let size = usize::try_from(rng.between(0, 16_000)).unwrap_or(8_000);
        let (ext, contents) = if rng.below(10) < 6 {
            ("txt", rng.text(size))
        } else {
            ("bin", rng.binary(size))
        };
        let rel = format!("d{top:02}/s{sub}/{deep}f{i:05}.{ext}");
        let path = ctx.write(&rel, &contents)?;
        if i == 12_345 {
            changed = Some(path);
        }
    }
    let changed = changed.context("workload a: no file to change")?;
    let dockerfile = "ARG BASE=busybox\nFROM ${BASE}\nCOPY . /ctx\nRUN find /ctx | wc -l\n";
    ctx.finish("a-context", wdir, dockerfile, changed)
}

/// (b) Four independent stages hashing and sorting their own generated data (16 MiB of binary
/// files and 4 MiB of text each), gathered by a final stage with `COPY --from`.
fn stages(mut ctx: ContextWriter, wdir: &Path) -> Result<Workload> {
    let mut dockerfile = String::from("ARG BASE=busybox\n");
    let mut changed = None;
    for stage in 1..=4u64 {
        let mut rng = XorShift::new(0xB0 + stage);
        for file in 0..16 {
            ctx.write(
                &format!("stage{stage}/bin{file:02}.bin"),
                &rng.binary(1 << 20),
            )?;
        }
        let words = ctx.write(&format!("stage{stage}/words.txt"), &rng.text(4 << 20))?;
        if stage == 1 {
            changed = Some(words);
        }
        dockerfile.push_str(&format!(
            "\nFROM ${{BASE}} AS s{stage}\n\
             COPY stage{stage}/ /in/\n\
             RUN set -e; mkdir /out; \
             for i in 1 2 3 4 5 6 7 8 9 10; do sha256sum /in/*.bin | sort > /out/sums.txt; done; \
             for i in 1 2 3; do sort /in/words.txt | sha256sum >> /out/sorted.txt; \
             sort -r /in/words.txt | uniq -c | sort -n | sha256sum >> /out/sorted.txt; done\n"
        ));
    }
    dockerfile.push_str("\nFROM ${BASE}\n");
    for stage in 1..=4 {
        dockerfile.push_str(&format!("COPY --from=s{stage} /out /r/{stage}\n"));
    }
    dockerfile.push_str("RUN cat /r/*/* | sha256sum > /result.txt && cat /result.txt\n");
    let changed = changed.context("workload b: no file to change")?;
    ctx.finish("b-stages", wdir, &dockerfile, changed)
}

/// (c) One RUN step writing about 400 MiB: 200 MiB from `/dev/urandom`, 100 MiB of repeated text
/// in 100 files, 100 MiB of zeros. The small context file it starts from is the one-file change,
/// so that rebuild runs the whole step again.
fn big_run(mut ctx: ContextWriter, wdir: &Path) -> Result<Workload> {
    let mut rng = XorShift::new(0xC);
    let seed = ctx.write("seed.txt", &rng.text(200))?;
    let dockerfile = "ARG BASE=busybox\nFROM ${BASE}\nCOPY seed.txt /seed.txt\n\
        RUN set -e; mkdir -p /big/text; \
        dd if=/dev/urandom of=/big/random.bin bs=1M count=200 2>/dev/null; \
        i=0; while [ $i -lt 100 ]; do \
        yes \"$i $(head -n 1 /seed.txt)\" | head -c 1048576 > /big/text/part$i.txt; i=$((i+1)); done; \
        head -c 104857600 /dev/zero > /big/zeros.bin; du -sm /big\n";
    ctx.finish("c-bigrun", wdir, dockerfile, seed)
}

/// (d) A chain of 30 small steps: ten times ENV, COPY of a small file, RUN appending to a file.
/// The one-file change is the sixth file, so that rebuild runs the last 15 steps again.
fn chain(mut ctx: ContextWriter, wdir: &Path) -> Result<Workload> {
    let mut rng = XorShift::new(0xD);
    let mut dockerfile = String::from("ARG BASE=busybox\nFROM ${BASE}\n");
    let mut changed = None;
    for step in 0..10 {
        let path = ctx.write(&format!("step{step:02}.txt"), &rng.text(1024))?;
        if step == 5 {
            changed = Some(path);
        }
        dockerfile.push_str(&format!(
            "ENV STEP{step}={step}\n\
             COPY step{step:02}.txt /chain/\n\
             RUN echo \"step $STEP{step}: $(wc -c < /chain/step{step:02}.txt)\" >> /chain/all.txt\n"
        ));
    }
    let changed = changed.context("workload d: no file to change")?;
    ctx.finish("d-chain", wdir, &dockerfile, changed)
}

/// (e) One RUN step writing about 400 MB of mixed content into a layer, for the image export
/// figures: 40% text in 4,000 files of 2 to 78 KiB (sources, documents), 30% binaries that
/// compress to about half in 30 files of 4 MiB, 20% random data in 16 files of 5 MiB (media
/// and archives, which do not compress), 10% zeros in 4 files of 10 MiB. The RUN copies the
/// generated files from a bind mount of the context, so both builders compress the same
/// bytes; the context itself is not part of the image.
fn export(mut ctx: ContextWriter, wdir: &Path) -> Result<Workload> {
    let mut rng = XorShift::new(0xE);
    let mut changed = None;
    for i in 0..4_000u64 {
        let size = usize::try_from(rng.between(2 << 10, 78 << 10)).unwrap_or(40 << 10);
        let path = ctx.write(&format!("src/m{:02}/f{i:04}.txt", i % 40), &rng.text(size))?;
        if i == 1_234 {
            changed = Some(path);
        }
    }
    for i in 0..30 {
        ctx.write(&format!("bin/prog{i:02}"), &rng.structured(4 << 20))?;
    }
    for i in 0..16 {
        ctx.write(&format!("media/asset{i:02}.bin"), &rng.binary(5 << 20))?;
    }
    for i in 0..4 {
        ctx.write(&format!("data/table{i}.db"), &vec![0; 10 << 20])?;
    }
    let changed = changed.context("workload e: no file to change")?;
    let dockerfile = "ARG BASE=busybox\nFROM ${BASE}\n\
        RUN --mount=type=bind,target=/src cp -a /src /data && du -sm /data\n";
    ctx.finish("e-export", wdir, dockerfile, changed)
}
