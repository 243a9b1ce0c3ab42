//! End-to-end: the `ringside` binary handed hostile specs, and a terminal
//! that goes away. Errors print once, with their place; a FIFO nobody
//! writes to ends at the timeout; SIGHUP restores the terminal as SIGTERM
//! does, and a terminal that really goes away ends the UI (in tmux; without
//! it those tests print a SKIP line).

use ringside_tests::{ringside, run, skip, stderr};
use std::process::Command;
use std::time::{Duration, Instant};

fn spec(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn every_spec_error_is_printed_once_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = spec(
        &dir,
        "bad.toml",
        "[[chain]]\nrepeat = 0\nstep = [{ op = \"nop\" }]\n",
    );
    let out = run(&["run", "--headless", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        format!(
            "ringside: {bad}:2:10: repeat = 0: a chain runs at least once (leave `repeat` out for one copy)"
        ),
        "printed once, with file:line:column"
    );
    // A spec file that is not a file, and one that is not there.
    let out = run(&["run", "--headless", "/dev/zero"]);
    assert_eq!(
        stderr(&out).trim(),
        "ringside: the spec /dev/zero: it is a character device, not a regular file"
    );
    let missing = dir.path().join("missing.toml").display().to_string();
    let out = run(&["run", "--headless", &missing]);
    let err = stderr(&out);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    // A program object that is a device, as the UI would check it too.
    let dev = spec(&dir, "dev.toml", "[[program]]\nobject = \"/dev/zero\"\n");
    for args in [vec!["run", "--headless", &dev], vec!["run", &dev]] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.matches("character device").count(), 1, "{err}");
        assert!(err.contains("dev.toml:2:10:"), "{err}");
    }
}

#[test]
fn a_fifo_nobody_writes_to_ends_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let s = spec(
        &dir,
        "fifo.toml",
        &format!(
            "[run]\ntimeout_s = 2\n[[file]]\nname = \"f\"\npath = \"{}\"\nkind = \"fifo\"\n[[chain]]\nstep = [{{ op = \"nop\" }}]\n",
            fifo.display()
        ),
    );
    let t = Instant::now();
    let out = run(&["run", "--headless", &s]);
    // It ends (generously bounded: the point is that it does not hang).
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("waiting for a writer to open the FIFO")
            && err.contains("the run's timeout (2 s) passed"),
        "{err}"
    );
}

// ------------------------------------------------------------------ SIGHUP

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, want: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.cmd(&["capture-pane", "-p", "-t", "e2e"]);
            if want.iter().all(|w| s.contains(w)) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}: the screen shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

/// The pid of the child of `parent` named `name`.
fn child_named(parent: &str, name: &str) -> Option<String> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[l + 1..r] == name && stat[r + 1..].split_whitespace().nth(1) == Some(parent) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn sighup_restores_the_terminal() {
    if !have_tmux() {
        skip("sighup_restores_the_terminal", "tmux is not installed");
        return;
    }
    let t = Tmux(format!("ringside-hup-{}", std::process::id()));
    let shell = format!(
        "bash -c '{} demo --no-probes; echo RINGSIDE-EXITED $?; stty -a | tr \"\\n\" \" \"; echo; echo STTY-DONE; sleep 60'",
        ringside().display()
    );
    let st = Command::new("tmux")
        .args([
            "-L",
            &t.0,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "e2e",
        ])
        .args(["-x", "80", "-y", "24", &shell])
        .env("TERM", "xterm-256color")
        .status()
        .unwrap();
    assert!(st.success());
    t.wait_for("the demo to start", &["1Rings", "LIVE"]);
    let shell_pid = t
        .cmd(&["display-message", "-p", "-t", "e2e", "#{pane_pid}"])
        .trim()
        .to_string();
    let pid = child_named(&shell_pid, "ringside").expect("ringside under the pane's shell");
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let s = t.wait_for(
        "ringside to exit (SIGHUP)",
        &["RINGSIDE-EXITED", "STTY-DONE"],
    );
    let flat = s.replace('\n', " ");
    assert_eq!(
        t.cmd(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"])
            .trim(),
        "0",
        "still on the alternate screen:\n{s}"
    );
    assert!(
        flat.contains(" icanon") && !flat.contains("-icanon"),
        "the terminal is still raw after SIGHUP:\n{s}"
    );
    assert!(
        flat.contains(" echo ") && !flat.contains("-echo "),
        "echo is off after SIGHUP:\n{s}"
    );
}

/// Whether `pid` is gone (or a zombie waiting for its parent to reap it).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|r| stat[r + 1..].trim_start().starts_with('Z')),
    }
}

#[test]
fn a_terminal_that_goes_away_ends_the_ui() {
    if !have_tmux() {
        skip(
            "a_terminal_that_goes_away_ends_the_ui",
            "tmux is not installed",
        );
        return;
    }
    let t = Tmux(format!("ringside-gone-{}", std::process::id()));
    let shell = format!("{} demo --no-probes", ringside().display());
    let st = Command::new("tmux")
        .args([
            "-L",
            &t.0,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "e2e",
        ])
        .args(["-x", "80", "-y", "24", &shell])
        .env("TERM", "xterm-256color")
        .status()
        .unwrap();
    assert!(st.success());
    t.wait_for("the demo to start", &["1Rings", "LIVE"]);
    let pane_pid = t
        .cmd(&["display-message", "-p", "-t", "e2e", "#{pane_pid}"])
        .trim()
        .to_string();
    // The pane runs ringside itself, or a shell that runs it.
    let pid = child_named(&pane_pid, "ringside").unwrap_or(pane_pid);
    // Closing the terminal: its reads then answer 0 forever, on which
    // crossterm's reader spun without returning.
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gone(&pid) {
        assert!(
            Instant::now() < deadline,
            "ringside {pid} still runs after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
