//! The debugger's vocabulary: where to stop, what a debugger may ask, and
//! what it is told. The engine's `debug` module implements it; the socket
//! protocol and the UI speak it.

use crate::abi::op;
use crate::decision::DecisionRecord;
use serde::{Deserialize, Serialize};

/// Where to stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum Breakpoint {
    /// Every decision of this program.
    Program {
        /// Program id.
        prog: u32,
    },
    /// Every decision about this chain.
    Chain {
        /// Chain id.
        chain: u64,
    },
    /// Decisions whose input is a short transfer (`0 <= res < len`).
    ShortResult,
    /// Decisions whose input is an error (`res < 0`).
    NegativeResult,
    /// Decisions whose input has this opcode.
    Opcode {
        /// IORING_OP_*.
        opcode: u8,
    },
}

impl Breakpoint {
    /// Whether a decision hits it.
    pub fn hits(&self, rec: &DecisionRecord) -> bool {
        match self {
            Breakpoint::Program { prog } => rec.prog == *prog,
            Breakpoint::Chain { chain } => rec.chain == *chain,
            Breakpoint::ShortResult => rec.ctx.res >= 0 && (rec.ctx.res as u32) < rec.ctx.len,
            Breakpoint::NegativeResult => rec.ctx.res < 0,
            Breakpoint::Opcode { opcode } => rec.ctx.opcode == *opcode,
        }
    }

    /// Human description.
    pub fn describe(&self) -> String {
        match self {
            Breakpoint::Program { prog } => format!("program {prog}"),
            Breakpoint::Chain { chain } => format!("chain {chain}"),
            Breakpoint::ShortResult => "res < len".into(),
            Breakpoint::NegativeResult => "res < 0".into(),
            Breakpoint::Opcode { opcode } => format!("opcode {}", op::name(*opcode)),
        }
    }
}

/// What a debugger asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Stop at the next decision.
    Pause,
    /// Go on until a breakpoint (or a pause).
    Continue,
    /// Apply this decision and stop at the next one.
    Step,
    /// Replace the breakpoints.
    SetBreakpoints {
        /// The new list.
        breakpoints: Vec<Breakpoint>,
    },
    /// Drop breakpoints and any pause; go on (the debugger is leaving).
    Detach,
}

/// What the engine is doing, as far as a debugger is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugState {
    /// Stop at the next decision.
    pub pause_requested: bool,
    /// Decision the engine is stopped at.
    pub stopped_at: Option<u64>,
    /// Breakpoints.
    pub breakpoints: Vec<Breakpoint>,
}
