//! Limits on every size a workload spec can name.
//!
//! A spec may come from someone else (docs/workload.md, "Limits"): whatever
//! it says, setting it up must take bounded memory, disk and time, and a
//! value past a limit is refused with `file:line:column` before anything is
//! created. Each limit is checked where the value is read
//! ([`super::check_text`]); the totals are checked as values add up, at the
//! value that crosses them.

/// The spec file itself.
pub const MAX_SPEC_BYTES: u64 = 16 << 20;

/// One temporary file (`[[file]] size`, or the size a `btree` content decides).
pub const MAX_FILE_SIZE: u64 = 1 << 30;
/// All temporary files together (they are written to disk before the run).
pub const MAX_TOTAL_FILE_SIZE: u64 = 4 << 30;

/// One stream writer's `total`.
pub const MAX_WRITER_TOTAL: u64 = 1 << 30;
/// All stream writers' `total`s together.
pub const MAX_TOTAL_WRITTEN: u64 = 4 << 30;
/// Writers write at most this much per write(2): a larger `chunks` entry is
/// written in pieces of this size (the kernel splits large pipe and socket
/// writes anyway), so a writer's memory is one piece.
pub const WRITE_PIECE: usize = 1 << 20;
/// A writer's `delay_ms` and `interval_ms`.
pub const MAX_WRITER_PAUSE_MS: u64 = 3_600_000;

/// Registered files: `[[file]]`, `[[pipe]]` and `[[socketpair]]` together
/// (each is at least one descriptor, each stream at most two threads).
pub const MAX_FILES: usize = 1024;

/// One registered buffer.
pub const MAX_BUFFER_SIZE: u64 = 1 << 30;
/// All registered buffers together: they are allocated and pinned.
pub const MAX_TOTAL_BUFFER_SIZE: u64 = 1 << 30;
/// Registered buffers.
pub const MAX_BUFFERS: usize = 1024;

/// `[[program]]` sections.
pub const MAX_PROGRAMS: usize = 256;
/// One program object file (read at most this many bytes; a larger file,
/// or one that grows while it is read, is refused).
pub const MAX_PROGRAM_OBJECT: u64 = 16 << 20;
/// All program objects together, built-in ones included: the engine keeps
/// each loaded object (its `program_loaded` event carries it).
pub const MAX_TOTAL_PROGRAM_BYTES: u64 = 64 << 20;
/// All maps of all loaded objects together (each `[[program]]` instantiates
/// every map of its object).
pub const MAX_TOTAL_MAP_BYTES: u64 = 1 << 30;
/// Pre-loaded map entries, all `[[map]]` sections together.
pub const MAX_MAP_ENTRIES: usize = 100_000;

/// One chain's `repeat`.
pub const MAX_REPEAT: u64 = 1_000_000;
/// Chains in the whole spec, every repetition counted.
pub const MAX_CHAINS: u64 = 1_000_000;
/// Steps in one chain; also the most `[budgets] steps_per_chain` may allow.
pub const MAX_STEPS_PER_CHAIN: u32 = 65_536;
/// Steps in the whole spec, every repetition counted.
pub const MAX_TOTAL_STEPS: u64 = 4_000_000;

/// Most `[budgets] insns_per_decision` (the kernel's own complexity limit).
pub const MAX_INSNS_PER_DECISION: u64 = 1_000_000;
/// Most `[budgets] submits_per_decision`.
pub const MAX_SUBMITS_PER_DECISION: u32 = 4096;

/// Longest `[run] timeout_s` (a year).
pub const MAX_TIMEOUT_S: f64 = 365.0 * 24.0 * 3600.0;

/// `n` bytes as a short human figure for messages (`1 GiB`, `64 MiB`, `4096 bytes`).
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} bytes")
}

/// `1000000` as `1,000,000`.
pub(crate) fn count(n: u64) -> String {
    // 1000000 -> 1,000,000
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_figures() {
        assert_eq!(super::bytes(1 << 30), "1 GiB");
        assert_eq!(super::bytes(16 << 20), "16 MiB");
        assert_eq!(super::bytes(4096), "4 KiB");
        assert_eq!(super::bytes(4097), "4097 bytes");
    }
}
