//! Workload files: errors point at file:line:column; the built-in demo runs
//! every pattern program next to kernel links, and ends as it should.

use ringside_engine::event::Overflow;
use ringside_workload::{PrepareOptions, WorkloadError, prepare_demo, prepare_text};
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn error_of(text: &str) -> String {
    match prepare_text("w.toml", text, Path::new("."), &PrepareOptions::default()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(WorkloadError::Spec(e)) => e.to_string(),
        Err(other) => panic!("not a spec error: {other}"),
    }
}

#[test]
fn spec_errors_name_file_line_and_column() {
    // A typo in a file name, on line 6 column 28.
    let text = "[[pipe]]\nname = \"stream\"\n\n[[buffer]]\nname = \"b\"\nsize = 4096\n\n[[chain]]\nstep = [{ op = \"read\", file = \"strem\", buffer = \"b\", len = 10 }]\n";
    let e = error_of(text);
    assert!(e.starts_with("w.toml:9:"), "{e}");
    assert!(
        e.contains("no file, pipe or socketpair named `strem`"),
        "{e}"
    );
    let col: usize = e.split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(&text.lines().nth(8).unwrap()[col - 1..col + 6], "\"strem\"");

    // Syntax errors too.
    let e = error_of("[ring]\nentries = = 4\n");
    assert!(e.starts_with("w.toml:2:"), "{e}");

    // Unknown keys, ops, programs, out-of-range buffers, bad map values.
    assert!(error_of("[ring]\nentriess = 4\n").contains("unknown field `entriess`"));
    assert!(error_of("[[chain]]\nstep = [{ op = \"openat\" }]\n").contains("unknown op `openat`"));
    assert!(
        error_of("[[chain]]\nprogram = \"nope\"\nstep = [{ op = \"nop\" }]\n")
            .contains("no program named `nope`")
    );
    let e = error_of(
        "[[buffer]]\nname = \"b\"\nsize = 100\n[[pipe]]\nname = \"p\"\n[[chain]]\nstep = [{ op = \"read\", file = \"p\", buffer = \"b\", len = 200 }]\n",
    );
    assert!(e.contains("outside buffer `b`"), "{e}");
    let e = error_of(
        "[[program]]\nobject = \"copy\"\n[[map]]\nprogram = \"copy\"\nmap = \"copy_cfg\"\nentry = [{ key = 0, value = [\"u32:1\"] }]\n",
    );
    assert!(e.contains("4 bytes where the map wants 16"), "{e}");
    let e = error_of("[ring]\nentries = 3\n");
    assert!(
        e.starts_with("w.toml:2:11") && e.contains("power of two"),
        "{e}"
    );
    let e = error_of("[[program]]\nobject = \"/nonexistent.o\"\n");
    assert!(
        e.contains("neither a built-in program nor a readable file"),
        "{e}"
    );
}

#[test]
fn the_demo_runs_every_pattern_program_next_to_kernel_links() {
    let mut p = prepare_demo(&PrepareOptions::default()).unwrap();
    let sub = p.engine().subscribe(1 << 20, Overflow::Block);
    let stop = AtomicBool::new(false);
    let (report, engine) = p.run(&stop).unwrap();
    drop(engine);
    let evs: Vec<_> = sub.try_iter().collect();
    let programs: std::collections::BTreeSet<String> = evs
        .iter()
        .filter_map(|r| match &r.event {
            ringside_engine::Event::Decision(d) => Some(d.prog_name.clone()),
            _ => None,
        })
        .collect();
    let all: std::collections::BTreeSet<String> = ringside_engine::progs::PATTERNS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(programs, all, "every pattern program decided something");
    assert_eq!(report.chains, 31);
    // The four kernel links fail on their short reads; read_exact's four complete.
    assert_eq!(report.failures_by_cause.get("kernel_link"), Some(&4));
    // The retry on a silent socket gives up; everything else succeeds.
    assert_eq!(report.failures_by_cause.get("program_fail"), Some(&1));
    assert_eq!(report.failed, 5);
    assert_eq!(report.cancelled, 0);
    assert_eq!(report.completed + report.stopped, 26);
}
