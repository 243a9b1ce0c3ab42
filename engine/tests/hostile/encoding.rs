//! Hostile programs: encodings two backends could read two ways.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // ---- encodings two backends could read two ways -----------------------
        case(
            "ja with the register bit",
            "encoding",
            raw(vec![ins(0x0d, 0, 0, 0, 0)]),
            no_at(0, "malformed goto"),
        ),
        case(
            "ja with an immediate",
            "encoding",
            raw(vec![ins(0x05, 0, 0, 0, 1)]),
            no_at(0, "malformed goto"),
        ),
        case(
            "gotol (JMP32 JA)",
            "encoding",
            raw(vec![ins(0x06, 0, 0, 0, 0)]),
            no_at(0, "gotol"),
        ),
        case(
            "ALU immediate with a source register",
            "encoding",
            raw(vec![ins(0x07, 1, 2, 0, 1)]),
            no_at(0, "immediate operand with a source register"),
        ),
        case(
            "ALU register with an immediate",
            "encoding",
            raw(vec![ins(0x0f, 1, 2, 0, 1)]),
            no_at(0, "register operand with a non-zero immediate"),
        ),
        case(
            "shift by 64",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x67, 1, 0, 0, 64)]),
            no_at(1, "out of range for a 64-bit shift"),
        ),
        case(
            "shift32 by 32",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x74, 1, 0, 0, 32)]),
            no_at(1, "out of range for a 32-bit shift"),
        ),
        case(
            "arsh by -1",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xc7, 1, 0, 0, -1)]),
            no_at(1, "out of range"),
        ),
        case(
            "division by the constant 0",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x37, 1, 0, 0, 0)]),
            no_at(1, "division by the constant zero"),
        ),
        case(
            "mod32 by the constant 0",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x94, 1, 0, 0, 0)]),
            no_at(1, "division by the constant zero"),
        ),
        case(
            "signed division (sdiv)",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x37, 1, 0, 1, 3)]),
            no_at(1, "offset 1"),
        ),
        case(
            "signed modulo (smod)",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x97, 1, 0, 1, 3)]),
            no_at(1, "offset 1"),
        ),
        case(
            "sign-extending move (movsx)",
            "encoding",
            raw(vec![ins(0xbf, 1, 1, 8, 0)]),
            no_at(0, "offset 8"),
        ),
        case(
            "unconditional byte swap (bswap)",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xd7, 1, 0, 0, 16)]),
            no_at(1, "ALU64 END"),
        ),
        case(
            "byte swap of 8 bits",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xd4, 1, 0, 0, 8)]),
            no_at(1, "byte swap of 8 bits"),
        ),
        case(
            "byte swap with a source register",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xdc, 1, 3, 0, 16)]),
            no_at(1, "source register"),
        ),
        case(
            "neg with an operand",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x87, 1, 0, 0, 5)]),
            no_at(1, "neg takes no operand"),
        ),
        case(
            "neg with the register bit",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x8f, 1, 2, 0, 0)]),
            no_at(1, "neg takes no operand"),
        ),
        case(
            "ALU operation 0xe0",
            "encoding",
            raw(vec![ins(0xe7, 1, 0, 0, 0)]),
            no_at(0, "unknown ALU operation"),
        ),
        case(
            "sign-extending load (ldxsw)",
            "encoding",
            raw(vec![ins(0x81, 1, 1, 0, 0)]),
            no_at(0, "sign-extending"),
        ),
        case(
            "load with an immediate",
            "encoding",
            raw(vec![ins(0x61, 2, 1, 0, 7)]),
            no_at(0, "non-zero immediate"),
        ),
        case(
            "store immediate with a source register",
            "encoding",
            raw(vec![ins(0x72, 10, 3, -8, 0)]),
            no_at(0, "with a source register"),
        ),
        case(
            "store register with an immediate",
            "encoding",
            raw(vec![ins(0x73, 10, 1, -8, 5)]),
            no_at(0, "non-zero immediate"),
        ),
        case(
            "atomic add",
            "encoding",
            raw(vec![ins(0xdb, 10, 1, -8, 0)]),
            no_at(0, "atomic"),
        ),
        case(
            "atomic exchange on a map value",
            "encoding",
            raw(vec![ins(0xc3, 10, 1, -8, 0xe1)]),
            no_at(0, "atomic"),
        ),
        case(
            "legacy packet load (LD_ABS)",
            "encoding",
            raw(vec![ins(0x30, 0, 0, 0, 0)]),
            no_at(0, "LD_ABS"),
        ),
        case(
            "legacy packet load (LD_IND)",
            "encoding",
            raw(vec![ins(0x50, 0, 1, 0, 0)]),
            no_at(0, "LD_ABS"),
        ),
        case(
            "lddw without its second half",
            "encoding",
            Code::Raw(vec![ins(0xb7, 0, 0, 0, 0), ins(0x18, 0, 0, 0, 1)]),
            no("second half"),
        ),
        case(
            "lddw with a malformed second half",
            "encoding",
            raw(vec![ins(0x18, 0, 0, 0, 1), ins(0xb7, 0, 0, 0, 0)]),
            no("malformed second half"),
        ),
        case(
            "lddw of a map value (src 2)",
            "encoding",
            raw(vec![ins(0x18, 0, 2, 0, 1), ins(0, 0, 0, 0, 0)]),
            no_at(0, "lddw with src 2"),
        ),
        case(
            "lddw with src 1 but no relocation",
            "encoding",
            raw(vec![ins(0x18, 0, 1, 0, 1), ins(0, 0, 0, 0, 0)]),
            no_at(0, "without a relocation"),
        ),
        case(
            "exit with an immediate",
            "encoding",
            Code::Raw(vec![ins(0xb7, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 1)]),
            no_at(1, "malformed exit"),
        ),
        case(
            "exit in JMP32",
            "encoding",
            Code::Raw(vec![ins(0xb7, 0, 0, 0, 0), ins(0x96, 0, 0, 0, 0)]),
            no_at(1, "malformed exit"),
        ),
        case(
            "call with an offset",
            "encoding",
            raw(vec![ins(0x85, 0, 0, 3, 5)]),
            no_at(0, "malformed call"),
        ),
        case(
            "jump operation 0xe0",
            "encoding",
            raw(vec![ins(0xe5, 1, 0, 0, 0)]),
            no_at(0, "unknown jump"),
        ),
        case(
            "register compare with an immediate",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x1d, 1, 1, 0, 9)]),
            no_at(1, "register compare with a non-zero immediate"),
        ),
        case(
            "immediate compare with a source register",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x15, 1, 2, 0, 9)]),
            no_at(1, "immediate compare with a source register"),
        ),
        case(
            "unknown class-0 opcode",
            "encoding",
            raw(vec![ins(0x00, 0, 0, 0, 0)]),
            no_at(0, "LD"),
        ),
    ]
}
