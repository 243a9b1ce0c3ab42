//! A spec from someone else: every size it can name has a limit, refused
//! with `file:line:column` at the offending value before anything is
//! created; files it names are read bounded and only when they are what the
//! spec says; setup never blocks past `[run] timeout_s`.

use ringside_workload::limits;
use ringside_workload::{
    CheckOptions, PrepareOptions, WorkloadError, check_text, prepare_text, read_spec,
};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn error_of(text: &str) -> String {
    match prepare_text("w.toml", text, Path::new("."), &PrepareOptions::default()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(WorkloadError::Spec(e)) => e.to_string(),
        Err(other) => panic!("not a spec error: {other}"),
    }
}

/// The error `e` (`w.toml:L:C: ...`) points at `token` in `text`, and says `says`.
fn assert_at(text: &str, e: &str, token: &str, says: &str) {
    let mut parts = e.splitn(4, ':');
    assert_eq!(parts.next(), Some("w.toml"), "{e}");
    let line: usize = parts.next().unwrap().parse().expect(e);
    let col: usize = parts.next().unwrap().parse().expect(e);
    let l = text.lines().nth(line - 1).expect(e);
    assert!(
        l[col - 1..].starts_with(token),
        "{e}\npoints at `{}`, not `{token}`",
        &l[col - 1..]
    );
    assert!(e.contains(says), "{e}\ndoes not say `{says}`");
}

fn refused(text: &str, token: &str, says: &str) {
    assert_at(text, &error_of(text), token, says);
}

#[test]
fn temporary_files_are_capped_each_and_in_total() {
    // 1 TB was allocated in memory, then written.
    refused(
        "[[file]]\nname = \"f\"\nsize = 1000000000000\n",
        "1000000000000",
        "more than the 1 GiB a temporary file may have",
    );
    // A btree decides its own size: 50M keys at fanout 2 is ~25 GB.
    refused(
        "[[file]]\nname = \"f\"\nsize = 1\ncontent = \"btree:50000000:2\"\n",
        "\"btree",
        "a temporary file may have",
    );
    let mut five = String::new();
    for i in 0..5 {
        five += &format!(
            "[[file]]\nname = \"f{i}\"\nsize = {}\ncontent = \"zero\"\n",
            1u64 << 30
        );
    }
    let e = error_of(&five);
    assert!(e.starts_with("w.toml:19:8:"), "{e}");
    assert!(
        e.contains("temporary files in all would be more than the 4 GiB"),
        "{e}"
    );
}

#[test]
fn writers_are_capped_each_and_in_total_before_anything_is_allocated() {
    refused(
        "[[pipe]]\nname = \"p\"\nwriter = { total = 1000000000000 }\n",
        "1000000000000",
        "more than the 1 GiB a writer may write",
    );
    let mut five = String::new();
    for i in 0..5 {
        five += &format!(
            "[[socketpair]]\nname = \"s{i}\"\nwriter = {{ total = {} }}\n",
            1u64 << 30
        );
    }
    let e = error_of(&five);
    assert!(e.starts_with("w.toml:15:20:"), "{e}");
    assert!(e.contains("writers' totals in all"), "{e}");
    refused(
        "[[pipe]]\nname = \"p\"\nwriter = { total = 10, delay_ms = 99999999999 }\n",
        "99999999999",
        "a writer may pause",
    );
}

#[test]
fn repeat_is_at_least_one_at_most_a_million_and_chains_are_capped_in_total() {
    // repeat = 0 silently ran one copy.
    refused(
        "[[chain]]\nrepeat = 0\nstep = [{ op = \"nop\" }]\n",
        "0",
        "repeat = 0: a chain runs at least once",
    );
    // A billion copies grew memory until the machine died.
    refused(
        "[[chain]]\nrepeat = 1000000000\nstep = [{ op = \"nop\" }]\n",
        "1000000000",
        "more than the 1,000,000 copies a chain may have",
    );
    let two = "[[chain]]\nrepeat = 1000000\nstep = [{ op = \"nop\" }]\n".repeat(2);
    refused(
        &two,
        "1000000",
        "chains (every repetition counted) in all would be more than the 1,000,000",
    );
    let e = error_of(&two);
    assert!(
        e.starts_with("w.toml:5:"),
        "the second chain crosses it: {e}"
    );
    // Steps in all: 2 x 300,000 copies of 10 steps.
    let steps = ["{ op = \"nop\" }"; 10].join(", ");
    let text = format!("[[chain]]\nrepeat = 300000\nstep = [{steps}]\n").repeat(2);
    refused(&text, "300000", "steps (every repetition counted) in all");
}

#[test]
fn chain_length_is_refused_where_the_steps_are() {
    // 5,000 steps was an engine error at submission, without a place.
    let steps = vec!["{ op = \"nop\" }"; 5000].join(", ");
    let text = format!("[[chain]]\nname = \"long\"\nlink = \"engine\"\nstep = [{steps}]\n");
    refused(
        &text,
        "[{ op",
        "5000 steps: more than the 4096 a chain may have",
    );
    // The budget can be raised, but not past the hard limit.
    let text2 = format!("[budgets]\nsteps_per_chain = 8192\n{text}");
    let plan = check_text("w.toml", &text2, Path::new("."), &CheckOptions::default()).unwrap();
    assert_eq!(plan.step_count(), 5000);
    refused(
        "[budgets]\nsteps_per_chain = 1000000\n",
        "1000000",
        "steps_per_chain = 1000000: at most 65536",
    );
    refused(
        "[[chain]]\nstep = []\n",
        "[]",
        "a chain needs at least one step",
    );
    // A kernel link longer than the ring was an error in the middle of the run.
    let steps = vec!["{ op = \"nop\" }"; 20].join(", ");
    refused(
        &format!("[ring]\nentries = 16\n[[chain]]\nstep = [{steps}]\n"),
        "[{ op",
        "a kernel link of 20 steps does not fit a ring of 16 entries",
    );
}

#[test]
fn stride_and_user_data_overflow_is_refused_with_a_place() {
    // This multiplication overflowed (a panic in debug builds, a wrap in release).
    let text = "[[file]]\nname = \"f\"\nsize = 10\n[[buffer]]\nname = \"b\"\nsize = 4096\n[[chain]]\nrepeat = 3\nrepeat_buf_stride = 9223372036854775808\nstep = [{ op = \"read\", file = \"f\", buffer = \"b\", len = 1 }]\n";
    refused(text, "9223372036854775808", "overflows 64 bits");
    let text = "[[chain]]\nrepeat = 3\nrepeat_off_stride = 9223372036854775808\nstep = [{ op = \"nop\", off = 1 }]\n";
    refused(text, "9223372036854775808", "overflows 64 bits");
    let text =
        "[[chain]]\nrepeat = 3\nuser_data = 18446744073709551614\nstep = [{ op = \"nop\" }]\n";
    refused(text, "18446744073709551614", "overflows 64 bits");
    // buf_off + len near 2^64.
    let text = "[[file]]\nname = \"f\"\nsize = 10\n[[buffer]]\nname = \"b\"\nsize = 4096\n[[chain]]\nstep = [{ op = \"read\", file = \"f\", buffer = \"b\", buf_off = 18446744073709551615, len = 2 }]\n";
    refused(text, "\"b\"", "outside buffer `b`");
}

#[test]
fn buffers_are_capped_each_in_number_and_in_total() {
    refused(
        "[[buffer]]\nname = \"b\"\nsize = 2147483648\n",
        "2147483648",
        "out of range (1..=1 GiB)",
    );
    let two = "[[buffer]]\nname = \"a\"\nsize = 1073741824\n[[buffer]]\nname = \"b\"\nsize = 1\n";
    refused(two, "1", "buffers in all would be more than the 1 GiB");
    let mut many = String::new();
    for i in 0..=limits::MAX_BUFFERS {
        many += &format!("[[buffer]]\nname = \"b{i}\"\nsize = 1\n");
    }
    let e = error_of(&many);
    assert!(e.contains("more than 1024 buffers"), "{e}");
}

#[test]
fn map_pre_loads_are_capped() {
    let entries =
        vec!["{ key = 0, value = [\"u64:0\", \"u64:0\"] }"; limits::MAX_MAP_ENTRIES + 1].join(", ");
    let text = format!(
        "[[program]]\nobject = \"copy\"\n[[map]]\nprogram = \"copy\"\nmap = \"copy_cfg\"\nentry = [{entries}]\n"
    );
    refused(
        &text,
        "\"copy_cfg\"",
        "more than 100,000 pre-loaded map entries in all",
    );
    // hex: that is not pairs of hex digits (a multi-byte character could be split).
    let text = "[[program]]\nobject = \"copy\"\n[[map]]\nprogram = \"copy\"\nmap = \"copy_cfg\"\nentry = [{ key = 0, value = \"hex:é0aabbccddeeff00112233445566\" }]\n";
    refused(text, "\"hex", "is not hex");
}

#[test]
fn budgets_and_the_timeout_are_bounded() {
    refused(
        "[budgets]\ninsns_per_decision = 18446744073709551615\n",
        "18446744073709551615",
        "at most 1000000",
    );
    refused(
        "[budgets]\nsubmits_per_decision = 100000\n",
        "100000",
        "at most 4096",
    );
    // `inf` panicked in Duration::from_secs_f64.
    for bad in ["inf", "nan", "-1.0", "1e300"] {
        refused(
            &format!("[run]\ntimeout_s = {bad}\n"),
            bad,
            "expected 0 (none) up to",
        );
    }
}

#[test]
fn the_spec_file_is_read_bounded_and_only_if_regular() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(limits::MAX_SPEC_BYTES + 1).unwrap();
    let e = read_spec(&big).unwrap_err().to_string();
    assert!(
        e.contains("more than the 16 MiB allowed") && e.contains("big.toml"),
        "{e}"
    );
    let e = read_spec(Path::new("/dev/zero")).unwrap_err().to_string();
    assert_eq!(
        e,
        "the spec /dev/zero: it is a character device, not a regular file"
    );
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    // Opened without blocking, and refused.
    let e = read_spec(&fifo).unwrap_err().to_string();
    assert!(e.ends_with("it is a FIFO, not a regular file"), "{e}");
    // The same limit for a spec handed over as text.
    let text = "#".repeat(limits::MAX_SPEC_BYTES as usize + 1);
    assert!(error_of(&text).contains("more than the 16 MiB a spec may have"));
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn program_objects_are_regular_files_of_bounded_size() {
    // /dev/zero grew memory by about 1 GB/s; a FIFO hung before any output.
    refused(
        "[[program]]\nobject = \"/dev/zero\"\n",
        "\"/dev/zero\"",
        "program object /dev/zero: it is a character device, not a regular file",
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("p.o");
    mkfifo(&fifo);
    let text = format!("[[program]]\nobject = \"{}\"\n", fifo.display());
    refused(&text, "\"/", "it is a FIFO, not a regular file");
    let big = dir.path().join("big.o");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(limits::MAX_PROGRAM_OBJECT + 1)
        .unwrap();
    let text = format!("[[program]]\nobject = \"{}\"\n", big.display());
    refused(&text, "\"/", "more than the 16 MiB allowed");
    // Built-in objects count towards the total too, and so do their maps.
    let mut many = String::new();
    for i in 0..=limits::MAX_PROGRAMS {
        many += &format!("[[program]]\nobject = \"copy\"\nname = \"c{i}\"\n");
    }
    assert!(error_of(&many).contains("more than 256 programs"));
}

#[test]
fn existing_files_must_be_what_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let text = format!("[[file]]\nname = \"f\"\npath = \"{}\"\n", fifo.display());
    refused(
        &text,
        "\"/",
        "it is a FIFO, not a regular file; say `kind = \"fifo\"` if that is what you mean",
    );
    let text = format!(
        "[[file]]\nname = \"f\"\npath = \"{}\"\n",
        dir.path().display()
    );
    refused(&text, "\"/", "it is a directory, not a regular file");
    let text = "[[file]]\nname = \"f\"\npath = \"/dev/null\"\nkind = \"fifo\"\n";
    refused(
        text,
        "\"/dev/null\"",
        "it is a character device, not a FIFO (kind = \"fifo\")",
    );
    refused(
        "[[file]]\nname = \"f\"\npath = \"/dev/null\"\nkind = \"socket\"\n",
        "\"socket\"",
        "expected file, fifo, char or block",
    );
    // Declared, a device is fine.
    let text = "[[file]]\nname = \"z\"\npath = \"/dev/zero\"\nkind = \"char\"\n[[buffer]]\nname = \"b\"\nsize = 64\n[[chain]]\nstep = [{ op = \"read\", file = \"z\", buffer = \"b\", len = 64 }]\n";
    let p = prepare_text("w.toml", text, Path::new("."), &PrepareOptions::default()).unwrap();
    let (report, _) = p.run(&AtomicBool::new(false)).unwrap();
    assert_eq!(report.completed, 1);
}

#[test]
fn a_fifo_nobody_writes_to_ends_at_the_timeout_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let text = format!(
        "[run]\ntimeout_s = 2\n[[file]]\nname = \"f\"\npath = \"{}\"\nkind = \"fifo\"\n[[chain]]\nstep = [{{ op = \"nop\" }}]\n",
        fifo.display()
    );
    let t = Instant::now();
    let e = match prepare_text("w.toml", &text, Path::new("."), &PrepareOptions::default()) {
        Err(e @ WorkloadError::TimedOut { .. }) => e.to_string(),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a FIFO nobody writes to was set up"),
    };
    // It ends (the bound is generous: the point is that it does not hang).
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_at(&text, &e, "\"/", "waiting for a writer to open the FIFO");
    assert!(e.ends_with("the run's timeout (2 s) passed"), "{e}");
}

#[test]
fn the_timeout_counts_from_setup_and_the_engine_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    // A writer that writes 10 bytes, then holds the FIFO open and says nothing:
    // the second read waits in the kernel until the timeout.
    let f2 = fifo.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&f2).unwrap();
        std::io::Write::write_all(&mut w, b"0123456789").unwrap();
        let _ = done_rx.recv();
    });
    let text = format!(
        "[run]\ntimeout_s = 2\n[[file]]\nname = \"f\"\npath = \"{}\"\nkind = \"fifo\"\n[[buffer]]\nname = \"b\"\nsize = 64\n[[chain]]\nlink = \"engine\"\nstep = [{{ op = \"read\", file = \"f\", buffer = \"b\", len = 10 }}, {{ op = \"read\", file = \"f\", buffer = \"b\", len = 10 }}]\n",
        fifo.display()
    );
    let p = prepare_text("w.toml", &text, Path::new("."), &PrepareOptions::default()).unwrap();
    let (report, engine) = p.run(&AtomicBool::new(false)).unwrap();
    assert!(report.timed_out, "{report:?}");
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(report.shutdown_inflight, Some(1), "{report:?}");
    assert_eq!(engine.inflight(), 0, "nothing is left in the kernel");
    drop(engine);
    done_tx.send(()).unwrap();
    writer.join().unwrap();

    // Setup that takes the whole timeout leaves nothing to run.
    let text = "[run]\ntimeout_s = 0.2\n[[chain]]\nrepeat = 5\nstep = [{ op = \"nop\" }]\n";
    let p = prepare_text("w.toml", text, Path::new("."), &PrepareOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let (report, _) = p.run(&AtomicBool::new(false)).unwrap();
    assert!(report.timed_out);
    assert_eq!(report.submitted, 0, "{report:?}");
    assert_eq!(report.cancelled, 5, "{report:?}");
}

#[test]
fn a_temporary_file_is_named_by_the_workload_not_by_the_spec() {
    // A file's `name` was joined to the temporary directory: `/x` or `../x`
    // wrote wherever the spec said.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("written-by-the-spec");
    let text = format!(
        "[[file]]\nname = \"{}\"\nsize = 10\ncontent = \"text:owned\"\n[[chain]]\nstep = [{{ op = \"nop\" }}]\n",
        target.display()
    );
    let p = prepare_text("w.toml", &text, Path::new("."), &PrepareOptions::default()).unwrap();
    let (report, _) = p.run(&AtomicBool::new(false)).unwrap();
    assert_eq!(report.completed, 1);
    assert!(!target.exists(), "the spec wrote {}", target.display());
}

#[test]
fn checking_creates_nothing_and_agrees_with_setup() {
    let plan = check_text(
        "<demo>",
        ringside_workload::DEMO_SPEC,
        Path::new("."),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.chain_count(), 31);
    // Without the filesystem a path is taken at its word.
    let text = "[[file]]\nname = \"f\"\npath = \"/nonexistent\"\n[[program]]\nobject = \"/nonexistent.o\"\nname = \"p\"\n[[chain]]\nprogram = \"p\"\nstep = [{ op = \"read\", file = \"f\", buffer = \"b\" }]\n[[buffer]]\nname = \"b\"\nsize = 8\n";
    let no_fs = CheckOptions {
        filesystem: false,
        verify: false,
        interpreter: false,
    };
    check_text("w.toml", text, Path::new("."), &no_fs).unwrap();
    assert!(check_text("w.toml", text, Path::new("."), &CheckOptions::default()).is_err());
}
