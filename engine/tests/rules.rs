//! rs_submit's template rules, the budgets, and shutdown with chains in
//! flight. Under either backend (`RINGSIDE_TEST_BACKEND`, as
//! engine/tests/patterns.rs).

mod common;

use common::*;
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::decision::{BudgetKind, Budgets};
use ringside_engine::event::{CancelCause, Event, LinkMode, Notify, Outcome, Overflow};
use ringside_engine::kernel::{Backend, KernelError, Unsupported};
use ringside_engine::program::ProgId;
use ringside_engine::{ChainSpec, Engine, EngineConfig, EngineError, StepSpec, progs};
use std::os::fd::AsRawFd;
use std::time::Duration;

const SUBMIT_PROBE: &[u8] = include_bytes!("bpf/submit_probe.bpf.o");
const RUNAWAY: &[u8] = include_bytes!("bpf/runaway.bpf.o");

fn one_chain(e: &mut Engine, prog: ProgId, user_data: u64) -> (Outcome, i32) {
    e.submit_chain(ChainSpec {
        user_data,
        steps: vec![StepSpec::nop(user_data)],
        program: Some(prog),
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Auto,
    })
    .unwrap();
    e.run_until_idle().unwrap();
    let f = e.take_finished().pop().unwrap();
    (f.outcome, f.res)
}

#[test]
fn rs_submit_validates_every_field_of_the_template() {
    let (r, _w) = pipe();
    let mut e = engine_with(EngineConfig {
        files: vec![(r.as_raw_fd(), "pipe".into())],
        buffers: vec![4096],
        ..Default::default()
    });
    let prog = e
        .load_object("submit_probe.o", SUBMIT_PROBE, &load_options())
        .unwrap()
        .programs[0]
        .1;
    let cfg = e.map_by_name(prog, "probe_cfg").unwrap();
    let sub = e.subscribe(1 << 16, Overflow::Drop);
    let read = RsSqe {
        opcode: op::READ,
        fd: 0,
        buf_index: 0,
        buf_off: 0,
        len: 4096,
        ..Default::default()
    };
    let nop = RsSqe {
        opcode: op::NOP,
        fd: -1,
        buf_index: 0xffff,
        ..Default::default()
    };
    let cases: Vec<(&str, RsSqe, u32, u32, i32, &str)> = vec![
        ("a valid read", read, 40, 0, 1, ""),
        ("a valid nop at the end", nop, 40, 1, 1, ""),
        ("a valid detached nop", nop, 40, 2, 1, ""),
        (
            "opcode not allowed (accept)",
            RsSqe { opcode: 13, ..read },
            40,
            0,
            -libc::EPERM,
            "allow-list",
        ),
        (
            "opcode not allowed (openat)",
            RsSqe { opcode: 18, ..nop },
            40,
            0,
            -libc::EPERM,
            "allow-list",
        ),
        (
            "reserved byte set",
            RsSqe { _rsvd: 1, ..read },
            40,
            0,
            -libc::EINVAL,
            "_rsvd",
        ),
        ("wrong size", read, 32, 0, -libc::EINVAL, "size 32"),
        ("bad where", read, 40, 7, -libc::EINVAL, "where = 7"),
        (
            "unregistered file index",
            RsSqe { fd: 1, ..read },
            40,
            0,
            -libc::EPERM,
            "registered-file index",
        ),
        (
            "a raw fd",
            RsSqe {
                fd: r.as_raw_fd(),
                ..read
            },
            40,
            0,
            -libc::EPERM,
            "registered-file index",
        ),
        (
            "negative fd",
            RsSqe { fd: -1, ..read },
            40,
            0,
            -libc::EPERM,
            "registered-file index",
        ),
        (
            "unregistered buffer",
            RsSqe {
                buf_index: 1,
                ..read
            },
            40,
            0,
            -libc::EPERM,
            "not a registered buffer",
        ),
        (
            "past the buffer's end",
            RsSqe { buf_off: 1, ..read },
            40,
            0,
            -libc::EFAULT,
            "outside buffer 0",
        ),
        (
            "offset overflow",
            RsSqe {
                buf_off: u64::MAX,
                len: 2,
                ..read
            },
            40,
            0,
            -libc::EFAULT,
            "outside buffer 0",
        ),
        (
            "huge nop length",
            RsSqe {
                len: u32::MAX,
                ..nop
            },
            40,
            0,
            -libc::EINVAL,
            "too large",
        ),
    ];
    for (what, sqe, size, place, want, why) in cases {
        let mut v = sqe.to_bytes().to_vec();
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&place.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        e.map_update(cfg, &0u32.to_le_bytes(), &v, 0).unwrap();
        let (outcome, res) = one_chain(&mut e, prog, 1);
        assert_eq!(res, want, "{what}");
        assert!(
            matches!(outcome, Outcome::Stopped { .. }),
            "{what}: {outcome:?}"
        );
        // The decision event shows the call and, on failure, why.
        let call = sub
            .try_iter()
            .filter_map(|r| match &r.event {
                Event::Decision(d) => d.calls.iter().find(|c| c.helper == 0x1000).cloned(),
                _ => None,
            })
            .last()
            .unwrap();
        assert_eq!(call.ret, want as i64, "{what}");
        if want < 0 {
            let err = call.error.unwrap_or_default();
            assert!(
                err.contains(why),
                "{what}: error `{err}` should mention `{why}`"
            );
        } else {
            assert!(call.error.is_none(), "{what}: {:?}", call.error);
        }
    }
}

#[test]
fn a_program_that_resubmits_forever_is_stopped_by_its_budget() {
    // Submits per decision below the kernel backend's 16 unfinished steps
    // per chain, which a decision of the default budget (16 submits, plus
    // the step it decides about) reaches first there.
    let mut e = engine_with(EngineConfig {
        budgets: Budgets {
            submits_per_decision: 8,
            ..Budgets::default()
        },
        ..Default::default()
    });
    let prog = e
        .load_object("runaway.o", RUNAWAY, &load_options())
        .unwrap()
        .programs[0]
        .1;
    let sub = e.subscribe(1 << 20, Overflow::Drop);
    let budgets = *e.budgets();
    for (mode, kind, limit) in [
        (
            0,
            BudgetKind::AttemptsPerStep,
            budgets.attempts_per_step as u64,
        ),
        (1, BudgetKind::StepsPerChain, budgets.steps_per_chain as u64),
        (
            2,
            BudgetKind::SubmitsPerDecision,
            budgets.submits_per_decision as u64,
        ),
    ] {
        let (outcome, res) = one_chain(&mut e, prog, mode);
        match outcome {
            Outcome::Failed {
                cause: CancelCause::Budget { violation, .. },
                ..
            } => {
                assert_eq!(violation.kind, kind, "mode {mode}");
                assert_eq!(violation.limit, limit, "mode {mode}");
            }
            other => panic!("mode {mode}: {other:?}"),
        }
        assert_eq!(res, -libc::E2BIG);
    }
    // The decision that broke the budget took no effect: no step was added by it.
    let evs: Vec<_> = sub.try_iter().collect();
    let last_decision = evs.iter().rev().find_map(|r| match &r.event {
        Event::Decision(d) => Some(d.seq),
        _ => None,
    });
    assert!(!evs.iter().any(|r| matches!(&r.event, Event::StepAdded { decision, .. } if Some(*decision) == last_decision)));
}

#[test]
fn the_instruction_budget_is_counted_and_enforced() {
    let (r, w) = pipe();
    write_all(w.as_raw_fd(), &[1u8; 64]);
    let mut e = engine_with(EngineConfig {
        files: vec![(r.as_raw_fd(), "pipe".into())],
        buffers: vec![64],
        budgets: Budgets {
            insns_per_decision: 10,
            ..Budgets::default()
        },
        ..Default::default()
    });
    let prog = e
        .load_object("read_exact.o", progs::READ_EXACT, &load_options())
        .unwrap()
        .programs[0]
        .1;
    let submitted = e.submit_chain(ChainSpec {
        user_data: 1,
        steps: vec![StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: 0,
            buf_index: 0,
            len: 64,
            ..Default::default()
        })],
        program: Some(prog),
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Auto,
    });
    if e.backend() == Backend::Kernel {
        // The kernel cannot count instructions: a program whose longest
        // path may exceed the budget is refused before it runs, by name.
        match submitted {
            Err(EngineError::Kernel(KernelError::Unsupported(Unsupported::LongestPath {
                program,
                max_path,
                budget: 10,
            }))) => {
                assert_eq!(program, "read_exact");
                assert!(max_path > 10);
            }
            other => panic!("{other:?}"),
        }
        return;
    }
    submitted.unwrap();
    e.run_until_idle().unwrap();
    let f = e.take_finished().pop().unwrap();
    match f.outcome {
        Outcome::Failed {
            cause: CancelCause::Budget { violation, .. },
            ..
        } => {
            assert_eq!(violation.kind, BudgetKind::Instructions);
            assert!(violation.value > 10);
        }
        other => panic!("{other:?}"),
    }
}

/// `SQEs` and `CQEs` pending in a ring, from /proc/self/fdinfo.
fn fdinfo_pending(ring_fd: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{ring_fd}")).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().parse::<u64>().unwrap()))
            .unwrap_or_else(|| panic!("no {k} in fdinfo:\n{text}"))
    };
    (get("SQEs:"), get("CQEs:"))
}

#[test]
fn shutdown_with_hundreds_of_chains_in_flight_leaves_nothing_pending() {
    // 300 engine-driven and 100 kernel-linked chains blocked on pipes that
    // never get data, plus some that are done and some never started.
    let pipes: Vec<_> = (0..4).map(|_| pipe()).collect();
    let mut e = engine_with(EngineConfig {
        entries: 512,
        files: pipes
            .iter()
            .map(|(r, _)| (r.as_raw_fd(), "pipe".to_string()))
            .collect(),
        buffers: vec![64 * 1024],
        ..Default::default()
    });
    let prog = e
        .load_object("read_exact.o", progs::READ_EXACT, &load_options())
        .unwrap()
        .programs[0]
        .1;
    let sub = e.subscribe(1 << 20, Overflow::Drop);
    let read = |fd: i32, i: u64| {
        StepSpec::io(RsSqe {
            opcode: op::READ,
            fd,
            buf_index: 0,
            buf_off: (i % 512) * 64,
            len: 64,
            user_data: i,
            ..Default::default()
        })
    };
    // Engine-driven and kernel-linked chains: as many as the kernel
    // backend's loop holds at once (256 chains) there.
    let (ne, nk): (u64, u64) = match e.backend() {
        Backend::Kernel => (150, 50),
        Backend::User => (300, 100),
    };
    let mut ids = Vec::new();
    for i in 0..ne {
        ids.push(
            e.submit_chain(ChainSpec {
                user_data: i,
                steps: vec![read((i % 4) as i32, i), read(0, i)],
                program: Some(prog),
                notify: Notify::All,
                drain: false,
                link: LinkMode::Auto,
            })
            .unwrap(),
        );
    }
    for i in ne..ne + nk {
        ids.push(
            e.submit_chain(ChainSpec {
                user_data: i,
                steps: vec![read(1, i), read(2, i), read(3, i)],
                program: None,
                notify: Notify::Final,
                drain: false,
                link: LinkMode::Kernel,
            })
            .unwrap(),
        );
    }
    // A drain chain behind all of them never starts.
    ids.push(
        e.submit_chain(ChainSpec {
            user_data: 999,
            steps: vec![read(0, 999)],
            program: Some(prog),
            notify: Notify::Final,
            drain: true,
            link: LinkMode::Auto,
        })
        .unwrap(),
    );
    for _ in 0..5 {
        e.run_timeout(true, Some(Duration::from_millis(10)))
            .unwrap();
    }
    assert_eq!(
        e.inflight() as u64,
        ne + 3 * nk,
        "every engine chain's first read and every kernel link's three reads are in the kernel"
    );
    let report = e.shutdown().unwrap();
    assert_eq!(report.inflight_at_start as u64, ne + 3 * nk);
    assert_eq!(e.inflight(), 0);
    assert_eq!(
        fdinfo_pending(e.ring_fd()),
        (0, 0),
        "nothing left in the ring"
    );
    // Every chain reported an outcome, and it was cancellation by shutdown.
    let mut ended: Vec<u64> = report.chains.iter().map(|c| c.0).collect();
    ended.sort();
    assert_eq!(ended, ids);
    assert!(
        report.chains.iter().all(|c| c.1 == Outcome::Cancelled),
        "{:?}",
        report.chains.iter().find(|c| c.1 != Outcome::Cancelled)
    );
    let evs: Vec<_> = sub.try_iter().collect();
    let finished = evs
        .iter()
        .filter(|r| matches!(r.event, Event::ChainFinished { .. }))
        .count();
    assert_eq!(finished as u64, ne + nk + 1);
    let shutdown_cancels = evs
        .iter()
        .filter(|r| {
            matches!(
                &r.event,
                Event::Cancelled {
                    cause: CancelCause::Shutdown,
                    ..
                }
            )
        })
        .count();
    // Two steps per engine chain, three per kernel link, one never-started step.
    assert_eq!(shutdown_cancels as u64, 2 * ne + 3 * nk + 1);
    assert!(
        e.submit_chain(ChainSpec {
            user_data: 1,
            steps: vec![read(0, 1)],
            program: None,
            notify: Notify::Final,
            drain: false,
            link: LinkMode::Kernel
        })
        .is_err()
    );
    drop(pipes);
}
