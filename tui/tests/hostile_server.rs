//! `ringside attach --socket` against a hostile fake server on a real Unix
//! socket: a line that never ends is a protocol error at the limit (memory
//! stays bounded), another protocol version or a first message that is not
//! a hello is refused with a sentence. (Its own test binary, so the memory
//! peak it reads is its own.)

use ringside_engine::debug::DebugState;
use ringside_schema::protocol::{MAX_SERVER_LINE, PROTOCOL, ServerMsg, write_msg};
use ringside_tui::source::remote;
use ringside_tui::source::{Feed, Msg, Status};
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Serve one connection: write `hello` (if any), then `rest`, then `tail`
/// bytes of junk without a newline (0: none), until the client goes away.
fn fake_server(
    dir: &tempfile::TempDir,
    first: Option<String>,
    tail: usize,
) -> (PathBuf, std::thread::JoinHandle<usize>) {
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut sent = 0;
        if let Some(line) = first {
            s.write_all(line.as_bytes()).unwrap();
        }
        let junk = vec![b'a'; 1 << 20];
        while sent < tail {
            if s.write_all(&junk).is_err() {
                break; // the client hung up
            }
            sent += junk.len();
        }
        // Hold the connection until the client closes it.
        let _ = std::io::Read::read(&mut s, &mut [0u8; 1]);
        sent
    });
    (path, h)
}

fn hello_line(protocol: u32) -> String {
    let mut v = Vec::new();
    write_msg(
        &mut v,
        &ServerMsg::Hello {
            protocol,
            pid: 42,
            app: "fake".into(),
            history: 0,
            debug: DebugState::default(),
        },
    )
    .unwrap();
    String::from_utf8(v).unwrap()
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn an_endless_line_is_a_protocol_error_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB without a newline took 1.9 GB; now the client stops at the limit.
    let (path, server) = fake_server(&dir, Some(hello_line(PROTOCOL)), 1 << 30);
    let before = peak_rss();
    let e = remote::headless(&path, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    let grew = peak_rss().saturating_sub(before);
    assert!(
        e.contains(&format!(
            "protocol error: a line longer than {MAX_SERVER_LINE} bytes"
        )),
        "{e}"
    );
    assert!(
        grew < 2 * MAX_SERVER_LINE as u64,
        "the client grew by {} MiB",
        grew >> 20
    );
    let sent = server.join().unwrap();
    assert!(sent < 1 << 30, "the client read the whole line");
}

#[test]
fn another_protocol_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let (path, server) = fake_server(&dir, Some(hello_line(PROTOCOL + 1)), 0);
    let e = remote::headless(&path, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(&format!(
            "the application speaks protocol {}, this ringside speaks protocol {PROTOCOL}",
            PROTOCOL + 1
        )),
        "{e}"
    );
    server.join().unwrap();
}

#[test]
fn a_first_message_that_is_not_a_hello_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, server) = fake_server(
        &dir,
        Some("{\"type\":\"bye\",\"reason\":\"x\"}\n".into()),
        0,
    );
    let e = remote::headless(&path, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("protocol error: the first message is not a hello (a `bye` message)"),
        "{e}"
    );
    server.join().unwrap();
}

#[test]
fn the_ui_session_ends_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (path, server) = fake_server(&dir, Some(hello_line(7)), 0);
    let (feed, rx, _) = Feed::new(64);
    let stop = Arc::new(AtomicBool::new(false));
    let (_ctl, h) = remote::spawn(path, feed, stop.clone(), Duration::from_secs(5));
    let ended = loop {
        let msg = rx.recv_timeout(Duration::from_secs(60)).expect("a status");
        if let Msg::Status(Status::Ended(why)) = msg {
            break why;
        }
    };
    assert!(
        ended.contains("the application speaks protocol 7, this ringside speaks protocol 1"),
        "{ended}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
    server.join().unwrap();
}
