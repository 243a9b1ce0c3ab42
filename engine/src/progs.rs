//! The built-in pattern programs (`engine/progs/*.bpf.c`), compiled objects
//! embedded in the library so every tool has them without a build step.

/// `read_exact`: a short read is resubmitted for the remainder.
pub const READ_EXACT: &[u8] = include_bytes!("../progs/read_exact.bpf.o");
/// `read_to_eof`: read to the end, count bytes in a map, emit once.
pub const READ_TO_EOF: &[u8] = include_bytes!("../progs/read_to_eof.bpf.o");
/// `copy`: read -> write with the read's result as the write's length.
pub const COPY: &[u8] = include_bytes!("../progs/copy.bpf.o");
/// `header_body`: read a length header, then the body of that length.
pub const HEADER_BODY: &[u8] = include_bytes!("../progs/header_body.bpf.o");
/// `btree_lookup`: XRP-style B+tree lookup, one read per level.
pub const BTREE_LOOKUP: &[u8] = include_bytes!("../progs/btree_lookup.bpf.o");
/// `retry_eagain`: resubmit on -EAGAIN with backoff, up to N attempts.
pub const RETRY_EAGAIN: &[u8] = include_bytes!("../progs/retry_eagain.bpf.o");

/// `nop_chain`: a program decides every step of a chain of NOPs (the
/// upstream kernel's BPF-loop benchmark; used by `ringside bench engine`).
pub const NOP_CHAIN: &[u8] = include_bytes!("../progs/nop_chain.bpf.o");

/// The pattern programs of the proposal's use cases: (name, object bytes).
/// The program in each object has the same name as the object.
pub const PATTERNS: [(&str, &[u8]); 6] = [
    ("read_exact", READ_EXACT),
    ("read_to_eof", READ_TO_EOF),
    ("copy", COPY),
    ("header_body", HEADER_BODY),
    ("btree_lookup", BTREE_LOOKUP),
    ("retry_eagain", RETRY_EAGAIN),
];

/// Every built-in program: the patterns and `nop_chain`.
pub const ALL: [(&str, &[u8]); 7] = [
    PATTERNS[0],
    PATTERNS[1],
    PATTERNS[2],
    PATTERNS[3],
    PATTERNS[4],
    PATTERNS[5],
    ("nop_chain", NOP_CHAIN),
];

/// Object bytes of a built-in program by name.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
