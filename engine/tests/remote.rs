//! The socket server (`ringside_engine::remote`, feature `remote`) with an
//! engine behind it and real clients on a Unix socket.
#![cfg(feature = "remote")]

use ringside_engine::debug::{Breakpoint, Command};
use ringside_engine::event::Event;
use ringside_engine::remote::*;
use ringside_workload::{PrepareOptions, prepare_demo};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    let server = RemoteServer::serve(prepared.engine(), &path, ServeOptions::default()).unwrap();
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
    while server.closed().is_none() {
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
                    breakpoints: vec![Breakpoint::ShortResult; 1000],
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
