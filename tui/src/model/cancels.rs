//! Cancellations and drops, grouped by cause.

#[allow(unused_imports)]
use super::*;

use ringside_engine::abi::op;
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

/// (group, detail) of an engine cancellation. `step` names a step of the
/// chain in words (`step 0 (read, user_data 100) came back short: res 3000
/// of 8192`), so the detail says which request broke the chain and how.
pub fn describe_cancel(
    cause: &CancelCause,
    issued: bool,
    step: &dyn Fn(u32) -> String,
) -> (String, String) {
    let where_ = if issued {
        "was in the kernel"
    } else {
        "never issued"
    };
    match cause {
        CancelCause::KernelLink { failed_step } => (
            "kernel link broke".into(),
            format!("{}; the kernel cancelled the rest", step(*failed_step)),
        ),
        CancelCause::LinkFailed { failed_step } => (
            "engine link failed".into(),
            format!("{}, and no program decides ({where_})", step(*failed_step)),
        ),
        CancelCause::ProgramFail { decision, step: s } => (
            "program: RS_FAIL".into(),
            format!(
                "decision #{decision} failed the chain after {} ({where_})",
                step(*s)
            ),
        ),
        CancelCause::ProgramStop { decision, step: s } => (
            "program: RS_STOP".into(),
            format!(
                "decision #{decision} ended the chain early after {} ({where_})",
                step(*s)
            ),
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
            format!(
                "the kernel refused the submission: {}",
                neg_errno(-errno.abs())
            ),
        ),
    }
}

/// A negative result as `-EIO` (or `-4095` when it has no name here).
pub fn neg_errno(res: i32) -> String {
    let e = errno_name(res);
    if e.starts_with('-') {
        e
    } else {
        format!("-{e}")
    }
}

/// -errno as a name (`EIO`); other values as numbers.
pub fn errno_name(res: i32) -> String {
    let name = match -res {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        28 => "ENOSPC",
        32 => "EPIPE",
        62 => "ETIME",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        125 => "ECANCELED",
        _ => return res.to_string(),
    };
    name.to_string()
}

impl Model {
    /// A step of a chain in words a person can act on: its place, opcode
    /// and user_data, and what it returned (`step 0 (read, user_data 100)
    /// came back short: res 3000 of 8192`, `... failed: -EIO`).
    pub(super) fn step_in_words(&self, epoch: u32, chain: u64, step: u32) -> String {
        let Some(n) = self
            .chains
            .get(&(epoch, chain))
            .and_then(|c| c.nodes.get(step as usize))
        else {
            return format!("step {step}");
        };
        let what = format!(
            "step {step} ({}, user_data {})",
            op::name(n.sqe.opcode),
            n.sqe.user_data
        );
        match n.res {
            None => what,
            Some(res) if n.state == NodeState::Short => {
                format!("{what} came back short: res {res} of {}", n.sqe.len)
            }
            Some(res) if res < 0 => format!("{what} failed: {}", neg_errno(res)),
            Some(res) => format!("{what} returned {res}"),
        }
    }

    /// Why an engine request was cancelled or dropped, in the words its
    /// Cancels entry uses (`group: detail`); `None` when it was not.
    pub fn engine_why(&self, epoch: u32, chain: u64, step: u32) -> Option<String> {
        let n = self.chains.get(&(epoch, chain))?.nodes.get(step as usize)?;
        let (group, detail) = describe_cancel(n.cause.as_ref()?, n.cancel_issued, &|s| {
            self.step_in_words(epoch, chain, s)
        });
        Some(format!("{group}: {detail}"))
    }

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
