//! `ringside attach --socket PATH`: the client side of
//! [`ringside_engine::remote`]. A collector thread reads the server's
//! messages into the feed; commands go back on the same socket.
//!
//! When the application exits the history stays; the thread keeps looking
//! for the socket and reconnects when an application serves there again.

use crate::source::{ControlError, ControlKind, Controller, Ctl, Feed, Status};
use ringside_recordings::Item;
use ringside_schema::protocol::{
    ClientMsg, PROTOCOL, RecvError, ServerMsg, ServerReader, write_msg,
};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Sends commands on the current connection.
#[derive(Clone, Default)]
pub struct SocketControl {
    conn: Arc<Mutex<Option<UnixStream>>>,
}

impl Controller for SocketControl {
    fn send(&mut self, c: Ctl) -> Result<(), ControlError> {
        let Ctl::Debug(command) = c else {
            return Err(ControlError::ReplayOnly);
        };
        let mut g = self.conn.lock().map_err(|_| ControlError::LockPoisoned)?;
        let Some(s) = g.as_mut() else {
            return Err(ControlError::NotConnected);
        };
        write_msg(s, &ClientMsg::Command { command }).map_err(ControlError::Send)
    }
    fn kind(&self) -> ControlKind {
        ControlKind::Engine
    }
}

/// Connect to `path` and feed what arrives; reconnect when the socket comes back.
/// `wait_first` is how long to wait for the socket to appear at start.
pub fn spawn(
    path: PathBuf,
    feed: Feed,
    stop: Arc<AtomicBool>,
    wait_first: Duration,
) -> (SocketControl, JoinHandle<()>) {
    let ctl = SocketControl::default();
    let conn = ctl.conn.clone();
    let h = std::thread::Builder::new()
        .name("socket".into())
        .spawn(move || {
            let mut first = true;
            let mut waited = Duration::ZERO;
            let mut announced_wait = false;
            while !stop.load(Ordering::Relaxed) {
                let stream = match UnixStream::connect(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        if first && waited >= wait_first {
                            feed.status(Status::Ended(format!(
                                "cannot connect to {}: {e}",
                                path.display()
                            )));
                            first = false;
                        }
                        if !announced_wait && first {
                            feed.status(Status::Source(format!(
                                "waiting for {} ...",
                                path.display()
                            )));
                            announced_wait = true;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                        waited += Duration::from_millis(200);
                        continue;
                    }
                };
                first = false;
                let ino = socket_ino(&path);
                let reason = session(&path, stream, &feed, &conn, &stop);
                if let Ok(mut g) = conn.lock() {
                    *g = None;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if !feed.status(Status::Ended(format!(
                    "{reason}; the history stays (q quits; ringside reconnects if the socket comes back)"
                ))) {
                    return;
                }
                // Reconnect only to a new server: wait until the socket
                // file is replaced (a new bind), never to the one that
                // just said goodbye (it would resend its history).
                while !stop.load(Ordering::Relaxed) {
                    let now = socket_ino(&path);
                    if now.is_some() && now != ino {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
        .expect("spawning the socket thread");
    (ctl, h)
}

fn socket_ino(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn session(
    path: &std::path::Path,
    stream: UnixStream,
    feed: &Feed,
    conn: &Arc<Mutex<Option<UnixStream>>>,
    stop: &AtomicBool,
) -> String {
    if let Ok(mut w) = stream.try_clone() {
        let _ = write_msg(
            &mut w,
            &ClientMsg::Hello {
                protocol: PROTOCOL,
                client: format!("ringside {}", env!("CARGO_PKG_VERSION")),
            },
        );
        if let Ok(mut g) = conn.lock() {
            *g = Some(w);
        }
    }
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let mut r = ServerReader::new(BufReader::with_capacity(256 * 1024, stream));
    loop {
        if stop.load(Ordering::Relaxed) {
            return "stopped".into();
        }
        match r.next_msg() {
            Ok(Some(m)) => {
                let ok = match m {
                    // The reader checked its version.
                    ServerMsg::Hello { pid, app, .. } => feed.status(Status::Connected(format!(
                        "{app} (pid {pid}) via {}",
                        path.display()
                    ))),
                    ServerMsg::Event { record } => feed.item(Item::Engine(record)),
                    ServerMsg::Lost { count } => feed.item(Item::Lost {
                        queue: "socket".into(),
                        count,
                    }),
                    ServerMsg::Debug { state } => feed.status(Status::Notice(format!(
                        "application debugger: {} breakpoint(s){}",
                        state.breakpoints.len(),
                        if state.stopped_at.is_some() {
                            ", stopped"
                        } else {
                            ""
                        }
                    ))),
                    ServerMsg::Bye { reason } => {
                        return format!("the application said goodbye: {reason}");
                    }
                };
                if !ok {
                    return "stopped".into();
                }
            }
            Ok(None) => return "the application exited (connection closed)".into(),
            // Nothing complete yet; the partial line is kept.
            Err(e) if e.is_timeout() => {}
            Err(e @ RecvError::Protocol(_)) => return e.to_string(),
            Err(e) => return format!("connection error: {e}"),
        }
    }
}

/// `attach --socket --headless`: print the events as JSON Lines until the
/// application exits.
pub fn headless(path: &std::path::Path, stop: &AtomicBool) -> anyhow::Result<u64> {
    use std::io::Write;
    let stream = UnixStream::connect(path)
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", path.display()))?;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let mut r = ServerReader::new(BufReader::with_capacity(256 * 1024, stream));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match r.next_msg() {
            Ok(Some(ServerMsg::Event { record })) => {
                serde_json::to_writer(&mut out, &record.to_json())?;
                out.write_all(b"\n")?;
                n += 1;
            }
            Ok(Some(ServerMsg::Lost { count })) => {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"kind": "lost", "events": count})
                )?;
            }
            Ok(Some(ServerMsg::Bye { reason })) => {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"kind": "bye", "reason": reason})
                )?;
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) if e.is_timeout() => out.flush()?,
            Err(e) => {
                out.flush()?;
                anyhow::bail!("{}: {e}", path.display());
            }
        }
    }
    out.flush()?;
    Ok(n)
}
