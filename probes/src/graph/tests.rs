//! The request graph against the kernel's event orders.

use super::*;
use crate::event::Header;

const RING: Ptr = Ptr(0xffff_0000_0000_1000);
const LINK: u64 = sqe_flags::IO_LINK as u64;
const HARD: u64 = sqe_flags::IO_HARDLINK as u64;

struct Gen {
    ts: u64,
}
impl Gen {
    fn h(&mut self) -> Header {
        self.ts += 10;
        Header {
            ts_ns: self.ts,
            cpu: 0,
            tgid: 100,
            tid: 100,
        }
    }
    fn submit(&mut self, req: u64, ud: u64, flags: u64) -> ProbeEvent {
        ProbeEvent::SubmitReq {
            hdr: self.h(),
            ring: RING,
            req: Ptr(req),
            user_data: ud,
            opcode: 22,
            flags,
            sq_thread: false,
        }
    }
    fn link(&mut self, req: u64, target: u64) -> ProbeEvent {
        ProbeEvent::Link {
            hdr: self.h(),
            ring: RING,
            req: Ptr(req),
            target: Ptr(target),
        }
    }
    fn complete(&mut self, req: u64, ud: u64, res: i32) -> ProbeEvent {
        self.complete_f(req, ud, res, 0)
    }
    fn complete_f(&mut self, req: u64, ud: u64, res: i32, cflags: u32) -> ProbeEvent {
        ProbeEvent::Complete {
            hdr: self.h(),
            ring: RING,
            req: Ptr(req),
            user_data: ud,
            res,
            cflags,
            extra1: 0,
            extra2: 0,
        }
    }
    fn fail_link(&mut self, req: u64, link: u64) -> ProbeEvent {
        ProbeEvent::FailLink {
            hdr: self.h(),
            ring: RING,
            req: Ptr(req),
            user_data: 0,
            opcode: 22,
            link: Ptr(link),
        }
    }
}

fn run(evs: &[ProbeEvent]) -> RequestGraph {
    let mut g = RequestGraph::new();
    for e in evs {
        g.push(e);
    }
    g
}

fn states(g: &RequestGraph) -> Vec<ReqState> {
    g.requests().iter().map(|r| r.state).collect()
}

/// The kernel's order for A -> B(short) -> C.
fn short_chain(g: &mut Gen, fail_link_first: bool) -> Vec<ProbeEvent> {
    let mut v = vec![
        g.submit(0xa, 1, LINK),
        g.submit(0xb, 2, LINK),
        g.link(0xb, 0xa),
        g.submit(0xc, 3, 0),
        g.link(0xc, 0xb),
        g.complete(0xa, 1, 4096),
    ];
    if fail_link_first {
        v.push(g.fail_link(0xb, 0xc));
        v.push(g.complete(0xb, 2, 100));
    } else {
        v.push(g.complete(0xb, 2, 100));
        v.push(g.fail_link(0xb, 0xc));
    }
    v.push(g.complete(0xc, 3, ECANCELED));
    v
}

#[test]
fn short_read_breaks_chain_and_cancels_step_three() {
    for fail_link_first in [true, false] {
        let mut eg = Gen { ts: 0 };
        let g = run(&short_chain(&mut eg, fail_link_first));
        assert_eq!(
            states(&g),
            vec![ReqState::Completed, ReqState::Short, ReqState::Cancelled],
            "fail_link_first={fail_link_first}"
        );
        let chains = g.chains();
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].members, vec![0, 1, 2]);
        assert_eq!(chains[0].broken_by, Some(1));
        assert!(!chains[0].open);
        let c: Vec<_> = g.cancellations().cloned().collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].victim, 2);
        assert_eq!(c[0].by, Some(1));
        assert_eq!(c[0].cause, Some(KernelCause::LinkShort));
        let s = g.stats();
        assert_eq!(s.requests.total, 3);
        assert_eq!(s.requests.completed, 1);
        assert_eq!(s.requests.short, 1);
        assert_eq!(s.requests.cancelled, 1);
        assert_eq!(s.chains.total, 1);
        assert_eq!(s.chains.broken, 1);
        assert_eq!(s.chains.max_len, 3);
        assert_eq!(s.cancellations.by_cause.get("link_short"), Some(&1));
        // Step two waited for step one: submitted, then inflight.
        let b = g.request(1).unwrap();
        let hist: Vec<ReqState> = b.history.iter().map(|h| h.1).collect();
        assert_eq!(
            hist,
            vec![ReqState::Submitted, ReqState::Inflight, ReqState::Short]
        );
        assert_eq!(g.request(2).unwrap().cancelled_by, Some(1));
    }
}

/// 6.1 reports each link against the chain's head (`link->head`),
/// later kernels against the previous request (`link->last`): the
/// same chain either way.
#[test]
fn link_events_naming_the_head_build_the_same_chain() {
    let mut eg = Gen { ts: 0 };
    let mut evs = short_chain(&mut eg, true);
    for e in &mut evs {
        if let ProbeEvent::Link { req, target, .. } = e
            && req.0 == 0xc
        {
            *target = Ptr(0xa);
        }
    }
    let g = run(&evs);
    assert_eq!(
        states(&g),
        vec![ReqState::Completed, ReqState::Short, ReqState::Cancelled]
    );
    assert_eq!(g.chains()[0].members, vec![0, 1, 2]);
    assert_eq!(g.request(2).unwrap().cancelled_by, Some(1));
}

#[test]
fn error_cancels_the_rest_with_link_error_cause() {
    let mut eg = Gen { ts: 0 };
    let evs = vec![
        eg.submit(0xa, 1, LINK),
        eg.submit(0xb, 2, LINK),
        eg.link(0xb, 0xa),
        eg.submit(0xc, 3, 0),
        eg.link(0xc, 0xb),
        eg.fail_link(0xa, 0xb),
        eg.fail_link(0xa, 0xc),
        eg.complete(0xa, 1, -libc::EBADF),
        eg.complete(0xb, 2, ECANCELED),
        eg.complete(0xc, 3, ECANCELED),
    ];
    let g = run(&evs);
    assert_eq!(
        states(&g),
        vec![ReqState::Failed, ReqState::Cancelled, ReqState::Cancelled]
    );
    let s = g.stats();
    assert_eq!(s.cancellations.total, 2);
    assert_eq!(s.cancellations.by_cause.get("link_error"), Some(&2));
    // B never ran: it went from submitted straight to cancelled.
    let hist: Vec<ReqState> = g.request(1).unwrap().history.iter().map(|h| h.1).collect();
    assert_eq!(hist, vec![ReqState::Submitted, ReqState::Cancelled]);
}

#[test]
fn cancellation_before_cause_completes_is_resolved_later() {
    let mut eg = Gen { ts: 0 };
    let evs = vec![
        eg.submit(0xa, 1, LINK),
        eg.submit(0xb, 2, 0),
        eg.link(0xb, 0xa),
        eg.fail_link(0xa, 0xb),
        eg.complete(0xb, 2, ECANCELED),
    ];
    let mut g = run(&evs);
    assert_eq!(g.cancellations().next().unwrap().cause, None);
    assert_eq!(g.stats().cancellations.by_cause.get("unknown"), Some(&1));
    let e = eg.complete(0xa, 1, -libc::EIO);
    g.push(&e);
    assert_eq!(
        g.cancellations().next().unwrap().cause,
        Some(KernelCause::LinkError)
    );
    let s = g.stats();
    assert_eq!(s.cancellations.by_cause.get("link_error"), Some(&1));
    assert_eq!(s.cancellations.by_cause.get("unknown"), None);
}

/// A read guarded by a LINK_TIMEOUT that expires: the read's
/// -ECANCELED names the timeout, in either order of the two CQEs.
#[test]
fn expired_link_timeout_is_the_cause() {
    for timeout_first in [false, true] {
        let mut eg = Gen { ts: 0 };
        let mut t = eg.submit(0xb, 2, 0);
        if let ProbeEvent::SubmitReq { opcode, .. } = &mut t {
            *opcode = ringside_schema::abi::op::LINK_TIMEOUT;
        }
        let mut evs = vec![eg.submit(0xa, 1, LINK), t, eg.link(0xb, 0xa)];
        let (read, timer) = (eg.complete(0xa, 1, ECANCELED), eg.complete(0xb, 2, -62));
        if timeout_first {
            evs.extend([timer, read]);
        } else {
            evs.extend([read, timer]);
        }
        let g = run(&evs);
        let c: Vec<_> = g.cancellations().cloned().collect();
        assert_eq!(c.len(), 1, "timeout_first={timeout_first}");
        assert_eq!((c[0].victim, c[0].by), (0, Some(1)));
        assert_eq!(c[0].cause, Some(KernelCause::LinkTimeout));
        let s = g.stats();
        assert_eq!(s.cancellations.by_cause.get("link_timeout"), Some(&1));
        assert_eq!(s.cancellations.by_cause.get("explicit"), None);
    }
}

#[test]
fn explicit_cancel_has_no_link_cause() {
    let mut eg = Gen { ts: 0 };
    let g = run(&[eg.submit(0xa, 1, 0), eg.complete(0xa, 1, ECANCELED)]);
    let s = g.stats();
    assert_eq!(s.cancellations.by_cause.get("explicit"), Some(&1));
    assert_eq!(s.chains.total, 0);
}

#[test]
fn reused_address_never_mixes_two_requests() {
    let mut eg = Gen { ts: 0 };
    let evs = vec![
        eg.submit(0xa, 1, LINK),
        eg.submit(0xb, 2, 0),
        eg.link(0xb, 0xa),
        eg.complete(0xa, 1, 10),
        eg.complete(0xb, 2, 10),
        // The kernel reuses 0xa and 0xb for two new, unlinked requests.
        eg.submit(0xb, 3, 0),
        eg.submit(0xa, 4, 0),
        eg.complete(0xa, 4, -libc::EIO),
        eg.complete(0xb, 3, 5),
    ];
    let g = run(&evs);
    let rs = g.requests();
    assert_eq!(rs.len(), 4);
    assert_eq!(
        rs.iter()
            .map(|r| (r.user_data, r.state))
            .collect::<Vec<_>>(),
        vec![
            (1, ReqState::Completed),
            (2, ReqState::Completed),
            (3, ReqState::Completed),
            (4, ReqState::Failed)
        ]
    );
    assert_eq!(
        rs[2].chain, None,
        "new request at 0xb is not in the old chain"
    );
    assert_eq!(rs[3].chain, None);
    assert_eq!(rs[0].res, Some(10), "old request keeps its own result");
    assert_eq!(g.chains()[0].members, vec![0, 1]);
    assert_eq!(g.request_at(RING, Ptr(0xa)).unwrap().user_data, 4);
    assert_eq!(g.stats().requests.pointer_reuses, 0);
}

#[test]
fn reuse_before_completion_seen_is_unobserved() {
    let mut eg = Gen { ts: 0 };
    let skip = sqe_flags::CQE_SKIP_SUCCESS as u64;
    let g = run(&[
        eg.submit(0xa, 1, 0),
        eg.submit(0xb, 2, skip),
        eg.submit(0xa, 3, 0),
        eg.submit(0xb, 4, 0),
    ]);
    assert_eq!(
        states(&g),
        vec![
            ReqState::Unobserved,
            ReqState::Completed,
            ReqState::Inflight,
            ReqState::Inflight
        ]
    );
    assert_eq!(g.stats().requests.pointer_reuses, 2);
}

#[test]
fn completion_without_submission_is_an_orphan() {
    let mut eg = Gen { ts: 0 };
    let g = run(&[
        eg.complete(0xa, 9, 1),
        eg.complete(0, 7, 0), // aux CQE (MSG_RING)
    ]);
    let s = g.stats();
    assert_eq!(s.requests.orphan_completions, 1);
    assert_eq!(s.requests.aux_completions, 1);
    assert_eq!(states(&g), vec![ReqState::Completed]);
    assert_eq!(g.requests()[0].submitted_ns, None);
}

#[test]
fn multishot_stays_inflight_until_last_cqe() {
    let mut eg = Gen { ts: 0 };
    let more = cqe_flags::MORE;
    let mut g = run(&[
        eg.submit(0xa, 1, 0),
        eg.complete_f(0xa, 1, 5, more),
        eg.complete_f(0xa, 1, 6, more),
    ]);
    assert_eq!(states(&g), vec![ReqState::Inflight]);
    let e = eg.complete(0xa, 1, 0);
    g.push(&e);
    assert_eq!(states(&g), vec![ReqState::Completed]);
    assert_eq!(g.requests()[0].completions, 3);
}

#[test]
fn hardlink_chain_survives_failure() {
    let mut eg = Gen { ts: 0 };
    let g = run(&[
        eg.submit(0xa, 1, HARD),
        eg.submit(0xb, 2, 0),
        eg.link(0xb, 0xa),
        eg.complete(0xa, 1, -libc::EIO),
        eg.complete(0xb, 2, 7),
    ]);
    assert_eq!(states(&g), vec![ReqState::Failed, ReqState::Completed]);
    let s = g.stats();
    assert_eq!(s.chains.hard, 1);
    assert_eq!(s.chains.broken, 0);
    assert_eq!(s.cancellations.total, 0);
}

#[test]
fn link_event_builds_chain_when_head_was_not_seen() {
    let mut eg = Gen { ts: 0 };
    // Attached after A was submitted: only B's submit and link are seen.
    let g = run(&[
        eg.submit(0xb, 2, 0),
        eg.link(0xb, 0xa),
        eg.complete(0xb, 2, 1),
    ]);
    let ch = g.chains();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].members, vec![0]);
    assert_eq!(states(&g), vec![ReqState::Completed]);
}

#[test]
fn two_chains_back_to_back() {
    let mut eg = Gen { ts: 0 };
    let g = run(&[
        eg.submit(0xa, 1, LINK),
        eg.submit(0xb, 2, 0),
        eg.link(0xb, 0xa),
        eg.submit(0xc, 3, LINK),
        eg.submit(0xd, 4, 0),
        eg.link(0xd, 0xc),
        eg.submit(0xe, 5, 0),
    ]);
    let ch = g.chains();
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].members, vec![0, 1]);
    assert_eq!(ch[1].members, vec![2, 3]);
    assert_eq!(g.request(4).unwrap().chain, None);
    assert_eq!(
        states(&g),
        vec![
            ReqState::Inflight,
            ReqState::Submitted,
            ReqState::Inflight,
            ReqState::Submitted,
            ReqState::Inflight
        ]
    );
}

#[test]
fn req_failed_without_submit() {
    let mut eg = Gen { ts: 0 };
    let h = eg.h();
    let g = run(&[ProbeEvent::ReqFailed {
        hdr: h,
        ring: RING,
        req: Ptr(0xa),
        user_data: 5,
        opcode: 22,
        sqe_flags: 0,
        off: 0,
        addr: 0,
        len: 0,
        buf_index: 0,
        error: -libc::EINVAL,
    }]);
    assert_eq!(states(&g), vec![ReqState::Failed]);
    assert_eq!(g.requests()[0].res, Some(-libc::EINVAL));
}

#[test]
fn limit_evicts_finished_requests_but_keeps_counts() {
    let mut g = RequestGraph::with_limit(10);
    let mut eg = Gen { ts: 0 };
    for i in 0..1000u64 {
        let p = 0x1000 + (i % 7) * 0x100;
        g.push(&eg.submit(p, i, 0));
        g.push(&eg.complete(p, i, 1));
    }
    // A chain whose cause is evicted before... still counted.
    assert!(g.requests().len() <= 10);
    let s = g.stats();
    assert_eq!(s.requests.total, 1000);
    assert_eq!(s.requests.completed, 1000);
    assert_eq!(s.events, 2000);
}

#[test]
fn garbage_streams_never_panic() {
    // Random-ish sequences of events over few addresses.
    let mut seed = 12345u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut g = RequestGraph::with_limit(50);
    let mut eg = Gen { ts: 0 };
    for _ in 0..20000 {
        let a = 0x10 + rnd() % 6;
        let b = 0x10 + rnd() % 6;
        let ev = match rnd() % 6 {
            0 => eg.submit(a, a, [0, LINK, HARD][(rnd() % 3) as usize]),
            1 => eg.link(a, b),
            2 => eg.complete(a, a, [0, 5, ECANCELED, -5][(rnd() % 4) as usize]),
            3 => eg.fail_link(a, b),
            4 => eg.complete_f(a, a, 1, cqe_flags::MORE),
            _ => eg.complete(0, 0, 0),
        };
        g.push(&ev);
        // The O(1) live counts agree with a count of the requests.
        let live = |st| g.requests().iter().filter(|r| r.state == st).count() as u64;
        let s = g.stats();
        assert_eq!(s.requests.submitted, live(ReqState::Submitted));
        assert_eq!(s.requests.inflight, live(ReqState::Inflight));
    }
    let s = g.stats();
    assert_eq!(s.events, 20000);
    assert!(g.requests().len() <= 60);
}
