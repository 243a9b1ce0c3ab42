//! Loading objects that are not what we expect: each is an error naming the
//! file, the section and the instruction or byte, never a panic.

use object::{Object, ObjectSection};
use ringside_engine::program::{LoadOptions, Registry};
use ringside_engine::progs;

fn load(bytes: &[u8]) -> String {
    let mut reg = Registry::new();
    match reg.load_object("t.o", bytes, &LoadOptions::default()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

fn section_offset(bytes: &[u8], name: &str) -> usize {
    let f = object::File::parse(bytes).unwrap();
    let s = f
        .section_by_name(name)
        .unwrap_or_else(|| panic!("no section {name}"));
    s.file_range().unwrap().0 as usize
}

#[test]
fn not_an_elf_file() {
    let e = load(b"#!/bin/sh\necho this is not an object\n");
    assert_eq!(e, "t.o (file offset 0x0): not an ELF file (bad magic)");
    assert!(load(&[]).contains("not an ELF file"));
}

#[test]
fn wrong_machine() {
    let mut b = progs::READ_EXACT.to_vec();
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    let e = load(&b);
    assert!(
        e.starts_with("t.o (file offset 0x12): wrong machine 62"),
        "{e}"
    );
}

#[test]
fn truncated_objects() {
    let b = progs::READ_EXACT;
    // Cut inside the header, inside the program's code, and just before the end.
    for cut in [
        10,
        64,
        section_offset(b, "ringside/read_exact") + 20,
        b.len() - 1,
    ] {
        let e = load(&b[..cut]);
        assert!(e.starts_with("t.o"), "cut at {cut}: {e}");
        assert!(
            e.contains("malformed ELF") || e.contains("unreadable") || e.contains("not an ELF"),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn unknown_relocation_type() {
    let mut b = progs::READ_EXACT.to_vec();
    let rel = section_offset(&b, ".relringside/read_exact");
    b[rel + 8] = 7; // r_type of the first relocation
    let e = load(&b);
    assert!(e.contains("section `ringside/read_exact`: insn "), "{e}");
    assert!(e.contains("unknown relocation type 7"), "{e}");
}

#[test]
fn missing_section() {
    let mut reg = Registry::new();
    let e = reg
        .load_programs(
            "t.o",
            progs::READ_EXACT,
            &["read_all"],
            &LoadOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "t.o: section `ringside/read_all`: missing section (the object has: ringside/read_exact)"
    );
    // An object with no program section at all.
    let mut b = progs::READ_EXACT.to_vec();
    let f = object::File::parse(&*b).unwrap();
    let name_at = f
        .section_by_name("ringside/read_exact")
        .unwrap()
        .name_bytes()
        .unwrap()
        .as_ptr() as usize
        - b.as_ptr() as usize;
    b[name_at] = b'x'; // "xingside/read_exact"
    assert!(load(&b).contains("no program sections"));
}

#[test]
fn a_map_with_sizes_out_of_range() {
    let mut b = progs::READ_EXACT.to_vec();
    let maps = section_offset(&b, "maps");
    b[maps + 8..maps + 12].copy_from_slice(&0u32.to_le_bytes()); // value_size
    let e = load(&b);
    assert_eq!(
        e,
        format!(
            "t.o: section `maps` (file offset {maps:#x}): map `read_exact_bytes`: value_size 0 out of range (1..=65536)"
        )
    );
    b[maps..maps + 4].copy_from_slice(&27u32.to_le_bytes()); // type
    assert!(load(&b).contains("type 27 is not supported"));
}

#[test]
fn bpf_to_bpf_calls_and_globals_are_refused_with_their_place() {
    let e = load(include_bytes!("bpf/bad_call.bpf.o"));
    assert!(e.contains("section `ringside/bad_call`: insn 1"), "{e}");
    assert!(e.contains("bpf-to-bpf calls are not supported"), "{e}");
    let e = load(include_bytes!("bpf/bad_global.bpf.o"));
    assert!(
        e.contains("global variable `counter` in `.bss` is not supported"),
        "{e}"
    );
}

#[test]
fn verifier_errors_name_section_instruction_and_offset() {
    // Make the first instruction of read_exact store into its context.
    let mut b = progs::READ_EXACT.to_vec();
    let code = section_offset(&b, "ringside/read_exact");
    b[code..code + 8].copy_from_slice(&[0x7b, 0x11, 0, 0, 0, 0, 0, 0]); // *(u64 *)(r1 + 0) = r1
    let e = load(&b);
    assert_eq!(
        e,
        format!(
            "t.o: section `ringside/read_exact`: insn 0 (file offset {code:#x}): writes the read-only context (offset 0)"
        )
    );
}

#[test]
fn the_maps_of_one_object_are_bounded() {
    let e = load(include_bytes!("bpf/many_maps.bpf.o"));
    assert!(e.contains("more than 64 maps in one object"), "{e}");
    assert!(e.contains("section `maps`"), "{e}");
    let e = load(include_bytes!("bpf/big_maps.bpf.o"));
    assert!(
        e.contains("map `big2`") && e.contains("more than the 536870912 one object may take"),
        "{e}"
    );
}

#[test]
fn the_maps_of_one_registry_are_bounded() {
    // Each object holds one map of 128 MiB of values: the seventeenth would
    // take the registry past 2 GiB. (The arenas are never touched, so this
    // reserves address space, not memory.)
    let mut reg = Registry::new();
    let one = ringside_engine::program::elf::ElfObject {
        file: "t.o".into(),
        programs: vec![],
        maps: vec![
            ringside_engine::program::maps::MapDef::validate("a", 2, 4, 128, 1 << 20, 0).unwrap(),
        ],
        rodata: vec![],
    };
    let mut n = 0;
    let err = loop {
        match reg.load_parsed(&one, &LoadOptions::default()) {
            Ok(_) => n += 1,
            Err(e) => break e.to_string(),
        }
        assert!(n <= 16, "never refused");
    };
    assert_eq!(n, 16, "{err}");
    assert!(err.contains("more than the 2147483648 allowed"), "{err}");
}
