//! `ringside`: the command-line entry point.

mod cli;
mod cmd;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: the engine thread allocates events that a
/// listener thread frees, and glibc serialises the two on an arena lock
/// (a UI-attached NOP chain step went from 1.8-2.5 us to 1.15 us).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cmd::run(cli::Cli::parse())
}
