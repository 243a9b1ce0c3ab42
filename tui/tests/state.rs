//! The model: how engine events become nodes, states and cancellation
//! groups (a chain built by hand, event by event).

use ringside_engine::abi::{RsSqe, Where, op};
use ringside_engine::event::{
    CancelCause, Event, EventRecord, LinkMode, Notify, Outcome, RingInfo, StepInfo, StepKind,
};
use ringside_recordings::Item;
use ringside_tui::model::{Model, NodeState, RowKey};
use std::sync::Arc;

fn read(len: u32) -> RsSqe {
    RsSqe {
        opcode: op::READ,
        fd: 0,
        buf_index: 0,
        len,
        ..RsSqe::default()
    }
}

struct Feeder {
    state: Model,
    seq: u64,
}

impl Feeder {
    fn ev(&mut self, event: Event) {
        self.seq += 1;
        self.state.apply(Item::Engine(Arc::new(EventRecord {
            seq: self.seq,
            t_ns: self.seq * 1000,
            event,
        })));
    }
}

fn states(s: &Model) -> Vec<NodeState> {
    s.row_states(RowKey::Engine { epoch: 1, chain: 1 })
}

#[test]
fn a_chain_event_by_event() {
    let mut f = Feeder {
        state: Model::new(1000),
        seq: 0,
    };
    f.ev(Event::RingSetup(Box::new(RingInfo {
        fd: 3,
        pid: 1,
        sq_entries: 8,
        cq_entries: 32,
        files: vec![],
        regs: Default::default(),
        budgets: Default::default(),
        backend: Default::default(),
    })));
    f.ev(Event::ChainCreated {
        chain: 1,
        user_data: 9,
        mode: LinkMode::Auto,
        driven_by: LinkMode::Engine,
        notify: Notify::Final,
        drain: false,
        program: None,
        steps: (0..3)
            .map(|i| StepInfo {
                index: i,
                kind: StepKind::Io,
                sqe: read(100),
                program: None,
            })
            .collect(),
    });
    assert_eq!(states(&f.state), vec![NodeState::Queued; 3]);
    f.ev(Event::Submitted {
        chain: 1,
        step: 0,
        sqe: read(100),
        sqe_flags: 0,
        ring_user_data: 1,
        attempt: 1,
    });
    assert_eq!(states(&f.state)[0], NodeState::Inflight);
    assert_eq!(f.state.rings[0].inflight, 1);
    // A short read.
    f.ev(Event::Completed {
        chain: 1,
        step: 0,
        res: 40,
        flags: 0,
        latency_ns: 5000,
        short: true,
    });
    assert_eq!(states(&f.state)[0], NodeState::Short);
    // A program inserts the rest right after it: later steps shift up.
    f.ev(Event::StepAdded {
        chain: 1,
        step: 1,
        place: Where::AfterCurrent,
        sqe: read(60),
        attempt: 2,
        decision: 0,
    });
    let c = &f.state.chains[&(1, 1)];
    assert_eq!(c.nodes.len(), 4);
    assert_eq!(c.nodes[1].inserted, Some(0));
    assert_eq!(c.nodes[1].sqe.len, 60);
    assert_eq!(c.nodes[2].inserted, None);
    f.ev(Event::Submitted {
        chain: 1,
        step: 1,
        sqe: read(60),
        sqe_flags: 0,
        ring_user_data: 2,
        attempt: 2,
    });
    f.ev(Event::Completed {
        chain: 1,
        step: 1,
        res: 60,
        flags: 0,
        latency_ns: 7000,
        short: false,
    });
    assert_eq!(states(&f.state)[1], NodeState::Done);
    // The program stops the chain: the rest is dropped, never issued.
    for step in [2, 3] {
        f.ev(Event::Cancelled {
            chain: 1,
            step,
            cause: CancelCause::ProgramStop {
                decision: 1,
                step: 1,
            },
            res: -125,
            issued: false,
            dropped: true,
        });
    }
    f.ev(Event::ChainFinished {
        chain: 1,
        outcome: Outcome::Stopped { decision: 1 },
        res: 100,
        steps: 4,
    });
    assert_eq!(
        states(&f.state),
        vec![
            NodeState::Short,
            NodeState::Done,
            NodeState::Dropped,
            NodeState::Dropped
        ]
    );
    assert_eq!(f.state.rings[0].inflight, 0);
    assert_eq!(f.state.cancels["program: RS_STOP"].count, 2);
    assert_eq!(f.state.totals.outcomes["stopped"], 1);
    assert_eq!(f.state.latency.count, 2);

    // A kernel link: the kernel cancels issued requests.
    f.ev(Event::ChainCreated {
        chain: 2,
        user_data: 10,
        mode: LinkMode::Kernel,
        driven_by: LinkMode::Kernel,
        notify: Notify::Final,
        drain: false,
        program: None,
        steps: (0..2)
            .map(|i| StepInfo {
                index: i,
                kind: StepKind::Io,
                sqe: read(100),
                program: None,
            })
            .collect(),
    });
    for step in 0..2 {
        f.ev(Event::Submitted {
            chain: 2,
            step,
            sqe: read(100),
            sqe_flags: 4,
            ring_user_data: 3 + step as u64,
            attempt: 1,
        });
    }
    f.ev(Event::Completed {
        chain: 2,
        step: 0,
        res: -5,
        flags: 0,
        latency_ns: 1000,
        short: false,
    });
    f.ev(Event::Cancelled {
        chain: 2,
        step: 1,
        cause: CancelCause::KernelLink { failed_step: 0 },
        res: -125,
        issued: true,
        dropped: false,
    });
    assert_eq!(
        f.state.row_states(RowKey::Engine { epoch: 1, chain: 2 }),
        vec![NodeState::Failed, NodeState::Cancelled]
    );
    assert_eq!(f.state.cancels["kernel link broke"].count, 1);
    assert_eq!(f.state.rings[0].inflight, 0);

    // A second engine instance starts its own ids and clock.
    f.ev(Event::RingSetup(Box::new(RingInfo {
        fd: 4,
        pid: 1,
        sq_entries: 8,
        cq_entries: 32,
        files: vec![],
        regs: Default::default(),
        budgets: Default::default(),
        backend: Default::default(),
    })));
    assert_eq!(f.state.epoch(), 2);
    assert!(f.state.rings[0].closed);
    assert!(f.state.now_ns > f.seq * 1000 - 1000);
}

/// A watched engine sends decisions with their inputs only; the model runs
/// each again and shows it whole: the same helper calls, map writes and
/// instruction counts as the engine would record for a full listener.
#[test]
fn inputs_only_decisions_are_shown_whole() {
    use ringside_engine::decision::Detail;
    use ringside_engine::event::Overflow;
    use ringside_workload::{PrepareOptions, prepare_demo};
    let mut p = prepare_demo(&PrepareOptions::default()).unwrap();
    let sub = p
        .engine()
        .subscribe_with(1 << 20, Overflow::Block, Detail::Inputs);
    let (_, engine) = p.run(&std::sync::atomic::AtomicBool::new(false)).unwrap();
    drop(engine);
    let mut m = Model::new(1_000_000);
    for r in sub.try_iter() {
        m.apply(Item::Engine(r));
    }
    assert_eq!(m.totals.incomplete, 0);
    assert!(m.decisions.len() > 50);
    let mut with_writes = 0;
    for e in &m.decisions {
        let d = e.decision();
        assert_eq!(d.detail, Detail::Full, "decision #{}", d.seq);
        assert!(d.insns.is_some() && !d.prog_name.is_empty());
        with_writes += usize::from(!d.map_writes.is_empty());
    }
    assert!(with_writes > 0, "no decision wrote a map");
    // The Stats view counts every decision's instructions, as for a
    // session watched in full (two demo runs differ in their short reads,
    // so the counts are compared within this one).
    assert_eq!(m.decision_insns.count, m.totals.decisions);
}
