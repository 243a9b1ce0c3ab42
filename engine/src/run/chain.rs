//! Chains: ordered steps, their states, and what the application asks for.
//!
//! Step indexes are positions in the chain: a step inserted right after the
//! current one shifts the later ones up, as `rs_submit(RS_AFTER_CURRENT)`
//! promises. In-flight requests refer to steps by a stable `uid` instead, so
//! a shift never confuses a completion. Finished steps at the front are
//! dropped from memory (the chain keeps counting from `base`), so a chain of
//! millions of steps stays small.

use crate::abi::{self, RsSqe};
use crate::decision::{ChainView, PendingStep};
use crate::event::{CancelCause, LinkMode, Notify, StepKind};
use crate::program::ProgId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A step as the application declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Io (a request) or Bpf (runs its program).
    #[serde(default)]
    pub kind: StepKind,
    /// The request (for a Bpf step: parameters its program sees in the context).
    pub sqe: RsSqe,
    /// Program for this step only.
    #[serde(default)]
    pub program: Option<ProgId>,
}

impl StepSpec {
    /// An io step.
    pub fn io(sqe: RsSqe) -> StepSpec {
        StepSpec {
            kind: StepKind::Io,
            sqe,
            program: None,
        }
    }

    /// A NOP step (no file, no buffer).
    pub fn nop(user_data: u64) -> StepSpec {
        StepSpec::io(RsSqe {
            opcode: abi::op::NOP,
            fd: -1,
            buf_index: abi::NO_BUF,
            user_data,
            ..Default::default()
        })
    }
}

/// A chain as the application submits it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    /// user_data of the chain's final completion.
    pub user_data: u64,
    /// Steps, in order.
    pub steps: Vec<StepSpec>,
    /// Program for every step without its own.
    #[serde(default)]
    pub program: Option<ProgId>,
    /// Notification policy.
    #[serde(default)]
    pub notify: Notify,
    /// Wait for every earlier chain, and hold later ones back until done.
    #[serde(default)]
    pub drain: bool,
    /// Engine-driven or kernel link.
    #[serde(default)]
    pub link: LinkMode,
}

/// Where a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepState {
    /// Not issued yet.
    Pending,
    /// In the kernel.
    Inflight,
    /// Completed with this result.
    Done,
    /// Cancelled (by the kernel, a program, a budget or shutdown).
    Cancelled,
    /// Dropped quietly (RS_STOP) or by rs_drop.
    Dropped,
}

#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub uid: u32,
    pub kind: StepKind,
    pub sqe: RsSqe,
    pub program: Option<ProgId>,
    pub attempt: u8,
    pub unlinked: bool,
    pub detached: bool,
    pub state: StepState,
    pub submitted_ns: u64,
    pub res: i32,
}

/// How a chain is being driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driver {
    Engine,
    Kernel { hard: bool },
}

impl Driver {
    pub fn mode(self) -> LinkMode {
        match self {
            Driver::Engine => LinkMode::Engine,
            Driver::Kernel { hard: false } => LinkMode::Kernel,
            Driver::Kernel { hard: true } => LinkMode::KernelHard,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChainState {
    Queued,
    Running,
    /// No more steps will be issued; waiting for in-flight requests.
    Finishing,
}

#[derive(Debug)]
pub(crate) struct Chain {
    pub id: u64,
    pub user_data: u64,
    pub driver: Driver,
    pub notify: Notify,
    pub drain: bool,
    pub program: Option<ProgId>,
    pub steps: VecDeque<Step>,
    /// Index of steps[0].
    pub base: u32,
    pub next_uid: u32,
    /// Requests of this chain in the kernel.
    pub inflight: u32,
    pub state: ChainState,
    pub final_res: Option<i32>,
    pub last_res: i32,
    /// (step, res, cause) of the failure, once failed.
    pub failure: Option<(u32, i32, CancelCause)>,
    /// Decision that stopped it.
    pub stopped: Option<u64>,
    pub cancelled: bool,
    /// Highest step index that completed in order (not detached).
    pub current: Option<u32>,
}

impl Chain {
    pub fn new(id: u64, spec: &ChainSpec, driver: Driver) -> Chain {
        let steps: VecDeque<Step> = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| Step {
                uid: i as u32,
                kind: s.kind,
                sqe: s.sqe,
                program: s.program,
                attempt: 1,
                unlinked: false,
                detached: false,
                state: StepState::Pending,
                submitted_ns: 0,
                res: 0,
            })
            .collect();
        Chain {
            id,
            user_data: spec.user_data,
            driver,
            notify: spec.notify,
            drain: spec.drain,
            program: spec.program,
            next_uid: steps.len() as u32,
            steps,
            base: 0,
            inflight: 0,
            state: ChainState::Queued,
            final_res: None,
            last_res: 0,
            failure: None,
            stopped: None,
            cancelled: false,
            current: None,
        }
    }

    /// Steps in the chain (including finished ones already forgotten).
    pub fn nsteps(&self) -> u32 {
        self.base + self.steps.len() as u32
    }

    /// Position in `steps` of the step with this uid.
    pub fn pos_of_uid(&self, uid: u32) -> Option<usize> {
        self.steps.iter().position(|s| s.uid == uid)
    }

    /// Index of a position.
    pub fn index(&self, pos: usize) -> u32 {
        self.base + pos as u32
    }

    /// Position of an index still in memory.
    pub fn pos(&self, index: u32) -> Option<usize> {
        let p = index.checked_sub(self.base)? as usize;
        (p < self.steps.len()).then_some(p)
    }

    /// First pending, in-order (not detached) step after `index` (or from the start).
    pub fn next_pending(&self, after: Option<u32>) -> Option<usize> {
        let from = match after {
            Some(i) => (i + 1).saturating_sub(self.base) as usize,
            None => 0,
        };
        (from..self.steps.len())
            .find(|&p| !self.steps[p].detached && self.steps[p].state == StepState::Pending)
    }

    /// The chain as a decision about step `pos` sees it, written into `v`
    /// (reusing its allocation).
    pub fn view_into(&self, pos: usize, v: &mut ChainView) {
        let s = &self.steps[pos];
        v.chain = self.id;
        v.step = self.index(pos);
        v.nsteps = self.nsteps();
        v.opcode = if s.kind == StepKind::Bpf {
            abi::OP_BPF
        } else {
            s.sqe.opcode
        };
        v.fd = s.sqe.fd;
        v.attempt = s.attempt;
        v.pending.clear();
        v.pending.extend(
            self.steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state == StepState::Pending && !s.detached)
                .map(|(p, s)| PendingStep {
                    index: self.index(p),
                    dropped: false,
                    unlinked: s.unlinked,
                }),
        );
    }

    /// Insert a step; returns its position.
    pub fn insert(&mut self, index: u32, sqe: RsSqe, attempt: u8, detached: bool) -> usize {
        let uid = self.next_uid;
        self.next_uid += 1;
        let step = Step {
            uid,
            kind: StepKind::Io,
            sqe,
            program: None,
            attempt,
            unlinked: false,
            detached,
            state: StepState::Pending,
            submitted_ns: 0,
            res: 0,
        };
        let pos = (index.saturating_sub(self.base) as usize).min(self.steps.len());
        if pos == self.steps.len() {
            // The common case (RS_AT_END, or after the last step): no shifting.
            self.steps.push_back(step);
        } else {
            self.steps.insert(pos, step);
        }
        pos
    }

    /// Mark every step not yet issued as `to` (cancelled or dropped);
    /// returns their indexes, in order.
    pub fn end_pending(&mut self, to: StepState) -> Vec<u32> {
        let mut ended = Vec::new();
        for p in 0..self.steps.len() {
            if self.steps[p].state == StepState::Pending {
                self.steps[p].state = to;
                ended.push(self.index(p));
            }
        }
        ended
    }

    /// Forget finished steps at the front (never the current one, never in flight).
    pub fn compact(&mut self) {
        while self.steps.len() > 1 {
            let front = &self.steps[0];
            let finished = matches!(
                front.state,
                StepState::Done | StepState::Cancelled | StepState::Dropped
            );
            let before_current = self.current.is_some_and(|c| self.base < c);
            if !(finished && before_current) {
                break;
            }
            self.steps.pop_front();
            self.base += 1;
        }
    }
}

/// Where a live chain sits in the [`ChainTable`]. In-flight requests carry
/// it, so a completion finds its chain by indexing, not hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChainKey(u32);

/// The live chains: a slab addressed by [`ChainKey`]. Nothing on the
/// completion path hashes; the application never names a chain by id to the
/// engine, so no index by id is kept.
#[derive(Debug, Default)]
pub(crate) struct ChainTable {
    slots: Vec<Option<Chain>>,
    free: Vec<u32>,
    live: usize,
}

impl ChainTable {
    /// Add a chain; returns its key.
    pub fn insert(&mut self, chain: Chain) -> ChainKey {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(chain);
                ChainKey(i)
            }
            None => {
                self.slots.push(Some(chain));
                ChainKey(self.slots.len() as u32 - 1)
            }
        }
    }

    /// Remove a chain.
    pub fn remove(&mut self, key: ChainKey) -> Option<Chain> {
        let c = self.slots.get_mut(key.0 as usize)?.take()?;
        self.live -= 1;
        self.free.push(key.0);
        Some(c)
    }

    /// The chain under a key, if it is still live.
    #[inline]
    pub fn get(&self, key: ChainKey) -> Option<&Chain> {
        self.slots.get(key.0 as usize)?.as_ref()
    }

    /// The chain under a key, if it is still live.
    #[inline]
    pub fn get_mut(&mut self, key: ChainKey) -> Option<&mut Chain> {
        self.slots.get_mut(key.0 as usize)?.as_mut()
    }

    /// Live chains.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No live chains.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Keys of the live chains, oldest chain first.
    pub fn keys(&self) -> Vec<ChainKey> {
        let mut v: Vec<(u64, ChainKey)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.id, ChainKey(i as u32))))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, k)| k).collect()
    }
}

impl std::ops::Index<ChainKey> for ChainTable {
    type Output = Chain;

    fn index(&self, key: ChainKey) -> &Chain {
        self.get(key).expect("a live chain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(id: u64) -> Chain {
        let spec = ChainSpec {
            user_data: id,
            steps: vec![StepSpec::nop(id)],
            program: None,
            notify: Notify::Final,
            drain: false,
            link: LinkMode::Engine,
        };
        Chain::new(id, &spec, Driver::Engine)
    }

    #[test]
    fn the_chain_table_reuses_slots_and_lists_chains_oldest_first() {
        let mut t = ChainTable::default();
        let a = t.insert(chain(1));
        let b = t.insert(chain(2));
        let c = t.insert(chain(3));
        assert_eq!((t.len(), t[b].id), (3, 2));
        assert_eq!(t.remove(a).map(|c| c.id), Some(1));
        assert!(t.get(a).is_none() && t.remove(a).is_none());
        // The freed slot goes to the next chain; a stale key finds that chain,
        // which is why only live requests' owners carry keys.
        let d = t.insert(chain(4));
        assert_eq!((d, t[d].id, t.len()), (a, 4, 3));
        assert_eq!(t.keys(), vec![b, c, d]);
        t.remove(b);
        t.remove(c);
        t.remove(d);
        assert!(t.is_empty() && t.keys().is_empty());
    }
}
