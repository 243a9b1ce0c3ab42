//! The instruction budget of one decision: which runs must count
//! instructions, and what a broken budget reads as. Shared by live
//! decisions ([`super::decision`]) and re-executed ones
//! ([`super::reexecute`]).

use crate::program::LoadedProgram;
use ringside_schema::decision::{BudgetKind, BudgetViolation, Budgets};

/// Whether decisions of `prog` must count their instructions under
/// `budgets` (its longest path may exceed the instruction budget).
pub fn needs_count(prog: &LoadedProgram, budgets: &Budgets) -> bool {
    prog.report.max_path as u64 > budgets.insns_per_decision
}

/// The instruction limit a decision of `prog` runs with: the budget, when
/// its longest path can exceed it (such a run goes through the interpreter,
/// which counts); none otherwise (nothing to count: the verifier bounded
/// every path).
pub(crate) fn insn_limit(prog: &LoadedProgram, budgets: &Budgets) -> Option<u64> {
    needs_count(prog, budgets).then_some(budgets.insns_per_decision)
}

/// The instruction budget `limit`, broken: the run was stopped as it was
/// about to execute instruction `limit + 1`.
pub fn insn_violation(limit: u64) -> BudgetViolation {
    BudgetViolation {
        kind: BudgetKind::Instructions,
        limit,
        value: limit + 1,
    }
}
