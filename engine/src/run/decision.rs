//! One decision: a program run on one completion, and the helpers' semantics.
//!
//! This is the only implementation of what helpers do. The live engine runs
//! it against the real maps, buffers and clock; replay runs it against the
//! inputs recorded in a decision's event ([`reexecute`]) and compares. A
//! helper never changes a chain directly: it validates its arguments against
//! a [`ChainView`] and appends an [`Action`] the engine applies after the
//! program returns, so a decision that breaks a budget can be discarded whole.

pub use ringside_schema::decision::*;

use super::budget::insn_limit;
pub use super::budget::{insn_violation, needs_count};
use super::helpers::Env;
pub use super::helpers::{InputSource, format_printk};
use super::reexecute::rerun;
pub use super::reexecute::{InputMismatch, ReexecError, Reexecution, maps_for_replay, reexecute};

use crate::abi::{RsCtx, Verdict};
use crate::clock;
use crate::program::LoadedProgram;
use crate::program::interp::InterpError;
use crate::program::maps::Map;
use crate::program::vm::{ExecMode, RunError};

/// Run `f`, and how long it took in nanoseconds when `time`.
#[inline]
fn timed<T>(time: bool, f: impl FnOnce() -> T) -> (T, Option<u64>) {
    if !time {
        return (f(), None);
    }
    let start = clock::now();
    let out = f();
    let end = clock::now();
    (out, Some(clock::nanos_between(start, end)))
}

/// What the engine asks of one decision.
pub struct DecisionRequest<'a> {
    /// Decision number.
    pub seq: u64,
    /// Context.
    pub ctx: RsCtx,
    /// The chain as it stands.
    pub view: ChainView,
    /// What programs may name.
    pub regs: &'a Registrations,
    /// Budgets.
    pub budgets: &'a Budgets,
    /// What to record (someone is listening): the inputs only, or
    /// everything (calls, touches, writes); nothing when `None`.
    pub record: Option<Detail>,
    /// Count instructions even when the budget does not need it (only a
    /// full record is counted: an inputs-only one is counted on demand,
    /// by [`complete`]).
    pub count_insns: bool,
}

/// Run one decision of `prog` against live `maps` (the registry's, indexed by
/// [`MapId`]), with `source` providing the nondeterministic inputs.
pub fn execute(
    prog: &LoadedProgram,
    maps: &mut [Map],
    req: DecisionRequest<'_>,
    source: &mut dyn InputSource,
) -> DecisionRecord {
    let mut rec = DecisionRecord::default();
    let _ = execute_into(prog, maps, req, source, &mut rec);
    rec
}

/// [`execute`] into `out`, reusing its buffers: a caller that keeps one
/// record, and the view this returns for its next request's view, allocates
/// nothing per decision. When the decision is not recorded, `out.view`
/// holds the working copy of the chain view afterwards, not the input.
/// Returns a spent view, whose allocation is there to be reused.
pub fn execute_into(
    prog: &LoadedProgram,
    maps: &mut [Map],
    req: DecisionRequest<'_>,
    source: &mut dyn InputSource,
    out: &mut DecisionRecord,
) -> ChainView {
    let (chain, step) = (req.view.chain, req.view.step);
    let limit = insn_limit(prog, req.budgets);
    let full = req.record == Some(Detail::Full);
    // Compiled code does not count instructions: a count someone asked for
    // needs a re-run under the interpreter, which needs the recorded inputs.
    let count =
        full && req.count_insns && prog.exec_mode() == ExecMode::Compiled && limit.is_none();
    let wanted = req.record;
    let record = if count { Some(Detail::Full) } else { wanted };
    let mut calls = std::mem::take(&mut out.calls);
    let mut actions = std::mem::take(&mut out.actions);
    let mut touched = std::mem::take(&mut out.touched);
    let mut writes = std::mem::take(&mut out.map_writes);
    calls.clear();
    actions.clear();
    touched.clear();
    writes.clear();
    let DecisionRequest {
        seq,
        ctx,
        view,
        regs,
        budgets,
        ..
    } = req;
    // The input view is only needed to replay a recorded decision.
    if record.is_some() {
        out.view.clone_from(&view);
    }
    let mut env = Env::new(
        prog,
        maps,
        Some(&prog.maps),
        regs,
        budgets,
        view,
        source,
        record,
    );
    (env.calls, env.actions, env.touched, env.writes) = (calls, actions, touched, writes);
    let mut ctx_bytes = ctx.to_bytes();
    let (ret, ns) = timed(true, || {
        prog.vm()
            .execute(&mut ctx_bytes, prog.regions(), &mut env, limit)
    });
    let duration_ns = ns.unwrap_or(0);
    env.collect_direct_writes();
    let Env {
        calls,
        actions,
        touched,
        writes,
        violation,
        view: working,
        ..
    } = env;
    let spent = if record.is_none() {
        std::mem::replace(&mut out.view, working)
    } else {
        working
    };
    out.seq = seq;
    out.prog = prog.id.0;
    // Names are for people reading events; nobody reads an unrecorded one,
    // and an inputs-only record gets its name where it is completed.
    out.prog_name.clear();
    if wanted == Some(Detail::Full) {
        out.prog_name.push_str(&prog.name);
    }
    out.chain = chain;
    out.step = step;
    out.ctx = ctx;
    out.touched = touched;
    out.calls = calls;
    out.map_writes = writes;
    out.actions = actions;
    out.ret = ret.as_ref().map_or(0, |r| r.ret);
    // The interpreter counts as it runs (a budget that needs counting):
    // that count is kept even in an inputs-only record, as it is free.
    out.insns = ret
        .as_ref()
        .ok()
        .and_then(|r| r.insns)
        .filter(|_| req.count_insns || wanted == Some(Detail::Inputs));
    out.duration_ns = duration_ns;
    out.exec = if limit.is_some() {
        ExecMode::Interpreter
    } else {
        prog.exec_mode()
    };
    out.detail = wanted.unwrap_or(Detail::Full);
    if count && ret.is_ok() {
        // Re-run under the counting interpreter with the recorded inputs.
        // Nothing of the re-run but its count is kept: it records nothing.
        match rerun(prog, out, regs, budgets, None, false) {
            Ok(r) => out.insns = Some(r.insns),
            Err(e) => {
                out.result = DecisionResult::VmError {
                    message: format!("re-execution for counting failed: {e}"),
                };
                return spent;
            }
        }
    }
    out.result = result_of(ret.map(|r| r.ret), violation);
    if wanted.is_none() {
        // Recording was only for counting; nobody wants the details.
        out.calls.clear();
        out.touched.clear();
        out.map_writes.clear();
    }
    spent
}

/// Why an inputs-only record could not be completed ([`complete`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    /// The re-run stopped the program where the engine's run did not.
    #[error("decision #{seq}: re-running it from its inputs failed: {error}")]
    Reexec {
        /// Decision number.
        seq: u64,
        /// What stopped it.
        error: ReexecError,
    },
    /// The record's inputs are not what the program asks for.
    #[error("decision #{seq}: {mismatch}")]
    Inputs {
        /// Decision number.
        seq: u64,
        /// The first input that did not fit.
        mismatch: InputMismatch,
    },
    /// The re-run decided otherwise than the engine did (a bug: a decision
    /// is a function of its inputs).
    #[error(
        "decision #{seq}: re-run from its inputs it {what} {replayed}, the engine's run {recorded}"
    )]
    Diverged {
        /// Decision number.
        seq: u64,
        /// What differs ("returned", "asked for").
        what: &'static str,
        /// The engine's value.
        recorded: String,
        /// The re-run's.
        replayed: String,
    },
}

/// Fill in what an inputs-only record ([`Detail::Inputs`]) leaves out, by
/// running the decision again from its inputs under the interpreter: every
/// helper call with its arguments, the map writes, the instruction count,
/// the program's name. A full record is left as it is. Where a decision
/// is shown or checked, this is what makes watching the engine cheap.
pub fn complete(
    prog: &LoadedProgram,
    rec: &mut DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
) -> Result<(), CompleteError> {
    if rec.detail == Detail::Full {
        return Ok(());
    }
    let seq = rec.seq;
    let r = rerun(prog, rec, regs, budgets, None, true)
        .map_err(|error| CompleteError::Reexec { seq, error })?;
    if let Some(mismatch) = r.input_mismatch {
        return Err(CompleteError::Inputs { seq, mismatch });
    }
    let diverged = |what, recorded: String, replayed: String| CompleteError::Diverged {
        seq,
        what,
        recorded,
        replayed,
    };
    // A VM error's r0 means nothing; its actions are discarded anyway.
    if !matches!(rec.result, DecisionResult::VmError { .. }) {
        if r.ret != rec.ret {
            return Err(diverged("returned", rec.ret.to_string(), r.ret.to_string()));
        }
        if r.actions != rec.actions {
            return Err(diverged(
                "asked for",
                format!("{:?}", rec.actions),
                format!("{:?}", r.actions),
            ));
        }
    }
    rec.calls = r.calls;
    rec.map_writes = r.map_writes;
    rec.insns = Some(r.insns);
    rec.prog_name.clear();
    rec.prog_name.push_str(&prog.name);
    rec.detail = Detail::Full;
    Ok(())
}

/// Working buffers of unrecorded decisions, reused from one to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The chain view the next decision sees (fill it before each run;
    /// helpers update it as they go).
    pub view: ChainView,
    /// The actions of the last decision.
    pub actions: Vec<Action>,
}

/// Run a decision that nobody records: the same helper semantics as [`execute`],
/// without building a [`DecisionRecord`]. The actions are left in
/// `scratch.actions` (to be applied only when the result is a verdict).
/// With `time`, the program's run is timed (as [`DecisionRecord::duration_ns`]
/// is) and its nanoseconds returned.
#[allow(clippy::too_many_arguments)]
pub fn execute_unrecorded(
    prog: &LoadedProgram,
    maps: &mut [Map],
    ctx: &RsCtx,
    regs: &Registrations,
    budgets: &Budgets,
    source: &mut dyn InputSource,
    scratch: &mut Scratch,
    time: bool,
) -> (DecisionResult, Option<u64>) {
    let mut actions = std::mem::take(&mut scratch.actions);
    actions.clear();
    let view = std::mem::take(&mut scratch.view);
    let mut env = Env::new(
        prog,
        maps,
        Some(&prog.maps),
        regs,
        budgets,
        view,
        source,
        None,
    );
    env.actions = actions;
    let mut ctx_bytes = ctx.to_bytes();
    let limit = insn_limit(prog, budgets);
    let (ret, ns) = timed(time, || {
        prog.vm()
            .execute(&mut ctx_bytes, prog.regions(), &mut env, limit)
    });
    scratch.view = env.view;
    scratch.actions = env.actions;
    (result_of(ret.map(|r| r.ret), env.violation), ns)
}

/// How a run ended, from r0 (or the VM's error) and a broken budget.
fn result_of(ret: Result<u64, RunError>, violation: Option<BudgetViolation>) -> DecisionResult {
    match (ret, violation) {
        (Err(RunError::Interp(InterpError::InsnLimit { limit })), _) => DecisionResult::Budget {
            violation: insn_violation(limit),
        },
        (Err(e), _) => DecisionResult::VmError {
            message: e.to_string(),
        },
        (Ok(_), Some(violation)) => DecisionResult::Budget { violation },
        (Ok(r), None) => match Verdict::from_ret(r) {
            Some(verdict) => DecisionResult::Verdict { verdict },
            None => DecisionResult::BadReturn { ret: r },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_timer_counts_nanoseconds() {
        // Only the lower bound is the clock's promise (a sleep lasts at
        // least as long as asked); the upper one catches a unit mistake.
        let ((), ns) = timed(true, || {
            std::thread::sleep(std::time::Duration::from_millis(3))
        });
        let ns = ns.expect("timed");
        assert!((3_000_000..60_000_000_000).contains(&ns), "{ns} ns");
        assert_eq!(timed(false, || 7), (7, None));
    }
}
