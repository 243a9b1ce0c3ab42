//! Request graph reconstruction from the probe event stream.
//!
//! Feed every [`ProbeEvent`] in order to [`RequestGraph::push`]; it builds
//! requests, link chains, each request's state over time, and every
//! cancellation with its cause.
//!
//! Identity: the kernel reuses `io_kiocb` memory, so a request pointer names
//! a request only until the next `submit_req` at the same address. The graph
//! gives each submission its own [`RequestId`] and maps a pointer to the
//! *latest* request at that address; a later event with the pointer refers
//! to that one, never to an earlier request that shared the address.
//!
//! Kernel facts this relies on (io_uring/io_uring.c, timeout.c, 5.19+):
//! - `submit_req(B)` is traced before `link(B, A)`, where A is the previous
//!   last request of B's chain; the head has no link event.
//! - the low byte of the request flags is the SQE's `IOSQE_*` flags; a chain
//!   goes on while its members carry IO_LINK or IO_HARDLINK.
//! - a failed (or short, for reads/writes) linked request X cancels each
//!   later member L with `fail_link(X, L)`, then L completes with -ECANCELED.
//!   `fail_link` may come before or after X's own completion.
//! - requests with IOSQE_CQE_SKIP_SUCCESS post no completion on success.

use crate::event::{ECANCELED, Header, ProbeEvent, Ptr, cqe_flags, sqe_flags};
use serde::{Deserialize, Serialize};
mod window;

use foldhash::HashMap;
use foldhash::HashMapExt;
use smallvec::SmallVec;
use std::collections::{BTreeMap, VecDeque};
use window::Window;

/// A request's identity in the graph (dense, from 0, in submission order).
pub type RequestId = u64;
/// A chain's identity in the graph (dense, from 0).
pub type ChainId = u64;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReqState {
    /// Taken from the SQ, waiting for an earlier member of its chain.
    Submitted,
    /// Issued: waiting for its completion.
    Inflight,
    /// Completed (res >= 0, or an error we do not call failure).
    Completed,
    /// Completed with res >= 0 but broke its chain (a short read/write).
    Short,
    /// Completed with an error (res < 0 other than a link cancellation),
    /// or rejected at submission (`req_failed`).
    Failed,
    /// Completed with -ECANCELED.
    Cancelled,
    /// Its address was reused before we saw it complete (events lost, or
    /// attached late); with IOSQE_CQE_SKIP_SUCCESS it is `Completed` instead.
    Unobserved,
}

impl ReqState {
    /// No more changes expected.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ReqState::Submitted | ReqState::Inflight)
    }
}

/// One request: one submission of an SQE (or, when attached mid-flight, one
/// completion whose submission we did not see).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Graph identity.
    pub id: RequestId,
    /// Ring ctx pointer.
    pub ring: Ptr,
    /// Kernel request pointer (shared with other requests over time).
    pub req: Ptr,
    /// Submitting process.
    pub tgid: u32,
    /// Submitting thread (the SQPOLL thread for SQPOLL rings).
    pub tid: u32,
    /// user_data.
    pub user_data: u64,
    /// `IORING_OP_*`.
    pub opcode: u8,
    /// `IOSQE_*` flags.
    pub sqe_flags: u8,
    /// When it was submitted (None: submission not seen).
    pub submitted_ns: Option<u64>,
    /// When it reached a terminal state.
    pub finished_ns: Option<u64>,
    /// Result of the last completion.
    pub res: Option<i32>,
    /// CQE flags of the last completion.
    pub cflags: u32,
    /// Completions posted (more than one for multishot requests).
    pub completions: u32,
    /// Current state.
    pub state: ReqState,
    /// Every state it went through, with the event timestamp.
    pub history: SmallVec<[(u64, ReqState); 4]>,
    /// Its chain, when linked.
    pub chain: Option<ChainId>,
    /// Position in the chain (0 = head).
    pub chain_index: u32,
    /// Punted to an io-wq worker.
    pub went_async: bool,
    /// Waited for readiness (poll armed).
    pub poll_armed: bool,
    /// Its failure cancelled later links (`fail_link` named it).
    pub broke_chain: bool,
    /// The request whose failure cancelled this one, or the LINK_TIMEOUT
    /// that expired on it.
    pub cancelled_by: Option<RequestId>,
}

/// A link chain: requests joined by IO_LINK / IO_HARDLINK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Graph identity.
    pub id: ChainId,
    /// Ring ctx pointer.
    pub ring: Ptr,
    /// Members in order (head first).
    pub members: Vec<RequestId>,
    /// Some member used IO_HARDLINK.
    pub hard: bool,
    /// Still accepting members (the last one carries a link flag).
    pub open: bool,
    /// The member whose failure broke the chain.
    pub broken_by: Option<RequestId>,
}

/// Why a request was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelCause {
    /// An earlier link failed with an error.
    LinkError,
    /// An earlier link completed short (res >= 0 but less than asked).
    LinkShort,
    /// An earlier link was itself cancelled.
    LinkCancelled,
    /// The LINK_TIMEOUT linked after it expired (`Cancellation::by` names
    /// it): -ECANCELED with no failed link and a LINK_TIMEOUT as its next
    /// chain member.
    LinkTimeout,
    /// -ECANCELED without a failed link: async cancel, link timeout, ring
    /// teardown.
    Explicit,
    /// The failed link is known but how it ended is not (its completion
    /// was not seen, or it was evicted from the graph).
    Unknown,
}

impl KernelCause {
    /// snake_case name, as in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelCause::LinkError => "link_error",
            KernelCause::LinkShort => "link_short",
            KernelCause::LinkCancelled => "link_cancelled",
            KernelCause::LinkTimeout => "link_timeout",
            KernelCause::Explicit => "explicit",
            KernelCause::Unknown => "unknown",
        }
    }
}

/// One cancellation: `victim` completed with -ECANCELED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// When the -ECANCELED completion was seen.
    pub ts_ns: u64,
    /// The cancelled request.
    pub victim: RequestId,
    /// The failed link that caused it (from `fail_link`).
    pub by: Option<RequestId>,
    /// The cause, once known (`None` while the failed link has not completed).
    pub cause: Option<KernelCause>,
}

/// Per-ring counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingStats {
    /// Process of the first event seen on it.
    pub tgid: u32,
    /// Requests submitted.
    pub submitted: u64,
    /// Completions posted.
    pub completions: u64,
    /// CQ overflows.
    pub overflows: u64,
    /// Created while traced (`create` event seen).
    pub created_while_traced: bool,
}

/// Counts by request state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests seen (submitted, or completed without a seen submission).
    pub total: u64,
    /// Waiting in a chain.
    pub submitted: u64,
    /// Issued, not completed.
    pub inflight: u64,
    /// Completed.
    pub completed: u64,
    /// Completed short, breaking a chain.
    pub short: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Address reused before its completion was seen.
    pub unobserved: u64,
    /// Completions of requests whose submission was not seen.
    pub orphan_completions: u64,
    /// Completions without a request (aux CQEs such as MSG_RING's).
    pub aux_completions: u64,
    /// Submissions at an address still held by an unfinished request.
    pub pointer_reuses: u64,
    /// Punted to io-wq.
    pub went_async: u64,
}

/// Chain counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCounts {
    /// Chains seen.
    pub total: u64,
    /// Broken by a failed or short member.
    pub broken: u64,
    /// Using IO_HARDLINK.
    pub hard: u64,
    /// Longest chain.
    pub max_len: u64,
}

/// Cancellation counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationCounts {
    /// All -ECANCELED completions.
    pub total: u64,
    /// By cause (`link_error`, `link_short`, `link_cancelled`, `explicit`,
    /// `unknown`; causes still pending count as `unknown`).
    pub by_cause: BTreeMap<String, u64>,
}

/// Everything counted so far (evicted requests included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphStats {
    /// Events pushed.
    pub events: u64,
    /// Requests.
    pub requests: RequestCounts,
    /// Chains.
    pub chains: ChainCounts,
    /// Cancellations.
    pub cancellations: CancellationCounts,
}

#[derive(Debug, Default, Clone)]
struct RingTrack {
    stats: RingStats,
    /// The chain the next submission joins (last member had a link flag).
    open_chain: Option<ChainId>,
}

/// The request graph. See the module docs.
#[derive(Debug, Clone)]
pub struct RequestGraph {
    requests: Window<Request>,
    next_id: RequestId,
    /// (ring, req pointer) -> latest request at that address.
    by_ptr: HashMap<(Ptr, Ptr), RequestId>,
    chains: Window<Chain>,
    next_chain: ChainId,
    rings: BTreeMap<Ptr, RingTrack>,
    cancellations: VecDeque<Cancellation>,
    /// Cancellations waiting for their cause to finish: cause -> indices
    /// into `cancellations` (offset by `cancel_base`).
    pending_causes: HashMap<RequestId, Vec<u64>>,
    cancel_base: u64,
    finished: VecDeque<RequestId>,
    limit: Option<usize>,
    counts: RequestCounts,
    chain_counts: ChainCounts,
    cause_counts: BTreeMap<KernelCause, u64>,
    cancel_total: u64,
    events: u64,
    /// Live requests waiting in a chain / issued: kept on every state
    /// change so [`RequestGraph::stats`] is O(1), whatever the history.
    waiting: u64,
    inflight: u64,
}

impl Default for RequestGraph {
    fn default() -> Self {
        Self::new()
    }
}

impl Request {
    /// A request as first seen at `ts`: by its submission (`submitted`), or
    /// by a completion whose submission we did not see.
    #[allow(clippy::too_many_arguments)]
    fn first_seen(
        id: RequestId,
        ring: Ptr,
        req: Ptr,
        hdr: &Header,
        user_data: u64,
        opcode: u8,
        sqe_flags: u8,
        ts: u64,
        submitted: bool,
    ) -> Request {
        let state = if submitted {
            ReqState::Submitted
        } else {
            ReqState::Inflight
        };
        Request {
            id,
            ring,
            req,
            tgid: hdr.tgid,
            tid: hdr.tid,
            user_data,
            opcode,
            sqe_flags,
            submitted_ns: submitted.then_some(ts),
            finished_ns: None,
            res: None,
            cflags: 0,
            completions: 0,
            state,
            history: smallvec::smallvec![(ts, state)],
            chain: None,
            chain_index: 0,
            went_async: false,
            poll_armed: false,
            broke_chain: false,
            cancelled_by: None,
        }
    }
}

impl RequestGraph {
    /// A graph that keeps everything.
    pub fn new() -> Self {
        RequestGraph {
            requests: Window::default(),
            next_id: 0,
            by_ptr: HashMap::new(),
            chains: Window::default(),
            next_chain: 0,
            rings: BTreeMap::new(),
            cancellations: VecDeque::new(),
            pending_causes: HashMap::new(),
            cancel_base: 0,
            finished: VecDeque::new(),
            limit: None,
            counts: RequestCounts::default(),
            chain_counts: ChainCounts::default(),
            cause_counts: BTreeMap::new(),
            cancel_total: 0,
            events: 0,
            waiting: 0,
            inflight: 0,
        }
    }

    /// A graph that keeps at most about `max_requests` finished requests
    /// (oldest finished first out) and as many cancellations; counts in
    /// [`stats`](Self::stats) still cover everything.
    pub fn with_limit(max_requests: usize) -> Self {
        RequestGraph {
            limit: Some(max_requests.max(1)),
            ..Self::new()
        }
    }

    /// A request by id (None if unknown or evicted).
    pub fn request(&self, id: RequestId) -> Option<&Request> {
        self.requests.get(&id)
    }

    /// The latest request at a kernel address.
    pub fn request_at(&self, ring: Ptr, req: Ptr) -> Option<&Request> {
        self.by_ptr
            .get(&(ring, req))
            .and_then(|id| self.requests.get(id))
    }

    /// Retained requests, in id (submission) order.
    pub fn requests(&self) -> Vec<&Request> {
        let mut v: Vec<&Request> = self.requests.values().collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// A chain by id.
    pub fn chain(&self, id: ChainId) -> Option<&Chain> {
        self.chains.get(&id)
    }

    /// Retained chains, in id order.
    pub fn chains(&self) -> Vec<&Chain> {
        let mut v: Vec<&Chain> = self.chains.values().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Retained cancellations, oldest first.
    pub fn cancellations(&self) -> impl Iterator<Item = &Cancellation> {
        self.cancellations.iter()
    }

    /// Rings seen, with counts.
    pub fn rings(&self) -> impl Iterator<Item = (Ptr, &RingStats)> {
        self.rings.iter().map(|(p, t)| (*p, &t.stats))
    }

    /// Totals.
    pub fn stats(&self) -> GraphStats {
        let mut requests = self.counts.clone();
        requests.submitted = self.waiting;
        requests.inflight = self.inflight;
        let mut by_cause: BTreeMap<String, u64> = self
            .cause_counts
            .iter()
            .map(|(c, n)| (c.as_str().to_string(), *n))
            .collect();
        let pending: u64 = self.pending_causes.values().map(|v| v.len() as u64).sum();
        if pending > 0 {
            *by_cause.entry("unknown".into()).or_default() += pending;
        }
        GraphStats {
            events: self.events,
            requests,
            chains: self.chain_counts.clone(),
            cancellations: CancellationCounts {
                total: self.cancel_total,
                by_cause,
            },
        }
    }

    fn ring(&mut self, ring: Ptr, tgid: u32) -> &mut RingTrack {
        self.rings.entry(ring).or_insert_with(|| RingTrack {
            stats: RingStats {
                tgid,
                ..Default::default()
            },
            open_chain: None,
        })
    }

    /// All cancellations counted so far (evicted ones included), in O(1).
    pub fn cancellation_total(&self) -> u64 {
        self.cancel_total
    }

    /// The newest retained cancellation.
    pub fn last_cancellation(&self) -> Option<&Cancellation> {
        self.cancellations.back()
    }

    /// Moves a live count from one state to another (the one place the
    /// waiting/in-flight counters change).
    fn recount(&mut self, from: Option<ReqState>, to: Option<ReqState>) {
        for (st, up) in [(from, false), (to, true)] {
            let c = match st {
                Some(ReqState::Submitted) => &mut self.waiting,
                Some(ReqState::Inflight) => &mut self.inflight,
                _ => continue,
            };
            *c = if up { *c + 1 } else { c.saturating_sub(1) };
        }
    }

    fn new_request(&mut self, r: Request) -> RequestId {
        let id = r.id;
        self.recount(None, Some(r.state));
        self.by_ptr.insert((r.ring, r.req), id);
        self.requests.insert(id, r);
        self.counts.total += 1;
        id
    }

    /// The request still in flight at kernel address `req` of `ring` (the
    /// kernel reuses the address once a request has ended).
    fn live(&self, ring: Ptr, req: Ptr) -> Option<RequestId> {
        let id = *self.by_ptr.get(&(ring, req))?;
        self.requests
            .get(&id)
            .is_some_and(|r| !r.state.is_terminal())
            .then_some(id)
    }

    fn alloc_id(&mut self) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Feeds one event. Returns the request it was about, if any.
    pub fn push(&mut self, ev: &ProbeEvent) -> Option<RequestId> {
        if let ProbeEvent::Ring(_) = ev {
            // Made in userspace, about no request: not a kernel event.
            return None;
        }
        self.events += 1;
        let hdr = *ev.header();
        let ts = hdr.ts_ns;
        match *ev {
            ProbeEvent::Create { ring, .. } => {
                // A new ring at this address: forget the old one's state.
                let t = RingTrack {
                    stats: RingStats {
                        tgid: hdr.tgid,
                        created_while_traced: true,
                        ..Default::default()
                    },
                    open_chain: None,
                };
                self.rings.insert(ring, t);
                None
            }
            ProbeEvent::SubmitReq {
                ring,
                req,
                user_data,
                opcode,
                flags,
                ..
            } => {
                let sqe = flags as u8;
                if let Some(old) = self.live(ring, req)
                    && let Some(o) = self.requests.get(&old)
                {
                    self.counts.pointer_reuses += 1;
                    let st = if o.sqe_flags & sqe_flags::CQE_SKIP_SUCCESS != 0 {
                        ReqState::Completed
                    } else {
                        ReqState::Unobserved
                    };
                    self.finish(old, ts, st);
                }
                let id = self.alloc_id();
                let rt = self.ring(ring, hdr.tgid);
                rt.stats.submitted += 1;
                let join = rt.open_chain;
                let linked = sqe & (sqe_flags::IO_LINK | sqe_flags::IO_HARDLINK) != 0;
                self.new_request(Request::first_seen(
                    id, ring, req, &hdr, user_data, opcode, sqe, ts, true,
                ));
                match join {
                    Some(c) => self.append_to_chain(c, id),
                    None if linked => {
                        let c = self.new_chain(ring, id);
                        self.ring(ring, hdr.tgid).open_chain = Some(c);
                    }
                    None => {}
                }
                self.maybe_issue(id, ts);
                Some(id)
            }
            ProbeEvent::Link {
                ring, req, target, ..
            } => {
                let id = *self.by_ptr.get(&(ring, req))?;
                let tgt = self.by_ptr.get(&(ring, target)).copied();
                let already = self.requests.get(&id)?.chain;
                if already.is_none() {
                    // Flags did not tell us (attached mid-chain, or the
                    // target was not seen): link to the target's chain.
                    let c = match tgt.and_then(|t| self.requests.get(&t).map(|r| (t, r.chain))) {
                        Some((_, Some(c))) => c,
                        Some((t, None)) => {
                            let c = self.new_chain(ring, t);
                            if let Some(r) = self.requests.get(&t) {
                                let open = r.sqe_flags
                                    & (sqe_flags::IO_LINK | sqe_flags::IO_HARDLINK)
                                    != 0;
                                if let Some(ch) = self.chains.get_mut(&c) {
                                    ch.open = open;
                                }
                            }
                            c
                        }
                        None => self.new_chain(ring, id),
                    };
                    if self
                        .chains
                        .get(&c)
                        .is_some_and(|ch| !ch.members.contains(&id))
                    {
                        self.append_to_chain(c, id);
                    }
                    let r = self.requests.get_mut(&id)?;
                    // It was issued on submit because we did not know it
                    // waits; put it back to waiting.
                    if r.state == ReqState::Inflight
                        && tgt
                            .and_then(|t| self.requests.get(&t))
                            .is_some_and(|t| !t.state.is_terminal())
                    {
                        let r = self.requests.get_mut(&id)?;
                        r.state = ReqState::Submitted;
                        r.history.push((ts, ReqState::Submitted));
                        self.recount(Some(ReqState::Inflight), Some(ReqState::Submitted));
                    }
                }
                Some(id)
            }
            ProbeEvent::Complete {
                ring,
                req,
                user_data,
                res,
                cflags,
                ..
            } => {
                self.ring(ring, hdr.tgid).stats.completions += 1;
                if req.is_null() {
                    self.counts.aux_completions += 1;
                    return None;
                }
                let more = cflags & cqe_flags::MORE != 0;
                let id = match self.live(ring, req) {
                    Some(id) => id,
                    None => {
                        // Submitted before we attached, or its events were
                        // lost: a request without a seen submission.
                        self.counts.orphan_completions += 1;
                        let id = self.alloc_id();
                        self.new_request(Request::first_seen(
                            id, ring, req, &hdr, user_data, 0, 0, ts, false,
                        ))
                    }
                };
                let r = self.requests.get_mut(&id)?;
                r.res = Some(res);
                r.cflags = cflags;
                r.completions += 1;
                if more {
                    // Multishot: more completions follow.
                    if r.state == ReqState::Submitted {
                        r.state = ReqState::Inflight;
                        r.history.push((ts, ReqState::Inflight));
                        self.recount(Some(ReqState::Submitted), Some(ReqState::Inflight));
                    }
                    return Some(id);
                }
                let st = if res == ECANCELED {
                    ReqState::Cancelled
                } else if res < 0 {
                    ReqState::Failed
                } else if r.broke_chain {
                    ReqState::Short
                } else {
                    ReqState::Completed
                };
                if st == ReqState::Cancelled {
                    let by = r.cancelled_by;
                    self.record_cancellation(ts, id, by);
                }
                self.finish(id, ts, st);
                Some(id)
            }
            ProbeEvent::FailLink {
                ring, req, link, ..
            } => {
                let cause = self.by_ptr.get(&(ring, req)).copied();
                let victim = self.by_ptr.get(&(ring, link)).copied();
                if let Some(c) = cause {
                    let r = self.requests.get_mut(&c)?;
                    r.broke_chain = true;
                    // Its completion came first: a success that broke the
                    // chain is a short transfer.
                    if r.state == ReqState::Completed {
                        // Same moment, better knowledge: rewrite the final
                        // state rather than pretend it changed later.
                        r.state = ReqState::Short;
                        if let Some(last) = r.history.last_mut() {
                            last.1 = ReqState::Short;
                        }
                        self.counts.completed -= 1;
                        self.counts.short += 1;
                    }
                    if let Some(ch) = r.chain
                        && let Some(chain) = self.chains.get_mut(&ch)
                        && chain.broken_by.is_none()
                    {
                        chain.broken_by = Some(c);
                        self.chain_counts.broken += 1;
                    }
                }
                if let Some(v) = victim
                    && let Some(r) = self.requests.get_mut(&v)
                {
                    r.cancelled_by = cause;
                }
                victim
            }
            ProbeEvent::ReqFailed {
                ring,
                req,
                user_data,
                opcode,
                sqe_flags,
                error,
                ..
            } => {
                let id = match self.live(ring, req) {
                    Some(id) => id,
                    None => {
                        // Failed in preparation: no submit_req was traced.
                        let id = self.alloc_id();
                        self.ring(ring, hdr.tgid).stats.submitted += 1;
                        self.new_request(Request::first_seen(
                            id, ring, req, &hdr, user_data, opcode, sqe_flags, ts, true,
                        ))
                    }
                };
                let r = self.requests.get_mut(&id)?;
                r.res = Some(error);
                // Its CQE (if any) follows and is the same failure.
                self.finish(id, ts, ReqState::Failed);
                Some(id)
            }
            ProbeEvent::CqeOverflow { ring, .. } => {
                self.ring(ring, hdr.tgid).stats.overflows += 1;
                None
            }
            ProbeEvent::QueueAsyncWork { ring, req, .. } => {
                let id = *self.by_ptr.get(&(ring, req))?;
                let r = self.requests.get_mut(&id)?;
                if !r.went_async {
                    r.went_async = true;
                    self.counts.went_async += 1;
                }
                Some(id)
            }
            ProbeEvent::PollArm { ring, req, .. } => {
                let id = *self.by_ptr.get(&(ring, req))?;
                self.requests.get_mut(&id)?.poll_armed = true;
                Some(id)
            }
            ProbeEvent::ShortWrite { .. }
            | ProbeEvent::TaskWorkRun { .. }
            | ProbeEvent::NewTask { .. }
            | ProbeEvent::Ring(_) => None,
        }
    }

    fn new_chain(&mut self, ring: Ptr, head: RequestId) -> ChainId {
        let c = self.next_chain;
        self.next_chain += 1;
        let (hard, open) = self
            .requests
            .get(&head)
            .map(|r| {
                (
                    r.sqe_flags & sqe_flags::IO_HARDLINK != 0,
                    r.sqe_flags & (sqe_flags::IO_LINK | sqe_flags::IO_HARDLINK) != 0,
                )
            })
            .unwrap_or((false, false));
        if let Some(r) = self.requests.get_mut(&head) {
            r.chain = Some(c);
            r.chain_index = 0;
        }
        self.chains.insert(
            c,
            Chain {
                id: c,
                ring,
                members: vec![head],
                hard,
                open,
                broken_by: None,
            },
        );
        self.chain_counts.total += 1;
        self.chain_counts.max_len = self.chain_counts.max_len.max(1);
        if hard {
            self.chain_counts.hard += 1;
        }
        c
    }

    fn append_to_chain(&mut self, c: ChainId, id: RequestId) {
        let Some(flags) = self.requests.get(&id).map(|r| r.sqe_flags) else {
            return;
        };
        let Some(chain) = self.chains.get_mut(&c) else {
            return;
        };
        let idx = chain.members.len() as u32;
        chain.members.push(id);
        let was_hard = chain.hard;
        chain.hard |= flags & sqe_flags::IO_HARDLINK != 0;
        chain.open = flags & (sqe_flags::IO_LINK | sqe_flags::IO_HARDLINK) != 0;
        let (open, ring, len, hard) = (
            chain.open,
            chain.ring,
            chain.members.len() as u64,
            chain.hard,
        );
        if hard && !was_hard {
            self.chain_counts.hard += 1;
        }
        self.chain_counts.max_len = self.chain_counts.max_len.max(len);
        if let Some(r) = self.requests.get_mut(&id) {
            r.chain = Some(c);
            r.chain_index = idx;
        }
        if let Some(rt) = self.rings.get_mut(&ring) {
            rt.open_chain = if open { Some(c) } else { None };
        }
    }

    /// Moves a freshly submitted request to Inflight unless it waits for an
    /// earlier chain member.
    fn maybe_issue(&mut self, id: RequestId, ts: u64) {
        let Some(r) = self.requests.get(&id) else {
            return;
        };
        if r.state != ReqState::Submitted {
            return;
        }
        if let Some(c) = r.chain
            && r.chain_index > 0
        {
            let prev = self
                .chains
                .get(&c)
                .and_then(|ch| ch.members.get(r.chain_index as usize - 1))
                .and_then(|p| self.requests.get(p));
            if prev.is_some_and(|p| !p.state.is_terminal()) {
                return;
            }
        }
        if let Some(r) = self.requests.get_mut(&id) {
            r.state = ReqState::Inflight;
            r.history.push((ts, ReqState::Inflight));
            self.recount(Some(ReqState::Submitted), Some(ReqState::Inflight));
        }
    }

    fn finish(&mut self, id: RequestId, ts: u64, st: ReqState) {
        let Some(r) = self.requests.get_mut(&id) else {
            return;
        };
        if r.state.is_terminal() {
            return;
        }
        let from = r.state;
        r.state = st;
        r.finished_ns = Some(ts);
        r.history.push((ts, st));
        match st {
            ReqState::Completed => self.counts.completed += 1,
            ReqState::Short => self.counts.short += 1,
            ReqState::Failed => self.counts.failed += 1,
            ReqState::Cancelled => self.counts.cancelled += 1,
            ReqState::Unobserved => self.counts.unobserved += 1,
            ReqState::Submitted | ReqState::Inflight => {}
        }
        let (chain, index) = (r.chain, r.chain_index);
        self.recount(Some(from), Some(st));
        let next = chain.and_then(|c| {
            self.chains
                .get(&c)
                .and_then(|ch| ch.members.get(index as usize + 1).copied())
        });
        // The next member is issued now, unless the chain broke (then it
        // gets cancelled) or it was cancelled already.
        if let Some(n) = next
            && matches!(st, ReqState::Completed)
        {
            self.maybe_issue(n, ts);
        }
        // Cancellations that waited for this request's end.
        if let Some(waiting) = self.pending_causes.remove(&id) {
            let cause = self.classify(id);
            for idx in waiting {
                if let Some(c) = idx
                    .checked_sub(self.cancel_base)
                    .and_then(|i| self.cancellations.get_mut(i as usize))
                {
                    c.cause = Some(cause);
                }
                *self.cause_counts.entry(cause).or_default() += 1;
            }
        }
        self.finished.push_back(id);
        self.evict();
    }

    fn classify(&self, cause: RequestId) -> KernelCause {
        match self.requests.get(&cause).map(|r| r.state) {
            Some(ReqState::Failed) => KernelCause::LinkError,
            Some(ReqState::Short) | Some(ReqState::Completed) => KernelCause::LinkShort,
            Some(ReqState::Cancelled) => KernelCause::LinkCancelled,
            _ => KernelCause::Unknown,
        }
    }

    /// The LINK_TIMEOUT linked right after `id` in its chain, if any.
    fn link_timeout_after(&self, id: RequestId) -> Option<RequestId> {
        let r = self.requests.get(&id)?;
        let next = *self
            .chains
            .get(&r.chain?)?
            .members
            .get(r.chain_index as usize + 1)?;
        let t = self.requests.get(&next)?;
        (t.opcode == ringside_schema::abi::op::LINK_TIMEOUT).then_some(next)
    }

    /// Why `victim` was cancelled, as far as is known now (`None`: it was
    /// not cancelled, or the failed link it waits on has not ended yet).
    pub fn cancel_cause(&self, victim: RequestId) -> Option<KernelCause> {
        let r = self.requests.get(&victim)?;
        if r.state != ReqState::Cancelled {
            return None;
        }
        self.cause_given(r.cancelled_by)
    }

    fn cause_given(&self, by: Option<RequestId>) -> Option<KernelCause> {
        match by {
            None => Some(KernelCause::Explicit),
            Some(b) => match self.requests.get(&b) {
                Some(t) if t.opcode == ringside_schema::abi::op::LINK_TIMEOUT => {
                    Some(KernelCause::LinkTimeout)
                }
                Some(r) if r.state.is_terminal() => Some(self.classify(b)),
                Some(_) => None,
                None => Some(KernelCause::Unknown),
            },
        }
    }

    fn record_cancellation(&mut self, ts: u64, victim: RequestId, by: Option<RequestId>) {
        self.cancel_total += 1;
        // No failed link, and a LINK_TIMEOUT guards it: the kernel's timer
        // cancelled it (io_link_timeout_fn), whatever order the two CQEs
        // come in.
        let by = by.or_else(|| self.link_timeout_after(victim));
        if let Some(r) = self.requests.get_mut(&victim) {
            r.cancelled_by = by;
        }
        let cause = self.cause_given(by);
        let idx = self.cancel_base + self.cancellations.len() as u64;
        match (cause, by) {
            (Some(c), _) => *self.cause_counts.entry(c).or_default() += 1,
            (None, Some(b)) => self.pending_causes.entry(b).or_default().push(idx),
            (None, None) => {}
        }
        self.cancellations.push_back(Cancellation {
            ts_ns: ts,
            victim,
            by,
            cause,
        });
    }

    fn evict(&mut self) {
        let Some(limit) = self.limit else {
            return;
        };
        while self.requests.len() > limit {
            let Some(id) = self.finished.pop_front() else {
                break;
            };
            let Some(r) = self.requests.remove(&id) else {
                continue;
            };
            if self.by_ptr.get(&(r.ring, r.req)) == Some(&id) {
                self.by_ptr.remove(&(r.ring, r.req));
            }
            // A cancellation waiting on an evicted cause stays "unknown".
            if let Some(waiting) = self.pending_causes.remove(&id) {
                *self.cause_counts.entry(KernelCause::Unknown).or_default() += waiting.len() as u64;
            }
            if let Some(c) = r.chain
                && let Some(ch) = self.chains.get(&c)
                && !ch.open
                && ch
                    .members
                    .iter()
                    .all(|m| *m == id || !self.requests.contains_key(m))
            {
                self.chains.remove(&c);
            }
        }
        while self.cancellations.len() > limit {
            self.cancellations.pop_front();
            self.cancel_base += 1;
        }
    }
}

#[cfg(test)]
mod tests;
