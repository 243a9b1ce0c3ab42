//! A tokio-uring client for the probes' live tests (tests/live/tokio_uring.rs):
//! a real io_uring user that is not liburing or fio.
//!
//! ```text
//! tokio_uring_reads FILE READS TASKS
//! ```
//!
//! Starts a tokio-uring runtime (its ring), opens FILE through it and
//! prints `ready PID`; waits for a line on stdin (the test attaches
//! meanwhile); then reads FILE in READS reads of 4 KiB (at 4 KiB steps,
//! wrapping at its size) from TASKS tasks at once, and prints
//! `done READS BYTES` before closing the file and exiting.

use std::io::{BufRead, Write};

const READ: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, reads, tasks] = args.as_slice() else {
        eprintln!("usage: tokio_uring_reads FILE READS TASKS");
        std::process::exit(2);
    };
    let reads: u64 = reads.parse().expect("READS: a number");
    let tasks: u64 = tasks.parse::<u64>().expect("TASKS: a number").max(1);
    let size = std::fs::metadata(path).expect("FILE").len();
    let pages = (size / READ as u64).max(1);
    tokio_uring::start(async move {
        let file = std::rc::Rc::new(tokio_uring::fs::File::open(path).await.expect("open"));
        println!("ready {}", std::process::id());
        std::io::stdout().flush().unwrap();
        let mut go = String::new();
        std::io::stdin().lock().read_line(&mut go).unwrap();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let file = file.clone();
            handles.push(tokio_uring::spawn(async move {
                let mut bytes = 0u64;
                let mut buf = vec![0u8; READ];
                // Task t does reads t, t + tasks, t + 2 * tasks, ...
                for i in (t..reads).step_by(tasks as usize) {
                    let (res, b) = file.read_at(buf, (i % pages) * READ as u64).await;
                    bytes += res.expect("read") as u64;
                    buf = b;
                }
                bytes
            }));
        }
        let mut bytes = 0;
        for h in handles {
            bytes += h.await.expect("task");
        }
        println!("done {reads} {bytes}");
        std::io::stdout().flush().unwrap();
        let Ok(file) = std::rc::Rc::try_unwrap(file) else {
            panic!("a task still holds the file");
        };
        file.close().await.expect("close");
    });
}
