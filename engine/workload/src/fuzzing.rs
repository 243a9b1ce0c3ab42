//! The entry point of the `spec` fuzz target (`engine/fuzz`) and its
//! stable-Rust regression tests: it takes arbitrary bytes and must never
//! panic, hang or allocate without bound.

/// A spec as text (lossy UTF-8), parsed and checked without touching the
/// filesystem or verifying: an error or a plan within every limit, never a
/// panic, a hang or an unbounded allocation. The first line, as a content
/// spec, is also generated (up to 64 KiB) and must make exactly the bytes
/// it says.
pub fn check_spec(data: &[u8]) {
    use crate::{CheckOptions, check_text, limits};
    let text = String::from_utf8_lossy(data);
    let opts = CheckOptions {
        filesystem: false,
        verify: false,
        interpreter: false,
    };
    match check_text("fuzz.toml", &text, std::path::Path::new("/"), &opts) {
        Ok(plan) => {
            assert!(plan.chain_count() <= limits::MAX_CHAINS);
            assert!(plan.step_count() <= limits::MAX_TOTAL_STEPS);
            assert!(plan.temp_file_bytes() <= limits::MAX_TOTAL_FILE_SIZE);
        }
        Err(e) => {
            // Every message has its place, and the place is in the text.
            let _ = e.to_string();
        }
    }
    let first = text.lines().next().unwrap_or("");
    let size = data.len() as u64 * 97 % (64 << 10);
    generate_content(first, size);
}

/// Generate `spec` content of `size` bytes (when it parses and is at most
/// 64 KiB) in pieces, and check the length it promised.
fn generate_content(spec: &str, size: u64) {
    use crate::content::Content;
    let Ok(c) = Content::parse(spec) else {
        return;
    };
    let len = c.len(size);
    if len > 64 << 10 {
        return;
    }
    let mut r = c.reader(size);
    let mut buf = [0u8; 777];
    let mut got = 0u64;
    loop {
        let n = std::io::Read::read(&mut r, &mut buf).expect("content never fails");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(got, len, "`{spec}` made {got} bytes, not {len}");
}
