//! ringside recordings: the unit of events every consumer shares ([`Item`]),
//! the recording format (docs/recording-format.md), a streaming writer and
//! reader, deterministic replay of every BPF decision, and export to
//! Chrome trace JSON (Perfetto) and JSON Lines.
//!
//! - Write: [`Recorder`] (bounded queue + writer thread, `push` never
//!   blocks) or the synchronous [`Writer`].
//! - Read: [`Reader`] (streaming, never panics, says where and why it
//!   stopped) or [`Replay`] (random access by item index and time, programs
//!   re-loaded, decisions re-executed and traced).
//! - Check: [`check::check_file`]; export: [`export`].

pub mod check;
pub mod codec;
pub mod decode;
pub mod encode;
pub mod error;
pub mod export;
pub mod format;
pub mod fuzzing;
pub mod item;
pub mod reader;
pub mod replay;
pub mod session;
pub mod writer;

pub use check::{CheckReport, Divergence, check_file};
pub use error::{FieldProblem, ReadProblem};
pub use format::{FORMAT_VERSION, Header};
pub use item::Item;
pub use reader::{Entry, ErrorKind, ReadError, ReadOptions, Reader, Stop};
pub use replay::{DecisionTrace, Refusal, Replay, TraceError, trace_decision};
pub use writer::{RecordStats, Recorder, RecorderHandle, RecorderOptions, Writer};

/// Read a whole recording into memory: its items in order, and how
/// reading stopped ([`Stop::End`] for a complete file; otherwise the
/// error, after every complete record before it). Fails only when the
/// header is unreadable.
pub fn read_file(path: impl AsRef<std::path::Path>) -> Result<(Vec<Entry>, Stop), ReadError> {
    let mut r = Reader::open(path)?;
    let mut v = Vec::new();
    v.extend(r.by_ref().flatten());
    let stop = r.stop().cloned().unwrap_or(Stop::End {
        offset: 0,
        items: v.len() as u64,
        dropped: 0,
    });
    Ok((v, stop))
}
