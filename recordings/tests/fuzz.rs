//! The fuzz target's entry point (recordings/fuzz, `reader`) under stable
//! Rust: saved inputs, structured mutations of real recordings, and (ignored
//! by default) a long random-mutation loop:
//!
//! ```text
//! RINGSIDE_FUZZ_SECS=300 cargo test --release -p ringside-recordings --test fuzz -- --ignored --nocapture
//! ```
//!
//! A crashing input is written to recordings/fuzz/regressions/reader/ and
//! then replayed by `saved_inputs_do_not_crash` forever.

mod common;

use proptest::prelude::*;
use ringside_recordings::fuzzing::read_bytes;
use ringside_recordings::{Header, Writer};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/reader")
}

/// Small real recordings: the demo's first events, a mix with probe events, the committed demo.
fn seeds() -> &'static Vec<Vec<u8>> {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| {
        let demo = common::demo_items();
        let small = common::small_items(&demo);
        let mut out = Vec::new();
        for (items, sync_every) in [(&small[..], 5usize), (&demo[..60], 20), (&demo[..], 1000)] {
            let mut w = Writer::new(Vec::new(), &Header::keeping_pointers("seed")).unwrap();
            for (i, it) in items.iter().enumerate() {
                w.write_item(it).unwrap();
                if i % sync_every == sync_every - 1 {
                    w.sync().unwrap();
                }
            }
            w.finish(0).unwrap();
            out.push(w.into_inner());
        }
        out
    })
}

#[test]
fn saved_inputs_do_not_crash() {
    let mut n = 0;
    if let Ok(dir) = std::fs::read_dir(regressions()) {
        for e in dir {
            let p = e.unwrap().path();
            if p.is_file() {
                read_bytes(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
    }
    for s in seeds() {
        read_bytes(s);
    }
    eprintln!("{n} saved fuzz inputs replayed");
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Cut(prop::sample::Index),
    Dup(prop::sample::Index, prop::sample::Index),
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, bit) => {
                let i = i.index(b.len());
                b[i] ^= 1 << (bit % 8);
            }
            Mutation::Set(i, v) => {
                let i = i.index(b.len());
                b[i] = *v;
            }
            Mutation::Cut(i) => b.truncate(i.index(b.len())),
            Mutation::Dup(a, len) => {
                let a = a.index(b.len());
                let n = len.index(64.min(b.len() - a) + 1);
                let piece = b[a..a + n].to_vec();
                b.splice(a..a, piece);
            }
        }
    }
    b
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Cut),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(a, b)| Mutation::Dup(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recordings_never_panic(which in 0usize..2, muts in prop::collection::vec(mutation(), 1..6)) {
        read_bytes(&apply(seeds()[which].clone(), &muts));
    }
}

/// xorshift64*: a dependency-free generator for the long loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
#[ignore = "long: run with --ignored (RINGSIDE_FUZZ_SECS, default 300)"]
fn long_random_mutation_loop() {
    let secs: u64 = std::env::var("RINGSIDE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("RINGSIDE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    let mut rng = Rng(seed);
    let start = std::time::Instant::now();
    let seeds = seeds();
    let mut runs = 0u64;
    // Interesting values for lengths, counts and type bytes.
    const MAGIC: [u8; 12] = [
        0, 1, 0x7f, 0x80, 0xff, 0x01, 0x02, 0x03, 0x10, 0x17, 0x20, 0x30,
    ];
    while start.elapsed().as_secs() < secs {
        let mut b = seeds[rng.below(2)].clone();
        for _ in 0..1 + rng.below(8) {
            if b.is_empty() {
                break;
            }
            let i = rng.below(b.len());
            match rng.below(6) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b[i] = rng.next() as u8,
                2 => b[i] = MAGIC[rng.below(MAGIC.len())],
                3 => b.truncate(i),
                4 => {
                    let n = rng.below(32.min(b.len() - i) + 1);
                    let piece = b[i..i + n].to_vec();
                    let at = rng.below(b.len());
                    b.splice(at..at, piece);
                }
                _ => {
                    let n = rng.below(16.min(b.len() - i) + 1);
                    b.drain(i..i + n);
                }
            }
        }
        let input = b.clone();
        if std::panic::catch_unwind(|| read_bytes(&b)).is_err() {
            let dir = regressions();
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(format!("crash-{seed:x}-{runs}"));
            std::fs::write(&p, &input).unwrap();
            panic!("read_bytes panicked; input saved to {}", p.display());
        }
        runs += 1;
    }
    eprintln!("{runs} mutated recordings in {secs} s (seed {seed:#x}), no panic");
}

/// Write the seeds for `cargo fuzz run reader` (recordings/fuzz/corpus/reader).
#[test]
#[ignore = "writes the cargo-fuzz seed corpus"]
fn write_fuzz_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/reader");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
    }
}
