//! Where programs run (per step, per chain, per ring, bpf steps), what their
//! actions do (drop, unlink, detached submits, emit, insertions), the
//! notification policies, and drain ordering. Under either backend
//! (`RINGSIDE_TEST_BACKEND`, as engine/tests/patterns.rs).

mod common;

use common::*;
use ringside_engine::abi::{OP_BPF, RsSqe, op};
use ringside_engine::event::{
    AppKind, CancelCause, Event, EventRecord, LinkMode, Notify, Outcome, Overflow, StepKind,
};
use ringside_engine::program::ProgId;
use ringside_engine::{ChainSpec, Engine, EngineConfig, StepSpec};
use std::os::fd::AsRawFd;
use std::sync::Arc;

const STEER: &[u8] = include_bytes!("bpf/steer.bpf.o");

fn setup(files: Vec<(i32, String)>) -> (Engine, ProgId, ringside_engine::event::Subscription) {
    let mut e = engine_with(EngineConfig {
        files,
        buffers: vec![4096],
        ..Default::default()
    });
    let p = e
        .load_object("steer.o", STEER, &load_options())
        .unwrap()
        .programs[0]
        .1;
    let sub = e.subscribe(1 << 16, Overflow::Drop);
    (e, p, sub)
}

fn spec(steps: Vec<StepSpec>, program: Option<ProgId>, notify: Notify) -> ChainSpec {
    ChainSpec {
        user_data: 1000,
        steps,
        program,
        notify,
        drain: false,
        link: LinkMode::Auto,
    }
}

fn events(sub: &ringside_engine::event::Subscription) -> Vec<Arc<EventRecord>> {
    sub.try_iter().collect()
}

/// (step, user_data) of every submitted request, in order.
fn submitted(evs: &[Arc<EventRecord>]) -> Vec<(u32, u64)> {
    evs.iter()
        .filter_map(|r| match &r.event {
            Event::Submitted { step, sqe, .. } => Some((*step, sqe.user_data)),
            _ => None,
        })
        .collect()
}

#[test]
fn rs_drop_drops_the_next_step_and_the_chain_goes_on() {
    let (mut e, p, sub) = setup(vec![]);
    e.submit_chain(spec(
        vec![StepSpec::nop(1), StepSpec::nop(10), StepSpec::nop(11)],
        Some(p),
        Notify::All,
    ))
    .unwrap();
    e.run_until_idle().unwrap();
    let evs = events(&sub);
    assert_eq!(submitted(&evs), vec![(0, 1), (2, 11)]);
    assert!(evs.iter().any(|r| matches!(
        &r.event,
        Event::Cancelled {
            step: 1,
            cause: CancelCause::Dropped { .. },
            issued: false,
            ..
        }
    )));
    assert_eq!(e.take_finished()[0].outcome, Outcome::Completed);
    // notify = all: two step completions, one cancellation, one final.
    let kinds: Vec<AppKind> = e.take_completions().iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AppKind::Step,
            AppKind::Cancelled,
            AppKind::Step,
            AppKind::Final
        ]
    );
}

#[test]
fn a_per_step_program_runs_only_on_its_step_and_rs_unlink_isolates_a_failure() {
    // Step 1 reads from a write-only pipe end: -EBADF. Only step 0 has a program.
    let (_r, w) = pipe();
    for unlink in [false, true] {
        let (mut e, p, sub) = setup(vec![(w.as_raw_fd(), "write end".into())]);
        let mut first = StepSpec::nop(if unlink { 2 } else { 9 });
        first.program = Some(p);
        let bad_read = StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: 0,
            buf_index: 0,
            len: 16,
            user_data: 20,
            ..Default::default()
        });
        e.submit_chain(spec(
            vec![first, bad_read, StepSpec::nop(21)],
            None,
            Notify::Final,
        ))
        .unwrap();
        e.run_until_idle().unwrap();
        let evs = events(&sub);
        let decisions = evs
            .iter()
            .filter(|r| matches!(r.event, Event::Decision(_)))
            .count();
        assert_eq!(decisions, 1, "the program is attached to step 0 only");
        let end = e.take_finished().pop().unwrap();
        if unlink {
            assert_eq!(
                end.outcome,
                Outcome::Completed,
                "an unlinked failure does not cancel what follows"
            );
            assert_eq!(submitted(&evs).len(), 3);
        } else {
            assert!(
                matches!(
                    end.outcome,
                    Outcome::Failed {
                        step: 1,
                        cause: CancelCause::LinkFailed { failed_step: 1 }
                    }
                ),
                "{:?}",
                end.outcome
            );
            assert_eq!(submitted(&evs).len(), 2);
        }
    }
}

#[test]
fn the_ring_program_applies_to_chains_without_their_own() {
    let (mut e, p, sub) = setup(vec![]);
    e.set_ring_program(Some(p)).unwrap();
    let id = e
        .submit_chain(spec(
            vec![StepSpec::nop(3), StepSpec::nop(30)],
            None,
            Notify::None,
        ))
        .unwrap();
    e.run_until_idle().unwrap();
    let evs = events(&sub);
    assert!(evs.iter().any(|r| matches!(&r.event, Event::ChainCreated { chain, driven_by: LinkMode::Engine, .. } if *chain == id)));
    // The detached nop was issued and reaped; rs_emit posted despite notify = none.
    assert!(evs.iter().any(|r| matches!(
        &r.event,
        Event::StepAdded {
            place: ringside_engine::abi::Where::Detached,
            ..
        }
    )));
    assert_eq!(submitted(&evs).len(), 3);
    let done = e.take_completions();
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].kind, done[0].user_data, done[0].res),
        (AppKind::Emit, 77, 5)
    );
    assert_eq!(e.take_finished()[0].outcome, Outcome::Completed);
}

#[test]
fn a_bpf_step_decides_between_io_steps() {
    if user_backend_only(
        "a_bpf_step_decides_between_io_steps",
        "it does not run bpf steps yet: submit_chain refuses such a chain (KernelError::Unsupported)",
    ) {
        return;
    }
    let (mut e, p, sub) = setup(vec![]);
    let bpf = StepSpec {
        kind: StepKind::Bpf,
        sqe: RsSqe {
            user_data: 4,
            fd: -1,
            buf_index: 0xffff,
            ..Default::default()
        },
        program: Some(p),
    };
    // The nop before it completes with 0: the bpf step stops the chain.
    e.submit_chain(spec(
        vec![StepSpec::nop(40), bpf, StepSpec::nop(41)],
        None,
        Notify::Final,
    ))
    .unwrap();
    e.run_until_idle().unwrap();
    let evs = events(&sub);
    let d = evs
        .iter()
        .find_map(|r| match &r.event {
            Event::Decision(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((d.ctx.opcode, d.ctx.step, d.ctx.res), (OP_BPF, 1, 0));
    assert_eq!(submitted(&evs), vec![(0, 40)]);
    assert!(matches!(
        e.take_finished()[0].outcome,
        Outcome::Stopped { .. }
    ));
}

#[test]
fn insertions_keep_the_chain_in_order() {
    let (mut e, p, sub) = setup(vec![]);
    // Step 0 (ud 5) appends ud 6 and inserts ud 7 right after itself.
    e.submit_chain(spec(
        vec![StepSpec::nop(5), StepSpec::nop(50)],
        Some(p),
        Notify::Final,
    ))
    .unwrap();
    e.run_until_idle().unwrap();
    let order: Vec<u64> = submitted(&events(&sub))
        .into_iter()
        .map(|(_, ud)| ud)
        .collect();
    assert_eq!(order, vec![5, 7, 50, 6]);
}

#[test]
fn a_drain_chain_waits_for_earlier_chains_and_holds_later_ones() {
    let (r, w) = pipe();
    let (mut e, _p, sub) = setup(vec![(r.as_raw_fd(), "pipe".into())]);
    let read = |ud| {
        StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: 0,
            buf_index: 0,
            len: 1,
            user_data: ud,
            ..Default::default()
        })
    };
    let a = e
        .submit_chain(ChainSpec {
            link: LinkMode::Kernel,
            ..spec(vec![read(1)], None, Notify::Final)
        })
        .unwrap();
    let b = e
        .submit_chain(ChainSpec {
            drain: true,
            link: LinkMode::Kernel,
            ..spec(vec![StepSpec::nop(2)], None, Notify::Final)
        })
        .unwrap();
    let c = e
        .submit_chain(ChainSpec {
            link: LinkMode::Kernel,
            ..spec(vec![StepSpec::nop(3)], None, Notify::Final)
        })
        .unwrap();
    for _ in 0..3 {
        e.run_timeout(true, Some(std::time::Duration::from_millis(5)))
            .unwrap();
    }
    // A blocks on the empty pipe: B and C have not started.
    let started: Vec<u64> = events(&sub)
        .iter()
        .filter_map(|r| match r.event {
            Event::ChainStarted { chain } => Some(chain),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![a]);
    write_all(w.as_raw_fd(), b"x");
    e.run_until_idle().unwrap();
    let order: Vec<u64> = e.take_finished().iter().map(|f| f.chain).collect();
    assert_eq!(order, vec![a, b, c]);
}
