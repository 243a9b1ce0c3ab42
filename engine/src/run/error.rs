//! What the engine's API refuses, one variant per cause, each carrying the
//! values its message prints.

use crate::program::elf::LoadError;
use crate::program::maps::MapError;

/// Errors of the engine API.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The kernel said no. (The message is the cause's: printed with `{:#}`
    /// the chain shows it once.)
    #[error("{what}: {error}")]
    Io {
        /// What we were doing.
        what: RingCall,
        /// The error.
        error: std::io::Error,
    },
    /// The ring size is not one io_uring takes.
    #[error("entries = {entries}: must be a power of two in 1..=32768")]
    Entries {
        /// What was asked.
        entries: u32,
    },
    /// No program with this id was loaded.
    #[error("no program {0}")]
    NoProgram(u32),
    /// No map with this id exists.
    #[error("no map {0}")]
    NoMap(u32),
    /// A chain without steps.
    #[error("a chain needs at least one step")]
    EmptyChain,
    /// A chain longer than the steps-per-chain budget.
    #[error("{steps} steps is more than the steps-per-chain budget ({budget})")]
    TooManySteps {
        /// Steps asked for.
        steps: usize,
        /// The budget.
        budget: u32,
    },
    /// A step's template names what a program could not.
    #[error("step {step}: {why}")]
    BadStep {
        /// Step index.
        step: usize,
        /// What is wrong with it.
        why: StepProblem,
    },
    /// A kernel-linked chain asked for what only the engine can drive.
    #[error("{0}")]
    NotKernelLinkable(KernelLinkProblem),
    /// The engine's own bookkeeping went wrong (a bug, reported, not hidden).
    #[error("{chains} chains are stuck with nothing in flight (an engine bug)")]
    Stuck {
        /// Chains left.
        chains: usize,
    },
    /// A program could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A map operation failed.
    #[error("map: {0}")]
    Map(MapError),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The kernel backend (see [`crate::kernel`]).
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
}

/// Why a step's template is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepProblem {
    /// Its opcode is not on the allow-list.
    #[error("opcode {opcode} ({name}) is not on the allow-list")]
    Opcode {
        /// The opcode.
        opcode: u8,
        /// Its name.
        name: &'static str,
    },
    /// Its file is not a registered-file index.
    #[error("fd {fd} is not a registered-file index ({files} registered)")]
    File {
        /// The fd it names.
        fd: i32,
        /// Files registered.
        files: u32,
    },
    /// Its buffer is not registered.
    #[error("buf_index {0} is not a registered buffer")]
    Buffer(u16),
    /// Its range is outside its buffer.
    #[error("buf_off {off} + len {len} is outside buffer {buf} ({size} bytes)")]
    Range {
        /// Offset in the buffer.
        off: u64,
        /// Length.
        len: u32,
        /// Buffer index.
        buf: u16,
        /// Buffer size.
        size: u64,
    },
    /// A bpf step without a program of its own.
    #[error("a bpf step needs its own program")]
    BpfWithoutProgram,
}

/// Why a chain cannot be a kernel link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelLinkProblem {
    /// It has programs.
    #[error("a kernel-linked chain cannot have programs (use link = \"engine\" or \"auto\")")]
    Programs,
    /// It has bpf steps.
    #[error("bpf steps need an engine-driven chain")]
    BpfSteps,
    /// It does not fit the ring.
    #[error("a kernel link of {steps} steps does not fit a ring of {entries} entries")]
    TooLong {
        /// Steps.
        steps: usize,
        /// SQ entries.
        entries: u32,
    },
}

impl From<MapError> for EngineError {
    fn from(e: MapError) -> Self {
        EngineError::Map(e)
    }
}

/// What the engine asked of the ring when the kernel said no
/// ([`EngineError::Io`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingCall {
    /// Creating the ring (`io_uring_setup`, registering files and buffers).
    #[error("setting up the io_uring")]
    Setup,
    /// Submitting or waiting (`io_uring_enter`).
    #[error("io_uring_enter")]
    Enter,
    /// Queueing the cancel that ends in-flight requests at shutdown.
    #[error("queueing the shutdown cancel")]
    ShutdownCancel,
}

/// `EngineError::Io` for `what`.
pub(crate) fn io_err(what: RingCall) -> impl FnOnce(std::io::Error) -> EngineError {
    move |error| EngineError::Io { what, error }
}
