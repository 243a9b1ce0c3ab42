//! ringside's vocabulary: the types every part of ringside speaks.
//!
//! The program ABI (`struct rs_ctx`, `struct rs_sqe`, decisions, helper ids,
//! io_uring opcodes and their names), the engine's events and decision
//! records, and the debugger's commands: what the engine emits, the probes
//! and recordings carry, and the UI shows. Serde (and thiserror) only: no ring,
//! no VM, so anything may depend on it.

pub mod abi;
pub mod debug;
pub mod decision;
pub mod event;
pub mod exec;
pub mod protocol;
