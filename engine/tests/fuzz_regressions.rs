//! The fuzz targets' entry points (engine/fuzz) under stable Rust: every
//! saved input under engine/fuzz/regressions, and mutations of the real
//! pattern objects (truncations, bit flips, byte overwrites), of the demo
//! spec and of a server's stream. Neither the ELF loader nor the verifier
//! may panic, a verified program may never hit a VM memory error, the spec
//! checker never panics and keeps its limits, and the socket reader never
//! panics or holds more than its limit.

use proptest::prelude::*;
use ringside_engine::fuzzing::{load_any, server_stream, verify_and_run};
use ringside_workload::fuzzing::check_spec;

#[test]
fn saved_inputs_do_not_crash() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions");
    let mut n = 0;
    let targets = [
        ("elf", load_any as fn(&[u8])),
        ("verifier", verify_and_run),
        ("spec", check_spec),
        ("socket_client", server_stream),
    ];
    for (target, run) in targets {
        for entry in std::fs::read_dir(format!("{dir}/{target}")).unwrap() {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    eprintln!("{n} saved fuzz inputs replayed");
}

#[test]
fn every_truncation_of_a_real_object_is_an_error_not_a_panic() {
    for (name, bytes) in ringside_engine::progs::ALL {
        for cut in 0..bytes.len() {
            load_any(&bytes[..cut]);
        }
        let _ = name;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_objects_never_panic(which in 0usize..6, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = ringside_engine::progs::ALL[which].1.to_vec();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v | 1;
        }
        load_any(&bytes);
    }

    #[test]
    fn mutated_programs_never_panic_and_verified_ones_run_clean(which in 0usize..6, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6), sel in any::<u8>(), ctx in any::<[u8; 64]>()) {
        // The code of a real program, mutated: mostly still plausible BPF.
        let obj = ringside_engine::program::elf::parse("p", ringside_engine::progs::ALL[which].1).unwrap();
        let mut code = obj.programs[0].code.clone();
        for (at, v) in flips {
            let i = at.index(code.len());
            code[i] ^= v;
        }
        let mut data = vec![sel];
        data.extend_from_slice(&code);
        data.extend_from_slice(&ctx);
        verify_and_run(&data);
    }

    #[test]
    fn mutated_specs_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut bytes = ringside_workload::DEMO_SPEC.as_bytes().to_vec();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            // Mostly printable, so the text stays mostly TOML.
            bytes[i] = b' ' + v % 95;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        check_spec(&bytes);
    }

    #[test]
    fn random_server_streams_never_panic(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        server_stream(&data);
    }

    #[test]
    fn random_instructions_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        verify_and_run(&data);
    }
}
