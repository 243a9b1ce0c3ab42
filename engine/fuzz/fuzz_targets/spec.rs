//! A workload spec on arbitrary text: parsed and checked (limits, names,
//! arithmetic) without creating anything, an error with its place or a plan
//! within every limit, never a panic, a hang or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringside_workload::fuzzing::check_spec(data);
});
