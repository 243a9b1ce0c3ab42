//! The file layout: header, frames, record types. See docs/recording-format.md.

use serde::{Deserialize, Serialize};

/// First 8 bytes of every recording.
pub const MAGIC: [u8; 8] = *b"\x89RSREC\r\n";

/// The format version this code writes and the newest it reads. 2 added
/// the `ring` record (0x21); 3 inputs-only decisions ([`DETAIL_INPUTS`]).
/// Older files read as they always did.
pub const FORMAT_VERSION: u16 = 3;

/// Bit of a decision's `exec` byte that marks an inputs-only record
/// (`Detail::Inputs`: helper calls, map writes and the instruction count
/// are recomputed from the inputs by whoever shows or checks them).
pub const DETAIL_INPUTS: u8 = 0x02;

/// Largest record payload a reader accepts (a bigger length is damage).
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// Largest header body a reader accepts.
pub const MAX_HEADER: u32 = 1 << 20;

/// The 8 bytes that open every sync record's payload (found again by a
/// reader that resynchronizes after damage).
pub const SYNC_MARKER: [u8; 8] = *b"RS\xa5SYNC\x5a";

/// Record types (the byte after a frame's length).
pub mod rtype {
    /// Sync point: resets the decoding state; carries the next item index.
    pub const SYNC: u8 = 0x01;
    /// Clean end of the recording.
    pub const END: u8 = 0x02;
    /// Clock correlation (engine time origin on CLOCK_MONOTONIC).
    pub const CLOCK: u8 = 0x03;
    /// Engine event, any kind, MessagePack body.
    pub const ENGINE_GENERIC: u8 = 0x10;
    /// Engine `submitted`.
    pub const SUBMITTED: u8 = 0x11;
    /// Engine `completed`.
    pub const COMPLETED: u8 = 0x12;
    /// Engine `chain_started`.
    pub const CHAIN_STARTED: u8 = 0x13;
    /// Engine `step_added`.
    pub const STEP_ADDED: u8 = 0x14;
    /// Engine `app_completion`.
    pub const APP_COMPLETION: u8 = 0x15;
    /// Engine `unlinked`.
    pub const UNLINKED: u8 = 0x16;
    /// Engine `decision`.
    pub const DECISION: u8 = 0x17;
    /// Kernel probe event.
    pub const PROBE: u8 = 0x20;
    /// A ring's identity and setup (`ProbeEvent::Ring`, format 2).
    pub const RING: u8 = 0x21;
    /// Events a queue dropped.
    pub const LOST: u8 = 0x30;

    /// A name for messages.
    pub fn name(t: u8) -> &'static str {
        match t {
            SYNC => "sync",
            END => "end",
            CLOCK => "clock",
            ENGINE_GENERIC => "engine event",
            SUBMITTED => "submitted",
            COMPLETED => "completed",
            CHAIN_STARTED => "chain_started",
            STEP_ADDED => "step_added",
            APP_COMPLETION => "app_completion",
            UNLINKED => "unlinked",
            DECISION => "decision",
            PROBE => "probe event",
            RING => "ring",
            LOST => "lost",
            _ => "unknown",
        }
    }

    /// True for types this version knows.
    pub fn known(t: u8) -> bool {
        name(t) != "unknown"
    }
}

/// Kernel identification (uname).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// `Linux`.
    pub sysname: String,
    /// `6.18.0-...`.
    pub release: String,
    /// Build string.
    pub version: String,
    /// `x86_64`.
    pub machine: String,
}

impl KernelInfo {
    /// This machine's.
    pub fn current() -> KernelInfo {
        // SAFETY: uname fills a zeroed struct.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut u) } != 0 {
            return KernelInfo::default();
        }
        let s = |f: &[libc::c_char]| {
            let b: Vec<u8> = f
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&b).into_owned()
        };
        KernelInfo {
            sysname: s(&u.sysname),
            release: s(&u.release),
            version: s(&u.version),
            machine: s(&u.machine),
        }
    }
}

/// The recording's header: who wrote it, where, when, and how.
///
/// Stored as a JSON object; unknown fields are kept in `extra` (so a newer
/// writer can add fields without a format version change).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Format version (also in the fixed part of the file).
    pub format_version: u16,
    /// Program that wrote it (`ringside`).
    pub tool: String,
    /// Its version.
    pub tool_version: String,
    /// Kernel it ran on.
    pub kernel: KernelInfo,
    /// Wall-clock time the recording started, ns since the Unix epoch.
    pub wall_time_ns: u64,
    /// The same instant as RFC 3339 UTC text (for people).
    pub wall_time: String,
    /// CLOCK_MONOTONIC ns when the recording started (probe timestamps are
    /// on this clock).
    pub mono_start_ns: u64,
    /// The command line that made the recording.
    pub command_line: Vec<String>,
    /// What was recorded: `demo`, `run FILE`, `attach --pid N`, ...
    pub source: String,
    /// Free-form notes (e.g. "not root: recorded without kernel probes").
    #[serde(default)]
    pub notes: Vec<String>,
    /// What the probe events' kernel pointers are (files written before
    /// this field existed kept them).
    #[serde(default)]
    pub kernel_pointers: KernelPointers,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What a recording's probe events hold where the kernel gave a pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelPointers {
    /// The pointers as the kernel reported them (`ringside record
    /// --keep-kernel-pointers`, and recordings made before ids existed).
    #[default]
    Kept,
    /// A small stable id per distinct pointer, in order of first sight
    /// ([`ringside_probes::event::PtrIds`]): what a shareable file holds.
    Ids,
}

/// CLOCK_MONOTONIC now, in ns.
pub fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// RFC 3339 UTC text for ns since the epoch.
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ns % 1_000_000_000
    )
}

impl Header {
    /// A header for a recording starting now, of `source`, with this
    /// process's command line and this machine's kernel.
    pub fn new(source: impl Into<String>) -> Header {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Header {
            format_version: FORMAT_VERSION,
            tool: "ringside".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            kernel: KernelInfo::current(),
            wall_time_ns: wall,
            wall_time: rfc3339(wall),
            mono_start_ns: mono_now_ns(),
            command_line: std::env::args().collect(),
            source: source.into(),
            notes: Vec::new(),
            kernel_pointers: KernelPointers::Ids,
            extra: serde_json::Map::new(),
        }
    }
}

impl Header {
    /// [`Header::new`], but the probe events' kernel pointers are written as
    /// they are (`record --keep-kernel-pointers`; tests of the format's
    /// round trip).
    pub fn keeping_pointers(source: impl Into<String>) -> Header {
        Header {
            kernel_pointers: KernelPointers::Kept,
            ..Header::new(source)
        }
    }
}

/// CRC-32 (IEEE, as zlib) of a frame: its length bytes, type and payload.
pub fn frame_crc(len_bytes: &[u8], rtype: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(&[rtype]);
    h.update(payload);
    h.finalize()
}

/// Append one frame (`len varint, type, payload, crc32 LE`) to `out`.
pub fn put_frame(out: &mut Vec<u8>, rtype: u8, payload: &[u8]) {
    let start = out.len();
    let mut v = payload.len() as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    let len_end = out.len();
    out.push(rtype);
    out.extend_from_slice(payload);
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..]);
    let crc = h.finalize();
    debug_assert_eq!(crc, frame_crc(&out[start..len_end], rtype, payload));
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The fixed part and body of a header, ready to write.
pub fn header_bytes(h: &Header) -> Vec<u8> {
    let body = serde_json::to_vec(h).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out[8..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn kernel_info_is_filled() {
        let k = KernelInfo::current();
        assert_eq!(k.sysname, "Linux");
        assert!(!k.release.is_empty());
    }
}
