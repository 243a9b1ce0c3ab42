//! One row of the B+tree table alone, for profilers (callgrind, perf):
//!
//! ```sh
//! cargo build --release -p ringside-bench --example profile_lookups
//! valgrind --tool=callgrind target/release/examples/profile_lookups 20000 1 jit
//! ```
//!
//! Arguments: lookups (default 200000), in flight (default 1), `jit` (the
//! engine, compiled; default), `interp` (the engine, interpreter) or `loop`
//! (the io_uring loop without the engine), and `deep` for the depth-6 tree.

use ringside_bench::btree::{LookupVariant, profile_lookups};
use ringside_engine::program::vm::ExecMode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().map_or(Ok(200_000), |s| s.parse())?;
    let c: usize = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let variant = match args.get(2).map(String::as_str) {
        None | Some("jit") => LookupVariant::Engine(ExecMode::Compiled),
        Some("interp") => LookupVariant::Engine(ExecMode::Interpreter),
        Some("loop") => LookupVariant::Loop,
        Some(other) => return Err(format!("unknown variant {other}: jit, interp or loop").into()),
    };
    let deep = match args.get(3).map(String::as_str) {
        None => false,
        Some("deep") => true,
        Some(other) => return Err(format!("unknown tree {other}: deep or nothing").into()),
    };
    let start = std::time::Instant::now();
    let (p50, p99) = profile_lookups(variant, deep, n, c)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} lookups in {secs:.3} s: {:.0} ns/lookup, p50 {p50} ns, p99 {p99} ns",
        secs * 1e9 / n as f64
    );
    Ok(())
}

/// As in the `ringside` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
