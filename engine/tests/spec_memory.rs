//! Setting up big content costs little memory: files and writers' streams
//! are made as they are written, never held whole. (Its own test binary, so
//! the peak it reads is its own.)

use ringside_workload::{PrepareOptions, prepare_text};
use std::path::Path;

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn big_files_and_writers_do_not_grow_memory() {
    // A 128 MiB file and a writer of the most a writer may write (1 GiB):
    // both were whole Vecs before the run started.
    let text = "[[file]]\nname = \"f\"\nsize = 134217728\ncontent = \"random:7\"\n[[pipe]]\nname = \"p\"\nwriter = { total = 1073741824, content = \"text:abc\" }\n[[chain]]\nstep = [{ op = \"nop\" }]\n";
    let before = peak_rss();
    let p = prepare_text("w.toml", text, Path::new("."), &PrepareOptions::default()).unwrap();
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 64 << 20,
        "setup grew the peak resident memory by {} MiB",
        grew >> 20
    );
    drop(p);
}
