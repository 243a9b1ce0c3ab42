//! The ELF loader on arbitrary bytes: an error or an object, never a panic;
//! and whatever parses goes through the verifier and, when it verifies, is
//! instantiated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringside_engine::program::{LoadOptions, Registry};

fuzz_target!(|data: &[u8]| {
    ringside_engine::fuzzing::load_any(data);
    let mut reg = Registry::new();
    let _ = reg.load_object("fuzz.o", data, &LoadOptions::default());
});
