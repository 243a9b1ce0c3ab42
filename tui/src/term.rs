//! Terminal hygiene: raw mode and the alternate screen on, and off again on
//! every exit path (return, error, Ctrl-C, SIGTERM, SIGHUP, panic; the
//! signals set the stop flag of `cmd::stop_flag`, and the draw loop, which
//! never waits on the terminal itself, sees it and returns).

use crossbeam_channel::{Receiver, RecvTimeoutError};
use crossterm::event::{self, Event as CEvent};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{Stdout, stdout};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};
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
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !stdout().is_terminal() {
        anyhow::bail!(
            "the terminal UI needs a terminal on stdin and stdout, and this has none; \
             pass --headless for JSON Lines on stdout (under `ringside record -o FILE`, a recording without the UI)"
        );
    }
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
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

/// Terminal events, read on a thread of their own. crossterm's reader
/// never returns once the terminal hangs up (read(2) answers 0 and it reads
/// again, at full speed), so the draw loop must not wait in it: it waits on
/// this channel and stays free to see the stop flag that SIGHUP sets.
static EVENTS: OnceLock<Receiver<std::io::Result<CEvent>>> = OnceLock::new();

/// Wait up to `timeout` for a terminal event. An error when the terminal
/// has hung up.
pub fn read_event(timeout: Duration) -> std::io::Result<Option<CEvent>> {
    let rx = EVENTS.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(256);
        // Detached: it may sit in a read of the terminal until the process exits.
        let _ = std::thread::Builder::new()
            .name("terminal input".into())
            .spawn(move || read_events(&tx));
        rx
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(ev)) => Ok(Some(ev)),
        Ok(Err(e)) => Err(e),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(RecvTimeoutError::Disconnected) => {
            Err(std::io::Error::other("the terminal input reader ended"))
        }
    }
}

/// What crossterm reads from: stdin when it is a terminal, else /dev/tty.
fn input_fd() -> Option<(RawFd, Option<std::fs::File>)> {
    // SAFETY: isatty on a descriptor number.
    if unsafe { libc::isatty(0) } == 1 {
        return Some((0, None));
    }
    let f = std::fs::File::open("/dev/tty").ok()?;
    Some((f.as_raw_fd(), Some(f)))
}

/// Whether `fd` has hung up, after waiting up to `ms` for input.
fn hung_up(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

fn read_events(tx: &crossbeam_channel::Sender<std::io::Result<CEvent>>) {
    let fd = input_fd();
    loop {
        // Wait for input ourselves, so a hang-up is seen before crossterm
        // would spin on it; then take whatever crossterm has: keys, and
        // resizes, which reach it by a signal rather than the terminal
        // (hence the wait is short).
        if let Some((fd, _)) = &fd
            && hung_up(*fd, 50)
        {
            let _ = tx.send(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the terminal hung up",
            )));
            return;
        }
        if fd.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        loop {
            match event::poll(Duration::ZERO) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
            let ev = event::read();
            let failed = ev.is_err();
            if tx.send(ev).is_err() || failed {
                return;
            }
        }
    }
}
