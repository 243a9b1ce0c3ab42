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
//!
//! The protocol (messages, limits, readers) is
//! [`ringside_schema::protocol`], re-exported here.

pub use ringside_schema::protocol::*;

use crate::debug::{Command, Debugger};
use crate::engine::Engine;
use crate::event::{Event, EventRecord, Overflow};
use crossbeam_channel::{Receiver, Sender, TrySendError};

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Why the server stopped serving (the engine went away, or it was
    /// stopped), once it has.
    pub fn closed(&self) -> Option<String> {
        self.shared.lock().ok().and_then(|s| s.closed.clone())
    }

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
