//! Chains on real rings: kernel links next to engine-driven chains. Under
//! either backend (`RINGSIDE_TEST_BACKEND`, as engine/tests/patterns.rs).

mod common;

use common::*;
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::event::{AppKind, CancelCause, Event, LinkMode, Notify, Outcome, Overflow};
use ringside_engine::{ChainSpec, EngineConfig, StepSpec, progs};

fn read(fd: i32, buf_off: u64, len: u32, user_data: u64) -> StepSpec {
    StepSpec::io(RsSqe {
        opcode: op::READ,
        fd,
        buf_index: 0,
        buf_off,
        len,
        user_data,
        ..Default::default()
    })
}

/// The same three-step chain, with a short read in step 2: as a kernel link,
/// step 3 is cancelled with -ECANCELED; under the engine with read_exact,
/// the chain completes with all the data.
#[test]
fn short_read_cancels_kernel_link_but_not_read_exact() {
    let data = pattern(300, 7);

    // Kernel link.
    let (r, w) = pipe();
    write_all(raw(&w), &data[..150]);
    let mut e = engine_with(EngineConfig {
        files: vec![(raw(&r), "pipe".into())],
        buffers: vec![4096],
        ..Default::default()
    });
    let sub = e.subscribe(1024, Overflow::Block);
    let chain = ChainSpec {
        user_data: 1,
        steps: vec![
            read(0, 0, 100, 10),
            read(0, 100, 100, 11),
            read(0, 200, 100, 12),
        ],
        program: None,
        notify: Notify::All,
        drain: false,
        link: LinkMode::Kernel,
    };
    let id = e.submit_chain(chain.clone()).unwrap();
    e.run_until_idle().unwrap();
    let done: Vec<_> = e.take_completions();
    let step_res: Vec<(Option<u32>, i32)> = done
        .iter()
        .filter(|c| c.kind != AppKind::Final)
        .map(|c| (c.step, c.res))
        .collect();
    assert_eq!(
        step_res,
        vec![(Some(0), 100), (Some(1), 50), (Some(2), -libc::ECANCELED)]
    );
    let fin = done.iter().find(|c| c.kind == AppKind::Final).unwrap();
    assert_eq!(fin.res, 50);
    let events: Vec<Event> = sub.try_iter().map(|r| r.event.clone()).collect();
    assert!(events.iter().any(|ev| matches!(ev,
        Event::Cancelled { chain, step: 2, cause: CancelCause::KernelLink { failed_step: 1 }, issued: true, .. } if *chain == id)));
    assert!(events.iter().any(|ev| matches!(
        ev,
        Event::ChainFinished {
            outcome: Outcome::Failed { step: 1, .. },
            ..
        }
    )));
    drop(e);

    // The same chain under the engine with read_exact.
    let (r, w) = pipe();
    write_all(raw(&w), &data[..150]);
    let mut e = engine_with(EngineConfig {
        files: vec![(raw(&r), "pipe".into())],
        buffers: vec![4096],
        ..Default::default()
    });
    let obj = e
        .load_object("read_exact.o", progs::READ_EXACT, &load_options())
        .unwrap();
    let prog = obj.programs[0].1;
    let sub = e.subscribe(1 << 16, Overflow::Block);
    let id = e
        .submit_chain(ChainSpec {
            program: Some(prog),
            link: LinkMode::Auto,
            ..chain
        })
        .unwrap();
    // Write the rest only once the short read has been seen: deterministic.
    let mut wrote = false;
    while e.active_chains() > 0 {
        e.run(true).unwrap();
        if !wrote
            && sub.try_iter().any(|r| {
                matches!(
                    r.event,
                    Event::Completed {
                        step: 1,
                        res: 50,
                        ..
                    }
                )
            })
        {
            write_all(raw(&w), &data[150..]);
            wrote = true;
        }
    }
    assert!(wrote, "step 2 was not short");
    let done = e.take_completions();
    let fin = done
        .iter()
        .find(|c| c.kind == AppKind::Final && c.chain == id)
        .unwrap();
    assert_eq!(fin.flags, 0, "chain failed: {done:?}");
    assert_eq!(fin.res, 300, "read_exact reports the chain's total bytes");
    assert_eq!(&e.buffer(0).unwrap()[..300], &data[..]);
    assert!(done.iter().all(|c| c.res != -libc::ECANCELED));
}

/// The `_into` takers hand over the same chain ends and completions as
/// `take_finished` and `take_completions`, each exactly once, into the
/// caller's buffers (cleared for chain ends, appended to for completions).
#[test]
fn chain_ends_and_completions_taken_into_buffers_come_once_each() {
    let mut e = engine_with(EngineConfig::default());
    let nop_chain = |user_data: u64| ChainSpec {
        user_data,
        steps: vec![
            StepSpec::nop(user_data * 10),
            StepSpec::nop(user_data * 10 + 1),
        ],
        program: None,
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Engine,
    };
    let (mut ends, mut posted) = (Vec::new(), Vec::new());
    for round in 1..=3u64 {
        let a = e.submit_chain(nop_chain(round * 2)).unwrap();
        let b = e.submit_chain(nop_chain(round * 2 + 1)).unwrap();
        e.run_until_idle().unwrap();
        e.take_finished_into(&mut ends);
        let mut got: Vec<(u64, u64)> = ends.iter().map(|f| (f.chain, f.user_data)).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            vec![(a, round * 2), (b, round * 2 + 1)],
            "round {round}"
        );
        assert!(ends.iter().all(|f| f.outcome == Outcome::Completed));
        // Taken once: the engine has none left.
        e.take_finished_into(&mut ends);
        assert!(ends.is_empty() && e.take_finished().is_empty());
        e.take_completions_into(&mut posted);
        assert_eq!(posted.len() as u64, round * 2, "round {round}");
        assert!(e.take_completions().is_empty());
    }
    let mut finals: Vec<u64> = posted.iter().map(|c| c.user_data).collect();
    finals.sort_unstable();
    assert_eq!(finals, (2..8).collect::<Vec<_>>());
    assert!(posted.iter().all(|c| c.kind == AppKind::Final));
}
