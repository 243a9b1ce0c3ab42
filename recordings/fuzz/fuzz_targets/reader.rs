//! Arbitrary bytes as a recording: read (strict and resync), check, export.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringside_recordings::fuzzing::read_bytes(data);
});
