//! The engine's NOP-chain row alone, for profilers (callgrind, perf):
//!
//! ```sh
//! cargo build --release -p ringside-engine --example profile_nops
//! valgrind --tool=callgrind target/release/examples/profile_nops 200000 64 jit
//! ```
//!
//! Arguments: NOPs (default 1000000), chains (default 64), `jit` or `interp`,
//! and `listen` to add a UI-like event listener (a bounded queue drained by
//! another thread).

use ringside_engine::decision::Budgets;
use ringside_engine::program::LoadOptions;
use ringside_engine::vm::ExecMode;
use ringside_engine::{ChainSpec, Engine, EngineConfig, LinkMode, Notify, StepSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().map_or(Ok(1_000_000), |s| s.parse())?;
    let chains: u64 = args.get(1).map_or(Ok(64), |s| s.parse())?;
    let exec = match args.get(2).map(String::as_str) {
        None | Some("jit") => ExecMode::Jit,
        Some("interp") => ExecMode::Interpreter,
        Some(other) => return Err(format!("unknown mode {other}: jit or interp").into()),
    };
    let mut e = Engine::new(EngineConfig {
        entries: ((chains as u32 * 2).next_power_of_two()).max(256),
        budgets: Budgets {
            steps_per_chain: u32::MAX,
            ..Budgets::default()
        },
        ..Default::default()
    })?;
    let bytes = ringside_engine::progs::builtin("nop_chain").ok_or("no nop_chain")?;
    let loaded = e.load_object(
        "nop_chain.o",
        bytes,
        &LoadOptions {
            exec,
            ..Default::default()
        },
    )?;
    let prog = loaded.programs[0].1;
    let listener = (args.get(3).map(String::as_str) == Some("listen")).then(|| {
        let sub = e.subscribe(1 << 16, ringside_engine::event::Overflow::Drop);
        std::thread::spawn(move || sub.iter().count())
    });
    let per = n / chains;
    let start = std::time::Instant::now();
    for _ in 0..chains {
        e.submit_chain(ChainSpec {
            user_data: per,
            steps: vec![StepSpec::nop(per)],
            program: Some(prog),
            notify: Notify::None,
            drain: false,
            link: LinkMode::Engine,
        })?;
    }
    e.run_until_idle()?;
    let secs = start.elapsed().as_secs_f64();
    let s = e.stats();
    println!(
        "{} steps in {secs:.3} s: {:.0} ns/step, {} decisions",
        s.completed,
        secs * 1e9 / s.completed as f64,
        s.decisions
    );
    if let Some(t) = listener {
        drop(e);
        println!("the listener got {} events", t.join().unwrap_or(0));
    }
    Ok(())
}

/// As in the `ringside` binary: glibc's malloc serialises the engine thread
/// with a listener thread that frees its events (see docs/bench.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
