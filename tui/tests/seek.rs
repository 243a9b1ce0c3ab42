//! `:seek` on a recording of a million real events: the replay thread
//! reads on demand through the recording's index and the model folds up to
//! the target, and the header then shows the last event. How long it took
//! is printed, not asserted (the time is a benchmark's job: `cargo bench
//! -p ringside --bench seek`; target <= 1 s on this project's VM).

#[path = "../benches/common/million.rs"]
mod million;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ringside_tui::app::{App, Mode, View};
use ringside_tui::model::Model;
use ringside_tui::source::{Ctl, Feed};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[test]
fn seek_to_the_last_of_a_million_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.rsrec");
    let total = million::write_million(&path, 1_000_000);
    assert_eq!(total, 1_000_000);

    let (feed, rx, dropped) = Feed::new(1 << 16);
    let stop = Arc::new(AtomicBool::new(false));
    let tape = ringside_tui::source::replay::open(&path, &feed).expect("the recording opens");
    let (ctl, _h) = ringside_tui::source::replay::spawn_tape(tape, feed, stop.clone(), true);
    let mut app = App::new(
        Model::new(200_000),
        Mode {
            title: "replay million.rsrec".into(),
        },
        Box::new(ctl),
    );
    app.ui_dropped = dropped;
    let fold_until = |app: &mut App, done: &dyn Fn(&App) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done(app) {
            assert!(
                Instant::now() < deadline,
                "the seek did not finish in 120 s"
            );
            if let Ok(m) = rx.recv_timeout(Duration::from_millis(20)) {
                app.handle_msg(m);
                while let Ok(m) = rx.try_recv() {
                    app.handle_msg(m);
                }
            }
        }
    };
    fold_until(&mut app, &|a| a.replay.is_some());

    let t0 = Instant::now();
    app.controller.send(Ctl::SeekItem(total)).unwrap();
    fold_until(&mut app, &|a| {
        a.replay.as_ref().is_some_and(|r| r.pos == total) && a.state.totals.items == total
    });
    app.view = View::Rings;
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| {
        app.prepare(f.area());
        ringside_tui::ui::draw(f, &app)
    })
    .unwrap();
    let took = t0.elapsed();
    let screen = t.backend().to_string();
    let header = screen.lines().next().unwrap_or_default();
    assert!(
        header.contains(&format!("REPLAY {total}/{total}")),
        "the header after the seek: {header}"
    );
    // Nothing was dropped on the way: a replay is lossless.
    assert_eq!(app.state.totals.items, total);
    assert_eq!(app.ui_dropped.load(Ordering::Relaxed), 0);
    // Every request of the capture was folded: fio's submissions, each
    // completed (a real capture starts and ends mid-flight, so a few
    // hundred of 500k are not).
    let stats = app.state.graph.stats();
    assert!(stats.requests.total > 400_000, "{:?}", stats.requests);
    eprintln!(
        "seek to event {total} of {total}: header shows it after {:.2} s",
        took.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
}
