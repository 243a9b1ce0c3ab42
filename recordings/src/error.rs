//! Why reading a recording failed, typed (issue 12): one variant per
//! cause, carrying the values its message prints, so callers match on the
//! cause instead of on text. The messages are the reader's long-standing
//! wording, pinned by recordings/tests/read_messages.rs.
//!
//! [`crate::ReadError`] is `Clone + Eq` (it is kept in [`crate::Stop`] and
//! compared by tests), and `std::io::Error`, `serde_json::Error` and
//! `rmp_serde`'s errors are neither: a failure from one of them is kept as
//! its class (where it has one) and the text it printed, in [`IoCause`],
//! [`JsonCause`] and [`MsgPackCause`].

use crate::format::{FORMAT_VERSION, MAGIC, MAX_HEADER, MAX_PAYLOAD, rtype};
use ringside_probes::event::wire::DecodeError;
use thiserror::Error;

/// What went wrong, by class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a ringside recording at all.
    NotARecording,
    /// Written by a newer ringside (format version too new).
    NewerVersion,
    /// The header is malformed.
    BadHeader,
    /// The file is cut short (inside a record, or without an end record).
    Truncated,
    /// A record's checksum does not match.
    Checksum,
    /// A record's checksum matches but its content is malformed.
    BadRecord,
    /// A record type this version does not know.
    UnknownType,
    /// Bytes after the end record.
    TrailingData,
    /// The operating system failed to read.
    Io,
}

/// Why a field could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` at payload byte {at}: {problem}")]
pub struct FieldError {
    /// The field (`decision.calls.detail.key`, ...).
    pub field: &'static str,
    /// Byte offset inside the record payload.
    pub at: usize,
    /// What was wrong.
    pub problem: FieldProblem,
}

/// An I/O failure: its class and the text `std::io::Error` printed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{text}")]
pub struct IoCause {
    /// The error's class.
    pub kind: std::io::ErrorKind,
    /// What it printed (with the OS error number, where there was one).
    pub text: String,
}

impl From<&std::io::Error> for IoCause {
    fn from(e: &std::io::Error) -> Self {
        IoCause {
            kind: e.kind(),
            text: e.to_string(),
        }
    }
}

/// A header body that is not the JSON a header is: where and why, and the
/// text `serde_json` printed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{text}")]
pub struct JsonCause {
    /// Syntax, data (wrong type or value), or end of input.
    pub category: serde_json::error::Category,
    /// 1-based line (0: not known).
    pub line: usize,
    /// 1-based column (0: not known).
    pub column: usize,
    /// What it printed (it names the line and column).
    pub text: String,
}

impl From<&serde_json::Error> for JsonCause {
    fn from(e: &serde_json::Error) -> Self {
        JsonCause {
            category: e.classify(),
            line: e.line(),
            column: e.column(),
            text: e.to_string(),
        }
    }
}

/// A generic engine event whose MessagePack body does not decode: the text
/// `rmp_serde` printed (its error has no class worth keeping apart).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{text}")]
pub struct MsgPackCause {
    /// What it printed.
    pub text: String,
}

/// What the reader was doing when the operating system failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum IoAction {
    /// Opening the file.
    #[error("cannot open")]
    Open,
    /// Reading from it.
    #[error("read failed")]
    Read,
    /// Opening it again and seeking to a sync point ([`crate::Replay`]).
    #[error("cannot read")]
    Reopen,
}

/// Why a recording could not be read (further). Each variant belongs to
/// exactly one [`ErrorKind`]: see [`ReadProblem::kind`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReadProblem {
    /// The operating system failed to open or read the file.
    #[error("{action}: {cause}")]
    Io {
        /// What we were doing.
        action: IoAction,
        /// The failure.
        cause: IoCause,
    },
    /// The file has no bytes at all.
    #[error("the file is empty")]
    Empty,
    /// The file does not start with the recording magic.
    #[error(
        "not a ringside recording: it starts with {} where a recording starts with {}{}",
        hex(.start),
        hex(&MAGIC),
        jsonl_hint(.start)
    )]
    NotARecording {
        /// Its first bytes (up to 8).
        start: Vec<u8>,
    },
    /// The magic is there, but not all 16 bytes of the header's fixed part.
    #[error("the header is cut short: {got} bytes, the fixed part has 16")]
    FixedPartCut {
        /// Bytes the file has.
        got: usize,
    },
    /// Written in a format version newer than this ringside reads.
    #[error(
        "field format_version: {version} is newer than this ringside ({}) reads (up to {}): use a newer ringside",
        env!("CARGO_PKG_VERSION"),
        FORMAT_VERSION
    )]
    NewerVersion {
        /// The file's format version.
        version: u16,
    },
    /// Format version 0, which no ringside wrote.
    #[error("field format_version: 0 is not a version")]
    VersionZero,
    /// The header body's length is over [`MAX_HEADER`].
    #[error("field header_len: {len} bytes exceeds the limit of {}", MAX_HEADER)]
    HeaderTooLong {
        /// The length the header gives.
        len: u32,
    },
    /// The file ends inside the header body or its checksum.
    #[error("the header is cut short: it needs {needs} bytes, the file has {got}")]
    HeaderCut {
        /// Bytes the whole header takes.
        needs: usize,
        /// Bytes the file has.
        got: usize,
    },
    /// The header's checksum does not match.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderChecksum {
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// The header body (checksum right) is not a header's JSON.
    #[error("header body (JSON): {cause}")]
    HeaderJson {
        /// Why.
        cause: JsonCause,
    },
    /// The file ends inside a record's length varint.
    #[error("the record at offset {at} is cut short inside its length ({left} bytes left)")]
    LengthCut {
        /// The record's offset.
        at: u64,
        /// Bytes the file has from there.
        left: usize,
    },
    /// A record's length varint goes on past 5 bytes (damage).
    #[error("the record at offset {at} has a damaged length (more than 5 length bytes)")]
    LengthTooManyBytes {
        /// The record's offset.
        at: u64,
    },
    /// A record's length is over [`MAX_PAYLOAD`] (damage).
    #[error(
        "the record at offset {at} has a damaged length: {len} bytes exceeds the limit of {}",
        MAX_PAYLOAD
    )]
    LengthTooLarge {
        /// The record's offset.
        at: u64,
        /// The length it gives.
        len: u64,
    },
    /// The file ends inside a record.
    #[error(
        "the record at offset {at} needs {needs} bytes but the file ends {have} bytes later (cut short, or its length is damaged)"
    )]
    RecordCut {
        /// The record's offset.
        at: u64,
        /// Bytes the whole record takes (length, type, payload, checksum).
        needs: usize,
        /// Bytes the file has from there.
        have: usize,
    },
    /// A record's checksum does not match.
    #[error(
        "checksum mismatch in the record at offset {at} (type {record_type:#04x} {}, {len} payload bytes): stored {stored:#010x}, computed {computed:#010x}",
        type_name(.record_type)
    )]
    RecordChecksum {
        /// The record's offset.
        at: u64,
        /// Its type byte (as damaged, maybe).
        record_type: u8,
        /// Its payload length.
        len: u64,
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// A record (checksum right) of a type this version does not know.
    #[error(
        "record type {record_type:#04x} at offset {at} is not known to this ringside ({}, format {}): the file may come from a newer ringside",
        env!("CARGO_PKG_VERSION"),
        FORMAT_VERSION
    )]
    UnknownRecordType {
        /// The record's offset.
        at: u64,
        /// Its type byte.
        record_type: u8,
    },
    /// Resynchronizing found no sync record after a damaged one.
    #[error("no sync point after the damage: the rest of the file is unreadable")]
    NoSyncAfterDamage,
    /// The file ends at a record boundary, but before the end record.
    #[error(
        "the file ends at offset {at} without an end record: the recording was cut short (the writer crashed, was killed, or is still writing); {items} items read"
    )]
    NoEndRecord {
        /// Where the file ends.
        at: u64,
        /// Items read before.
        items: u64,
    },
    /// A record (checksum right) whose payload does not decode.
    #[error(
        "the record at offset {at} (type {record_type:#04x} {}) is malformed: {field}",
        type_name(.record_type)
    )]
    Malformed {
        /// The record's offset.
        at: u64,
        /// Its type byte.
        record_type: u8,
        /// The field at fault, and why.
        field: FieldError,
    },
    /// A sync record's item index disagrees with the items read.
    #[error(
        "the sync record at offset {at} says the next item is {says}, but {read} items were read"
    )]
    SyncIndex {
        /// The sync record's offset.
        at: u64,
        /// The next index it gives.
        says: u64,
        /// Items read.
        read: u64,
    },
    /// Bytes after the end record.
    #[error("{bytes}{} bytes follow the end record at offset {end_at}", over_a_mib(.bytes))]
    TrailingData {
        /// The end record's offset.
        end_at: u64,
        /// How many (counted up to just over 1 MiB, then printed as `N+`).
        bytes: u64,
    },
    /// The end record's item count disagrees with the items read.
    #[error("the end record says {written} items were written, but {read} were read")]
    EndCount {
        /// The count it gives.
        written: u64,
        /// Items read.
        read: u64,
    },
    /// A reader stopped without recording why (should not happen).
    #[error("reading stopped without a reason")]
    NoReason,
    /// [`crate::Replay`]'s reader stopped without recording why (should not happen).
    #[error("reading stopped early")]
    StoppedEarly,
}

impl ReadProblem {
    /// Its class.
    pub fn kind(&self) -> ErrorKind {
        use ReadProblem as P;
        match self {
            P::Io { .. } => ErrorKind::Io,
            P::Empty | P::NotARecording { .. } => ErrorKind::NotARecording,
            P::NewerVersion { .. } => ErrorKind::NewerVersion,
            P::VersionZero | P::HeaderTooLong { .. } | P::HeaderJson { .. } => ErrorKind::BadHeader,
            P::FixedPartCut { .. }
            | P::HeaderCut { .. }
            | P::LengthCut { .. }
            | P::RecordCut { .. }
            | P::NoSyncAfterDamage
            | P::NoEndRecord { .. }
            | P::NoReason
            | P::StoppedEarly => ErrorKind::Truncated,
            P::HeaderChecksum { .. }
            | P::LengthTooManyBytes { .. }
            | P::LengthTooLarge { .. }
            | P::RecordChecksum { .. } => ErrorKind::Checksum,
            P::Malformed { .. } | P::SyncIndex { .. } | P::EndCount { .. } => ErrorKind::BadRecord,
            P::UnknownRecordType { .. } => ErrorKind::UnknownType,
            P::TrailingData { .. } => ErrorKind::TrailingData,
        }
    }

    /// True when the first bytes look like JSON Lines (a `--headless` or
    /// `export --format jsonl` output given where a recording is wanted).
    pub fn looks_like_jsonl(&self) -> bool {
        matches!(self, ReadProblem::NotARecording { start } if start.first() == Some(&b'{'))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn jsonl_hint(start: &[u8]) -> &'static str {
    if start.first() == Some(&b'{') {
        " (it looks like JSON Lines, e.g. `--headless` or `export --format jsonl` output)"
    } else {
        ""
    }
}

fn type_name(t: &u8) -> &'static str {
    rtype::name(*t)
}

fn over_a_mib(n: &u64) -> &'static str {
    if *n > 1 << 20 { "+" } else { "" }
}

/// The integer type a field's value must fit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Width {
    /// `u32`.
    #[error("32 bits")]
    U32,
    /// `u16`.
    #[error("16 bits")]
    U16,
    /// `i32`.
    #[error("a signed 32-bit value")]
    I32,
}

/// What a one-byte code field stands for (each has its own set of codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Code {
    /// Where a new step goes.
    #[error("a placement (0..=2)")]
    Placement,
    /// Which budget a decision exceeded.
    #[error("a budget kind")]
    BudgetKind,
    /// A helper call's detail.
    #[error("a call detail kind")]
    CallDetail,
    /// A decision's action.
    #[error("an action kind")]
    Action,
    /// A program's verdict.
    #[error("a verdict")]
    Verdict,
    /// A decision's result.
    #[error("a result kind")]
    ResultKind,
    /// Interpreted or compiled.
    #[error("an exec mode")]
    ExecMode,
    /// An application completion's kind.
    #[error("a completion kind")]
    CompletionKind,
}

/// Why one field of a record payload could not be decoded (the field and
/// its place are in [`FieldError`]).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FieldProblem {
    /// The payload ends where the field should be.
    #[error("the record ends here")]
    Ends,
    /// The payload ends inside a varint.
    #[error("the record ends inside a varint")]
    EndsInVarint,
    /// A varint whose value needs more than 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A varint of more than 10 bytes.
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    /// A value too big (or small) for the field's type.
    #[error("{value} does not fit in {width}")]
    TooWide {
        /// The value read.
        value: i128,
        /// The field's type.
        width: Width,
    },
    /// A length (or count) larger than the bytes left.
    #[error("length {len} exceeds the {left} bytes left in the record")]
    LengthExceeds {
        /// The length read.
        len: u64,
        /// Bytes left in the payload.
        left: usize,
    },
    /// Fewer bytes left than the field takes.
    #[error("needs {needs} bytes, {left} left in the record")]
    NeedsBytes {
        /// Bytes the field takes.
        needs: usize,
        /// Bytes left in the payload.
        left: usize,
    },
    /// A string that is not UTF-8.
    #[error("not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    /// An all-ones optional value not followed by its 0 escape.
    #[error("bad escape {escape} after an all-ones optional value")]
    BadEscape {
        /// The value after it.
        escape: u64,
    },
    /// Bytes after the record's last field.
    #[error("{extra} unexpected bytes after the last field")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A ring setup's `when` code this version does not know.
    #[error("unknown code {code}")]
    UnknownWhen {
        /// The code.
        code: u8,
    },
    /// A code byte outside its set.
    #[error("{code} is not {of}")]
    BadCode {
        /// The code.
        code: u8,
        /// What it should have named.
        of: Code,
    },
    /// A presence mask naming fields this version does not know.
    #[error("field mask {mask:#x} names fields this version does not know")]
    UnknownFields {
        /// The mask.
        mask: u64,
    },
    /// A value stored as a delta from another that leaves its range.
    #[error("{base} + {delta} is out of range")]
    SumOutOfRange {
        /// The value it is relative to.
        base: i64,
        /// The delta read.
        delta: i64,
    },
    /// A pending step's index over 32 bits.
    #[error("step {step} is out of range")]
    StepOutOfRange {
        /// The index read.
        step: u64,
    },
    /// A value over 32 bits where the field is a `u32`.
    #[error("{value} is out of range")]
    OutOfRange {
        /// The value read.
        value: u64,
    },
    /// A reference to a string not defined since the last sync record.
    #[error("string reference {index} but only {defined} strings are defined since the last sync")]
    UnknownString {
        /// The reference read (1-based).
        index: u64,
        /// Strings defined.
        defined: usize,
    },
    /// A probe field value wider than its wire field.
    #[error("value {value:#x} does not fit in {size} bytes")]
    ValueTooWide {
        /// The value after its delta.
        value: u64,
        /// The wire field's size.
        size: usize,
    },
    /// The rebuilt probe wire record does not decode.
    #[error("{0}")]
    ProbeEvent(DecodeError),
    /// A sync record without the sync marker.
    #[error("wrong sync marker")]
    SyncMarker,
    /// A generic engine event whose MessagePack body does not decode.
    #[error("MessagePack body: {0}")]
    MessagePack(MsgPackCause),
    /// A record type the decoder does not know.
    #[error("record type {record_type:#04x} is not known to this version")]
    UnknownRecordType {
        /// The type byte.
        record_type: u8,
    },
}
