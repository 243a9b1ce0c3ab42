//! Frame render time of every view with 10k, 100k and 1M events of history,
//! and resident memory after 1M events. Not a test: it prints a table.
//!
//! ```text
//! cargo bench -p ringside --bench frames            # all three sizes
//! RINGSIDE_BENCH_SIZES=10000,100000 cargo bench -p ringside --bench frames
//! ```
//!
//! History is the demo round of tests/fixtures/demo.jsonl replayed as many
//! times as needed (each copy is a new engine instance with freshly
//! allocated events, as a long `ringside demo` session has), with
//! `--history` equal to the number of events. Each view is drawn at
//! 120x40 with the newest item selected, as a live session draws it.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ringside_engine::debug::Debugger;
use ringside_recordings::Item;
use ringside_tui::app::{App, Mode, View};
use ringside_tui::model::Model;
use ringside_tui::source::{EngineControl, Msg};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary's allocator, so the bench measures what `ringside` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/demo.jsonl");

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn fresh(it: &Item) -> Item {
    match it {
        Item::Engine(rec) => Item::Engine(Arc::new((**rec).clone())),
        other => other.clone(),
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("RINGSIDE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let frames: usize = std::env::var("RINGSIDE_BENCH_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let round = ringside_tui::source::replay::load_jsonl(FIXTURE, "demo.jsonl").expect("fixture");
    println!(
        "ringside UI frame times ({} frames per view at 120x40; one demo round = {} events)",
        frames,
        round.len()
    );
    println!();
    println!(
        "| events | fold (items/s) | {} | RSS after (MB) |",
        View::ALL
            .iter()
            .map(|v| format!("{} mean / max (ms)", v.title()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---:|---:|{}---:|", "---:|".repeat(View::ALL.len()));
    for &n in &sizes {
        let before = rss_mb();
        let mut app = App::new(
            Model::new(n),
            Mode {
                title: "bench".into(),
            },
            Box::new(EngineControl(Debugger::new())),
        );
        let t0 = Instant::now();
        let mut folded = 0usize;
        'fill: loop {
            for it in &round {
                if folded >= n {
                    break 'fill;
                }
                app.handle_msg(Msg::Item(fresh(it)));
                folded += 1;
            }
        }
        let fold = t0.elapsed();
        let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let mut cells = Vec::new();
        for v in View::ALL {
            app.view = v;
            if v == View::Debug {
                // Step through the newest decision, as when stopped there.
                if let Some(d) = app.state.decisions.back() {
                    let (e, s) = (d.epoch, d.decision().seq);
                    app.open_trace(e, s);
                }
            }
            let mut times = Vec::with_capacity(frames);
            for _ in 0..frames {
                let t = Instant::now();
                // A frame is settling the view state and drawing it.
                term.draw(|f| {
                    app.prepare(f.area());
                    ringside_tui::ui::draw(f, &app)
                })
                .unwrap();
                times.push(t.elapsed());
            }
            let mean = times.iter().sum::<Duration>() / frames as u32;
            let max = times.iter().max().copied().unwrap_or_default();
            cells.push(format!(
                "{:.2} / {:.2}",
                mean.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            ));
        }
        let after = rss_mb();
        println!(
            "| {} | {:.0} | {} | {:.0} (+{:.0}) |",
            n,
            folded as f64 / fold.as_secs_f64(),
            cells.join(" | "),
            after,
            after - before
        );
        drop(app);
    }
    println!();
    println!("targets: every frame <= 10 ms; memory <= 300 MB at 1M events");
}
