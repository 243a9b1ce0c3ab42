//! The verifier (and the rbpf rewrites in front of it) on arbitrary
//! instructions, with two maps to reference: a verdict, never a panic. What
//! it accepts must then run under the interpreter without memory errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringside_engine::fuzzing::verify_and_run(data);
});
