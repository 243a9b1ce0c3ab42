//! The workload file (`ringside run SPEC`): TOML, documented in docs/workload.md.
//!
//! Parsing keeps the byte span of every name and value that can be wrong
//! later (a file name, an opcode, a program), so a semantic error points at
//! `file:line:column` just like a syntax error.

use serde::Deserialize;
use toml::Spanned;

use crate::check::Check;
pub use crate::error::{SpecError, SpecProblem};

/// Turns byte offsets into line:column.
#[derive(Clone, Debug)]
pub struct Locator {
    file: String,
    line_starts: Vec<usize>,
}

impl Locator {
    /// For `text` read from `file`.
    pub fn new(file: &str, text: &str) -> Locator {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator {
            file: file.to_string(),
            line_starts,
        }
    }

    /// An error at byte `offset`.
    pub fn error(&self, offset: usize, problem: impl Into<SpecProblem>) -> SpecError {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let column = offset - self.line_starts[line - 1] + 1;
        SpecError {
            file: self.file.clone(),
            line,
            column,
            problem: problem.into(),
        }
    }

    /// An error at a spanned value.
    pub fn at<T>(&self, v: &Spanned<T>, problem: impl Into<SpecProblem>) -> SpecError {
        self.error(v.span().start, problem)
    }
}

/// The whole workload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Ring settings.
    #[serde(default)]
    pub ring: RingSpec,
    /// Budgets (defaults when absent).
    #[serde(default)]
    pub budgets: Option<BudgetsSpec>,
    /// How chains are fed.
    #[serde(default)]
    pub run: RunSpec,
    /// Files to register.
    #[serde(default, rename = "file")]
    pub files: Vec<FileSpec>,
    /// Pipes (read end registered) with a writer.
    #[serde(default, rename = "pipe")]
    pub pipes: Vec<StreamSpec>,
    /// Socket pairs (one end registered) with a writer on the other.
    #[serde(default, rename = "socketpair")]
    pub socketpairs: Vec<StreamSpec>,
    /// Buffers to register.
    #[serde(default, rename = "buffer")]
    pub buffers: Vec<BufferSpec>,
    /// Programs to load.
    #[serde(default, rename = "program")]
    pub programs: Vec<ProgramSpec>,
    /// Map pre-loads.
    #[serde(default, rename = "map")]
    pub maps: Vec<MapLoadSpec>,
    /// Chains.
    #[serde(default, rename = "chain")]
    pub chains: Vec<ChainSpecToml>,
}

/// `[ring]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingSpec {
    /// SQ entries (power of two).
    #[serde(default = "default_entries")]
    pub entries: Spanned<u32>,
    /// Program for every engine-driven step without its own.
    #[serde(default)]
    pub program: Option<Spanned<String>>,
}

fn default_entries() -> Spanned<u32> {
    Spanned::new(0..0, 256)
}

impl Default for RingSpec {
    fn default() -> Self {
        RingSpec {
            entries: default_entries(),
            program: None,
        }
    }
}

/// `[budgets]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsSpec {
    /// Instructions per decision.
    pub insns_per_decision: Option<Spanned<u64>>,
    /// Submissions per completion.
    pub submits_per_decision: Option<Spanned<u32>>,
    /// Steps per chain.
    pub steps_per_chain: Option<Spanned<u32>>,
    /// Issues of one step.
    pub attempts_per_step: Option<Spanned<u8>>,
}

/// `[run]`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Most chains in flight at once (0: all at once).
    #[serde(default)]
    pub concurrency: u32,
    /// Stop after this many seconds, counted from the start of setup (0 or
    /// absent: when every chain has finished).
    #[serde(default)]
    pub timeout_s: Option<Spanned<f64>>,
}

/// `[[file]]`: an existing file (`path`) or a temporary one (`size` + `content`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Name used by steps and maps.
    pub name: Spanned<String>,
    /// Existing file to open.
    pub path: Option<Spanned<String>>,
    /// Size of a temporary file to create.
    pub size: Option<Spanned<u64>>,
    /// Content of a created file (see [`super::content`]).
    #[serde(default)]
    pub content: Option<Spanned<String>>,
    /// Open for writing too.
    #[serde(default)]
    pub writable: bool,
    /// What `path` is when it is not a regular file: `fifo`, `char` or
    /// `block` (default `file`). Anything else is refused.
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
}

/// `[[pipe]]` / `[[socketpair]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Name used by steps (the registered end).
    pub name: Spanned<String>,
    /// What the writer on the other end writes, if anything.
    #[serde(default)]
    pub writer: Option<WriterSpec>,
    /// Read and discard whatever arrives at the other end (for sends/writes).
    #[serde(default)]
    pub sink: bool,
    /// Put the registered end in non-blocking mode (requests then see -EAGAIN).
    #[serde(default)]
    pub nonblocking: bool,
}

/// A writer thread feeding a pipe or socket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterSpec {
    /// Bytes in total.
    pub total: Spanned<u64>,
    /// Sizes of successive writes, cycled (forces short reads on the other end).
    #[serde(default)]
    pub chunks: Vec<u64>,
    /// Pause between writes.
    #[serde(default)]
    pub interval_ms: Option<Spanned<u64>>,
    /// Wait this long before the first write.
    #[serde(default)]
    pub delay_ms: Option<Spanned<u64>>,
    /// Content (see [`super::content`]).
    #[serde(default)]
    pub content: Option<Spanned<String>>,
    /// Close the write end when done (the reader sees EOF).
    #[serde(default = "yes")]
    pub close: bool,
}

fn yes() -> bool {
    true
}

/// `[[buffer]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSpec {
    /// Name used by steps.
    pub name: Spanned<String>,
    /// Bytes.
    pub size: Spanned<u64>,
}

/// `[[program]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    /// Name used by chains, steps and maps (default: the section's name).
    pub name: Option<Spanned<String>>,
    /// A built-in program name, or a path to a .o (relative to the spec).
    pub object: Spanned<String>,
    /// Program in the object (the `<name>` of `ringside/<name>`; default: the object's only one).
    pub section: Option<Spanned<String>>,
    /// Skip the memory-safety proof.
    #[serde(default)]
    pub trusted: bool,
    /// `compiled` (the default: native code, for verified programs) or
    /// `interpreter`.
    #[serde(default)]
    pub exec: Option<Spanned<String>>,
    /// Accepted for specs written when ringside had a JIT: compiled code is
    /// now the default, `jit = true` asks for it.
    #[serde(default)]
    pub jit: bool,
}

/// `[[map]]`: pre-load entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapLoadSpec {
    /// Program whose map it is.
    pub program: Spanned<String>,
    /// Map name.
    pub map: Spanned<String>,
    /// Entries.
    #[serde(default, rename = "entry")]
    pub entries: Vec<MapEntrySpec>,
}

/// One pre-loaded entry: values are typed fields (see docs/workload.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapEntrySpec {
    /// Key.
    pub key: Spanned<toml::Value>,
    /// Value.
    pub value: Spanned<toml::Value>,
}

/// `[[chain]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpecToml {
    /// Label.
    #[serde(default)]
    pub name: Option<String>,
    /// Program for every step without its own.
    pub program: Option<Spanned<String>>,
    /// `all`, `final` (default) or `none`.
    #[serde(default)]
    pub notify: Option<Spanned<String>>,
    /// `auto` (default), `engine`, `kernel` or `kernel-hard`.
    #[serde(default)]
    pub link: Option<Spanned<String>>,
    /// Wait for earlier chains.
    #[serde(default)]
    pub drain: bool,
    /// Submit this many copies (default 1).
    #[serde(default)]
    pub repeat: Option<Spanned<u64>>,
    /// Added to every step's `off` for each repetition.
    #[serde(default)]
    pub repeat_off_stride: Option<Spanned<u64>>,
    /// Added to every step's `buf_off` for each repetition (so concurrent
    /// copies use their own part of a buffer).
    #[serde(default)]
    pub repeat_buf_stride: Option<Spanned<u64>>,
    /// user_data of the chain (repetition i gets user_data + i).
    #[serde(default)]
    pub user_data: Option<Spanned<u64>>,
    /// Steps.
    #[serde(rename = "step")]
    pub steps: Spanned<Vec<StepSpecToml>>,
}

/// `[[chain.step]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpecToml {
    /// Opcode name (`read`, `write`, `read_fixed`, `recv`, `send`, `nop`,
    /// `fsync`, `timeout`) or `bpf`.
    pub op: Spanned<String>,
    /// File (by name).
    pub file: Option<Spanned<String>>,
    /// Buffer (by name).
    pub buffer: Option<Spanned<String>>,
    /// Offset in the buffer.
    #[serde(default)]
    pub buf_off: u64,
    /// Length.
    #[serde(default)]
    pub len: u32,
    /// File offset (`timeout`: nanoseconds).
    #[serde(default)]
    pub off: u64,
    /// rw/msg/fsync/timeout flags.
    #[serde(default)]
    pub flags: u32,
    /// user_data (default: the chain's).
    pub user_data: Option<u64>,
    /// Program for this step.
    pub program: Option<Spanned<String>>,
}

/// Parse a spec; syntax and type errors carry `file:line:column`.
pub fn parse(file: &str, text: &str) -> Result<(Spec, Locator), SpecError> {
    let max = super::limits::MAX_SPEC_BYTES;
    if text.len() as u64 > max {
        return Err(Locator::new(file, "").error(
            0,
            Check::SpecTooLarge {
                len: text.len(),
                max,
            },
        ));
    }
    let loc = Locator::new(file, text);
    let spec: Spec = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let message = e.message().trim().to_string();
        loc.error(offset, Check::Syntax { message })
    })?;
    Ok((spec, loc))
}
