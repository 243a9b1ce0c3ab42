//! How long `:seek` to the last event of a million-event recording takes,
//! from the key to the header showing it, through the same path as
//! `ringside replay` (the replay thread reading on demand through the
//! recording's index, the bounded queue, the model's fold, one frame).
//! Not a test: it prints a table. Target (issue 13): <= 1 s on this VM.
//!
//! ```text
//! cargo bench -p ringside --bench seek
//! ```

#[path = "common/million.rs"]
mod million;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ringside_tui::app::{App, Mode};
use ringside_tui::model::Model;
use ringside_tui::source::{Ctl, Feed};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The binary's allocator, so the bench measures what `ringside` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.rsrec");
    let total = million::write_million(&path, 1_000_000);
    println!("| seek | history | from the key to the header (s) | events folded/s |");
    println!("|---|---|---|---|");
    for history in [200_000usize, 1_000_000] {
        let (feed, rx, _dropped) = Feed::new(1 << 16);
        let stop = Arc::new(AtomicBool::new(false));
        let tape = ringside_tui::source::replay::open(&path, &feed).expect("opens");
        let (ctl, _h) = ringside_tui::source::replay::spawn_tape(tape, feed, stop.clone(), true);
        let mut app = App::new(
            Model::new(history),
            Mode {
                title: "seek bench".into(),
            },
            Box::new(ctl),
        );
        let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let fold_until = |app: &mut App, target: u64| {
            while !(app.replay.as_ref().is_some_and(|r| r.pos == target)
                && app.state.totals.items == target)
            {
                if let Ok(m) = rx.recv_timeout(Duration::from_millis(5)) {
                    app.handle_msg(m);
                    while let Ok(m) = rx.try_recv() {
                        app.handle_msg(m);
                    }
                }
            }
        };
        fold_until(&mut app, 0);
        // To the end from the start, then back to the middle (a seek back
        // rebuilds the model from the start), then to the end again.
        for (what, target) in [
            ("0 -> last", total),
            ("last -> middle", total / 2),
            ("middle -> last", total),
        ] {
            let before = app.state.totals.items;
            let t0 = Instant::now();
            app.controller.send(Ctl::SeekItem(target)).unwrap();
            fold_until(&mut app, target);
            term.draw(|f| {
                app.prepare(f.area());
                ringside_tui::ui::draw(f, &app)
            })
            .unwrap();
            let s = t0.elapsed().as_secs_f64();
            let folded = if target >= before {
                target - before
            } else {
                target
            };
            println!(
                "| {what} of {total} | {history} | {s:.2} | {:.2}M |",
                folded as f64 / s / 1e6
            );
        }
        stop.store(true, Ordering::Relaxed);
    }
}
