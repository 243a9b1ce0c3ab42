//! Every pattern program doing its job on real rings: files, pipes and
//! socket pairs, with short reads forced by writers that write in odd chunks.
//! Under either backend: `RINGSIDE_TEST_BACKEND=kernel` runs the same tests
//! with the same assertions inside the kernel's io_uring BPF loop (a 7.1+
//! guest of scripts/kernel-checks; docs/kernel-backend.md).

mod common;

use common::*;
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::event::{AppKind, Event, LinkMode, Notify, Outcome, Overflow};
use ringside_engine::program::ProgId;
use ringside_engine::{ChainSpec, Engine, EngineConfig, StepSpec, progs};
use ringside_workload::content;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

const MSG_DONTWAIT: u32 = 0x40;

fn engine(files: &[&OwnedFd], buffers: &[usize]) -> Engine {
    engine_with(EngineConfig {
        files: files
            .iter()
            .map(|f| (f.as_raw_fd(), "f".to_string()))
            .collect(),
        buffers: buffers.to_vec(),
        ..Default::default()
    })
}

fn load(e: &mut Engine, name: &str) -> ProgId {
    let obj = e
        .load_object(
            &format!("{name}.o"),
            progs::builtin(name).unwrap(),
            &load_options(),
        )
        .unwrap();
    obj.programs[0].1
}

fn sqe(opcode: u8, fd: i32, buf_off: u64, len: u32, off: u64, user_data: u64) -> RsSqe {
    RsSqe {
        opcode,
        fd,
        buf_index: 0,
        buf_off,
        len,
        off,
        user_data,
        ..Default::default()
    }
}

fn chain(prog: ProgId, steps: Vec<RsSqe>, user_data: u64, notify: Notify) -> ChainSpec {
    ChainSpec {
        user_data,
        steps: steps.into_iter().map(StepSpec::io).collect(),
        program: Some(prog),
        notify,
        drain: false,
        link: LinkMode::Auto,
    }
}

/// Run the engine until `done` holds (at most 20 s, then fail with `what`).
fn drive_until(e: &mut Engine, what: &str, done: impl Fn(&Engine) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done(e) {
        assert!(std::time::Instant::now() < deadline, "{what}");
        e.run_timeout(true, Some(Duration::from_millis(10)))
            .unwrap();
    }
}

/// Run until every chain finished; returns the finished chains' (user_data, outcome, res).
fn run(e: &mut Engine) -> Vec<(u64, Outcome, i32)> {
    let mut out = Vec::new();
    drive_until(e, "chains did not finish", |e| e.active_chains() == 0);
    for c in e.take_finished() {
        out.push((c.user_data, c.outcome, c.res));
    }
    out.sort_by_key(|c| c.0);
    out
}

fn temp_file(data: &[u8]) -> (tempfile::TempDir, OwnedFd) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, data).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    (dir, f.into())
}

/// A writer thread that writes `data` in `chunks` sizes with a pause between.
fn writer(
    fd: OwnedFd,
    data: Vec<u8>,
    chunks: &'static [usize],
    pause_ms: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut done = 0;
        let mut k = 0;
        while done < data.len() {
            let end = (done + chunks[k % chunks.len()]).min(data.len());
            write_all(fd.as_raw_fd(), &data[done..end]);
            done = end;
            k += 1;
            std::thread::sleep(Duration::from_millis(pause_ms));
        }
    })
}

#[test]
fn programs_run_as_ringside_test_exec_says() {
    // scripts/test runs these tests once in each mode: a switch that did
    // nothing would run the same mode twice.
    let mut e = engine(&[], &[]);
    let p = load(&mut e, "nop_chain");
    let prog = e.registry().program(p).unwrap();
    assert_eq!(prog.exec_mode(), exec(), "{:?}", prog.exec_note);
}

#[test]
fn read_exact_on_a_pipe_and_a_socket_gets_every_byte() {
    for socket in [false, true] {
        let (r, w) = if socket { socketpair() } else { pipe() };
        let data = pattern(5 * 8192, 3);
        let mut e = engine(&[&r], &[5 * 8192]);
        let p = load(&mut e, "read_exact");
        let opcode = if socket { op::RECV } else { op::READ };
        let steps = (0..5)
            .map(|i| sqe(opcode, 0, i * 8192, 8192, 0, 7))
            .collect();
        e.submit_chain(chain(p, steps, 1, Notify::Final)).unwrap();
        let sub = e.subscribe(1 << 16, Overflow::Drop);
        // The first read waits in the kernel before a byte is written, so
        // the writer's first chunk makes it short however the threads run.
        e.run(false).unwrap();
        let h = writer(w, data.clone(), &[1000, 3000, 777, 5000], 1);
        let done = run(&mut e);
        h.join().unwrap();
        assert_eq!(
            done,
            vec![(1, Outcome::Completed, 5 * 8192)],
            "socket={socket}"
        );
        assert_eq!(&e.buffer(0).unwrap()[..data.len()], &data[..]);
        let short = sub
            .try_iter()
            .filter(|r| matches!(&r.event, Event::Completed { res, .. } if *res > 0 && *res < 8192))
            .count();
        assert!(
            short > 0,
            "the writer's chunks should have forced short reads (socket={socket})"
        );
    }
}

#[test]
fn read_exact_on_a_file_fails_cleanly_at_end_of_file() {
    let data = pattern(10_000, 1);
    let (_d, f) = temp_file(&data);
    let mut e = engine(&[&f], &[3 * 4096]);
    let p = load(&mut e, "read_exact");
    let steps = (0..3)
        .map(|i| sqe(op::READ, 0, i * 4096, 4096, i * 4096, 9))
        .collect();
    e.submit_chain(chain(p, steps, 1, Notify::Final)).unwrap();
    let done = run(&mut e);
    // The third read is short (1808 bytes), its remainder reads 0: end of file.
    assert!(matches!(done[0].1, Outcome::Failed { .. }), "{done:?}");
    assert_eq!(done[0].2, -61, "-ENODATA");
    assert_eq!(&e.buffer(0).unwrap()[..10_000], &data[..]);
}

#[test]
fn read_to_eof_counts_a_file_and_a_pipe_and_emits_once() {
    let data = pattern(100_000, 5);
    let (_d, f) = temp_file(&data);
    let (r, w) = pipe();
    let mut e = engine(&[&f, &r], &[8192, 8192]);
    let p = load(&mut e, "read_to_eof");
    e.submit_chain(chain(
        p,
        vec![sqe(op::READ, 0, 0, 8192, 0, 11)],
        11,
        Notify::None,
    ))
    .unwrap();
    let mut pipe_read = sqe(op::READ, 1, 0, 8192, 0, 12);
    pipe_read.buf_index = 1;
    e.submit_chain(chain(p, vec![pipe_read], 12, Notify::None))
        .unwrap();
    let h = writer(w, pattern(50_000, 6), &[999, 4096, 10_000], 1);
    let done = run(&mut e);
    h.join().unwrap();
    assert_eq!(
        done[0],
        (
            11,
            Outcome::Stopped {
                decision: done_decision(&done[0].1)
            },
            100_000
        )
    );
    assert_eq!(done[1].2, 50_000);
    let emits: Vec<_> = e
        .take_completions()
        .into_iter()
        .filter(|c| c.kind == AppKind::Emit)
        .map(|c| (c.user_data, c.res))
        .collect();
    assert_eq!(emits.len(), 2, "one completion per chain: {emits:?}");
    assert!(emits.contains(&(11, 100_000)) && emits.contains(&(12, 50_000)));
    // The per-chain counters were cleaned up.
    let m = e.map_by_name(p, "read_to_eof_bytes").unwrap();
    assert!(e.map_entries(m).unwrap().is_empty());
}

fn done_decision(o: &Outcome) -> u64 {
    match o {
        Outcome::Stopped { decision } => *decision,
        other => panic!("not stopped: {other:?}"),
    }
}

#[test]
fn copy_copies_a_file_with_write_lengths_from_read_results() {
    let data = pattern(100_003, 9);
    let (_d1, src) = temp_file(&data);
    let (d2, dst) = temp_file(&[]);
    let mut e = engine(&[&src, &dst], &[16384]);
    let p = load(&mut e, "copy");
    let cfg = e.map_by_name(p, "copy_cfg").unwrap();
    let mut v = Vec::new();
    for x in [0u32, 1, 16384, 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    e.map_update(cfg, &0u32.to_le_bytes(), &v, 0).unwrap();
    let sub = e.subscribe(1 << 16, Overflow::Drop);
    e.submit_chain(chain(
        p,
        vec![sqe(op::READ, 0, 0, 16384, 0, 1)],
        1,
        Notify::Final,
    ))
    .unwrap();
    let done = run(&mut e);
    assert!(matches!(done[0].1, Outcome::Stopped { .. }), "{done:?}");
    assert_eq!(std::fs::read(d2.path().join("f")).unwrap(), data);
    // The last write is exactly as long as the last read's result.
    let writes: Vec<u32> = sub
        .try_iter()
        .filter_map(|r| match &r.event {
            Event::Submitted { sqe, .. } if sqe.opcode == op::WRITE => Some(sqe.len),
            _ => None,
        })
        .collect();
    assert_eq!(writes.last(), Some(&(100_003 % 16384)));
}

#[test]
fn header_body_reads_length_prefixed_messages_from_a_socket_and_a_pipe() {
    for socket in [true, false] {
        let (r, w) = if socket { socketpair() } else { pipe() };
        let stream = content::generate("frames:100,3000,37,1", 3200).unwrap();
        let mut e = engine(&[&r], &[4096]);
        let p = load(&mut e, "header_body");
        let opcode = if socket { op::RECV } else { op::READ };
        // One chain per message, one after the other (drain keeps them in order).
        for i in 0..3 {
            let mut c = chain(
                p,
                vec![sqe(opcode, 0, 0, 4, 0, 20 + i)],
                20 + i,
                Notify::Final,
            );
            c.drain = true;
            e.submit_chain(c).unwrap();
        }
        let h = writer(w, stream.clone(), &[3, 700, 50], 1);
        let done = run(&mut e);
        h.join().unwrap();
        let lens: Vec<i32> = done.iter().map(|d| d.2).collect();
        assert_eq!(lens, vec![100, 3000, 37], "socket={socket}: {done:?}");
        assert!(done.iter().all(|d| d.1 == Outcome::Completed));
        // The last body (37 bytes) sits right after its header in the buffer.
        assert_eq!(&e.buffer(0).unwrap()[4..41], &stream[3112..3149]);
    }
}

#[test]
fn btree_lookup_finds_keys_in_trees_of_depth_3_and_6() {
    for (keys, fan) in [(27u64, 3usize), (4096, 4)] {
        let tree = content::btree(keys, fan).unwrap();
        let depth = content::btree_depth(keys, fan);
        let (_d, f) = temp_file(&tree);
        let lookups: Vec<u64> = (0..24).map(|i| 8 + i).collect();
        let mut e = engine(&[&f], &[512 * lookups.len()]);
        let p = load(&mut e, "btree_lookup");
        for (i, &k) in lookups.iter().enumerate() {
            e.submit_chain(chain(
                p,
                vec![sqe(op::READ, 0, 512 * i as u64, 512, 0, k)],
                k,
                Notify::None,
            ))
            .unwrap();
        }
        let done = run(&mut e);
        let emitted: std::collections::HashMap<u64, i32> = e
            .take_completions()
            .into_iter()
            .filter(|c| c.kind == AppKind::Emit)
            .map(|c| (c.user_data, c.res))
            .collect();
        for k in lookups {
            let want = content::btree_search(&tree, k)
                .0
                .map(|v| v as i32)
                .unwrap_or(-2);
            assert_eq!(emitted.get(&k), Some(&want), "depth {depth}, key {k}");
        }
        assert!(done.iter().all(|d| matches!(d.1, Outcome::Stopped { .. })));
        assert_eq!(depth, if keys == 27 { 3 } else { 6 });
    }
}

#[test]
fn retry_eagain_retries_until_data_and_gives_up_after_n_attempts() {
    let (slow, slow_peer) = socketpair();
    let (silent, _silent_peer) = socketpair();
    let mut e = engine(&[&slow, &silent], &[8192]);
    let p = load(&mut e, "retry_eagain");
    let cfg = e.map_by_name(p, "retry_cfg").unwrap();
    let mut v = Vec::new();
    v.extend_from_slice(&6u32.to_le_bytes());
    v.extend_from_slice(&MSG_DONTWAIT.to_le_bytes());
    v.extend_from_slice(&10_000_000u64.to_le_bytes());
    e.map_update(cfg, &0u32.to_le_bytes(), &v, 0).unwrap();
    let sub = e.subscribe(1 << 16, Overflow::Drop);
    let mut s1 = sqe(op::RECV, 0, 0, 100, 0, 1);
    s1.op_flags = MSG_DONTWAIT;
    let mut s2 = sqe(op::RECV, 1, 4096, 100, 0, 2);
    s2.op_flags = MSG_DONTWAIT;
    e.submit_chain(chain(p, vec![s1], 1, Notify::Final))
        .unwrap();
    e.submit_chain(chain(p, vec![s2], 2, Notify::Final))
        .unwrap();
    // The writer starts once both first attempts are back (-EAGAIN: nothing
    // was written yet), so the slow socket needs a retry however the
    // threads are scheduled.
    drive_until(&mut e, "the first attempts did not complete", |e| {
        e.stats().completed >= 2
    });
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(8));
        write_all(slow_peer.as_raw_fd(), &[7u8; 100]);
        slow_peer
    });
    let done = run(&mut e);
    let _peer = h.join().unwrap();
    assert_eq!(done[0].1, Outcome::Completed, "{done:?}");
    assert_eq!(done[0].2, 100);
    assert!(matches!(done[1].1, Outcome::Failed { .. }));
    assert_eq!(done[1].2, -11);
    let attempts: Vec<(u64, u8)> = sub
        .try_iter()
        .filter_map(|r| match &r.event {
            Event::Submitted {
                chain,
                sqe,
                attempt,
                ..
            } if sqe.opcode == op::RECV => Some((*chain, *attempt)),
            _ => None,
        })
        .collect();
    let max_silent = attempts
        .iter()
        .filter(|a| a.0 == 2)
        .map(|a| a.1)
        .max()
        .unwrap();
    assert_eq!(
        max_silent, 6,
        "the silent socket is tried max_attempts times"
    );
    assert!(
        attempts.iter().any(|a| a.0 == 1 && a.1 > 1),
        "the slow socket needed retries"
    );
}
