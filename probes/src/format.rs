//! Tracepoint record layouts, read from tracefs at load time.
//!
//! The BPF programs do not hard-code where `ctx`, `req`, `user_data`, ... sit
//! in a tracepoint record: layouts change between kernels. This module parses
//! `events/<system>/<name>/format`, checks the size of every field we read,
//! and produces the offset table (`rs_cfg` in bpf/probes.bpf.c) that the
//! loader writes into the object's read-only data.

use crate::error::ProbeError;
use crate::event::wire;
use std::path::{Path, PathBuf};

/// Offsets beyond this are refused: the BPF side copies this many bytes of
/// the record (RS_BUF in probes.bpf.c).
pub const MAX_RECORD: usize = 128;
/// Field slots per kind (RS_NFIELDS).
pub const SLOTS: usize = 10;

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Declared C type (`void *`, `u64`, `__data_loc char[]`, ...).
    pub ty: String,
    /// Field name.
    pub name: String,
    /// Byte offset in the record.
    pub offset: usize,
    /// Byte size.
    pub size: usize,
}

/// A parsed tracepoint format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Tracepoint name (`io_uring_submit_req`).
    pub name: String,
    /// Fields in file order, `common_*` included.
    pub fields: Vec<Field>,
}

impl Format {
    /// Parses the text of a format file. `what` names the file in errors.
    pub fn parse(what: &str, text: &str) -> Result<Format, ProbeError> {
        let bad = |line: usize, reason: String| ProbeError::FormatFile {
            path: what.to_string(),
            line,
            reason,
        };
        let mut name = None;
        let mut fields = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(n) = line.strip_prefix("name:") {
                name = Some(n.trim().to_string());
                continue;
            }
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            // field:<type> <name>;\toffset:N;\tsize:N;\tsigned:N;
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().unwrap_or_default();
            let (mut offset, mut size) = (None, None);
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = Some(
                        v.parse::<usize>()
                            .map_err(|e| bad(i + 1, format!("offset {v:?}: {e}")))?,
                    );
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = Some(
                        v.parse::<usize>()
                            .map_err(|e| bad(i + 1, format!("size {v:?}: {e}")))?,
                    );
                }
            }
            let (Some(offset), Some(size)) = (offset, size) else {
                return Err(bad(i + 1, format!("no offset/size in {raw:?}")));
            };
            // The name is the last identifier of the declaration once
            // bracket groups are gone: `char comm[16]`, `__data_loc char[] op_str`.
            let mut stripped = String::with_capacity(decl.len());
            let mut depth = 0u32;
            for ch in decl.chars() {
                match ch {
                    '[' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    _ if depth == 0 => stripped.push(ch),
                    _ => {}
                }
            }
            let decl_no_arr = stripped.trim_end();
            let split = decl_no_arr
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(|p| p + 1)
                .unwrap_or(0);
            let fname = &decl_no_arr[split..];
            if fname.is_empty() {
                return Err(bad(i + 1, format!("no field name in {decl:?}")));
            }
            fields.push(Field {
                ty: decl_no_arr[..split].trim().to_string(),
                name: fname.to_string(),
                offset,
                size,
            });
        }
        let name = name.ok_or_else(|| bad(0, "no \"name:\" line".into()))?;
        if fields.is_empty() {
            return Err(bad(0, "no \"field:\" lines".into()));
        }
        Ok(Format { name, fields })
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// What one slot of a kind reads: a field name and the size the BPF code
/// loads for it.
#[derive(Debug, Clone, Copy)]
pub struct SlotSpec {
    /// Field name in the format file.
    pub field: &'static str,
    /// Size the BPF program reads (1, 2, 4 or 8).
    pub size: usize,
    /// Refuse to attach when it is missing (else the value reads as 0).
    pub required: bool,
}

const fn req(field: &'static str, size: usize) -> Option<SlotSpec> {
    Some(SlotSpec {
        field,
        size,
        required: true,
    })
}
const fn opt(field: &'static str, size: usize) -> Option<SlotSpec> {
    Some(SlotSpec {
        field,
        size,
        required: false,
    })
}

/// One tracepoint the probes attach to.
#[derive(Debug, Clone, Copy)]
pub struct TracepointSpec {
    /// tracefs system (`io_uring`).
    pub system: &'static str,
    /// Tracepoint name (`io_uring_submit_req`).
    pub name: &'static str,
    /// BPF program name in the object.
    pub program: &'static str,
    /// Wire kind (`wire::KIND_*`).
    pub kind: u8,
    /// Without it, attaching fails; others are skipped with a note.
    pub essential: bool,
    /// What each slot reads; the order is the one bpf/probes.bpf.c uses
    /// (at most SLOTS; slots past the list read nothing).
    pub slots: &'static [Option<SlotSpec>],
}

/// Every tracepoint, with its slot layout (must match probes.bpf.c).
pub const TRACEPOINTS: &[TracepointSpec] = &[
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_create",
        program: "rs_create",
        kind: wire::KIND_CREATE,
        essential: true,
        slots: &[
            req("fd", 4),
            req("ctx", 8),
            opt("sq_entries", 4),
            opt("cq_entries", 4),
            opt("flags", 4),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_submit_req",
        program: "rs_submit_req",
        kind: wire::KIND_SUBMIT_REQ,
        essential: true,
        slots: &[
            req("ctx", 8),
            req("req", 8),
            req("user_data", 8),
            req("opcode", 1),
            req("flags", 8),
            opt("sq_thread", 1),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_complete",
        program: "rs_complete",
        kind: wire::KIND_COMPLETE,
        essential: true,
        slots: &[
            req("ctx", 8),
            opt("req", 8),
            req("user_data", 8),
            req("res", 4),
            opt("cflags", 4),
            opt("extra1", 8),
            opt("extra2", 8),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_link",
        program: "rs_link",
        kind: wire::KIND_LINK,
        essential: true,
        slots: &[req("ctx", 8), req("req", 8), req("target_req", 8)],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_fail_link",
        program: "rs_fail_link",
        kind: wire::KIND_FAIL_LINK,
        essential: true,
        slots: &[
            req("ctx", 8),
            req("req", 8),
            opt("user_data", 8),
            opt("opcode", 1),
            req("link", 8),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_req_failed",
        program: "rs_req_failed",
        kind: wire::KIND_REQ_FAILED,
        essential: false,
        slots: &[
            req("ctx", 8),
            req("req", 8),
            req("user_data", 8),
            opt("opcode", 1),
            opt("flags", 1),
            opt("off", 8),
            opt("len", 4),
            req("error", 4),
            opt("addr", 8),
            opt("buf_index", 2),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_cqe_overflow",
        program: "rs_cqe_overflow",
        kind: wire::KIND_CQE_OVERFLOW,
        essential: false,
        slots: &[
            req("ctx", 8),
            None,
            req("user_data", 8),
            req("res", 4),
            opt("cflags", 4),
            opt("ocqe", 8),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_short_write",
        program: "rs_short_write",
        kind: wire::KIND_SHORT_WRITE,
        essential: false,
        slots: &[
            req("ctx", 8),
            req("fpos", 8),
            req("wanted", 8),
            req("got", 8),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_poll_arm",
        program: "rs_poll_arm",
        kind: wire::KIND_POLL_ARM,
        essential: false,
        slots: &[
            req("ctx", 8),
            req("req", 8),
            opt("user_data", 8),
            opt("opcode", 1),
            opt("mask", 4),
            opt("events", 4),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_queue_async_work",
        program: "rs_queue_async_work",
        kind: wire::KIND_QUEUE_ASYNC_WORK,
        essential: false,
        slots: &[
            req("ctx", 8),
            req("req", 8),
            opt("user_data", 8),
            opt("opcode", 1),
            opt("flags", 8),
            opt("work", 8),
            opt("rw", 4),
        ],
    },
    TracepointSpec {
        system: "io_uring",
        name: "io_uring_task_work_run",
        program: "rs_task_work_run",
        kind: wire::KIND_TASK_WORK_RUN,
        essential: false,
        slots: &[req("tctx", 8), opt("count", 4)],
    },
];

/// `task/task_newtask`, attached only with `follow_forks`.
pub const NEWTASK: TracepointSpec = TracepointSpec {
    system: "task",
    name: "task_newtask",
    program: "rs_newtask",
    kind: wire::KIND_NEWTASK,
    essential: false,
    slots: &[req("pid", 4), req("clone_flags", 8)],
};

/// Checks `format` against `spec`: the per-slot offsets and the number of
/// record bytes to copy, or an error naming the tracepoint and field.
pub fn layout(spec: &TracepointSpec, format: &Format) -> Result<([u8; SLOTS], u8), ProbeError> {
    let mut offs = [0u8; SLOTS];
    let mut len = 0usize;
    for (i, slot) in spec.slots.iter().enumerate() {
        let Some(slot) = slot else { continue };
        let Some(f) = format.field(slot.field) else {
            if slot.required {
                return Err(ProbeError::TracepointField {
                    tracepoint: spec.name.to_string(),
                    field: slot.field.to_string(),
                    reason: "missing from the format file".into(),
                });
            }
            continue;
        };
        let field_err = |reason: String| ProbeError::TracepointField {
            tracepoint: spec.name.to_string(),
            field: slot.field.to_string(),
            reason,
        };
        if f.size != slot.size {
            return Err(field_err(format!(
                "is {} bytes ({} {}), the probe reads {}",
                f.size, f.ty, f.name, slot.size
            )));
        }
        // Offset 0 means "absent" to the BPF side, and the common header
        // lives there anyway; misaligned fields would need byte loads.
        if f.offset == 0 || f.offset % f.size != 0 || f.offset + f.size > MAX_RECORD {
            return Err(field_err(format!(
                "at offset {} (size {}): outside the {MAX_RECORD}-byte window or misaligned",
                f.offset, f.size
            )));
        }
        offs[i] = f.offset as u8;
        len = len.max(f.offset + f.size);
    }
    Ok((offs, len as u8))
}

/// The `rs_cfg` global of probes.bpf.c, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfConfig {
    /// `off[kind][slot]`.
    pub off: [[u8; SLOTS]; wire::KINDS],
    /// `len[kind]`.
    pub len: [u8; wire::KINDS],
    /// `RS_CFG_*` flags.
    pub flags: u32,
    /// Wake the consumer when this many bytes wait in the ring buffer.
    pub wakeup_bytes: u32,
}

/// `RS_CFG_RING_FILTER`.
pub const CFG_RING_FILTER: u32 = 1;
/// `RS_CFG_FOLLOW_RINGS`.
pub const CFG_FOLLOW_RINGS: u32 = 2;
/// `RS_CFG_FOLLOW_FORKS`.
pub const CFG_FOLLOW_FORKS: u32 = 4;
/// `RS_CFG_FLOOR`.
pub const CFG_FLOOR: u32 = 8;

/// Size of `struct rs_cfg`.
pub const CFG_SIZE: usize = wire::KINDS * SLOTS + wire::KINDS + 5 + 4 + 4;

impl BpfConfig {
    /// An all-zero config (every field absent).
    pub fn new() -> Self {
        BpfConfig {
            off: [[0; SLOTS]; wire::KINDS],
            len: [0; wire::KINDS],
            flags: 0,
            wakeup_bytes: 0,
        }
    }

    /// The C struct layout: `u8 off[13][10]; u8 len[13]; u8 pad[5]; u32
    /// flags; u32 wakeup_bytes;` (156 bytes, no implicit padding).
    pub fn to_bytes(&self) -> [u8; CFG_SIZE] {
        let mut b = [0u8; CFG_SIZE];
        let mut i = 0;
        for row in &self.off {
            b[i..i + SLOTS].copy_from_slice(row);
            i += SLOTS;
        }
        b[i..i + wire::KINDS].copy_from_slice(&self.len);
        i += wire::KINDS + 5;
        b[i..i + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[i + 4..i + 8].copy_from_slice(&self.wakeup_bytes.to_le_bytes());
        b
    }
}

impl Default for BpfConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Where tracefs is mounted (or was mounted by us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    /// Mount point (`/sys/kernel/tracing`).
    pub root: PathBuf,
    /// We mounted it (it was missing).
    pub mounted_by_us: bool,
}

impl Tracefs {
    /// Path of `events/<system>/<name>/format`.
    pub fn format_path(&self, system: &str, name: &str) -> PathBuf {
        self.root
            .join("events")
            .join(system)
            .join(name)
            .join("format")
    }

    /// Reads and parses one tracepoint's format file.
    pub fn format(&self, system: &str, name: &str) -> Result<Format, ProbeError> {
        let p = self.format_path(system, name);
        let text = std::fs::read_to_string(&p).map_err(|e| ProbeError::Io {
            what: format!("reading {}", p.display()),
            source: e,
        })?;
        Format::parse(&p.display().to_string(), &text)
    }

    /// True when `events/io_uring` exists (the kernel has the tracepoints).
    pub fn has_io_uring(&self) -> bool {
        self.root.join("events/io_uring").is_dir()
    }
}

const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn is_tracefs(p: &Path) -> bool {
    p.join("events").is_dir()
}

/// Finds tracefs, mounting it at /sys/kernel/tracing when it is missing and
/// `mount` is allowed (needs root / CAP_SYS_ADMIN).
pub fn find_tracefs(mount: bool) -> Result<Tracefs, ProbeError> {
    for d in TRACEFS_DIRS {
        let p = Path::new(d);
        if is_tracefs(p) {
            return Ok(Tracefs {
                root: p.to_path_buf(),
                mounted_by_us: false,
            });
        }
    }
    let target = Path::new(TRACEFS_DIRS[0]);
    if !mount {
        return Err(ProbeError::NoTracefs {
            detail: "not mounted".into(),
        });
    }
    let r = mount_tracefs(target);
    match r {
        Ok(()) if is_tracefs(target) => Ok(Tracefs {
            root: target.to_path_buf(),
            mounted_by_us: true,
        }),
        Ok(()) => Err(ProbeError::NoTracefs {
            detail: format!("mounted at {} but it has no events/", target.display()),
        }),
        Err(e) => Err(ProbeError::NoTracefs {
            detail: format!("not mounted, and mounting it failed: {e}"),
        }),
    }
}

fn mount_tracefs(target: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let t = CString::new(target.as_os_str().as_bytes())?;
    let src = c"nodev";
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            t.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_fits_the_slots_the_bpf_side_has() {
        for t in TRACEPOINTS {
            assert!(
                t.slots.len() <= SLOTS,
                "{} has {} slots",
                t.name,
                t.slots.len()
            );
        }
    }

    const SUBMIT: &str = "name: io_uring_submit_req
ID: 2140
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long long user_data;\toffset:24;\tsize:8;\tsigned:0;
\tfield:u8 opcode;\toffset:32;\tsize:1;\tsigned:0;
\tfield:unsigned long long flags;\toffset:40;\tsize:8;\tsigned:0;
\tfield:bool sq_thread;\toffset:48;\tsize:1;\tsigned:0;
\tfield:__data_loc char[] op_str;\toffset:52;\tsize:4;\tsigned:0;

print fmt: \"ring %p, req %p\", REC->ctx, REC->req
";

    fn spec(name: &str) -> &'static TracepointSpec {
        TRACEPOINTS.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn parses_a_real_format() {
        let f = Format::parse("submit", SUBMIT).unwrap();
        assert_eq!(f.name, "io_uring_submit_req");
        assert_eq!(f.fields.len(), 11);
        let ud = f.field("user_data").unwrap();
        assert_eq!((ud.offset, ud.size), (24, 8));
        assert_eq!(ud.ty, "unsigned long long");
        assert_eq!(f.field("op_str").unwrap().ty, "__data_loc char");
        let t = SUBMIT.replace("u8 opcode;", "char comm[16];");
        let f2 = Format::parse("submit", &t).unwrap();
        assert!(f2.field("comm").is_some());
        let (offs, len) = layout(spec("io_uring_submit_req"), &f).unwrap();
        assert_eq!(&offs[..6], &[8, 16, 24, 32, 40, 48]);
        assert_eq!(len, 49);
    }

    #[test]
    fn size_mismatch_names_tracepoint_and_field() {
        let text = SUBMIT.replace(
            "unsigned long long flags;\toffset:40;\tsize:8",
            "unsigned int flags;\toffset:40;\tsize:4",
        );
        let f = Format::parse("submit", &text).unwrap();
        let e = layout(spec("io_uring_submit_req"), &f).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("io_uring_submit_req"), "{msg}");
        assert!(msg.contains("flags"), "{msg}");
    }

    #[test]
    fn missing_required_field_is_refused_optional_is_zero() {
        let text = SUBMIT.replace(
            "\tfield:bool sq_thread;\toffset:48;\tsize:1;\tsigned:0;\n",
            "",
        );
        let f = Format::parse("submit", &text).unwrap();
        let (offs, _) = layout(spec("io_uring_submit_req"), &f).unwrap();
        assert_eq!(offs[5], 0);
        let text = SUBMIT.replace("field:void * req;", "field:void * request;");
        let f = Format::parse("submit", &text).unwrap();
        let msg = layout(spec("io_uring_submit_req"), &f)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("req") && msg.contains("missing"), "{msg}");
    }

    #[test]
    fn out_of_window_offsets_are_refused() {
        let text = SUBMIT.replace("offset:24;", "offset:200;");
        let f = Format::parse("submit", &text).unwrap();
        assert!(layout(spec("io_uring_submit_req"), &f).is_err());
        let text = SUBMIT.replace("offset:24;", "offset:25;");
        let f = Format::parse("submit", &text).unwrap();
        assert!(layout(spec("io_uring_submit_req"), &f).is_err());
    }

    #[test]
    fn malformed_files_give_errors_not_panics() {
        for text in [
            "",
            "name: x\n",
            "field:int a;\toffset:8;\tsize:4;",
            "name: x\nfield:int a;\toffset:zz;\tsize:4;",
            "name: x\nfield:int a;\tsize:4;",
            "name: x\nfield:;\toffset:8;\tsize:4;",
            "name: x\nfield:int a;\toffset:99999999999999999999999;\tsize:4;",
            "name: x\nfield",
            "\u{0}\u{ff}field:",
        ] {
            assert!(Format::parse("t", text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn config_layout_matches_c_struct() {
        let mut c = BpfConfig::new();
        c.off[2][0] = 8;
        c.len[2] = 49;
        c.flags = 3;
        c.wakeup_bytes = 0x01020304;
        let b = c.to_bytes();
        assert_eq!(b.len(), 156);
        assert_eq!(b[2 * SLOTS], 8);
        assert_eq!(b[130 + 2], 49);
        assert_eq!(&b[148..152], &3u32.to_le_bytes());
        assert_eq!(&b[152..156], &[4, 3, 2, 1]);
    }

    /// Every spec matches this machine's kernel (when tracefs is readable).
    #[test]
    fn specs_match_running_kernel() {
        use std::io::Write;
        // Straight to fd 2: libtest captures eprintln! of passing tests.
        let skip = |why: &str| {
            let _ = std::io::stderr().write_all(
                format!("\n######## SKIP specs_match_running_kernel: {why} ########\n\n")
                    .as_bytes(),
            );
        };
        let Ok(t) = find_tracefs(false) else {
            skip("tracefs not mounted or not readable");
            return;
        };
        if !t.has_io_uring() {
            skip("kernel has no io_uring tracepoints");
            return;
        }
        for s in TRACEPOINTS.iter().chain([&NEWTASK]) {
            let f = t.format(s.system, s.name).unwrap();
            layout(s, &f).unwrap();
        }
    }
}
