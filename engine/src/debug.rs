//! Pause, breakpoints and stepping for a live engine.
//!
//! The engine stops *after* a decision ran and *before* its actions are
//! applied: the decision's event (with every input and helper call) is already
//! out, so a debugger can re-execute it instruction by instruction
//! ([`crate::decision::reexecute`]) while the chain waits; continuing applies
//! the decision. A [`Debugger`] is a cheap handle: the engine thread blocks on
//! it, any other thread (the UI, a socket client) commands it.

pub use ringside_schema::debug::{Breakpoint, Command, DebugState};

use crate::decision::DecisionRecord;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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
