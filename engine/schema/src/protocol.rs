//! The socket protocol between an engine that serves its events and
//! debugger (`ringside_engine::remote`) and a client (`ringside attach
//! --socket`): messages, limits, and readers that hold either side to them.
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

use crate::debug::{Command, DebugState};
use crate::event::EventRecord;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AppCompletion, AppKind, Event};
    use std::io::BufReader;

    fn first_of(text: &str) -> Result<Option<ServerMsg>, RecvError> {
        ServerReader::new(text.as_bytes()).next_msg()
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
