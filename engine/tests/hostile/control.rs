//! Hostile programs: control flow that could loop or escape: back edges, jumps out, long paths.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    let moves = (0..4094)
        .map(|i| format!("mov64 r{}, {i}", i % 10))
        .collect::<Vec<_>>()
        .join("\n");
    let divs = (0..600)
        .map(|_| "div64 r0, r2\nmod32 r0, r2\n".to_string())
        .collect::<String>();
    vec![
        // ---- control flow -------------------------------------------------------
        case(
            "a loop",
            "control flow",
            asm("mov64 r0, 0\nadd64 r0, 1\njlt r0, 10, -2\nexit"),
            no_at(2, "loop"),
        ),
        case(
            "jump to itself",
            "control flow",
            asm("ja -1\nexit"),
            no_at(0, "loop"),
        ),
        case(
            "a loop through two jumps",
            "control flow",
            asm("mov64 r0, 0\nja +1\nexit\nja -3"),
            no("loop"),
        ),
        case(
            "a shared tail is no loop",
            "control flow",
            asm("ldxw r1, [r1+8]\njeq r1, 0, +2\nmov64 r0, 1\nexit\nmov64 r0, 2\nja -3"),
            Pass,
        ),
        case(
            "jump past the end",
            "control flow",
            asm("ja +5\nmov64 r0, 0\nexit"),
            no_at(0, "past the end"),
        ),
        case(
            "jump before the start",
            "control flow",
            asm("ja -3\nmov64 r0, 0\nexit"),
            no_at(0, "before the start"),
        ),
        case(
            "jump into the middle of lddw",
            "control flow",
            asm("ja +1\nlddw r0, 1\nexit"),
            no_at(0, "middle of lddw"),
        ),
        case(
            "fall off the end",
            "control flow",
            asm("mov64 r0, 0"),
            no("end of the program"),
        ),
        case(
            "fall off the end on one branch",
            "control flow",
            asm("ldxw r2, [r1+8]\nmov64 r0, 0\njeq r2, 0, +1\nexit\nmov64 r0, 1"),
            no("end of the program"),
        ),
        case(
            "a bpf-to-bpf call",
            "control flow",
            raw(vec![ins(0x85, 0, 1, 0, 1)]),
            no_at(0, "bpf-to-bpf call"),
        ),
        case(
            "a recursive call",
            "control flow",
            raw(vec![ins(0x85, 0, 1, 0, -1)]),
            no_at(0, "recursion"),
        ),
        case(
            "a kfunc call",
            "control flow",
            raw(vec![ins(0x85, 0, 2, 0, 1234)]),
            no_at(0, "kfuncs"),
        ),
        case(
            "a tail call",
            "control flow",
            asm("call 12\nmov64 r0, 0\nexit"),
            no_at(0, "unknown helper 12"),
        ),
        case(
            "an unknown ringside helper",
            "control flow",
            asm("call 0x1006\nmov64 r0, 0\nexit"),
            no_at(0, "unknown helper"),
        ),
        case(
            "a helper id with the sign bit",
            "control flow",
            raw(vec![ins(0x85, 0, 0, 0, -1)]),
            no_at(0, "unknown helper"),
        ),
        case(
            "4094 moves and exit",
            "size",
            asm(&format!("{moves}\nexit")),
            Pass,
        ),
        case(
            "one instruction over the limit",
            "size",
            asm(&format!("{moves}\nmov64 r0, 1\nmov64 r0, 2\nexit")),
            no("limit is 4096"),
        ),
        case(
            "600 divisions by zero",
            "size",
            asm(&format!("mov64 r0, 7\nmov64 r2, 0\n{divs}exit")),
            Pass,
        ),
        case(
            "an empty program",
            "size",
            Code::Raw(vec![]),
            no("empty program"),
        ),
    ]
}
