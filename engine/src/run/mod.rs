//! Running chains: the engine, its ring, its chains, and the decisions
//! programs make about them.
//!
//! [`engine`] drives everything: it submits what is queued, reaps
//! completions, asks [`decision`] what each program decides (the one home
//! of helper semantics), applies the actions and issues the next steps.
//! [`chain`] keeps the chains, [`ring`] the io_uring, [`reexecute`] runs a
//! recorded decision again from its record alone.

mod budget;
pub mod chain;
pub mod decision;
pub mod engine;
pub mod error;
mod helpers;
pub mod kernel;
pub mod reexecute;
pub mod ring;
