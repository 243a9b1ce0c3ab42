//! Terminal hygiene: raw mode and the alternate screen on, and off again on
//! every exit path (return, error, Ctrl-C, SIGTERM, panic).

use crossterm::event::{self, Event as CEvent};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{Stdout, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The UI owns the terminal (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Put the terminal back: raw mode off, alternate screen left, cursor shown.
/// Only once: leaving the alternate screen twice would move the cursor back
/// over what was printed in between (a panic message).
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(
        stdout(),
        crossterm::event::DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// The terminal, restored when dropped.
pub struct Guard {
    /// The ratatui terminal.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

static HOOK: Once = Once::new();

/// Enter raw mode and the alternate screen; install a panic hook that
/// restores the terminal before the panic message is printed.
pub fn enter() -> anyhow::Result<Guard> {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if crate::stepper::QUIET_PANIC.with(|q| q.get()) {
                return;
            }
            restore();
            prev(info);
        }));
    });
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    execute!(stdout(), EnterAlternateScreen, crossterm::cursor::Hide)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
    terminal.clear()?;
    Ok(Guard { terminal })
}

/// Wait up to `timeout` for a terminal event.
pub fn read_event(timeout: Duration) -> std::io::Result<Option<CEvent>> {
    if event::poll(timeout)? {
        Ok(Some(event::read()?))
    } else {
        Ok(None)
    }
}
