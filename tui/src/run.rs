//! The one draw loop: messages from the sources into the [`App`], keys
//! into the App, the App onto the terminal ([`crate::ui::draw`]). Generic
//! over ratatui's `Backend`, so tests drive the same loop and views with a
//! `TestBackend`. It lives above `app` and `ui` so that neither needs the
//! other's way up.

use crate::app::App;
use crate::source::Msg;
use crossbeam_channel::Receiver;
use crossterm::event::Event as CEvent;
use ratatui::Terminal;
use ratatui::backend::Backend;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Draw loop rates.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    /// Model housekeeping interval.
    pub tick: Duration,
    /// Shortest time between frames.
    pub frame: Duration,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            tick: Duration::from_millis(250),
            frame: Duration::from_millis(50),
        }
    }
}

/// The one draw loop: drain the source queue (bounded time per round), read
/// keys, tick, and draw at most once per frame interval when something
/// changed. `input` waits up to the given time for a terminal event.
pub fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &Receiver<Msg>,
    input: &mut dyn FnMut(Duration) -> std::io::Result<Option<CEvent>>,
    stop: &AtomicBool,
    rates: Rates,
) -> anyhow::Result<()>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut last_tick = Instant::now();
    let mut last_frame = Instant::now() - rates.frame;
    let mut dirty = true;
    // For the end-to-end test of terminal restoration on panic.
    let panic_after: Option<u64> = std::env::var("RINGSIDE_TEST_PANIC_AFTER_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok());
    loop {
        if stop.load(Ordering::Relaxed) || app.quit {
            return Ok(());
        }
        // Items: at most ~20 ms of folding per round so keys stay responsive.
        let budget = Instant::now() + Duration::from_millis(20);
        while Instant::now() < budget {
            match rx.try_recv() {
                Ok(m) => {
                    app.handle_msg(m);
                    dirty = true;
                }
                Err(_) => break,
            }
        }
        if last_tick.elapsed() >= rates.tick {
            last_tick = Instant::now();
            app.tick();
            dirty = true;
        }
        if dirty && last_frame.elapsed() >= rates.frame {
            app.follow_pause();
            app.prepare(terminal.get_frame().area());
            terminal.draw(|f| crate::ui::draw(f, app))?;
            app.frames += 1;
            if panic_after.is_some_and(|n| app.frames >= n) {
                panic!("RINGSIDE_TEST_PANIC_AFTER_FRAMES: a panic for the test");
            }
            last_frame = Instant::now();
            dirty = false;
        }
        let wait = if rx.is_empty() {
            rates
                .frame
                .saturating_sub(last_frame.elapsed())
                .max(Duration::from_millis(5))
        } else {
            Duration::ZERO
        };
        if let Some(ev) = input(wait)? {
            if let CEvent::Resize(_, _) = ev {
                terminal.autoresize()?;
            }
            app.handle_event(ev);
            dirty = true;
            // Draw right after a key, whatever the frame interval.
            last_frame = Instant::now() - rates.frame;
        }
    }
}
