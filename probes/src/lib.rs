//! ringside kernel tracepoint probes: attach to any process's io_uring rings.
//!
//! - [`discover()`](fn@discover): a process's io_uring fds and their `/proc/PID/fdinfo`.
//! - [`Probes`]: BPF programs on the io_uring tracepoints, filtered in the
//!   kernel by tgid (and optionally ring), delivering [`ProbeEvent`]s.
//! - [`graph::RequestGraph`]: requests, link chains, states over time and
//!   cancellations with their causes, rebuilt from the events.
//! - [`trace::trace`]: a whole trace, attach to summary, as typed lines (what
//!   `ringside attach --pid PID --headless` prints).
//!
//! The BPF side is C (`bpf/probes.bpf.c`), built by clang into the committed
//! `bpf/probes.bpf.o` (`make -C probes/bpf`). See docs/probes.md.
//!
//! ```no_run
//! use ringside_probes::{AttachOptions, Probes};
//! use std::time::Duration;
//! let mut p = Probes::attach(AttachOptions { pids: vec![1234], ..Default::default() })?;
//! loop {
//!     p.poll(Duration::from_millis(100), |ev| println!("{}", serde_json::to_string(&ev).unwrap()))?;
//! }
//! # Ok::<(), ringside_probes::ProbeError>(())
//! ```

#![warn(missing_docs)]

pub mod btf;
pub mod counters;
pub mod discover;
pub mod error;
pub mod event;
pub mod graph;
pub mod kinds;
pub mod session;
pub mod trace;
pub mod tracefs;

pub use counters::{Counters, Counts, RingCounts};
pub use discover::{Fdinfo, RingDirectory, RingFd, discover};
pub use error::ProbeError;
pub use event::{Header, ProbeEvent, Ptr};
pub use graph::RequestGraph;
pub use kinds::KindSet;
pub use session::{AttachOptions, Probes};
