//! The engine benchmark without the CLI (`ringside bench engine` runs the same).
//!
//! ```sh
//! cargo run --release -p ringside-engine --example bench -- [--nops N] [--lookups N] [--chains N] [--decisions N]
//! ```

fn main() -> std::io::Result<()> {
    let mut opts = ringside_bench::Options::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v: u64 = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        match pair[0].as_str() {
            "--nops" => opts.nops = v,
            "--lookups" => opts.lookups = v,
            "--chains" => opts.chains = v,
            "--decisions" => opts.decisions = v,
            other => return Err(std::io::Error::other(format!("unknown option {other}"))),
        }
    }
    ringside_bench::run(&opts, &mut std::io::stdout())
}

/// As in the `ringside` binary: glibc's malloc serialises the engine thread
/// with a listener thread that frees its events (see docs/bench.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
