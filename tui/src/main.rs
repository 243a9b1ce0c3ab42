//! `ringside`: the command-line entry point.

mod cli;
mod headless;
mod live;
mod offline;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: the engine thread allocates events that a
/// listener thread frees, and glibc serialises the two on an arena lock
/// (a UI-attached NOP chain step went from 1.8-2.5 us to 1.15 us).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `ringside bench engine`: the tables of docs/bench.md.
fn bench_engine(nops: u64, chains: u64) -> anyhow::Result<ExitCode> {
    let opts = ringside_engine::bench::Options {
        nops,
        chains,
        ..Default::default()
    };
    ringside_engine::bench::run(&opts, &mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => live::demo(&cli::LiveOpts::default()),
        Some(Command::Demo { live }) => live::demo(&live),
        Some(Command::Run { spec, live }) => live::run(&spec, &live),
        Some(Command::Attach(a)) => live::attach(&a, &a.live),
        Some(Command::Replay {
            file,
            headless: false,
            history,
            paused,
        }) => live::replay(&file, history, paused),
        Some(Command::Bench {
            what: cli::BenchWhat::Engine { nops, chains },
        }) => bench_engine(nops, chains),
        Some(Command::Record { output, what }) => {
            if what.live().headless {
                offline::record_command(&output, &what)
            } else {
                live::record_ui(&output, &what)
            }
        }
        Some(Command::Replay {
            file,
            headless: true,
            ..
        }) => offline::replay_headless(&file),
        Some(Command::Check { file }) => offline::check(&file),
        Some(Command::Export {
            file,
            format,
            output,
        }) => offline::export(
            &file,
            matches!(format, cli::ExportFormat::Chrome),
            output.as_deref(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringside: {e:#}");
            ExitCode::from(2)
        }
    }
}
