//! ringside's BPF link engine.
//!
//! After each io_uring completion of a chain, the engine runs a small eBPF
//! program (rbpf, in this process) that decides what happens next: go on,
//! stop, fail, issue new requests, drop or unlink steps, accumulate in maps,
//! post completions to the application. Chains without programs go to the
//! kernel as real `IOSQE_IO_LINK` chains. Everything that happens is an
//! [`event::Event`].

pub use ringside_schema::abi;
pub mod clock;
pub mod debug;
pub mod event;
pub mod fuzzing;
pub mod program;
#[cfg(feature = "remote")]
pub mod remote;
pub mod run;
pub use run::{chain, decision, engine, kernel, ring};

pub use abi::{RsCtx, RsSqe};
pub use chain::{ChainSpec, StepSpec};
pub use engine::{Engine, EngineConfig, EngineError};
pub use event::{Event, EventRecord, LinkMode, Notify};
pub use kernel::Backend;
pub mod progs;
