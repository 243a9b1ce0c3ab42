//! One pattern program's decision-cost row alone, for profilers (callgrind,
//! perf):
//!
//! ```sh
//! cargo build --release -p ringside-bench --example profile_decision
//! valgrind --tool=callgrind target/release/examples/profile_decision nop_chain 100000 jit
//! ```
//!
//! Arguments: program (default `read_exact`), decisions (default 10000000),
//! `jit` (the compiled backend, default) or `interp`.

use ringside_bench::decisions::DecisionBench;
use ringside_engine::program::vm::ExecMode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("read_exact", String::as_str);
    let n: u64 = args.get(1).map_or(Ok(10_000_000), |s| s.parse())?;
    let exec = match args.get(2).map(String::as_str) {
        None | Some("jit") => ExecMode::Compiled,
        Some("interp") => ExecMode::Interpreter,
        Some(other) => return Err(format!("unknown mode {other}: jit or interp").into()),
    };
    let mut b = DecisionBench::new(name, exec).ok_or(format!("no built-in program {name}"))?;
    if let Some(note) = b.exec_note() {
        println!("({name}: {note})");
    }
    let ns = b.run_unrecorded(n);
    let rust = b.run_rust(n);
    println!(
        "{name}: {ns:.1} ns/decision, {rust:.1} ns the same logic in Rust ({:.1}x)",
        ns / rust
    );
    Ok(())
}
