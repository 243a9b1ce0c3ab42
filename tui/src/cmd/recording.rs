//! Reading recordings from the command line: `replay --headless`,
//! `check` and `export`.

use super::{quiet_pipe, unreadable};
use ringside_recordings::export::{self, ExportOptions};
use ringside_recordings::reader::Stop;
use ringside_recordings::{Reader, Replay};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `ringside replay FILE --headless`: the recorded items as JSON Lines
/// (the `--headless` schema). Exit 0 at a clean end, 2 at damage (after
/// printing every item before it).
pub fn replay_headless(file: &Path) -> anyhow::Result<ExitCode> {
    let mut reader = match Reader::open(file) {
        Ok(r) => r,
        Err(e) => return Ok(unreadable(&e)),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    quiet_pipe(
        export::jsonl(&mut reader, &mut out, &ExportOptions::default()).map(|r| match r {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => unreadable(&e),
        }),
    )
}

/// `ringside check FILE`: 0 identical, 1 divergence, 2 damaged or unreadable.
pub fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let report = match ringside_recordings::check_file(file) {
        Ok(r) => r,
        Err(e) => return Ok(unreadable(&e)),
    };
    let name = file.display();
    for n in &report.notes {
        println!("{name}: note: {n}");
    }
    match (&report.divergence, &report.damage) {
        (Some(d), _) => {
            println!("{name}: {d}");
            println!(
                "{name}: {} decisions identical before it ({} events read)",
                report.decisions, report.items
            );
        }
        (None, Some(why)) => {
            println!(
                "{name}: damaged: {why}\n{name}: the {} events before it replay identically ({} decisions re-executed, {} programs re-loaded)",
                report.items, report.decisions, report.programs
            );
        }
        (None, None) => {
            println!(
                "{name}: identical: {} events, {} decisions re-executed and compared, {} programs re-loaded{}",
                report.items,
                report.decisions,
                report.programs,
                if report.lost > 0 {
                    format!(", {} events lost while recording", report.lost)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// `ringside export FILE --format chrome|jsonl [-o OUT]`.
pub fn export(
    file: &Path,
    chrome: bool,
    output: Option<&Path>,
    opts: &ExportOptions,
) -> anyhow::Result<ExitCode> {
    quiet_pipe(export_to(file, chrome, output, opts))
}

fn export_to(
    file: &Path,
    chrome: bool,
    output: Option<&Path>,
    opts: &ExportOptions,
) -> std::io::Result<ExitCode> {
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| std::io::Error::new(e.kind(), format!("creating {}: {e}", p.display())),
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if chrome {
        let replay = match Replay::open(file) {
            Ok(r) => r,
            Err(e) => return Ok(unreadable(&e)),
        };
        let r = export::chrome(&replay, &mut out, opts)?;
        out.flush()?;
        match (r, replay.stop()) {
            (Err(e), _) => Ok(unreadable(&e)),
            (Ok(stats), Stop::End { .. }) => {
                if let Some(p) = output {
                    eprintln!(
                        "ringside: wrote {}: {} rings, {} request slices, {} flows, {} decisions, {} cancellations",
                        p.display(),
                        stats.rings,
                        stats.slices,
                        stats.flows,
                        stats.decisions,
                        stats.cancellations
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            (Ok(_), Stop::Error(e)) => Ok(unreadable(e)),
        }
    } else {
        let mut reader = match Reader::open(file) {
            Ok(r) => r,
            Err(e) => return Ok(unreadable(&e)),
        };
        match export::jsonl(&mut reader, &mut out, opts)? {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(e) => Ok(unreadable(&e)),
        }
    }
}
