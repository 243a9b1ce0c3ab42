//! Cancellations and drops, grouped by cause.

#[allow(unused_imports)]
use super::*;

use ringside_engine::event::CancelCause;
use std::collections::VecDeque;

/// A cancelled or dropped request.
#[derive(Clone, Debug, PartialEq)]
pub struct CancelEntry {
    /// Timeline time.
    pub t_ns: u64,
    /// Which request ("e1 chain 7 step 2", "kernel req 4").
    pub what: String,
    /// The cause in words.
    pub detail: String,
    /// The chain row, when it is still kept.
    pub row: Option<RowKey>,
}

/// Cancellations of one cause.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CancelGroup {
    /// How many, since the start.
    pub count: u64,
    /// The most recent ones.
    pub recent: VecDeque<CancelEntry>,
}

/// (group, detail) of an engine cancellation.
pub fn describe_cancel(cause: &CancelCause, issued: bool) -> (String, String) {
    let where_ = if issued {
        "was in the kernel"
    } else {
        "never issued"
    };
    match cause {
        CancelCause::KernelLink { failed_step } => (
            "kernel link broke".into(),
            format!("step {failed_step} failed/short: the kernel cancelled the rest"),
        ),
        CancelCause::LinkFailed { failed_step } => (
            "engine link failed".into(),
            format!("step {failed_step} failed with no program to decide ({where_})"),
        ),
        CancelCause::ProgramFail { decision, step } => (
            "program: RS_FAIL".into(),
            format!("decision #{decision} on step {step} failed the chain ({where_})"),
        ),
        CancelCause::ProgramStop { decision, step } => (
            "program: RS_STOP".into(),
            format!("decision #{decision} on step {step} finished the chain early ({where_})"),
        ),
        CancelCause::Dropped { decision } => (
            "program: rs_drop".into(),
            format!("decision #{decision} dropped it ({where_})"),
        ),
        CancelCause::ProgramError { decision, reason } => (
            "program error".into(),
            format!("decision #{decision}: {reason} ({where_})"),
        ),
        CancelCause::Budget {
            decision,
            violation,
        } => (
            format!("budget: {}", violation.kind),
            format!("decision #{decision}: {violation} ({where_})"),
        ),
        CancelCause::Shutdown => ("shutdown".into(), format!("engine shut down ({where_})")),
        CancelCause::SubmitFailed { errno } => (
            "submit failed".into(),
            format!("the kernel refused the submission: errno {errno}"),
        ),
    }
}

impl Model {
    pub(super) fn add_cancel(&mut self, group: String, entry: CancelEntry) {
        let g = self.cancels.entry(group).or_default();
        g.count += 1;
        g.recent.push_back(entry);
        let cap = (self.history_cap / 50).clamp(200, 20_000);
        while g.recent.len() > cap {
            g.recent.pop_front();
        }
    }
}
