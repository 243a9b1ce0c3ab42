//! Every committed pattern program loads, verifies and JIT-compiles.

use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, Registry};

#[test]
fn every_pattern_program_verifies() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/progs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "o") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for exec in [ExecMode::Interpreter, ExecMode::Compiled] {
            let mut reg = Registry::new();
            let opts = LoadOptions {
                exec,
                ..Default::default()
            };
            let obj = reg
                .load_object(&path.display().to_string(), &bytes, &opts)
                .unwrap_or_else(|e| panic!("{e}"));
            for (_, id) in &obj.programs {
                let p = reg.program(*id).unwrap();
                assert!(p.report.memory_safe);
                eprintln!(
                    "{}: {} insns, longest path {}, stack {}",
                    p.name, p.report.insns, p.report.max_path, p.report.stack_depth
                );
            }
        }
        n += 1;
    }
    assert!(n >= 1, "no pattern programs found in {dir}");
}
