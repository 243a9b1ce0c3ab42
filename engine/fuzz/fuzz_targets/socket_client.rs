//! Arbitrary bytes as a server's stream to `ringside attach --socket`'s
//! reader (and as a client's to the server's): messages, a protocol error
//! or the end, never a panic, and never more than the line limit held.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringside_engine::fuzzing::server_stream(data);
});
