//! End-to-end: the `ringside` command line on real rings: `demo` and `run`
//! with `--headless` (the JSON Lines schema, the summary, exit codes), spec
//! errors with file:line:column, and attach's errors.

use ringside_tests::{is_root, run, skip, stderr, stdout};
use serde_json::Value;
use std::collections::BTreeSet;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn demo_headless_prints_every_event_as_json_and_a_summary() {
    let o = run(&["demo", "--headless"]);
    assert!(o.status.success());
    let lines = json_lines(&stdout(&o));
    let summary = lines.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["report"]["chains"], 31);
    assert_eq!(summary["report"]["failures_by_cause"]["kernel_link"], 4);
    // seq counts from 0 without gaps.
    let seqs: Vec<u64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    let kinds: BTreeSet<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    for k in [
        "ring_setup",
        "program_loaded",
        "chain_created",
        "chain_started",
        "submitted",
        "completed",
        "decision",
        "step_added",
        "cancelled",
        "chain_finished",
        "app_completion",
        "map_update",
        "shutdown",
    ] {
        assert!(
            kinds.contains(k),
            "no `{k}` event in the demo's stream: {kinds:?}"
        );
    }
    // A decision carries its inputs: the context, the chain view, helper calls.
    let d = lines
        .iter()
        .find(|l| l["kind"] == "decision" && l["prog_name"] == "header_body")
        .unwrap();
    assert!(d["ctx"]["len"].is_u64() && d["view"]["nsteps"].is_u64());
    assert!(
        d["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["detail"]["op"] == "read_buf")
    );
    assert!(d["insns"].as_u64().unwrap() > 0);
}

#[test]
fn run_reports_spec_errors_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(&spec, "[[buffer]]\nname = \"b\"\nsize = 64\n\n[[chain]]\nstep = [{ op = \"read\", file = \"nope\", buffer = \"b\", len = 8 }]\n").unwrap();
    let o = run(&["run", spec.to_str().unwrap(), "--headless"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:6:", spec.display())), "{err}");
    assert!(
        err.contains("no file, pipe or socketpair named `nope`"),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "nothing runs on a bad spec");
}

#[test]
fn run_headless_runs_a_workload_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("w.toml");
    std::fs::write(
        &spec,
        r#"
[[pipe]]
name = "p"
writer = { total = 30000, chunks = [777, 4096] }

[[buffer]]
name = "b"
size = 30000

[[program]]
object = "read_exact"

[[chain]]
program = "read_exact"
notify = "all"
step = [
  { op = "read", file = "p", buffer = "b", len = 10000 },
  { op = "read", file = "p", buffer = "b", buf_off = 10000, len = 20000 },
]
"#,
    )
    .unwrap();
    let o = run(&["run", spec.to_str().unwrap(), "--headless"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let lines = json_lines(&out);
    let fin = lines
        .iter()
        .find(|l| l["kind"] == "chain_finished")
        .unwrap();
    // Every event on a mismatch: the reads' sizes depend on the writer's
    // timing, and a wrong sum (once 29238 in CI, not reproduced since)
    // needs the decisions that made it to be explained.
    assert_eq!(fin["outcome"]["outcome"], "completed", "{out}");
    assert_eq!(fin["res"], 30000, "{out}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["report"]["completed"], 1, "{out}");
    assert_eq!(summary["report"]["written"]["p"], 30000, "{out}");
}

#[test]
fn attach_to_a_missing_pid_is_a_one_line_error() {
    if !is_root() {
        skip(
            "attach_to_a_missing_pid_is_a_one_line_error",
            "kernel probes need root",
        );
        return;
    }
    let o = run(&["attach", "--pid", "999999999", "--headless"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
