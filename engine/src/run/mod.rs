//! Running chains: the engine, its ring, its chains, and the decisions
//! programs make about them.

pub mod error;
