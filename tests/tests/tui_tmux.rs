//! End-to-end: the real `ringside` binary in a real terminal (tmux). Start
//! the demo, switch views with keys, set a breakpoint, stop in a decision,
//! step through it, step over, continue, quit; then check that the terminal
//! is back to normal (alternate screen left, cursor shown, cooked mode), the
//! same after Ctrl-C and SIGTERM.
//!
//! Needs tmux: without it every test here prints a loud SKIP line.
//! `RINGSIDE_SCREENS=DIR` also saves `tmux capture-pane -e` captures of each
//! view into DIR, at `RINGSIDE_SCREENS_SIZE` (default 100x30): that is how
//! docs/screens/ is made.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ringside_tests::{ringside, skip};

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A private tmux server with one pane running a shell command.
struct Tmux {
    socket: String,
    screens: Option<PathBuf>,
}

impl Tmux {
    fn start(name: &str, w: u16, h: u16, cmd: &str) -> Tmux {
        let socket = format!("ringside-e2e-{name}-{}", std::process::id());
        let t = Tmux {
            socket,
            screens: std::env::var_os("RINGSIDE_SCREENS").map(PathBuf::from),
        };
        let st = Command::new("tmux")
            .args([
                "-L",
                &t.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "e2e",
            ])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .arg(cmd)
            .env("TERM", "xterm-256color")
            .status()
            .unwrap();
        assert!(st.success(), "tmux new-session failed");
        let _ = Command::new("tmux")
            .args(["-L", &t.socket, "set-option", "-g", "remain-on-exit", "on"])
            .status();
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "e2e"])
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "e2e", k]);
            // Let an Esc be an Esc, not the start of an Alt sequence.
            std::thread::sleep(Duration::from_millis(if *k == "Escape" { 400 } else { 60 }));
        }
    }

    /// The screen once `done` holds of it, or the last one after `timeout`
    /// (the caller's assertions say what was wrong with it).
    fn settle(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if done(&s) || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the screen shows every one of `want`.
    fn wait_for(&self, what: &str, want: &[&str]) -> String {
        let shows = |s: &str| want.iter().all(|w| s.contains(w));
        let s = self.settle(Duration::from_secs(60), shows);
        assert!(
            shows(&s),
            "waiting for {what}: the screen never showed {want:?}; it shows:\n{s}"
        );
        s
    }

    fn save(&self, name: &str) {
        if let Some(dir) = &self.screens {
            std::fs::create_dir_all(dir).unwrap();
            let s = self.tmux(&["capture-pane", "-e", "-p", "-t", "e2e"]);
            std::fs::write(dir.join(format!("{name}.ansi")), s).unwrap();
        }
    }

    fn display(&self, fmt: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "e2e", fmt])
            .trim()
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The shell command: ringside, then what the terminal looks like after it.
fn shell(args: &str) -> String {
    format!(
        "bash -c '{} {args}; echo RINGSIDE-EXITED $?; stty -a | tr \"\\n\" \" \"; echo; echo STTY-DONE; sleep 60'",
        ringside().display()
    )
}

fn assert_restored(t: &Tmux, how: &str) {
    let s = t.wait_for(
        &format!("ringside to exit ({how})"),
        &["RINGSIDE-EXITED", "STTY-DONE"],
    );
    assert_eq!(
        t.display("#{alternate_on}"),
        "0",
        "still on the alternate screen after {how}:\n{s}"
    );
    assert_eq!(
        t.display("#{cursor_flag}"),
        "1",
        "cursor hidden after {how}:\n{s}"
    );
    let flat = s.replace('\n', " ");
    assert!(
        flat.contains(" icanon") && !flat.contains("-icanon"),
        "the terminal is still in raw mode after {how}:\n{s}"
    );
    assert!(
        flat.contains(" echo ") && !flat.contains("-echo "),
        "echo is off after {how}:\n{s}"
    );
}

#[test]
fn demo_views_breakpoint_step_and_quit() {
    if !have_tmux() {
        skip(
            "demo_views_breakpoint_step_and_quit",
            "tmux is not installed (apt-get install tmux)",
        );
        return;
    }
    // RINGSIDE_SCREENS_SIZE=80x24 (say) for the captures; 100x30 otherwise.
    let (w, h) = std::env::var("RINGSIDE_SCREENS_SIZE")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((100, 30));
    let t = Tmux::start("demo", w, h, &shell("demo --round-gap-ms 300"));
    t.wait_for(
        "the demo to start",
        &["ringside", "1Rings", "Chains", "LIVE"],
    );
    t.wait_for("chains to appear", &["eng", "btree_lookup"]);
    t.save("chains");

    t.keys(&["1"]);
    t.wait_for("the Rings view", &["SQ/CQ", "engine"]);
    t.save("rings");
    t.keys(&["3"]);
    t.wait_for("the Cancels view", &["Causes", "kernel link broke"]);
    t.save("cancels");
    t.keys(&["4"]);
    t.wait_for(
        "the Decisions view",
        &["res/len", "context (struct rs_ctx)", "disassembly"],
    );
    t.save("decisions");
    t.keys(&["5"]);
    t.wait_for("the Maps view", &["Maps (", "copy_cfg"]);
    t.save("maps");
    t.keys(&["6"]);
    t.wait_for(
        "the Stats view",
        &["completions per 10 ms", "latency", "decision insns"],
    );
    t.save("stats");
    t.keys(&["?"]);
    t.wait_for("the help", &["Keys", "step over the decision"]);
    t.save("help");
    t.keys(&["Escape"]);

    // Break on short reads: read_exact's chains have them every round.
    t.keys(&["b", "1"]);
    t.wait_for("the breakpoint list", &["[x] input res < len"]);
    t.save("breakpoints");
    t.keys(&["Escape"]);
    let s = t.wait_for(
        "the breakpoint to hit",
        &["STOPPED", "breakpoint: res < len", "insn 1/"],
    );
    t.save("debug-stopped");
    assert!(s.contains("registers"), "{s}");
    // Step three instructions.
    t.keys(&["s", "s", "s"]);
    t.wait_for("three steps", &["insn 4/"]);
    t.save("debug-stepped");
    // Step over the whole decision: stopped again at the next one.
    let before = stopped_at(&t.screen());
    t.keys(&["n"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = t.screen();
        let now = stopped_at(&s);
        if now.is_some() && now != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n did not stop at the next decision:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Clear breakpoints and go on.
    t.keys(&["b", "x"]);
    t.keys(&["Escape"]);
    t.keys(&["c"]);
    t.wait_for("running again", &["LIVE"]);
    t.keys(&["2"]);
    t.wait_for("the Chains view", &["Chains"]);

    t.keys(&["q"]);
    assert_restored(&t, "q");
}

fn stopped_at(s: &str) -> Option<String> {
    let pat = "at decision #";
    let i = s.find(pat)?;
    Some(
        s[i + pat.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect(),
    )
}

#[test]
fn ctrl_c_restores_the_terminal() {
    if !have_tmux() {
        skip("ctrl_c_restores_the_terminal", "tmux is not installed");
        return;
    }
    let t = Tmux::start("ctrlc", 80, 24, &shell("demo --no-probes"));
    t.wait_for("the demo to start", &["1Rings", "LIVE"]);
    t.keys(&["C-c"]);
    assert_restored(&t, "Ctrl-C");
}

#[test]
fn sigterm_restores_the_terminal() {
    if !have_tmux() {
        skip("sigterm_restores_the_terminal", "tmux is not installed");
        return;
    }
    let t = Tmux::start("term", 80, 24, &shell("demo --no-probes"));
    t.wait_for("the demo to start", &["1Rings", "LIVE"]);
    let shell_pid = t.display("#{pane_pid}");
    let pid = child_named(&shell_pid, "ringside").unwrap_or_default();
    assert!(
        !pid.is_empty(),
        "no ringside process under the pane's shell {shell_pid}"
    );
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    assert_restored(&t, "SIGTERM");
}

/// The pid of a child of `parent` whose command name is `name` (from /proc).
fn child_named(parent: &str, name: &str) -> Option<String> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[l + 1..r];
        let ppid = stat[r + 1..].split_whitespace().nth(1);
        if comm == name && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn panic_restores_the_terminal() {
    if !have_tmux() {
        skip("panic_restores_the_terminal", "tmux is not installed");
        return;
    }
    let t = Tmux::start(
        "panic",
        80,
        24,
        &shell("demo --no-probes").replace(
            "bash -c '",
            "bash -c 'RUST_BACKTRACE=0 RINGSIDE_TEST_PANIC_AFTER_FRAMES=5 ",
        ),
    );
    t.wait_for("the panic", &["RINGSIDE-EXITED 101", "STTY-DONE"]);
    // With the scrollback: a backtrace may push the first line up.
    let s = t.tmux(&["capture-pane", "-p", "-S", "-200", "-t", "e2e"]);
    assert!(
        s.contains("panicked") && s.contains("a panic for the test"),
        "the panic message is not on the screen:\n{s}"
    );
    assert_restored(&t, "a panic");
}

#[test]
fn resize_and_small_terminal() {
    if !have_tmux() {
        skip("resize_and_small_terminal", "tmux is not installed");
        return;
    }
    let t = Tmux::start("resize", 80, 24, &shell("demo --no-probes"));
    t.wait_for("the demo at 80x24", &["1Rings", "LIVE", "Chains"]);
    t.tmux(&["resize-window", "-t", "e2e", "-x", "130", "-y", "40"]);
    t.wait_for("a wider tab bar", &["4Decisions"]);
    t.tmux(&["resize-window", "-t", "e2e", "-x", "80", "-y", "24"]);
    t.wait_for("the narrow tab bar", &["4Decide"]);
    t.keys(&["q"]);
    assert_restored(&t, "q after resizing");
}

/// `ringside attach --socket` on the embedded example: watch, pause the
/// application, continue; the application exits, the UI says so and keeps
/// the history.
#[test]
fn attach_socket_pause_and_survive_exit() {
    if !have_tmux() {
        skip(
            "attach_socket_pause_and_survive_exit",
            "tmux is not installed",
        );
        return;
    }
    let example = ringside()
        .parent()
        .unwrap()
        .join("examples")
        .join("embedded");
    if !example.exists() {
        skip(
            "attach_socket_pause_and_survive_exit",
            "the embedded example is not built (cargo build --workspace --all-targets)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let mut app = Command::new(&example)
        .args(["--socket", sock.to_str().unwrap(), "--seconds", "300"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Tmux::start(
        "socket",
        100,
        30,
        &shell(&format!("attach --socket {}", sock.display())),
    );
    t.wait_for(
        "the application's chains",
        &["embedded example", "read_exact", "LIVE"],
    );
    t.keys(&["p"]);
    t.wait_for(
        "the application to stop",
        &["STOPPED", "paused at decision #"],
    );
    t.keys(&["c"]);
    t.wait_for("it to run again", &["LIVE"]);
    // The application exits (SIGTERM: it shuts down cleanly).
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(app.id() as i32, libc::SIGTERM) };
    let _ = app.wait();
    let s = t.wait_for("the exit to show", &["ENDED", "the application"]);
    assert!(
        s.contains("goodbye") || s.contains("exited"),
        "the exit is not explained:\n{s}"
    );
    // The history stays: the chains are still there.
    t.keys(&["2"]);
    t.wait_for(
        "the chains after the exit",
        &["Chains", "read_exact", "ENDED"],
    );
    t.keys(&["q"]);
    assert_restored(&t, "q after the application exited");
}

/// What fio reported of one run: total read IOs and read IOPS.
struct FioResult {
    total_ios: u64,
    iops: f64,
}

/// fio's totals from its JSON output.
fn fio_result(json: &std::path::Path) -> FioResult {
    let text = std::fs::read_to_string(json).unwrap();
    // fio may print notes before the JSON object.
    let v: serde_json::Value =
        serde_json::from_str(&text[text.find('{').expect("fio JSON")..]).unwrap();
    let jobs = v["jobs"].as_array().unwrap();
    FioResult {
        total_ios: jobs
            .iter()
            .map(|j| j["read"]["total_ios"].as_u64().unwrap())
            .sum(),
        iops: jobs
            .iter()
            .map(|j| j["read"]["iops"].as_f64().unwrap())
            .sum(),
    }
}

/// fio's 4 KiB random reads at iodepth 32 through io_uring, direct, for
/// 15 s after a 3 s start delay (time to attach before the job's first
/// request), reporting JSON into `json`.
fn start_fio(dir: &std::path::Path, json: &std::path::Path) -> std::process::Child {
    Command::new("fio")
        .args([
            "--name=e2e",
            &format!("--filename={}", dir.join("data").display()),
            "--size=64M",
            "--rw=randread",
            "--bs=4k",
            "--ioengine=io_uring",
            "--iodepth=32",
            "--direct=1",
            "--time_based",
            "--runtime=15",
            "--startdelay=3",
            "--output-format=json",
            &format!("--output={}", json.display()),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// fio traced by `ringside attach --headless` (its JSON Lines thrown
/// away): the IOPS the live view is compared with.
fn fio_traced_headless(dir: &std::path::Path) -> FioResult {
    let json = dir.join("fio-headless.json");
    let mut fio = start_fio(dir, &json);
    let mut tracer = Command::new(ringside())
        .args(["attach", "--pid", &fio.id().to_string(), "--wait-for-rings"])
        .arg("--headless")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        fio.wait().unwrap().success(),
        "fio (traced headless) failed"
    );
    // Headless attach runs until interrupted.
    let _ = Command::new("kill")
        .args(["-INT", &tracer.id().to_string()])
        .status();
    let st = tracer.wait().unwrap();
    assert!(
        st.success() || st.code().is_none(),
        "ringside attach --headless failed: {st}"
    );
    fio_result(&json)
}

/// A count as the Rings view prints it (`915k`, `12M`, `4242`).
fn parse_count(s: &str) -> Option<u64> {
    if let Some(k) = s.strip_suffix('k') {
        k.parse::<u64>().ok().map(|v| v * 1000)
    } else if let Some(m) = s.strip_suffix('M') {
        m.parse::<u64>().ok().map(|v| v * 1_000_000)
    } else {
        s.parse().ok()
    }
}

/// The live view on a real workload: fio at full speed for 15 s, attached
/// by its parent's pid before its job starts. The ring's request total
/// (from the probes' kernel-side counters) matches fio's, nothing is lost
/// before ringside, the view says how much of it it holds, and once fio
/// exits the header says ENDED and the rates are zero. Watching in the UI
/// costs fio no more than tracing it headless: its IOPS are at least 90%
/// of those of a headless-traced run just before (the pair is run again
/// once if not, since the machine is shared).
#[test]
fn fio_at_full_speed_in_the_live_view() {
    let name = "fio_at_full_speed_in_the_live_view";
    if !have_tmux() {
        skip(name, "tmux is not installed");
        return;
    }
    if !ringside_tests::is_root() {
        skip(name, "kernel probes need root");
        return;
    }
    if Command::new("fio").arg("--version").output().is_err() {
        skip(name, "fio is not installed (scripts/setup installs it)");
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let headless = fio_traced_headless(dir.path());
        let ui = fio_in_the_live_view(dir.path());
        let ratio = ui.iops / headless.iops.max(1.0);
        eprintln!(
            "fio's IOPS traced headless {:.0}, watched in the live view {:.0}: {ratio:.2}x",
            headless.iops, ui.iops
        );
        if ratio >= 0.9 {
            break;
        }
        assert!(
            attempt < 2,
            "watching fio in the live view cost it more than tracing it headless: {:.0} IOPS against {:.0} ({ratio:.2}x, twice)",
            ui.iops,
            headless.iops
        );
    }
}

/// One fio run attached in the TUI, checked as the test above says.
fn fio_in_the_live_view(dir: &std::path::Path) -> FioResult {
    let json = dir.join("fio-ui.json");
    let mut fio = start_fio(dir, &json);
    let t = Tmux::start(
        "fio",
        120,
        30,
        &shell(&format!("attach --pid {} --wait-for-rings", fio.id())),
    );
    t.wait_for("the attach", &["LIVE"]);
    assert!(fio.wait().unwrap().success(), "fio failed");
    let result = fio_result(&json);
    let want = result.total_ios;
    t.wait_for("the end of fio to show", &["ENDED", "exited"]);
    t.keys(&["1"]);
    // The fio job's ring: the kernel row with the most requests, as
    // (requests, whether both its rates read 0).
    let fio_row = |s: &str| -> Option<(u64, bool)> {
        s.lines()
            .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
            .filter(|l| l.starts_with("kernel "))
            .filter_map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                Some((parse_count(c.get(8)?)?, c.get(6..8)? == ["0", "0"]))
            })
            .max_by_key(|(n, _)| *n)
    };
    let apart = |n: u64| n.abs_diff(want) as f64 / want.max(1) as f64;
    // The last counters arrive with the exit and the rates fall to zero a
    // frame or two later: wait (bounded) for the screen to settle rather
    // than for a fixed time.
    let s = t.settle(Duration::from_secs(20), |s| {
        fio_row(s).is_some_and(|(n, idle)| apart(n) <= 0.01 && idle)
    });
    t.save("fio-rings");
    assert!(
        !s.contains("LOST"),
        "events were lost before ringside:\n{s}"
    );
    let (got, idle) =
        fio_row(&s).unwrap_or_else(|| panic!("no kernel ring row in the Rings view:\n{s}"));
    assert!(
        apart(got) <= 0.01,
        "the UI counted {got} requests, fio did {want} ({:.2}% apart):\n{s}",
        apart(got) * 100.0
    );
    assert!(idle, "rates go on after fio exited:\n{s}");
    eprintln!("fio did {want} reads; the live view counted {got}");
    t.keys(&["q"]);
    assert_restored(&t, "q after fio exited");
    result
}
