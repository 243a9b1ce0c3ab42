//! Pause, breakpoints and stepping for a live engine.
//!
//! The engine stops *after* a decision ran and *before* its actions are
//! applied: the decision's event (with every input and helper call) is already
//! out, so a debugger can re-execute it instruction by instruction
//! ([`crate::decision::reexecute`]) while the chain waits; continuing applies
//! the decision. A [`Debugger`] is a cheap handle: the engine thread blocks on
//! it, any other thread (the UI, a socket client) commands it.

use crate::abi::op;
use crate::decision::DecisionRecord;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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

#[derive(Default)]
struct Shared {
    state: DebugState,
    /// Bumped by every command that may release a stopped engine.
    generation: u64,
}

/// A handle on an engine's stop/go state; clone it freely.
#[derive(Clone, Default)]
pub struct Debugger {
    inner: Arc<(Mutex<Shared>, Condvar)>,
}

impl std::fmt::Debug for Debugger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Debugger")
            .field("state", &self.state())
            .finish()
    }
}

impl Debugger {
    /// A debugger that stops nowhere yet.
    pub fn new() -> Debugger {
        Debugger::default()
    }

    /// Current state.
    pub fn state(&self) -> DebugState {
        self.inner.0.lock().expect("debugger lock").state.clone()
    }

    /// Send a command.
    pub fn command(&self, cmd: Command) {
        let (m, cv) = &*self.inner;
        let mut s = m.lock().expect("debugger lock");
        match cmd {
            Command::Pause => s.state.pause_requested = true,
            Command::Continue => {
                s.state.pause_requested = false;
                s.state.stopped_at = None;
            }
            Command::Step => {
                s.state.pause_requested = true;
                s.state.stopped_at = None;
            }
            Command::SetBreakpoints { breakpoints } => s.state.breakpoints = breakpoints,
            Command::Detach => {
                s.state.breakpoints.clear();
                s.state.pause_requested = false;
                s.state.stopped_at = None;
            }
        }
        s.generation += 1;
        cv.notify_all();
    }

    /// Called by the engine after decision `rec` ran: returns why it should
    /// stop, if it should.
    pub(crate) fn should_stop(&self, rec: &DecisionRecord) -> Option<String> {
        let mut s = self.inner.0.lock().expect("debugger lock");
        let why = if s.state.pause_requested {
            Some("paused".to_string())
        } else {
            s.state
                .breakpoints
                .iter()
                .find(|b| b.hits(rec))
                .map(|b| format!("breakpoint: {}", b.describe()))
        };
        if why.is_some() {
            s.state.stopped_at = Some(rec.seq);
            s.state.pause_requested = false;
        }
        why
    }

    /// Block the engine thread until a command releases it, or `give_up`
    /// says to stop waiting (shutdown).
    pub(crate) fn wait(&self, give_up: &dyn Fn() -> bool) {
        let (m, cv) = &*self.inner;
        let mut s = m.lock().expect("debugger lock");
        while s.state.stopped_at.is_some() && !give_up() {
            s = cv
                .wait_timeout(s, Duration::from_millis(100))
                .expect("debugger lock")
                .0;
        }
        s.state.stopped_at = None;
    }
}
