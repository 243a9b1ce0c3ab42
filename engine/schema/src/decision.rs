//! A decision's record: the inputs a program run saw (enough to run it
//! again) and what it did. The engine fills it in (engine's `decision`
//! module, the one home of helper semantics); recordings store it; the UI
//! and `ringside check` read it.

use crate::abi::{RsCtx, RsSqe, Verdict, Where, helper_id};
use crate::exec::ExecMode;
use serde::{Deserialize, Serialize};

/// What programs may name: registered files and buffers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrations {
    /// Number of registered files (valid indexes are 0..files).
    pub files: u32,
    /// Size of each registered buffer.
    pub buffers: Vec<u64>,
}

/// Limits that stop runaway programs; breaking one fails the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Instructions one decision may execute.
    pub insns_per_decision: u64,
    /// `rs_submit` calls one decision may make.
    pub submits_per_decision: u32,
    /// Steps a chain may have in total.
    pub steps_per_chain: u32,
    /// Issues of one step (first issue + resubmissions).
    pub attempts_per_step: u8,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            insns_per_decision: 4096,
            submits_per_decision: 16,
            steps_per_chain: 4096,
            attempts_per_step: 32,
        }
    }
}

/// Which budget was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Instructions per decision.
    Instructions,
    /// Submissions per completion.
    SubmitsPerDecision,
    /// Steps per chain.
    StepsPerChain,
    /// Resubmissions of one step.
    AttemptsPerStep,
}

impl std::fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BudgetKind::Instructions => "instructions per decision",
            BudgetKind::SubmitsPerDecision => "submissions per completion",
            BudgetKind::StepsPerChain => "steps per chain",
            BudgetKind::AttemptsPerStep => "resubmissions of one step",
        })
    }
}

/// A broken budget: which, its limit, and the value that broke it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetViolation {
    /// Which budget.
    pub kind: BudgetKind,
    /// Its limit.
    pub limit: u64,
    /// What the program tried.
    pub value: u64,
}

impl std::fmt::Display for BudgetViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "budget exceeded: {} ({} > {})",
            self.kind, self.value, self.limit
        )
    }
}

/// A step not yet issued, as a decision sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStep {
    /// Index in the chain.
    pub index: u32,
    /// Already dropped.
    pub dropped: bool,
    /// Already unlinked.
    pub unlinked: bool,
}

/// The part of a chain a decision may act on; recorded with the decision so
/// it can be re-executed from its event alone.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainView {
    /// Chain id.
    pub chain: u64,
    /// Index of the completed step.
    pub step: u32,
    /// Steps in the chain.
    pub nsteps: u32,
    /// Opcode of the completed step (resubmission detection).
    pub opcode: u8,
    /// Registered-file index of the completed step.
    pub fd: i32,
    /// Attempt number of the completed step.
    pub attempt: u8,
    /// Steps not yet issued.
    pub pending: Vec<PendingStep>,
}

// By hand for `clone_from`, which keeps the destination's allocation: the
// engine copies a view into a reused one for every watched decision.
impl Clone for ChainView {
    fn clone(&self) -> ChainView {
        ChainView {
            pending: self.pending.clone(),
            ..*self
        }
    }

    fn clone_from(&mut self, src: &ChainView) {
        let ChainView {
            chain,
            step,
            nsteps,
            opcode,
            fd,
            attempt,
            pending,
        } = src;
        (self.chain, self.step, self.nsteps) = (*chain, *step, *nsteps);
        (self.opcode, self.fd, self.attempt) = (*opcode, *fd, *attempt);
        self.pending.clone_from(pending);
    }
}

/// A change a decision asks for; applied by the engine after the program returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Insert a new step.
    Submit {
        /// Index it gets in the chain.
        index: u32,
        /// Placement.
        place: Where,
        /// Template.
        sqe: RsSqe,
        /// Attempt number it will carry.
        attempt: u8,
    },
    /// Drop an unissued step.
    Drop {
        /// Step index.
        step: u32,
    },
    /// Make a step independent of what follows.
    Unlink {
        /// Step index.
        step: u32,
    },
    /// Post a completion to the application.
    Emit {
        /// user_data.
        user_data: u64,
        /// Result.
        res: i32,
        /// Flags.
        flags: u32,
    },
    /// Set the result the chain's final completion reports.
    SetRes {
        /// Result.
        res: i32,
    },
}

/// What a helper call saw and did, beyond its raw arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CallDetail {
    /// Nothing more to say (argument errors).
    None,
    /// `bpf_map_lookup_elem`.
    MapLookup {
        /// Object-local map index.
        map: u32,
        /// Key bytes.
        key: Vec<u8>,
        /// Value at lookup time, if found.
        value: Option<Vec<u8>>,
    },
    /// `bpf_map_update_elem`.
    MapUpdate {
        /// Map.
        map: u32,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// Flags.
        flags: u64,
    },
    /// `bpf_map_delete_elem`.
    MapDelete {
        /// Map.
        map: u32,
        /// Key.
        key: Vec<u8>,
    },
    /// `bpf_ktime_get_ns`: the value returned.
    Ktime {
        /// Nanoseconds.
        ns: u64,
    },
    /// `bpf_trace_printk`: the formatted text.
    Printk {
        /// Text.
        text: String,
    },
    /// `rs_submit`.
    Submit {
        /// Template as read.
        sqe: RsSqe,
        /// `where`.
        place: u64,
    },
    /// `rs_drop`.
    Drop {
        /// Step.
        step: u64,
    },
    /// `rs_unlink`.
    Unlink {
        /// Step.
        step: u64,
    },
    /// `rs_emit`.
    Emit {
        /// user_data.
        user_data: u64,
        /// res.
        res: i32,
        /// flags.
        flags: u32,
    },
    /// `rs_read_buf`: the bytes copied out (a nondeterministic input).
    ReadBuf {
        /// Buffer index.
        buf_index: u16,
        /// Offset.
        off: u64,
        /// Bytes copied (empty on error).
        data: Vec<u8>,
    },
    /// `rs_set_res`.
    SetRes {
        /// Result.
        res: i32,
    },
}

/// One helper call of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperCall {
    /// Helper id.
    pub helper: u32,
    /// r1..r5; pointer arguments are recorded as 0 (addresses differ run to run).
    pub args: [u64; 5],
    /// r0; for `bpf_map_lookup_elem`, 1 when found and 0 when not (not the address).
    pub ret: i64,
    /// What it saw and did.
    pub detail: CallDetail,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A map entry as it was when a decision first touched it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapTouch {
    /// Object-local map index.
    pub map: u32,
    /// Key.
    pub key: Vec<u8>,
    /// Value before, if present.
    pub before: Option<Vec<u8>>,
    /// Entries in the map before (hash maps: decides whether an insert finds it full).
    pub len_before: u32,
}

/// A change to a map entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapWrite {
    /// Object-local map index.
    pub map: u32,
    /// Key.
    pub key: Vec<u8>,
    /// Value before (None: absent).
    pub before: Option<Vec<u8>>,
    /// Value after (None: deleted).
    pub after: Option<Vec<u8>>,
}

/// How a decision ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DecisionResult {
    /// A valid decision.
    Verdict {
        /// Which.
        verdict: Verdict,
    },
    /// The program returned something that is not a decision.
    BadReturn {
        /// r0.
        ret: u64,
    },
    /// The VM stopped it (out-of-bounds access of a trusted program, ...).
    VmError {
        /// rbpf's message.
        message: String,
    },
    /// It broke a budget.
    Budget {
        /// Which and by how much.
        violation: BudgetViolation,
    },
}

impl DecisionResult {
    /// The verdict, when the decision was valid.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            DecisionResult::Verdict { verdict } => Some(*verdict),
            _ => None,
        }
    }
}

/// Everything about one decision: its inputs (enough to re-execute it) and what it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Decision number in its engine, from 0. (Named `decision` on the wire:
    /// an event's own `seq` sits next to it in JSON.)
    #[serde(rename = "decision")]
    pub seq: u64,
    /// Program.
    pub prog: u32,
    /// Program name.
    pub prog_name: String,
    /// Chain.
    pub chain: u64,
    /// Step the decision is about.
    pub step: u32,
    /// The context.
    pub ctx: RsCtx,
    /// The chain as the decision saw it.
    pub view: ChainView,
    /// Map entries as first touched.
    pub touched: Vec<MapTouch>,
    /// Helper calls in order.
    pub calls: Vec<HelperCall>,
    /// Map changes.
    pub map_writes: Vec<MapWrite>,
    /// Actions it asked for (applied only when the result is a verdict).
    pub actions: Vec<Action>,
    /// r0.
    pub ret: u64,
    /// How it ended.
    pub result: DecisionResult,
    /// Instructions executed, when counted.
    pub insns: Option<u64>,
    /// Wall time of the program run in ns (not part of replay comparison).
    pub duration_ns: u64,
    /// Interpreter or JIT.
    pub exec: ExecMode,
    /// What the record holds: everything, or only the inputs (the rest is
    /// recomputed from them on demand).
    #[serde(default, skip_serializing_if = "Detail::is_full")]
    pub detail: Detail,
}

/// How much of a decision its record holds.
///
/// Watching must not slow the engine: a listener that only shows or stores
/// decisions gets [`Detail::Inputs`] records, which hold what a re-run
/// cannot recompute, and recomputes the rest where it is shown or checked
/// (the engine's `decision::complete`). A script that reads helper calls
/// from events asks for [`Detail::Full`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// Only the inputs: `ctx`, `view`, `touched` (the map entries as first
    /// touched), and among `calls` only those whose result is an input
    /// (`bpf_ktime_get_ns` with its value, `rs_read_buf` with the bytes it
    /// copied when it succeeded); plus the outcome (`ret`, `result`, `actions`). `prog_name`
    /// is empty, `map_writes` empty, `insns` counted only when the budget
    /// made the run count anyway.
    Inputs,
    /// Everything: every helper call with its arguments, the map writes,
    /// the instruction count.
    #[default]
    Full,
}

impl Detail {
    /// Whether a record of this detail keeps the calls of helper `id`:
    /// an inputs-only one keeps only those whose results are inputs.
    pub fn keeps_call(self, id: u32) -> bool {
        match self {
            Detail::Full => true,
            Detail::Inputs => matches!(id, helper_id::KTIME_GET_NS | helper_id::RS_READ_BUF),
        }
    }

    /// True for [`Detail::Full`] (serde: the field is left out then, so
    /// events read as they did before inputs-only records existed).
    pub fn is_full(&self) -> bool {
        *self == Detail::Full
    }
}

impl Default for DecisionRecord {
    fn default() -> Self {
        DecisionRecord {
            seq: 0,
            prog: 0,
            prog_name: String::new(),
            chain: 0,
            step: 0,
            ctx: RsCtx::default(),
            view: ChainView::default(),
            touched: Vec::new(),
            calls: Vec::new(),
            map_writes: Vec::new(),
            actions: Vec::new(),
            ret: 0,
            result: DecisionResult::Verdict {
                verdict: Verdict::Next,
            },
            insns: None,
            duration_ns: 0,
            exec: ExecMode::Interpreter,
            detail: Detail::Full,
        }
    }
}
