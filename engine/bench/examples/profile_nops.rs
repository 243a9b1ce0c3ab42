//! The engine's NOP-chain row alone, for profilers (callgrind, perf):
//!
//! ```sh
//! cargo build --release -p ringside-bench --example profile_nops
//! valgrind --tool=callgrind target/release/examples/profile_nops 200000 64 jit
//! ```
//!
//! Arguments: NOPs (default 1000000), chains (default 64), `jit`, `interp` or
//! `kernel` (the kernel backend, Linux 7.1+; compiled otherwise),
//! and `listen` to add a UI-like event listener (a bounded queue drained by
//! another thread, dropping what does not fit) or `block` for one the engine
//! waits for. Under callgrind, use `block`: valgrind runs one thread at a
//! time, so a dropping listener gets a few percent of the events and the
//! profile is of the dropping path.

use ringside_bench::nops::{nop_engine_on, run_nop_chains};
use ringside_engine::Backend;
use ringside_engine::event::{Detail, Overflow};
use ringside_engine::program::vm::ExecMode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().map_or(Ok(1_000_000), |s| s.parse())?;
    let chains: usize = args.get(1).map_or(Ok(64), |s| s.parse())?;
    let (exec, backend) = match args.get(2).map(String::as_str) {
        None | Some("jit") => (ExecMode::Compiled, Backend::User),
        Some("interp") => (ExecMode::Interpreter, Backend::User),
        Some("kernel") => (ExecMode::Compiled, Backend::Kernel),
        Some(other) => return Err(format!("unknown mode {other}: jit, interp or kernel").into()),
    };
    let (mut e, prog) = nop_engine_on(chains, exec, backend)?;
    let overflow = match args.get(3).map(String::as_str) {
        None => None,
        Some("listen") => Some(Overflow::Drop),
        Some("block") => Some(Overflow::Block),
        Some(other) => return Err(format!("unknown listener {other}: listen or block").into()),
    };
    let listener = overflow.map(|overflow| {
        let sub = e.subscribe_with(1 << 16, overflow, Detail::Inputs);
        std::thread::spawn(move || sub.iter().count())
    });
    let start = std::time::Instant::now();
    run_nop_chains(&mut e, prog, n, chains)?;
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
