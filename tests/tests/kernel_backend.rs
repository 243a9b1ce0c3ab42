//! The kernel backend (`--backend kernel`, docs/kernel-backend.md) from the
//! command line. On a kernel without Linux 7.1+'s io_uring BPF loop (the
//! 6.18 host) only the refusal can be seen, and the tests that need the
//! loop say loudly that they did not run: scripts/kernel-checks runs the
//! same comparisons in the 7.x guest of the kernel matrix.

use ringside_tests::{is_root, run, skip, stderr, stdout};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn spec(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("data/kernel/{name}.toml"));
    p.to_string_lossy().into_owned()
}

/// Whether this kernel can run the backend (Err: the sentence saying why not).
fn kernel_loop() -> Result<(), String> {
    ringside_engine::kernel::probe().map_err(|e| e.to_string())
}

/// Chains the engine drives, by user_data: (outcome, cause, result). Kernel
/// links race the demo's pipe writers, so their outcomes are timing.
fn engine_outcomes(out: &str) -> BTreeMap<u64, (String, String, i64)> {
    let mut driven = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        match v["kind"].as_str() {
            Some("chain_created") => {
                driven.insert(
                    v["chain"].as_u64().unwrap(),
                    (v["user_data"].as_u64().unwrap(), v["driven_by"] == "engine"),
                );
            }
            Some("chain_finished") => {
                let (ud, by_engine) = driven[&v["chain"].as_u64().unwrap()];
                if by_engine {
                    let o = &v["outcome"];
                    rows.insert(
                        ud,
                        (
                            o["outcome"].as_str().unwrap_or("").to_string(),
                            o["cause"]["cause"].as_str().unwrap_or("-").to_string(),
                            v["res"].as_i64().unwrap(),
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    rows
}

#[test]
fn without_the_loop_backend_kernel_is_one_sentence_and_a_failure() {
    if kernel_loop().is_ok() {
        skip(
            "without_the_loop_backend_kernel_is_one_sentence_and_a_failure",
            "NOT RUN: this kernel has the io_uring BPF loop, so its refusal cannot be seen here (the other tests of this file run instead)",
        );
        return;
    }
    let nops = spec("nops");
    for args in [
        vec!["demo", "--backend", "kernel", "--headless"],
        vec!["run", &nops, "--backend", "kernel", "--headless"],
    ] {
        let o = run(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?} must fail");
        assert!(o.status.code().is_some(), "{args:?} must exit, not die");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "one sentence: {err}");
        assert!(
            err.contains("io_uring BPF loop") && err.contains("--backend user"),
            "{err}"
        );
        assert!(stdout(&o).is_empty(), "nothing runs: {}", stdout(&o));
    }
}

fn needs_the_loop(test: &str) -> bool {
    if let Err(why) = kernel_loop() {
        skip(
            test,
            &format!(
                "NOT RUN on this kernel: {why} (scripts/kernel-checks runs this comparison in the 7.x guest)"
            ),
        );
        return false;
    }
    if !is_root() {
        skip(
            test,
            "NOT RUN: the kernel backend needs CAP_BPF and CAP_PERFMON (run as root)",
        );
        return false;
    }
    true
}

#[test]
fn kernel_backend_ends_every_engine_chain_as_the_user_backend() {
    if !needs_the_loop("kernel_backend_ends_every_engine_chain_as_the_user_backend") {
        return;
    }
    let nops = spec("nops");
    let read_exact = spec("read_exact");
    for args in [
        vec!["demo", "--headless"],
        vec!["run", &nops, "--headless"],
        vec!["run", &read_exact, "--headless"],
    ] {
        let user = run(&args);
        assert!(user.status.success(), "{args:?}: {}", stderr(&user));
        let mut k = args.clone();
        k.extend(["--backend", "kernel"]);
        let kernel = run(&k);
        assert!(kernel.status.success(), "{k:?}: {}", stderr(&kernel));
        let (u, kk) = (
            engine_outcomes(&stdout(&user)),
            engine_outcomes(&stdout(&kernel)),
        );
        assert!(!u.is_empty());
        assert_eq!(u, kk, "{args:?}: user (left) and kernel (right) backends");
        // Each ring's setup says which backend decides.
        for (out, want) in [(&user, "user"), (&kernel, "kernel")] {
            let setups: Vec<Value> = stdout(out)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["kind"] == "ring_setup")
                .collect();
            assert!(!setups.is_empty(), "{args:?}: no ring_setup");
            assert!(
                setups.iter().all(|v| v["backend"] == want),
                "{args:?}: ring_setup should say backend {want}: {setups:?}"
            );
        }
    }
}

#[test]
fn a_kernel_backend_recording_passes_check() {
    if !needs_the_loop("a_kernel_backend_recording_passes_check") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.rsrec");
    let f = file.to_str().unwrap();
    let read_exact = spec("read_exact");
    let o = run(&[
        "record",
        "-o",
        f,
        "run",
        &read_exact,
        "--backend",
        "kernel",
        "--headless",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = run(&["check", f]);
    assert!(
        c.status.success() && stdout(&c).contains("identical"),
        "{}{}",
        stdout(&c),
        stderr(&c)
    );
    // The recording says which backend made it.
    let e = run(&["export", f, "--format", "jsonl"]);
    let said = stdout(&e)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["kind"] == "ring_setup" && v["backend"] == "kernel");
    assert!(said, "no ring_setup with backend kernel in the recording");
}
