//! The event stream's vocabulary: everything the engine does, as typed
//! events. The engine emits them (its `event` module is the bus), the UI,
//! recordings and `--headless` output consume them; live and replay differ
//! only in where they come from.

use crate::abi::{RsSqe, Where};
use crate::decision::{BudgetViolation, Budgets, DecisionRecord, Registrations};
use crate::exec::ExecMode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Kind of map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapKind {
    /// Hash table keyed by arbitrary bytes.
    Hash,
    /// Array indexed by a `u32` key; every entry exists.
    Array,
}

/// How a chain reaches the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// Engine-driven when any program applies to the chain, kernel link otherwise.
    #[default]
    Auto,
    /// Engine-driven soft links: one step in flight, a decision after each.
    Engine,
    /// A kernel `IOSQE_IO_LINK` chain in one submission.
    Kernel,
    /// A kernel `IOSQE_IO_HARDLINK` chain (failures do not cancel the rest).
    KernelHard,
}

/// Who hears about a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Every completion, cancellation and engine-issued request posts a completion, plus the final one.
    All,
    /// One completion when the chain ends.
    #[default]
    Final,
    /// Nothing (only explicit `rs_emit`).
    None,
}

/// What kind of step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// An io_uring request.
    #[default]
    Io,
    /// A `bpf` step: runs its program instead of IO (the proposal's "new opcode").
    Bpf,
}

/// A step as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    /// Index in the chain.
    pub index: u32,
    /// Io or Bpf.
    pub kind: StepKind,
    /// Request template.
    pub sqe: RsSqe,
    /// Program attached to this step only.
    pub program: Option<u32>,
}

/// Why a step was cancelled or dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum CancelCause {
    /// The kernel cancelled it: an earlier step of its kernel link failed.
    KernelLink {
        /// The step whose failure broke the link.
        failed_step: u32,
    },
    /// Engine-driven chain, no program on the failing step: kernel link semantics.
    LinkFailed {
        /// The failing step.
        failed_step: u32,
    },
    /// A program returned `RS_FAIL`.
    ProgramFail {
        /// Decision number.
        decision: u64,
        /// Step it decided on.
        step: u32,
    },
    /// A program returned `RS_STOP`: the rest is dropped quietly.
    ProgramStop {
        /// Decision number.
        decision: u64,
        /// Step it decided on.
        step: u32,
    },
    /// A program called `rs_drop` on it.
    Dropped {
        /// Decision number.
        decision: u64,
    },
    /// A program misbehaved (bad return value, VM error).
    ProgramError {
        /// Decision number.
        decision: u64,
        /// What went wrong.
        reason: String,
    },
    /// A budget was exhausted.
    Budget {
        /// Decision number.
        decision: u64,
        /// Which budget.
        violation: BudgetViolation,
    },
    /// The engine shut down.
    Shutdown,
    /// The kernel refused the submission.
    SubmitFailed {
        /// errno.
        errno: i32,
    },
}

impl CancelCause {
    /// Short name for grouping.
    pub fn name(&self) -> &'static str {
        match self {
            CancelCause::KernelLink { .. } => "kernel_link",
            CancelCause::LinkFailed { .. } => "link_failed",
            CancelCause::ProgramFail { .. } => "program_fail",
            CancelCause::ProgramStop { .. } => "program_stop",
            CancelCause::Dropped { .. } => "dropped",
            CancelCause::ProgramError { .. } => "program_error",
            CancelCause::Budget { .. } => "budget",
            CancelCause::Shutdown => "shutdown",
            CancelCause::SubmitFailed { .. } => "submit_failed",
        }
    }
}

/// How a chain ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every step ran and the chain succeeded.
    Completed,
    /// A program stopped it early, successfully.
    Stopped {
        /// Decision number.
        decision: u64,
    },
    /// It failed.
    Failed {
        /// The step where it failed.
        step: u32,
        /// Why the rest was cancelled.
        cause: CancelCause,
    },
    /// Cancelled by shutdown.
    Cancelled,
}

impl Outcome {
    /// True for Completed and Stopped.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Completed | Outcome::Stopped { .. })
    }
}

/// What an application completion reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// The chain ended (res: its result).
    Final,
    /// A step completed (notify = all).
    Step,
    /// A step was cancelled or dropped (notify = all).
    Cancelled,
    /// A program called `rs_emit`.
    Emit,
}

/// A completion posted to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCompletion {
    /// Chain.
    pub chain: u64,
    /// Step, when about one.
    pub step: Option<u32>,
    /// user_data (the chain's for Final, the step's otherwise, the program's for Emit).
    pub user_data: u64,
    /// Result.
    pub res: i32,
    /// Flags (`rs_emit` flags; for Final, [`FINAL_FAILED`] when the chain failed).
    pub flags: u32,
    /// Kind. (Named `completion` on the wire: the event's `kind` tag sits
    /// next to it in JSON.)
    #[serde(rename = "completion")]
    pub kind: AppKind,
}

/// Final completion flag: the chain failed.
pub const FINAL_FAILED: u32 = 1;

/// A registered file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Registered index.
    pub index: u32,
    /// What it is (path, "pipe read end", ...).
    pub name: String,
}

/// A ring as set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingInfo {
    /// Ring fd in the engine's process.
    pub fd: i32,
    /// Process id.
    pub pid: u32,
    /// SQ entries.
    pub sq_entries: u32,
    /// CQ entries.
    pub cq_entries: u32,
    /// Registered files.
    pub files: Vec<FileInfo>,
    /// What programs may name.
    pub regs: Registrations,
    /// Budgets.
    pub budgets: Budgets,
    /// Where this engine's decisions run (recordings made before the
    /// kernel backend existed say nothing: user).
    #[serde(default)]
    pub backend: crate::exec::Backend,
}

/// A map of a loaded program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapInfo {
    /// Registry id.
    pub id: u32,
    /// Object-local index.
    pub local: u32,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: MapKind,
    /// Key bytes.
    pub key_size: u32,
    /// Value bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
}

/// A loaded program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramInfo {
    /// Id.
    pub prog: u32,
    /// Name.
    pub name: String,
    /// Object file.
    pub file: String,
    /// Instruction slots.
    pub insns: u32,
    /// Longest path.
    pub max_path: u32,
    /// Interpreter or compiled code.
    pub exec: ExecMode,
    /// Why it runs under the interpreter although compiled code was asked
    /// for (loaded as trusted, or the compiler refused it, naming the
    /// instruction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_note: Option<String>,
    /// Loaded as trusted.
    pub trusted: bool,
    /// FNV-1a of the object bytes.
    pub object_hash: u64,
    /// Its maps.
    pub maps: Vec<MapInfo>,
    /// The object file bytes (so a recording can re-load the program).
    #[serde(with = "serde_bytes_b64")]
    pub object: Arc<Vec<u8>>,
    /// The code as run (relocated), for disassembly.
    #[serde(with = "serde_bytes_b64")]
    pub code: Arc<Vec<u8>>,
}

/// Base64 for byte blobs in JSON.
mod serde_bytes_b64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn serialize<S: Serializer>(v: &Arc<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(v.len().div_ceil(3) * 4);
        for chunk in v.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Vec<u8>>, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes() {
            if c == b'=' {
                break;
            }
            let v = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or_else(|| serde::de::Error::custom(format!("bad base64 byte {c:#x}")))?;
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        Ok(Arc::new(out))
    }
}

/// Who changed a map entry outside a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapWriter {
    /// The application (pre-load, or later).
    App,
}

/// Everything the engine does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The ring is ready. Boxed, as [`Event::ProgramLoaded`] is: each
    /// happens once per engine or program, and unboxed they made every
    /// event of the stream 152 bytes instead of 104 (a listener's cost is
    /// bytes moved between CPUs).
    RingSetup(Box<RingInfo>),
    /// A program was loaded.
    ProgramLoaded(Box<ProgramInfo>),
    /// The ring-wide default program changed.
    RingProgram {
        /// Program, or none.
        prog: Option<u32>,
    },
    /// A chain was submitted by the application.
    ChainCreated {
        /// Chain id.
        chain: u64,
        /// Its user_data.
        user_data: u64,
        /// Requested link mode.
        mode: LinkMode,
        /// Link mode used (engine or kernel).
        driven_by: LinkMode,
        /// Notification policy.
        notify: Notify,
        /// Waits for earlier chains.
        drain: bool,
        /// Chain-level program.
        program: Option<u32>,
        /// Its steps.
        steps: Vec<StepInfo>,
    },
    /// A chain began issuing (after drain waits).
    ChainStarted {
        /// Chain.
        chain: u64,
    },
    /// A decision added a step.
    StepAdded {
        /// Chain.
        chain: u64,
        /// Index it got (later steps shift up when placed after the current one).
        step: u32,
        /// Placement.
        place: Where,
        /// Template.
        sqe: RsSqe,
        /// Attempt number.
        attempt: u8,
        /// Decision that added it.
        decision: u64,
    },
    /// A request went to the kernel.
    Submitted {
        /// Chain.
        chain: u64,
        /// Step.
        step: u32,
        /// Template.
        sqe: RsSqe,
        /// IOSQE_* flags used.
        sqe_flags: u8,
        /// user_data the kernel sees.
        ring_user_data: u64,
        /// Attempt.
        attempt: u8,
    },
    /// A completion was reaped.
    Completed {
        /// Chain.
        chain: u64,
        /// Step.
        step: u32,
        /// CQE result.
        res: i32,
        /// CQE flags.
        flags: u32,
        /// Nanoseconds from submission to reaping.
        latency_ns: u64,
        /// The engine's verdict: a transfer that came back with fewer bytes
        /// than asked (`0 <= res < len` on an opcode where that breaks a
        /// kernel link). Views show it; they never recompute it.
        #[serde(default)]
        short: bool,
    },
    /// A program decided.
    Decision(Box<DecisionRecord>),
    /// A step was cancelled (or dropped before issue).
    Cancelled {
        /// Chain.
        chain: u64,
        /// Step.
        step: u32,
        /// Why.
        cause: CancelCause,
        /// Result reported for it (-ECANCELED).
        res: i32,
        /// It was in the kernel (the kernel cancelled it) or never issued.
        issued: bool,
        /// The engine's verdict: dropped quietly (`rs_drop`, `RS_STOP`: no
        /// failure, the chain may still succeed) rather than cancelled (the
        /// chain failed: `RS_FAIL`, a link failure, an error, shutdown).
        #[serde(default)]
        dropped: bool,
    },
    /// A program unlinked a step.
    Unlinked {
        /// Chain.
        chain: u64,
        /// Step.
        step: u32,
        /// Decision.
        decision: u64,
    },
    /// A chain ended.
    ChainFinished {
        /// Chain.
        chain: u64,
        /// How.
        outcome: Outcome,
        /// Its final result.
        res: i32,
        /// Steps it had.
        steps: u32,
    },
    /// A completion for the application.
    AppCompletion(AppCompletion),
    /// The application changed a map.
    MapUpdate {
        /// Map (registry id).
        map: u32,
        /// Key.
        key: Vec<u8>,
        /// Before.
        before: Option<Vec<u8>>,
        /// After (None: deleted).
        after: Option<Vec<u8>>,
        /// Who.
        by: MapWriter,
    },
    /// The engine is shutting down.
    Shutdown {
        /// Chains that were still running or queued.
        chains: u32,
        /// Requests in flight when shutdown began.
        inflight: u32,
    },
    /// The engine stopped before a decision (breakpoint or pause).
    Paused {
        /// Why.
        reason: String,
        /// Decision it stopped at, if any.
        decision: Option<u64>,
    },
    /// The engine went on.
    Resumed,
}

/// An event with its sequence number and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in the stream, from 0, without gaps at the source.
    pub seq: u64,
    /// Nanoseconds since the engine started.
    pub t_ns: u64,
    /// The event.
    pub event: Event,
}

impl EventRecord {
    /// One JSON object: `{"seq":..,"t_ns":..,"kind":..., fields...}`. No
    /// event has a field named `seq` or `t_ns` (a test checks every kind).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.event).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut v {
            let mut out = serde_json::Map::with_capacity(m.len() + 2);
            out.insert("seq".into(), self.seq.into());
            out.insert("t_ns".into(), self.t_ns.into());
            for (k, val) in std::mem::take(m) {
                debug_assert!(
                    !out.contains_key(&k),
                    "event field `{k}` collides with the envelope"
                );
                out.entry(k).or_insert(val);
            }
            return serde_json::Value::Object(out);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_envelope_fields_are_never_shadowed_by_event_fields() {
        let decision = DecisionRecord {
            seq: 7,
            ..Default::default()
        };
        let completion = AppCompletion {
            chain: 1,
            step: None,
            user_data: 2,
            res: 3,
            flags: 0,
            kind: AppKind::Final,
        };
        for (event, kind) in [
            (Event::Decision(Box::new(decision)), "decision"),
            (Event::AppCompletion(completion), "app_completion"),
        ] {
            let rec = EventRecord {
                seq: 42,
                t_ns: 9,
                event,
            };
            let v = rec.to_json();
            assert_eq!(v["seq"], 42, "{v}");
            assert_eq!(v["t_ns"], 9, "{v}");
            assert_eq!(v["kind"], kind, "{v}");
            let back: Event = serde_json::from_value(v.clone()).expect("parses back");
            assert_eq!(back, rec.event, "{v}");
        }
    }
}
