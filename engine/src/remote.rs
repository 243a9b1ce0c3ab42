//! Serve an engine's event stream and debugger on a Unix socket.
//!
//! An application that embeds the engine calls [`RemoteServer::serve`];
//! `ringside attach --socket PATH` (or any client speaking the protocol
//! below) then watches its chains and decisions live and can pause, step and
//! set breakpoints, as tokio-console's subscriber lets its console attach.
//!
//! The application never waits for a client: the server subscribes with a
//! bounded queue in [`Overflow::Drop`] mode, so when the server (or a slow
//! client) falls behind, events are dropped and counted, and each client
//! learns how many it missed from a `lost` message. The only way a client
//! slows the application is by asking it to stop (pause or a breakpoint).
//!
//! # Protocol (version 1)
//!
//! Newline-delimited JSON, one message per line, both directions.
//!
//! Server to client:
//! - `{"type":"hello","protocol":1,"pid":P,"app":"name","history":N,"debug":{..DebugState..}}`
//!   first, on connect;
//! - `{"type":"event","record":{"seq":..,"t_ns":..,"kind":..,...}}` for each
//!   event: first the setup events (ring, programs, pre-loaded map entries),
//!   then up to `history` recent events, then live ones;
//! - `{"type":"lost","count":N}`: N events this client will not see;
//! - `{"type":"debug","state":{..}}`: the debugger state after a command;
//! - `{"type":"bye","reason":"..."}`: the engine shut down or the server stops.
//!
//! Client to server:
//! - `{"type":"hello","protocol":1,"client":"..."}` (optional);
//! - `{"type":"command","command":{"cmd":"pause"}}` with any
//!   [`crate::debug::Command`] (`pause`, `continue`, `step`,
//!   `set_breakpoints`, `detach`).
//!
//! When the last client that sent a command disconnects, the server detaches
//! its debugger (breakpoints cleared, a stopped engine resumes): a client
//! that goes away never leaves the application stuck.
//!
//! # Limits (either side may be hostile)
//!
//! - A client line is at most [`MAX_CLIENT_LINE`] bytes, a server line at
//!   most [`MAX_SERVER_LINE`]; a longer one ends the connection, and a
//!   reader never holds more than the limit (see [`LineReader`]).
//! - The server's first message is its hello; a client refuses another
//!   first message, or a protocol version not its own ([`ServerReader`]).
//!   The server says goodbye to a client whose hello names another version.
//! - At most [`ServeOptions::max_clients`] clients at once; each has its own
//!   bounded queue, and a client that does not read loses events (counted),
//!   never slows the engine. A command may set at most [`MAX_BREAKPOINTS`].

use crate::debug::{Command, DebugState, Debugger};
use crate::engine::Engine;
use crate::event::{Event, EventRecord, Overflow};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Protocol version.
pub const PROTOCOL: u32 = 1;

/// Longest line a client may send.
pub const MAX_CLIENT_LINE: usize = 64 * 1024;

/// Longest line a server may send. The longest real one is a
/// `program_loaded` event, which carries the object and the code in
/// base64: a spec's largest object (16 MiB) makes about 22 MiB.
pub const MAX_SERVER_LINE: usize = 32 << 20;

/// Breakpoints one `set_breakpoints` command may set (each is checked at
/// every decision).
pub const MAX_BREAKPOINTS: usize = 256;

/// Why a peer's bytes are not the protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A line longer than the limit.
    #[error("a line longer than {max} bytes (the protocol's limit)")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// The connection closed in the middle of a line.
    #[error("the connection closed in the middle of a message")]
    Truncated,
    /// The first message is not a hello.
    #[error("the first message is not a hello ({got})")]
    NoHello {
        /// What it is.
        got: String,
    },
    /// The peer speaks another version.
    #[error("the application speaks protocol {theirs}, this ringside speaks protocol {ours}")]
    Version {
        /// The peer's.
        theirs: u32,
        /// Ours ([`PROTOCOL`]).
        ours: u32,
    },
}

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The connection failed, or (see [`RecvError::is_timeout`]) nothing
    /// complete arrived before the read timeout.
    #[error("{0}")]
    Io(std::io::Error),
    /// The peer broke the protocol; the connection is of no further use.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
}

impl RecvError {
    /// Nothing complete arrived in time: call again (what arrived is kept).
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvError::Io(e) if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ))
    }
}

/// Newline-delimited lines of at most `max` bytes, across read timeouts
/// without losing a partial line. It holds at most `max` bytes of a line
/// (plus the reader's own buffer), however long the peer's line is.
pub struct LineReader<R> {
    r: R,
    line: Vec<u8>,
    max: usize,
    broken: Option<ProtocolError>,
}

impl<R: BufRead> LineReader<R> {
    /// Lines of at most `max` bytes (the newline not counted) from `r`.
    pub fn new(r: R, max: usize) -> Self {
        LineReader {
            r,
            line: Vec::new(),
            max,
            broken: None,
        }
    }

    /// The next line, without its newline; `Ok(None)` at the end of the
    /// stream. After a protocol error every call returns it again.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, RecvError> {
        if let Some(e) = &self.broken {
            return Err(RecvError::Protocol(e.clone()));
        }
        loop {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RecvError::Io(e)),
            };
            if buf.is_empty() {
                if self.line.is_empty() {
                    return Ok(None);
                }
                return Err(self.broke(ProtocolError::Truncated));
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            // Checked before copying: the line never grows past the limit.
            if self.line.len() + take > self.max {
                self.line = Vec::new();
                return Err(self.broke(ProtocolError::LineTooLong { max: self.max }));
            }
            self.line.extend_from_slice(&buf[..take]);
            self.r.consume(take + done as usize);
            if done {
                return Ok(Some(std::mem::take(&mut self.line)));
            }
        }
    }

    /// Bytes of the partial line held now.
    pub fn pending(&self) -> usize {
        self.line.len()
    }

    fn broke(&mut self, e: ProtocolError) -> RecvError {
        self.broken = Some(e.clone());
        RecvError::Protocol(e)
    }
}

/// The client's side of a connection: the server's messages, checked. The
/// first must be a hello of [`PROTOCOL`]; after it, a line that does not
/// parse (a newer server's new message, say) counts as one lost event.
pub struct ServerReader<R> {
    lines: LineReader<R>,
    greeted: bool,
    /// Messages that did not parse.
    pub bad: u64,
    /// Why the last one did not.
    pub last_bad: Option<String>,
}

impl<R: BufRead> ServerReader<R> {
    /// Read a server's stream with lines of at most [`MAX_SERVER_LINE`].
    pub fn new(r: R) -> Self {
        Self::with_limit(r, MAX_SERVER_LINE)
    }

    /// Lines of at most `max` bytes.
    pub fn with_limit(r: R, max: usize) -> Self {
        ServerReader {
            lines: LineReader::new(r, max),
            greeted: false,
            bad: 0,
            last_bad: None,
        }
    }

    /// Bytes of a partial line held now.
    pub fn pending(&self) -> usize {
        self.lines.pending()
    }

    /// The next message; `Ok(None)` at the end of the stream.
    pub fn next_msg(&mut self) -> Result<Option<ServerMsg>, RecvError> {
        let Some(line) = self.lines.next_line()? else {
            return Ok(None);
        };
        if !self.greeted {
            let msg = first_message(&line).map_err(|e| {
                self.lines.broken = Some(e.clone());
                RecvError::Protocol(e)
            })?;
            self.greeted = true;
            return Ok(Some(msg));
        }
        match serde_json::from_slice(&line) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                self.bad += 1;
                self.last_bad = Some(e.to_string());
                Ok(Some(ServerMsg::Lost { count: 1 }))
            }
        }
    }
}

/// The server's first line: a hello of our version, checked before the
/// rest of it (another version may say hello with other fields).
fn first_message(line: &[u8]) -> Result<ServerMsg, ProtocolError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<String>,
        protocol: Option<u32>,
    }
    let probe: Probe = serde_json::from_slice(line).map_err(|_| ProtocolError::NoHello {
        got: "not a JSON object".into(),
    })?;
    match probe.kind.as_deref() {
        Some("hello") => {}
        Some(other) => {
            return Err(ProtocolError::NoHello {
                got: format!("a `{}` message", other.escape_debug()),
            });
        }
        None => {
            return Err(ProtocolError::NoHello {
                got: "a message without a type".into(),
            });
        }
    }
    match probe.protocol {
        Some(PROTOCOL) => {}
        Some(theirs) => {
            return Err(ProtocolError::Version {
                theirs,
                ours: PROTOCOL,
            });
        }
        None => {
            return Err(ProtocolError::NoHello {
                got: "a hello without a protocol version".into(),
            });
        }
    }
    serde_json::from_slice(line).map_err(|e| ProtocolError::NoHello {
        got: format!("a hello that does not parse: {e}"),
    })
}

/// A server-to-client message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message.
    Hello {
        /// Protocol version.
        protocol: u32,
        /// The application's pid.
        pid: u32,
        /// The application's name for itself.
        app: String,
        /// Recent events the server keeps for late clients.
        history: usize,
        /// Debugger state.
        debug: DebugState,
    },
    /// An engine event (`{"seq":..,"t_ns":..,"event":{"kind":..,...}}`).
    Event {
        /// The event.
        record: Arc<EventRecord>,
    },
    /// Events this client missed.
    Lost {
        /// How many.
        count: u64,
    },
    /// Debugger state after a command.
    Debug {
        /// The state.
        state: DebugState,
    },
    /// The end.
    Bye {
        /// Why.
        reason: String,
    },
}

/// A client-to-server message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Introduction (optional).
    Hello {
        /// Protocol version the client speaks.
        protocol: u32,
        /// Its name.
        client: String,
    },
    /// A debugger command.
    Command {
        /// The command.
        command: Command,
    },
}

/// Write one message as one line.
pub fn write_msg<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Read one message; `Ok(None)` at end of stream.
pub fn read_msg<T: for<'de> Deserialize<'de>>(
    r: &mut impl BufRead,
    max: usize,
) -> std::io::Result<Option<T>> {
    let mut line = Vec::new();
    let n = std::io::Read::take(&mut *r, max as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message longer than {max} bytes"),
        ));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The application's name, for the client's title.
    pub app: String,
    /// Capacity of the engine's queue to the server (events beyond it are
    /// dropped, never waited for).
    pub queue: usize,
    /// Capacity of each client's queue.
    pub client_queue: usize,
    /// Recent events kept for clients that connect later.
    pub history: usize,
    /// Clients at once; one more is told so and closed.
    pub max_clients: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            app: std::env::args()
                .next()
                .map(|a| {
                    Path::new(&a)
                        .file_name()
                        .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "engine".into()),
            queue: 1 << 16,
            client_queue: 1 << 15,
            history: 10_000,
            max_clients: 16,
        }
    }
}

struct Client {
    tx: Sender<Arc<ServerMsg>>,
    lost: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
}

struct Shared {
    /// Setup events (ring, programs, application map writes before the first chain).
    setup: Vec<Arc<EventRecord>>,
    /// Recent events.
    recent: VecDeque<Arc<EventRecord>>,
    clients: Vec<Client>,
    /// The engine is gone.
    closed: Option<String>,
}

/// A running server; dropping it stops serving, detaches the debugger and
/// removes the socket file.
pub struct RemoteServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    debugger: Debugger,
    shared: Arc<Mutex<Shared>>,
    dropped: Arc<AtomicU64>,
    controllers: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServer")
            .field("path", &self.path)
            .field("clients", &self.clients())
            .finish()
    }
}

impl RemoteServer {
    /// Listen on `path` (an existing socket file there is replaced), subscribe
    /// to `engine` and attach a debugger to it.
    pub fn serve(
        engine: &mut Engine,
        path: impl AsRef<Path>,
        opts: ServeOptions,
    ) -> std::io::Result<RemoteServer> {
        let path = path.as_ref().to_path_buf();
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            }
        }
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        let sub = engine.subscribe(opts.queue.max(16), Overflow::Drop);
        let debugger = Debugger::new();
        engine.set_debugger(Some(debugger.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared {
            setup: Vec::new(),
            recent: VecDeque::new(),
            clients: Vec::new(),
            closed: None,
        }));
        let controllers = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        // Fan-out: engine queue -> history and every client's queue.
        {
            let shared = shared.clone();
            let stop = stop.clone();
            let history = opts.history;
            threads.push(
                std::thread::Builder::new()
                    .name("remote fan-out".into())
                    .spawn(move || fan_out(sub, shared, stop, history))?,
            );
        }
        // Accept.
        {
            let shared = shared.clone();
            let stop = stop.clone();
            let debugger = debugger.clone();
            let controllers = controllers.clone();
            let opts = opts.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("remote accept".into())
                    .spawn(move || {
                        accept_loop(listener, shared, stop, debugger, controllers, opts)
                    })?,
            );
        }
        Ok(RemoteServer {
            path,
            stop,
            debugger,
            shared,
            dropped: Arc::new(AtomicU64::new(0)),
            controllers,
            threads,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.shared
            .lock()
            .map(|s| {
                s.clients
                    .iter()
                    .filter(|c| c.alive.load(Ordering::Relaxed))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The debugger the server attached to the engine.
    pub fn debugger(&self) -> &Debugger {
        &self.debugger
    }

    /// Events dropped on the way to clients (all clients together).
    pub fn lost(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
            + self
                .shared
                .lock()
                .map(|s| {
                    s.clients
                        .iter()
                        .map(|c| c.lost.load(Ordering::Relaxed))
                        .sum()
                })
                .unwrap_or(0)
    }

    /// Clients that sent a debugger command and are still connected.
    pub fn controllers(&self) -> usize {
        self.controllers.load(Ordering::Relaxed)
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.debugger.command(Command::Detach);
        // Each client's writer says goodbye when it sees `stop`.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn is_setup(ev: &Event) -> bool {
    matches!(
        ev,
        Event::RingSetup(_) | Event::ProgramLoaded(_) | Event::RingProgram { .. }
    )
}

fn fan_out(
    sub: crate::event::Subscription,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    history: usize,
) {
    let mut seen_chain = false;
    let mut reported = 0u64;
    loop {
        let rec = match sub.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => Some(r),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut s) = shared.lock() else { return };
        if let Some(count) = sub.newly_dropped(&mut reported) {
            let lost = Arc::new(ServerMsg::Lost { count });
            for c in &s.clients {
                send_to(c, lost.clone());
            }
        }
        let Some(rec) = rec else { continue };
        if matches!(rec.event, Event::ChainCreated { .. }) {
            seen_chain = true;
        }
        // Setup events, and the application's map writes before any chain,
        // are what a late client needs to make sense of the rest.
        if is_setup(&rec.event) || (!seen_chain && matches!(rec.event, Event::MapUpdate { .. })) {
            s.setup.push(rec.clone());
        } else if history > 0 {
            s.recent.push_back(rec.clone());
            while s.recent.len() > history {
                s.recent.pop_front();
            }
        }
        let msg = Arc::new(ServerMsg::Event { record: rec });
        s.clients.retain(|c| c.alive.load(Ordering::Relaxed));
        for c in &s.clients {
            send_to(c, msg.clone());
        }
    }
    if let Ok(mut s) = shared.lock() {
        let reason = "the engine shut down".to_string();
        s.closed = Some(reason.clone());
        let bye = Arc::new(ServerMsg::Bye { reason });
        for c in &s.clients {
            send_to(c, bye.clone());
        }
    }
}

fn send_to(c: &Client, msg: Arc<ServerMsg>) {
    match c.tx.try_send(msg) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            c.lost.fetch_add(1, Ordering::Relaxed);
        }
        Err(TrySendError::Disconnected(_)) => c.alive.store(false, Ordering::Relaxed),
    }
}

fn accept_loop(
    listener: UnixListener,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    debugger: Debugger,
    controllers: Arc<AtomicUsize>,
    opts: ServeOptions,
) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let live = shared.lock().map_or(usize::MAX, |s| {
                    s.clients
                        .iter()
                        .filter(|c| c.alive.load(Ordering::Relaxed))
                        .count()
                });
                if live >= opts.max_clients {
                    turn_away(stream, &debugger, &opts);
                } else if let Ok(handles) =
                    start_client(stream, &shared, &stop, &debugger, &controllers, &opts)
                {
                    workers.extend(handles);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
        workers.retain(|w| !w.is_finished());
    }
    for w in workers {
        let _ = w.join();
    }
}

fn hello(debugger: &Debugger, opts: &ServeOptions) -> ServerMsg {
    ServerMsg::Hello {
        protocol: PROTOCOL,
        pid: std::process::id(),
        app: opts.app.clone(),
        history: opts.history,
        debug: debugger.state(),
    }
}

/// One client too many: say so (briefly: it may not read) and close.
fn turn_away(stream: UnixStream, debugger: &Debugger, opts: &ServeOptions) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let mut w = &stream;
    let _ = write_msg(&mut w, &hello(debugger, opts));
    let _ = write_msg(
        &mut w,
        &ServerMsg::Bye {
            reason: format!(
                "too many clients: this application serves at most {}",
                opts.max_clients
            ),
        },
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn start_client(
    stream: UnixStream,
    shared: &Arc<Mutex<Shared>>,
    stop: &Arc<AtomicBool>,
    debugger: &Debugger,
    controllers: &Arc<AtomicUsize>,
    opts: &ServeOptions,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    stream.set_nonblocking(false)?;
    let (tx, rx) = crossbeam_channel::bounded::<Arc<ServerMsg>>(opts.client_queue.max(16));
    let lost = Arc::new(AtomicU64::new(0));
    let alive = Arc::new(AtomicBool::new(true));
    {
        // Under the lock: hello, setup and history go in before any live event.
        let mut s = shared
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let backlog = s.setup.len() + s.recent.len() + 2;
        // The backlog may exceed the queue: send it from a private list first.
        let mut first: Vec<Arc<ServerMsg>> = Vec::with_capacity(backlog);
        first.push(Arc::new(hello(debugger, opts)));
        for r in s.setup.iter().chain(s.recent.iter()) {
            first.push(Arc::new(ServerMsg::Event { record: r.clone() }));
        }
        if let Some(reason) = &s.closed {
            first.push(Arc::new(ServerMsg::Bye {
                reason: reason.clone(),
            }));
        }
        s.clients.push(Client {
            tx: tx.clone(),
            lost: lost.clone(),
            alive: alive.clone(),
        });
        drop(s);
        let w = stream.try_clone()?;
        let stop_w = stop.clone();
        let alive_w = alive.clone();
        let lost_w = lost.clone();
        let writer = std::thread::Builder::new()
            .name("remote writer".into())
            .spawn(move || client_writer(w, first, rx, lost_w, alive_w, stop_w))?;
        let r = stream;
        let dbg = debugger.clone();
        let ctl = controllers.clone();
        let alive_r = alive;
        let stop_r = stop.clone();
        let reader = std::thread::Builder::new()
            .name("remote reader".into())
            .spawn(move || client_reader(r, dbg, ctl, tx, alive_r, stop_r))?;
        Ok(vec![writer, reader])
    }
}

fn client_writer(
    stream: UnixStream,
    first: Vec<Arc<ServerMsg>>,
    rx: Receiver<Arc<ServerMsg>>,
    lost: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, &stream);
    let mut reported = 0u64;
    let mut ok = first.iter().all(|m| write_msg(&mut w, m.as_ref()).is_ok()) && w.flush().is_ok();
    while ok && alive.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        let m = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => Some(m),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let l = lost.load(Ordering::Relaxed);
        if l > reported {
            ok &= write_msg(
                &mut w,
                &ServerMsg::Lost {
                    count: l - reported,
                },
            )
            .is_ok();
            reported = l;
        }
        if let Some(m) = m {
            let bye = matches!(m.as_ref(), ServerMsg::Bye { .. });
            ok &= write_msg(&mut w, m.as_ref()).is_ok();
            // Batch: flush when the queue is empty.
            if rx.is_empty() || bye {
                ok &= w.flush().is_ok();
            }
            if bye {
                break;
            }
        } else {
            ok &= w.flush().is_ok();
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    if ok && stop.load(Ordering::Relaxed) {
        let _ = write_msg(
            &mut w,
            &ServerMsg::Bye {
                reason: "the application stopped serving".into(),
            },
        );
    }
    let _ = w.flush();
    alive.store(false, Ordering::Relaxed);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn client_reader(
    stream: UnixStream,
    debugger: Debugger,
    controllers: Arc<AtomicUsize>,
    tx: Sender<Arc<ServerMsg>>,
    alive: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    // Blocking reads: the writer shuts the socket down when it ends, which
    // ends this read too.
    let mut r = BufReader::new(&stream);
    let mut controlling = false;
    // Why the server ends this connection, told to the client as a goodbye.
    let mut refusal = None;
    while alive.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        match read_msg::<ClientMsg>(&mut r, MAX_CLIENT_LINE) {
            Ok(Some(ClientMsg::Hello { protocol, .. })) if protocol != PROTOCOL => {
                refusal = Some(format!(
                    "this application speaks protocol {PROTOCOL}, the client protocol {protocol}"
                ));
                break;
            }
            Ok(Some(ClientMsg::Hello { .. })) => {}
            Ok(Some(ClientMsg::Command {
                command: Command::SetBreakpoints { breakpoints },
            })) if breakpoints.len() > MAX_BREAKPOINTS => {
                refusal = Some(format!(
                    "{} breakpoints: more than the {MAX_BREAKPOINTS} a client may set",
                    breakpoints.len()
                ));
                break;
            }
            Ok(Some(ClientMsg::Command { command })) => {
                if !controlling {
                    controlling = true;
                    controllers.fetch_add(1, Ordering::Relaxed);
                }
                debugger.command(command);
                let _ = tx.try_send(Arc::new(ServerMsg::Debug {
                    state: debugger.state(),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                refusal = Some(format!("protocol error: {e}"));
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    // The writer sends the goodbye and closes; without one, close now.
    let told =
        refusal.is_some_and(|reason| tx.try_send(Arc::new(ServerMsg::Bye { reason })).is_ok());
    if !told {
        alive.store(false, Ordering::Relaxed);
    }
    if controlling && controllers.fetch_sub(1, Ordering::Relaxed) == 1 {
        // The last controlling client left: never leave the application stuck.
        debugger.command(Command::Detach);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::Breakpoint;
    use crate::event::{AppCompletion, AppKind};
    use crate::workload::{PrepareOptions, prepare_demo};
    use std::time::Instant;

    fn next(r: &mut BufReader<UnixStream>) -> ServerMsg {
        read_msg::<ServerMsg>(r, 64 << 20)
            .expect("reading")
            .expect("the server closed early")
    }

    /// A client sets a breakpoint, the engine stops at a short read and says
    /// so; the client goes away and the engine runs on to the end.
    #[test]
    fn breakpoint_stop_and_detach_on_disconnect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.sock");
        let mut prepared = prepare_demo(&PrepareOptions::default()).unwrap();
        let server =
            RemoteServer::serve(prepared.engine(), &path, ServeOptions::default()).unwrap();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<bool>(1);
        let p2 = path.clone();
        // The client, on its own thread (the engine is not Send).
        let client = std::thread::spawn(move || {
            let stream = UnixStream::connect(&p2).unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            match next(&mut r) {
                ServerMsg::Hello { protocol, .. } => assert_eq!(protocol, PROTOCOL),
                other => panic!("expected hello, got {other:?}"),
            }
            write_msg(
                &mut w,
                &ClientMsg::Command {
                    command: Command::SetBreakpoints {
                        breakpoints: vec![Breakpoint::ShortResult],
                    },
                },
            )
            .unwrap();
            // Setup events come first; then the ack of the command.
            let mut saw_setup = false;
            loop {
                match next(&mut r) {
                    ServerMsg::Event { record } => {
                        saw_setup |= matches!(record.event, Event::RingSetup(_));
                    }
                    ServerMsg::Debug { state } => {
                        assert_eq!(state.breakpoints, vec![Breakpoint::ShortResult]);
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            ready_tx.send(saw_setup).unwrap();
            // The engine stops at a short read.
            loop {
                if let ServerMsg::Event { record } = next(&mut r)
                    && let Event::Paused { reason, decision } = &record.event
                {
                    assert!(reason.contains("res < len"), "{reason}");
                    return decision.unwrap();
                }
            }
            // Leaving drops the connection.
        });
        assert!(
            ready_rx.recv().unwrap(),
            "the ring setup is sent to a client"
        );
        // If detaching on disconnect failed, the engine would wait forever:
        // a watchdog lets it go and the test fails.
        let fired = Arc::new(AtomicBool::new(false));
        let (f2, d2) = (fired.clone(), server.debugger().clone());
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while !done2.load(Ordering::Relaxed) {
                if t.elapsed() > Duration::from_secs(120) {
                    f2.store(true, Ordering::Relaxed);
                    d2.command(Command::Detach);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let stop = AtomicBool::new(false);
        let (report, engine) = prepared.run(&stop).unwrap();
        done.store(true, Ordering::Relaxed);
        // The engine's end reaches the client as a goodbye, so a client
        // still waiting for a stop fails instead of hanging.
        drop(engine);
        let stopped_at = client.join().expect("the client saw the stop");
        assert!(
            !fired.load(Ordering::Relaxed),
            "the engine stayed stopped after the client left"
        );
        assert!(stopped_at < report.decisions);
        assert!(report.completed + report.stopped > 0);
        assert!(server.debugger().state().breakpoints.is_empty());
        drop(server);
        assert!(!path.exists(), "the socket file is removed");
    }

    /// A client that connects after the engine shut down still gets the
    /// setup, the recent history and a goodbye.
    #[test]
    fn late_client_gets_history_and_bye() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sock");
        let mut prepared = prepare_demo(&PrepareOptions::default()).unwrap();
        let server = RemoteServer::serve(
            prepared.engine(),
            &path,
            ServeOptions {
                history: 100,
                ..ServeOptions::default()
            },
        )
        .unwrap();
        let stop = AtomicBool::new(false);
        let (_, engine) = prepared.run(&stop).unwrap();
        drop(engine);
        // Wait for the fan-out to see the end.
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.shared.lock().unwrap().closed.is_none() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut r = BufReader::new(UnixStream::connect(&path).unwrap());
        let mut events = 0;
        let mut setup = 0;
        loop {
            match next(&mut r) {
                ServerMsg::Hello { .. } | ServerMsg::Lost { .. } | ServerMsg::Debug { .. } => {}
                ServerMsg::Event { record } => {
                    events += 1;
                    if matches!(
                        record.event,
                        Event::RingSetup(_) | Event::ProgramLoaded(_) | Event::MapUpdate { .. }
                    ) {
                        setup += 1;
                    }
                }
                ServerMsg::Bye { reason } => {
                    assert!(reason.contains("shut down"), "{reason}");
                    break;
                }
            }
        }
        assert!(setup >= 2, "ring and programs");
        assert_eq!(events, setup + 100, "setup plus the last 100 events");
    }

    /// A reader that hands out one chunk per call, with a timeout between.
    struct Chunky {
        chunks: Vec<Vec<u8>>,
        timeout_next: bool,
    }

    impl std::io::Read for Chunky {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.timeout_next {
                self.timeout_next = false;
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            self.timeout_next = true;
            if self.chunks.is_empty() {
                return Ok(0);
            }
            let mut c = self.chunks.remove(0);
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            if n < c.len() {
                self.chunks.insert(0, c.split_off(n));
            }
            Ok(n)
        }
    }

    fn a_hello() -> ServerMsg {
        ServerMsg::Hello {
            protocol: PROTOCOL,
            pid: 1,
            app: "test".into(),
            history: 0,
            debug: DebugState::default(),
        }
    }

    #[test]
    fn partial_lines_survive_read_timeouts() {
        let mut bytes = Vec::new();
        write_msg(&mut bytes, &a_hello()).unwrap();
        write_msg(&mut bytes, &ServerMsg::Lost { count: 3 }).unwrap();
        write_msg(
            &mut bytes,
            &ServerMsg::Bye {
                reason: "done".into(),
            },
        )
        .unwrap();
        bytes.extend_from_slice(b"{not json}\n");
        // Cut into 5-byte pieces, a timeout after each.
        let chunks = bytes.chunks(5).map(<[u8]>::to_vec).collect();
        let mut r = ServerReader::new(BufReader::with_capacity(
            4,
            Chunky {
                chunks,
                timeout_next: false,
            },
        ));
        let mut got = Vec::new();
        loop {
            match r.next_msg() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(e) if e.is_timeout() => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            got,
            vec![
                a_hello(),
                ServerMsg::Lost { count: 3 },
                ServerMsg::Bye {
                    reason: "done".into()
                },
                // The line that does not parse is counted as one lost event.
                ServerMsg::Lost { count: 1 },
            ]
        );
        assert_eq!(r.bad, 1);
    }

    /// Endless bytes without a newline.
    struct Endless;

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b'a');
            Ok(buf.len())
        }
    }

    #[test]
    fn a_line_past_the_limit_ends_the_stream_without_growing_past_it() {
        // An endless line: the reader stops at the limit (it used to buffer
        // until a newline that never came).
        let mut r = LineReader::new(BufReader::new(Endless), 1 << 20);
        match r.next_line() {
            Err(RecvError::Protocol(ProtocolError::LineTooLong { max })) => {
                assert_eq!(max, 1 << 20)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.pending(), 0, "the partial line is let go");
        // And it stays broken.
        assert!(matches!(r.next_line(), Err(RecvError::Protocol(_))));
        // Exactly the limit is fine; one more byte is not.
        let mut line = vec![b'x'; 100];
        line.push(b'\n');
        let mut ok = LineReader::new(&line[..], 100);
        assert_eq!(ok.next_line().unwrap().unwrap().len(), 100);
        assert!(ok.next_line().unwrap().is_none());
        let mut long = LineReader::new(&line[..], 99);
        assert!(matches!(
            long.next_line(),
            Err(RecvError::Protocol(ProtocolError::LineTooLong { max: 99 }))
        ));
        let mut cut = LineReader::new(&b"abc"[..], 99);
        assert!(matches!(
            cut.next_line(),
            Err(RecvError::Protocol(ProtocolError::Truncated))
        ));
    }

    fn first_of(text: &str) -> Result<Option<ServerMsg>, RecvError> {
        ServerReader::new(text.as_bytes()).next_msg()
    }

    #[test]
    fn the_first_message_must_be_a_hello_of_this_version() {
        let e = first_of("{\"type\":\"hello\",\"protocol\":2,\"something\":\"new\"}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "protocol error: the application speaks protocol 2, this ringside speaks protocol 1"
        );
        let e = first_of("{\"type\":\"lost\",\"count\":1}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "protocol error: the first message is not a hello (a `lost` message)"
        );
        let e = first_of("GET / HTTP/1.1\n").unwrap_err().to_string();
        assert!(e.contains("not a JSON object"), "{e}");
        let e = first_of("{\"type\":\"hello\"}\n").unwrap_err().to_string();
        assert!(e.contains("without a protocol version"), "{e}");
        let e = first_of("{\"type\":\"hello\",\"protocol\":1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a hello that does not parse"), "{e}");
        let mut ok = Vec::new();
        write_msg(&mut ok, &a_hello()).unwrap();
        assert_eq!(
            ServerReader::new(&ok[..]).next_msg().unwrap(),
            Some(a_hello())
        );
    }

    fn bye_of(r: &mut BufReader<UnixStream>) -> String {
        loop {
            match read_msg::<ServerMsg>(r, 64 << 20) {
                Ok(Some(ServerMsg::Bye { reason })) => return reason,
                Ok(Some(_)) => {}
                other => panic!("no goodbye: {other:?}"),
            }
        }
    }

    /// Hostile clients over a real socket: another version, an endless
    /// line, too many breakpoints, one client too many, and clients that
    /// never read. Each is told why and let go; the application runs on.
    #[test]
    fn hostile_clients_are_refused_and_never_hold_the_application() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let mut prepared = prepare_demo(&PrepareOptions::default()).unwrap();
        let server = RemoteServer::serve(
            prepared.engine(),
            &path,
            ServeOptions {
                max_clients: 4,
                ..ServeOptions::default()
            },
        )
        .unwrap();
        let p = path.clone();
        let clients = std::thread::spawn(move || {
            let connect = || {
                let s = UnixStream::connect(&p).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                (s.try_clone().unwrap(), BufReader::new(s))
            };
            // Another protocol version.
            let (mut w, mut r) = connect();
            write_msg(
                &mut w,
                &ClientMsg::Hello {
                    protocol: 99,
                    client: "x".into(),
                },
            )
            .unwrap();
            let reason = bye_of(&mut r);
            assert!(
                reason.contains("protocol 1") && reason.contains("protocol 99"),
                "{reason}"
            );
            // A line that never ends.
            let (mut w, mut r) = connect();
            let junk = vec![b'a'; 1 << 20];
            let _ = w.write_all(&junk);
            let reason = bye_of(&mut r);
            assert!(reason.contains("longer than 65536 bytes"), "{reason}");
            // Too many breakpoints.
            let (mut w, mut r) = connect();
            write_msg(
                &mut w,
                &ClientMsg::Command {
                    command: Command::SetBreakpoints {
                        breakpoints: vec![crate::debug::Breakpoint::ShortResult; 1000],
                    },
                },
            )
            .unwrap();
            let reason = bye_of(&mut r);
            assert!(reason.contains("more than the 256"), "{reason}");
            // Four that stay and never read; the fifth is one too many.
            let quiet: Vec<_> = (0..4).map(|_| connect()).collect();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (_, mut r) = connect();
                let reason = bye_of(&mut r);
                if reason.contains("too many clients") {
                    assert!(reason.contains("at most 4"), "{reason}");
                    break;
                }
                // The refused ones above may not have been let go yet.
                assert!(Instant::now() < deadline, "{reason}");
                std::thread::sleep(Duration::from_millis(50));
            }
            quiet
        });
        let quiet = clients.join().unwrap();
        // The application runs to its end with four clients that never read.
        let stop = AtomicBool::new(false);
        let (report, engine) = prepared.run(&stop).unwrap();
        assert!(report.completed + report.stopped > 0);
        assert!(server.debugger().state().breakpoints.is_empty());
        drop(engine);
        drop(quiet);
        drop(server);
    }

    #[test]
    fn app_completion_round_trips_on_the_wire() {
        let rec = Arc::new(EventRecord {
            seq: 7,
            t_ns: 99,
            event: Event::AppCompletion(AppCompletion {
                chain: 3,
                step: None,
                user_data: 5,
                res: 12,
                flags: 0,
                kind: AppKind::Final,
            }),
        });
        let msg = ServerMsg::Event {
            record: rec.clone(),
        };
        let mut line = Vec::new();
        write_msg(&mut line, &msg).unwrap();
        let back: ServerMsg = read_msg(&mut &line[..], 1 << 20).unwrap().unwrap();
        assert_eq!(back, msg);
    }
}
