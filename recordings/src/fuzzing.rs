//! The reader's fuzz entry point (recordings/fuzz, target `reader`) and its
//! stable-Rust harness (recordings/tests/fuzz.rs): arbitrary bytes must
//! never panic the reader, the replay check or the exporters.

use crate::check;
use crate::export;
use crate::reader::{ReadOptions, Reader, read_all};

/// Read `data` as a recording strictly and with resync, check it (which
/// re-loads its programs and re-executes its decisions), and export it as
/// JSON Lines. Must not panic on any input.
pub fn read_bytes(data: &[u8]) {
    let (entries, _) = read_all(data, ReadOptions::default());
    let (_, _) = read_all(
        data,
        ReadOptions {
            resync: true,
            collect_syncs: true,
        },
    );
    if !entries.is_empty()
        && let Ok(r) = Reader::new(data, "fuzz", ReadOptions::default())
    {
        let _ = check::check_reader(r);
    }
    if let Ok(mut r) = Reader::new(data, "fuzz", ReadOptions::default()) {
        let _ = export::jsonl(
            &mut r,
            &mut std::io::sink(),
            &export::ExportOptions::default(),
        );
    }
}
