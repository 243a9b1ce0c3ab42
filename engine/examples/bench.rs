//! The engine benchmark without the CLI (`ringside bench engine` runs the same).
//!
//! ```sh
//! cargo run --release -p ringside-engine --example bench
//! ```

fn main() -> std::io::Result<()> {
    let opts = ringside_engine::bench::Options::default();
    ringside_engine::bench::run(&opts, &mut std::io::stdout())
}
