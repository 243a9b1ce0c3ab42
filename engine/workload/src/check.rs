//! The checks of a spec's values: one [`Check`] variant per cause, each
//! carrying the values its message prints. Made by the parser (`spec`),
//! the checker (`plan`) and setup (`lib`), which all use this module; it
//! uses none of them.

use crate::files::{FileKind, FileProblem};
use crate::limits::{bytes, count};
use ringside_engine::engine::{EngineError, KernelLinkProblem};
use std::path::PathBuf;

/// A value of the spec that cannot be what it says (or setup found so).
#[derive(Debug, thiserror::Error)]
pub enum Check {
    /// The spec is longer than a spec may be.
    #[error("the spec is {len} bytes, more than the {} a spec may have", bytes(*.max))]
    SpecTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The most a spec may have.
        max: u64,
    },
    /// TOML syntax, or a key or type the spec does not have.
    #[error("{message}")]
    Syntax {
        /// The toml crate's words.
        message: String,
    },
    /// More files, pipes and socket pairs than a spec may have.
    #[error("more than {max} files, pipes and socket pairs")]
    TooManyNames {
        /// The most a spec may have.
        max: usize,
    },
    /// A file, pipe or socket pair named like one before it.
    #[error("`{name}` is defined twice")]
    DefinedTwice {
        /// The name.
        name: String,
    },
    /// A `[[file]] kind` there is not.
    #[error("kind `{kind}`: expected file, fifo, char or block")]
    FileKind {
        /// What the spec said.
        kind: String,
    },
    /// `content` with `path`.
    #[error("`content` is for a new file (`size`), not an existing one")]
    ContentOfExisting,
    /// `kind` with `size`.
    #[error("`kind` is for an existing file (`path`), not a new one")]
    KindOfNew,
    /// A `[[file]]` with neither `path` nor `size` (or both).
    #[error("a [[file]] needs either `path` (an existing file) or `size` (a new temporary file)")]
    PathOrSize,
    /// A `[[file]] path` the system would not describe.
    #[error("cannot open {}: {error}", path.display())]
    CannotOpen {
        /// The path, resolved.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A `[[file]] path` that is not what the spec says it is, or that
    /// cannot be opened as such.
    #[error("{}: {problem}{}", path.display(), match suggest {
        Some(k) => format!("; say `kind = \"{}\"` if that is what you mean", k.key()),
        None => String::new(),
    })]
    File {
        /// The path, resolved.
        path: PathBuf,
        /// What is wrong with it.
        problem: Box<FileProblem>,
        /// The `kind` it is, when saying so would make it usable.
        suggest: Option<FileKind>,
    },
    /// Setup waiting for a FIFO's writer (the place of a timeout or a stop).
    #[error("waiting for a writer to open the FIFO {}", path.display())]
    FifoWait {
        /// The FIFO.
        path: PathBuf,
    },
    /// A temporary file longer than one may be.
    #[error("a file of {len} bytes is more than the {} a temporary file may have", bytes(*.max))]
    FileTooLarge {
        /// Its length in bytes.
        len: u64,
        /// The most a temporary file may have.
        max: u64,
    },
    /// A writer's `total` over its limit.
    #[error("total = {total}: more than the {} a writer may write", bytes(*.max))]
    WriterTotal {
        /// What the spec said.
        total: u64,
        /// The most a writer may write.
        max: u64,
    },
    /// A writer's content longer than its total.
    #[error("this content makes {len} bytes, more than the writer's total ({total})")]
    ContentOverTotal {
        /// Bytes the content makes.
        len: u64,
        /// The writer's `total`.
        total: u64,
    },
    /// A writer's `interval_ms` or `delay_ms` over its limit.
    #[error("{ms} ms: more than the {max} ms (an hour) a writer may pause")]
    WriterPause {
        /// What the spec said.
        ms: u64,
        /// The most a writer may pause, in milliseconds.
        max: u64,
    },
    /// More buffers than a spec may have.
    #[error("more than {max} buffers")]
    TooManyBuffers {
        /// The most a spec may have.
        max: usize,
    },
    /// A buffer of no bytes or of more than a buffer may have.
    #[error("buffer size {size} out of range (1..={})", bytes(*.max))]
    BufferSize {
        /// What the spec said.
        size: u64,
        /// The most a buffer may have.
        max: u64,
    },
    /// A buffer named like one before it.
    #[error("buffer `{name}` is defined twice")]
    BufferTwice {
        /// The name.
        name: String,
    },
    /// A budget over its cap.
    #[error("{key} = {value}: at most {max}")]
    Budget {
        /// The budget's key in `[budgets]`.
        key: &'static str,
        /// What the spec said.
        value: u64,
        /// Its cap.
        max: u64,
    },
    /// A ring size io_uring does not take.
    #[error("entries = {entries}: must be a power of two in 1..=32768")]
    Entries {
        /// What the spec said.
        entries: u32,
    },
    /// More programs than a spec may have.
    #[error("more than {max} programs")]
    TooManyPrograms {
        /// The most a spec may have.
        max: usize,
    },
    /// A program `object` that is no built-in and cannot be read.
    #[error("`{object}` is neither a built-in program nor a readable file: {error}")]
    NoObject {
        /// What the spec said.
        object: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// A program object file that is too large (or grew while read).
    #[error("program object {}: {problem}", path.display())]
    ObjectFile {
        /// The path, resolved.
        path: PathBuf,
        /// What is wrong with it.
        problem: Box<FileProblem>,
    },
    /// An object of several programs, and no `section` to say which.
    #[error("the object has several programs ({}): say which with `section`", have.join(", "))]
    SeveralPrograms {
        /// Its programs' sections.
        have: Vec<String>,
    },
    /// An `exec` there is not.
    #[error("exec `{exec}`: expected compiled or interpreter")]
    Exec {
        /// What the spec said.
        exec: String,
    },
    /// A program named like one before it.
    #[error("program `{name}` is defined twice")]
    ProgramTwice {
        /// The name.
        name: String,
    },
    /// A program name no `[[program]]` has.
    #[error("no program named `{name}` (have: {})", have.join(", "))]
    NoProgram {
        /// The name.
        name: String,
        /// The programs' names, sorted.
        have: Vec<String>,
    },
    /// Setup found the object without the program checking found in it.
    #[error("the object has no program `{section}`")]
    NoSection {
        /// The section.
        section: String,
    },
    /// Setup was given a plan checked without the filesystem.
    #[error("the program object was not read (checked without the filesystem)")]
    NotRead,
    /// More map pre-loads than a spec may have.
    #[error("more than {} pre-loaded map entries in all", count(*.max as u64))]
    TooManyPreloads {
        /// The most a spec may have.
        max: usize,
    },
    /// A `[[map]]` naming a map its program does not have.
    #[error("program `{program}` has no map `{map}`")]
    NoMap {
        /// The program's name.
        program: String,
        /// The map's name.
        map: String,
    },
    /// A map entry of an integer, a string or an array of other items.
    #[error("array items must be TYPE:VALUE strings")]
    ArrayItem,
    /// A map entry that is no integer, string or array.
    #[error("expected an integer, a TYPE:VALUE string or an array of them")]
    ValueShape,
    /// A map key or value of other than the map's size.
    #[error("{len} bytes where the map wants {size}")]
    ValueSize {
        /// Bytes it encodes to.
        len: usize,
        /// Bytes the map wants.
        size: u32,
    },
    /// The engine refused at setup what checking let through (loading a
    /// program, writing a map entry).
    #[error("{0}")]
    Engine(Box<EngineError>),
    /// A chain of no steps.
    #[error("a chain needs at least one step")]
    NoSteps,
    /// A chain of more steps than a chain may have.
    #[error(
        "{steps} steps: more than the {limit} a chain may have ([budgets] steps_per_chain, at most {max})"
    )]
    TooManySteps {
        /// Its steps.
        steps: u64,
        /// The most a chain may have under the spec's budgets.
        limit: u32,
        /// The most any chain may have.
        max: u32,
    },
    /// `repeat = 0`.
    #[error("repeat = 0: a chain runs at least once (leave `repeat` out for one copy)")]
    RepeatZero,
    /// More copies of a chain than a chain may have.
    #[error("repeat = {repeat}: more than the {} copies a chain may have", count(*.max))]
    TooManyCopies {
        /// What the spec said.
        repeat: u64,
        /// The most a chain may have.
        max: u64,
    },
    /// A chain's user_data overflows in its last repetition.
    #[error("user_data {user_data} + {last} (the last repetition) overflows 64 bits")]
    UserDataOverflow {
        /// The chain's user_data.
        user_data: u64,
        /// The last repetition's number.
        last: u64,
    },
    /// A `notify` there is not.
    #[error("notify `{notify}`: expected all, final or none")]
    Notify {
        /// What the spec said.
        notify: String,
    },
    /// A `link` there is not.
    #[error("link `{link}`: expected auto, engine, kernel or kernel-hard")]
    Link {
        /// What the spec said.
        link: String,
    },
    /// A chain the kernel cannot link (what the engine would refuse).
    #[error("{0}")]
    KernelLink(KernelLinkProblem),
    /// A `timeout_s` out of range.
    #[error("timeout_s = {seconds}: expected 0 (none) up to {max} (a year)")]
    Timeout {
        /// What the spec said.
        seconds: f64,
        /// The most it may be.
        max: f64,
    },
    /// An op there is not.
    #[error(
        "unknown op `{op}` (nop, read, write, read_fixed, write_fixed, recv, send, fsync, timeout, bpf)"
    )]
    UnknownOp {
        /// What the spec said.
        op: String,
    },
    /// A step's `file` naming nothing the spec has.
    #[error("no file, pipe or socketpair named `{name}`")]
    NoFile {
        /// The name.
        name: String,
    },
    /// An op that needs a `file`, without one.
    #[error("`{op}` needs a `file`")]
    NeedsFile {
        /// The op.
        op: String,
    },
    /// An offset that overflows in the last repetition.
    #[error("{start} + {stride} x {last} (the last repetition) overflows 64 bits")]
    StrideOverflow {
        /// The step's offset.
        start: u64,
        /// The chain's stride.
        stride: u64,
        /// The last repetition's number.
        last: u64,
    },
    /// A step's `buffer` naming no buffer.
    #[error("no buffer named `{name}`")]
    NoBuffer {
        /// The name.
        name: String,
    },
    /// A step's range outside its buffer.
    #[error("buf_off {off} + len {len} is outside buffer `{buffer}` ({size} bytes){}",
        if *.last_repetition { " in the last repetition" } else { "" })]
    OutsideBuffer {
        /// The offset (the last repetition's, when the chain repeats).
        off: u64,
        /// The step's `len`.
        len: u32,
        /// The buffer's name.
        buffer: String,
        /// The buffer's size.
        size: u64,
        /// The chain repeats, and `off` is its last repetition's.
        last_repetition: bool,
    },
    /// An op that needs a `buffer`, without one.
    #[error("`{op}` needs a `buffer`")]
    NeedsBuffer {
        /// The op.
        op: String,
    },
    /// A bpf step without a program.
    #[error("a bpf step needs a `program`")]
    BpfNeedsProgram,
}
