//! A decision nobody records (no listener, no debugger) takes a shorter path
//! through the engine than a recorded one. Both must do exactly the same:
//! the same chain outcomes, completions, counters and map contents.

use ringside_engine::abi::RsSqe;
use ringside_engine::chain::StepSpec;
use ringside_engine::decision::Budgets;
use ringside_engine::engine::{ChainEnd, Stats};
use ringside_engine::event::{AppCompletion, LinkMode, Notify, Overflow, StepKind};
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, ProgId};
use ringside_engine::{ChainSpec, Engine, EngineConfig, progs};

const STEER: &[u8] = include_bytes!("bpf/steer.bpf.o");

/// What the application can observe of a run.
#[derive(Debug, PartialEq)]
struct Observed {
    finished: Vec<ChainEnd>,
    completions: Vec<AppCompletion>,
    stats: Stats,
}

fn chain(user_data: u64, steps: Vec<StepSpec>, program: ProgId, notify: Notify) -> ChainSpec {
    ChainSpec {
        user_data,
        steps,
        program: Some(program),
        notify,
        drain: false,
        link: LinkMode::Engine,
    }
}

/// Every action steer knows (drop, unlink, detached submit and emit, a bpf
/// step that stops, insertions at the end and after the current step),
/// nop_chain to completion and into the step budget: once with a listener
/// (every decision recorded) and once without.
fn run(listen: bool, exec: ExecMode) -> Observed {
    let mut e = Engine::new(EngineConfig {
        budgets: Budgets {
            steps_per_chain: 40,
            ..Budgets::default()
        },
        ..Default::default()
    })
    .unwrap();
    let opts = LoadOptions {
        exec,
        ..Default::default()
    };
    let steer = e.load_object("steer.o", STEER, &opts).unwrap().programs[0].1;
    let nops = e
        .load_object("nop_chain.o", progs::builtin("nop_chain").unwrap(), &opts)
        .unwrap()
        .programs[0]
        .1;
    let sub = listen.then(|| e.subscribe(1 << 20, Overflow::Block));
    let bpf_step = |user_data| StepSpec {
        kind: StepKind::Bpf,
        sqe: RsSqe {
            user_data,
            ..StepSpec::nop(user_data).sqe
        },
        program: Some(steer),
    };
    let specs = [
        chain(
            1,
            vec![StepSpec::nop(1), StepSpec::nop(10), StepSpec::nop(11)],
            steer,
            Notify::All,
        ),
        chain(
            2,
            vec![StepSpec::nop(2), StepSpec::nop(20), StepSpec::nop(21)],
            steer,
            Notify::All,
        ),
        chain(
            3,
            vec![StepSpec::nop(3), StepSpec::nop(30)],
            steer,
            Notify::All,
        ),
        chain(
            4,
            vec![StepSpec::nop(0), bpf_step(4), StepSpec::nop(40)],
            steer,
            Notify::Final,
        ),
        chain(
            5,
            vec![StepSpec::nop(5), StepSpec::nop(50)],
            steer,
            Notify::All,
        ),
        // nop_chain: 30 steps (within the budget of 40), then 100 (over it).
        chain(30, vec![StepSpec::nop(30)], nops, Notify::Final),
        chain(100, vec![StepSpec::nop(100)], nops, Notify::Final),
    ];
    for s in specs {
        e.submit_chain(s).unwrap();
    }
    e.run_until_idle().unwrap();
    let mut finished = e.take_finished();
    finished.sort_by_key(|f| f.chain);
    let mut completions = e.take_completions();
    completions.sort_by_key(|c| (c.chain, c.step, c.user_data, c.res));
    let mut stats = e.stats();
    // Time and syscalls differ run to run.
    stats.decision_ns = 0;
    stats.enter_calls = 0;
    drop(e);
    if let Some(sub) = sub {
        assert!(
            sub.iter().count() > 100,
            "the listener saw the run's events"
        );
    }
    Observed {
        finished,
        completions,
        stats,
    }
}

#[test]
fn unrecorded_decisions_do_what_recorded_ones_do() {
    for exec in [ExecMode::Interpreter, ExecMode::Compiled] {
        let quiet = run(false, exec);
        let recorded = run(true, exec);
        assert_eq!(quiet, recorded, "{exec:?}");
        // The scenario does what it says (so the comparison means something).
        assert_eq!(quiet.finished.len(), 7);
        assert!(
            quiet
                .finished
                .iter()
                .any(|f| f.user_data == 100 && !f.outcome.is_success()),
            "{:?}",
            quiet.finished
        );
        assert!(
            quiet
                .completions
                .iter()
                .any(|c| c.user_data == 77 && c.res == 5)
        );
        // 30 + 40 (the budget) decisions of nop_chain, and steer's.
        assert!(quiet.stats.decisions > 70, "{:?}", quiet.stats);
    }
}
