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
    /// `signed:1` in the file (absent from the line: unsigned).
    pub signed: bool,
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
            let (mut offset, mut size, mut signed) = (None, None, false);
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
                } else if let Some(v) = p.strip_prefix("signed:") {
                    signed = v == "1";
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
                signed,
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

/// What one slot of a kind reads: a format field, found by name, and the
/// width of the wire slot its value lands in.
#[derive(Debug, Clone, Copy)]
pub struct SlotSpec {
    /// Field names in the format file, tried in order: the first one this
    /// kernel has is read (`rw` until 7.x, `hashed` after).
    pub fields: &'static [&'static str],
    /// Bytes of the wire slot (1, 2, 4 or 8). A narrower kernel field is
    /// zero-extended into it (`flags` is a u32 on 6.1 and a u64 later); a
    /// wider one, or a signed one narrower than the slot (it would need sign
    /// extension), is refused.
    pub width: usize,
    /// Without it the tracepoint is not usable. A slot that is not required
    /// must be covered by an [`OptionalField`], so that its absence reaches
    /// the event as `None` instead of a 0 nobody can tell from a real 0.
    pub required: bool,
}

/// An event field that some supported kernels do not have. When the format
/// file has none of `fields`, `bit` is set in the kind's `absent` mask (the
/// wire event carries it) and the decoded event's field is `None`.
#[derive(Debug, Clone, Copy)]
pub struct OptionalField {
    /// The [`ProbeEvent`](crate::ProbeEvent) field it decides.
    pub event_field: &'static str,
    /// Present when the format has any of these.
    pub fields: &'static [&'static str],
    /// Bit in the wire event's `absent` mask (`wire::absent::*`).
    pub bit: u32,
}

const fn req(field: &'static [&'static str], width: usize) -> Option<SlotSpec> {
    Some(SlotSpec {
        fields: field,
        width,
        required: true,
    })
}
const fn opt(field: &'static [&'static str], width: usize) -> Option<SlotSpec> {
    Some(SlotSpec {
        fields: field,
        width,
        required: false,
    })
}

/// One tracepoint the probes attach to.
#[derive(Debug, Clone, Copy)]
pub struct TracepointSpec {
    /// tracefs system (`io_uring`).
    pub system: &'static str,
    /// Tracepoint names, current first: the first one this kernel has is
    /// attached (`io_uring_submit_req` is `io_uring_submit_sqe` on 6.1).
    pub names: &'static [&'static str],
    /// BPF program name in the object.
    pub program: &'static str,
    /// Wire kind (`wire::KIND_*`).
    pub kind: u8,
    /// Without it, attaching fails; others are skipped with a note.
    pub essential: bool,
    /// What each slot reads; the order is the one bpf/probes.bpf.c uses
    /// (at most SLOTS; slots past the list read nothing).
    pub slots: &'static [Option<SlotSpec>],
    /// Event fields that exist only on some kernels.
    pub optional: &'static [OptionalField],
}

impl TracepointSpec {
    /// The current name (what events and messages call it).
    pub fn name(&self) -> &'static str {
        self.names[0]
    }
}

/// Every tracepoint, with its slot layout (must match probes.bpf.c).
///
/// Every field marked required is in every supported kernel's format
/// (6.1 to 7.x: the committed files in probes/tests/formats/ check it).
pub const TRACEPOINTS: &[TracepointSpec] = &[
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_create"],
        program: "rs_create",
        kind: wire::KIND_CREATE,
        essential: true,
        slots: &[
            req(&["fd"], 4),
            req(&["ctx"], 8),
            req(&["sq_entries"], 4),
            req(&["cq_entries"], 4),
            req(&["flags"], 4),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_submit_req", "io_uring_submit_sqe"],
        program: "rs_submit_req",
        kind: wire::KIND_SUBMIT_REQ,
        essential: true,
        slots: &[
            req(&["ctx"], 8),
            req(&["req"], 8),
            req(&["user_data"], 8),
            req(&["opcode"], 1),
            req(&["flags"], 8),
            req(&["sq_thread"], 1),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_complete"],
        program: "rs_complete",
        kind: wire::KIND_COMPLETE,
        essential: true,
        slots: &[
            req(&["ctx"], 8),
            req(&["req"], 8),
            req(&["user_data"], 8),
            req(&["res"], 4),
            req(&["cflags"], 4),
            req(&["extra1"], 8),
            req(&["extra2"], 8),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_link"],
        program: "rs_link",
        kind: wire::KIND_LINK,
        essential: true,
        slots: &[req(&["ctx"], 8), req(&["req"], 8), req(&["target_req"], 8)],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_fail_link"],
        program: "rs_fail_link",
        kind: wire::KIND_FAIL_LINK,
        essential: true,
        slots: &[
            req(&["ctx"], 8),
            req(&["req"], 8),
            req(&["user_data"], 8),
            req(&["opcode"], 1),
            req(&["link"], 8),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_req_failed"],
        program: "rs_req_failed",
        kind: wire::KIND_REQ_FAILED,
        essential: false,
        slots: &[
            req(&["ctx"], 8),
            req(&["req"], 8),
            req(&["user_data"], 8),
            req(&["opcode"], 1),
            req(&["flags"], 1),
            req(&["off"], 8),
            req(&["len"], 4),
            req(&["error"], 4),
            req(&["addr"], 8),
            req(&["buf_index"], 2),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_cqe_overflow"],
        program: "rs_cqe_overflow",
        kind: wire::KIND_CQE_OVERFLOW,
        essential: false,
        slots: &[
            req(&["ctx"], 8),
            None,
            req(&["user_data"], 8),
            req(&["res"], 4),
            req(&["cflags"], 4),
            req(&["ocqe"], 8),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_short_write"],
        program: "rs_short_write",
        kind: wire::KIND_SHORT_WRITE,
        essential: false,
        slots: &[
            req(&["ctx"], 8),
            req(&["fpos"], 8),
            req(&["wanted"], 8),
            req(&["got"], 8),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_poll_arm"],
        program: "rs_poll_arm",
        kind: wire::KIND_POLL_ARM,
        essential: false,
        slots: &[
            req(&["ctx"], 8),
            req(&["req"], 8),
            req(&["user_data"], 8),
            req(&["opcode"], 1),
            req(&["mask"], 4),
            req(&["events"], 4),
        ],
        optional: &[],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_queue_async_work"],
        program: "rs_queue_async_work",
        kind: wire::KIND_QUEUE_ASYNC_WORK,
        essential: false,
        slots: &[
            req(&["ctx"], 8),
            req(&["req"], 8),
            req(&["user_data"], 8),
            req(&["opcode"], 1),
            req(&["flags"], 8),
            req(&["work"], 8),
            // `int rw` until 6.x, `bool hashed` in 7.x: the same meaning
            // (the kernel prints both as "hashed"/"normal" queue).
            opt(&["rw", "hashed"], 4),
        ],
        optional: &[
            OptionalField {
                event_field: "rw",
                fields: &["rw"],
                bit: wire::absent::QUEUE_ASYNC_WORK_RW,
            },
            OptionalField {
                event_field: "hashed",
                fields: &["hashed", "rw"],
                bit: wire::absent::QUEUE_ASYNC_WORK_HASHED,
            },
        ],
    },
    TracepointSpec {
        system: "io_uring",
        names: &["io_uring_task_work_run"],
        program: "rs_task_work_run",
        kind: wire::KIND_TASK_WORK_RUN,
        essential: false,
        slots: &[req(&["tctx"], 8), req(&["count"], 4)],
        optional: &[],
    },
];

/// `task/task_newtask`, attached only with `follow_forks`.
pub const NEWTASK: TracepointSpec = TracepointSpec {
    system: "task",
    names: &["task_newtask"],
    program: "rs_newtask",
    kind: wire::KIND_NEWTASK,
    essential: false,
    slots: &[req(&["pid"], 4), req(&["clone_flags"], 8)],
    optional: &[],
};

/// How one tracepoint's record is read on this kernel: what
/// [`layout`] found in its format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The tracepoint name this kernel has (one of the spec's `names`).
    pub tracepoint: String,
    /// Byte offset of each slot's field in the record; 0: not read.
    pub off: [u8; SLOTS],
    /// Byte size of each slot's field (1, 2, 4 or 8); 0: not read.
    pub size: [u8; SLOTS],
    /// Bytes of the record to copy (the end of the last field read).
    pub len: u8,
    /// `wire::absent` bits: optional event fields this kernel lacks.
    pub absent: u32,
}

/// Checks `format` against `spec`: where each slot's field is, how wide,
/// which optional fields are missing; or an error naming the tracepoint and
/// the field.
pub fn layout(spec: &TracepointSpec, format: &Format) -> Result<Layout, ProbeError> {
    let mut off = [0u8; SLOTS];
    let mut size = [0u8; SLOTS];
    let mut len = 0usize;
    let tp = format.name.clone();
    for (i, slot) in spec.slots.iter().enumerate() {
        let Some(slot) = slot else { continue };
        let Some(f) = slot.fields.iter().find_map(|n| format.field(n)) else {
            if slot.required {
                return Err(ProbeError::TracepointField {
                    tracepoint: tp,
                    field: slot.fields.join(" or "),
                    reason: "is missing from the format file".into(),
                });
            }
            continue;
        };
        let field_err = |reason: String| ProbeError::TracepointField {
            tracepoint: tp.clone(),
            field: f.name.clone(),
            reason,
        };
        if !matches!(f.size, 1 | 2 | 4 | 8) || f.size > slot.width {
            return Err(field_err(format!(
                "is {} bytes ({} {}), the probe stores at most {}",
                f.size, f.ty, f.name, slot.width
            )));
        }
        if f.signed && f.size < slot.width {
            return Err(field_err(format!(
                "is a signed {}-byte field ({} {}) and the probe would zero-extend it to {} bytes",
                f.size, f.ty, f.name, slot.width
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
        off[i] = f.offset as u8;
        size[i] = f.size as u8;
        len = len.max(f.offset + f.size);
    }
    let absent = spec
        .optional
        .iter()
        .filter(|o| !o.fields.iter().any(|n| format.field(n).is_some()))
        .fold(0, |m, o| m | o.bit);
    Ok(Layout {
        tracepoint: tp,
        off,
        size,
        len: len as u8,
        absent,
    })
}

/// A tracepoint the session could not use, and why (not an error: the
/// essential ones fail [`plan`] instead).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Tracepoint name.
    pub tracepoint: String,
    /// Why.
    pub reason: String,
}

/// What to load and attach on this kernel: [`plan`]'s answer.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The BPF config (offsets, sizes, absent masks; flags still 0).
    pub cfg: BpfConfig,
    /// The tracepoints to attach, with the name this kernel gives each.
    pub attach: Vec<(&'static TracepointSpec, String)>,
    /// The non-essential tracepoints left out, and why.
    pub skipped: Vec<Skipped>,
}

/// Reads every tracepoint's format from `tracefs` and decides what the
/// probes attach on this kernel. An essential tracepoint that is missing
/// or whose fields do not fit fails the whole plan with one
/// [`ProbeError::UnsupportedKernel`] naming everything that is lacking
/// (`release` is the kernel's, for the message); a non-essential one is
/// skipped with its reason.
pub fn plan(tracefs: &Tracefs, follow_forks: bool, release: &str) -> Result<Plan, ProbeError> {
    let mut cfg = BpfConfig::new();
    let mut attach = Vec::new();
    let mut skipped = Vec::new();
    // Gathered so that an old kernel hears everything in one sentence,
    // not one item per try.
    let mut lacking = Vec::new();
    let newtask = [&NEWTASK];
    let specs = TRACEPOINTS
        .iter()
        .chain(newtask.into_iter().filter(|_| follow_forks));
    for spec in specs {
        // Forks are followed only when asked, and then they must work.
        let must = spec.essential || spec.kind == wire::KIND_NEWTASK;
        let Some(parsed) = tracefs.resolve(spec) else {
            if must {
                let mut what = format!("no tracepoint {}:{}", spec.system, spec.name());
                if spec.names.len() > 1 {
                    what += &format!(" (nor {})", spec.names[1..].join(", "));
                }
                lacking.push(what);
            } else {
                skipped.push(Skipped {
                    tracepoint: spec.name().into(),
                    reason: "not in this kernel".into(),
                });
            }
            continue;
        };
        match parsed.and_then(|f| layout(spec, &f)) {
            Ok(l) => {
                cfg.set(spec.kind, &l);
                attach.push((spec, l.tracepoint));
            }
            Err(e @ ProbeError::TracepointField { .. }) if must => lacking.push(e.to_string()),
            Err(e) if must => return Err(e),
            Err(e) => skipped.push(Skipped {
                tracepoint: spec.name().into(),
                reason: e.to_string(),
            }),
        }
    }
    if !lacking.is_empty() {
        return Err(ProbeError::UnsupportedKernel {
            release: release.to_string(),
            lacking: lacking.join("; "),
        });
    }
    Ok(Plan {
        cfg,
        attach,
        skipped,
    })
}

/// The `rs_cfg` global of probes.bpf.c, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfConfig {
    /// `off[kind][slot]`.
    pub off: [[u8; SLOTS]; wire::KINDS],
    /// `size[kind][slot]`.
    pub size: [[u8; SLOTS]; wire::KINDS],
    /// `len[kind]`.
    pub len: [u8; wire::KINDS],
    /// `absent[kind]`: copied into every event of the kind.
    pub absent: [u32; wire::KINDS],
    /// `RS_CFG_*` flags.
    pub flags: u32,
    /// Wake the consumer when this many bytes wait in the ring buffer.
    pub wakeup_bytes: u32,
    /// Kinds emitted ([`crate::kinds::KindSet::mask`]): bit k for kind k,
    /// bit [`crate::kinds::TASK_WORK_IDLE`] for count-0 task_work_run.
    pub kinds: u32,
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
pub const CFG_SIZE: usize = 2 * wire::KINDS * SLOTS + wire::KINDS + 3 + 4 * wire::KINDS + 4 + 4 + 4;

impl BpfConfig {
    /// An all-zero config (every field absent).
    pub fn new() -> Self {
        BpfConfig {
            off: [[0; SLOTS]; wire::KINDS],
            size: [[0; SLOTS]; wire::KINDS],
            len: [0; wire::KINDS],
            absent: [0; wire::KINDS],
            flags: 0,
            wakeup_bytes: 0,
            kinds: 0,
        }
    }

    /// Puts one tracepoint's layout in the row of `kind`.
    pub fn set(&mut self, kind: u8, l: &Layout) {
        let k = kind as usize;
        self.off[k] = l.off;
        self.size[k] = l.size;
        self.len[k] = l.len;
        self.absent[k] = l.absent;
    }

    /// The C struct layout: `u8 off[13][10]; u8 size[13][10]; u8 len[13];
    /// u8 pad[3]; u32 absent[13]; u32 flags; u32 wakeup_bytes; u32
    /// kinds;` (340 bytes, no implicit padding).
    pub fn to_bytes(&self) -> [u8; CFG_SIZE] {
        let mut b = [0u8; CFG_SIZE];
        let mut i = 0;
        for row in self.off.iter().chain(self.size.iter()) {
            b[i..i + SLOTS].copy_from_slice(row);
            i += SLOTS;
        }
        b[i..i + wire::KINDS].copy_from_slice(&self.len);
        i += wire::KINDS + 3;
        for a in &self.absent {
            b[i..i + 4].copy_from_slice(&a.to_le_bytes());
            i += 4;
        }
        b[i..i + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[i + 4..i + 8].copy_from_slice(&self.wakeup_bytes.to_le_bytes());
        b[i + 8..i + 12].copy_from_slice(&self.kinds.to_le_bytes());
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
            error: e,
        })?;
        Format::parse(&p.display().to_string(), &text)
    }

    /// The first of `spec.names` this kernel has, with its parsed format;
    /// `None` when it has none of them.
    pub fn resolve(&self, spec: &TracepointSpec) -> Option<Result<Format, ProbeError>> {
        spec.names
            .iter()
            .find(|n| self.format_path(spec.system, n).exists())
            .map(|n| self.format(spec.system, n))
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
        for t in TRACEPOINTS.iter().chain([&NEWTASK]) {
            assert!(
                t.slots.len() <= SLOTS,
                "{} has {} slots",
                t.name(),
                t.slots.len()
            );
            assert!(!t.names.is_empty());
        }
    }

    /// A slot that may be missing must have a bit that says so, or the
    /// event would show 0 for a field the kernel does not have.
    #[test]
    fn every_optional_slot_has_an_absent_bit() {
        for t in TRACEPOINTS.iter().chain([&NEWTASK]) {
            for s in t.slots.iter().flatten().filter(|s| !s.required) {
                assert!(
                    t.optional
                        .iter()
                        .any(|o| s.fields.iter().all(|f| o.fields.contains(f))),
                    "{}: slot {:?} has no OptionalField",
                    t.name(),
                    s.fields
                );
            }
            let bits: Vec<u32> = t.optional.iter().map(|o| o.bit).collect();
            for (i, b) in bits.iter().enumerate() {
                assert_eq!(b.count_ones(), 1, "{}", t.name());
                assert!(!bits[..i].contains(b), "{}: bit {b} twice", t.name());
            }
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
        TRACEPOINTS
            .iter()
            .find(|t| t.names.contains(&name))
            .unwrap()
    }

    #[test]
    fn parses_a_real_format() {
        let f = Format::parse("submit", SUBMIT).unwrap();
        assert_eq!(f.name, "io_uring_submit_req");
        assert_eq!(f.fields.len(), 11);
        let ud = f.field("user_data").unwrap();
        assert_eq!((ud.offset, ud.size, ud.signed), (24, 8, false));
        assert_eq!(ud.ty, "unsigned long long");
        assert!(f.field("common_pid").unwrap().signed);
        assert_eq!(f.field("op_str").unwrap().ty, "__data_loc char");
        let t = SUBMIT.replace("u8 opcode;", "char comm[16];");
        let f2 = Format::parse("submit", &t).unwrap();
        assert!(f2.field("comm").is_some());
        let l = layout(spec("io_uring_submit_req"), &f).unwrap();
        assert_eq!(l.tracepoint, "io_uring_submit_req");
        assert_eq!(&l.off[..6], &[8, 16, 24, 32, 40, 48]);
        assert_eq!(&l.size[..6], &[8, 8, 8, 1, 8, 1]);
        assert_eq!(l.len, 49);
        assert_eq!(l.absent, 0);
    }

    #[test]
    fn narrower_fields_are_read_at_their_width_wider_ones_refused() {
        // 6.1: flags is a u32.
        let text = SUBMIT.replace(
            "unsigned long long flags;\toffset:40;\tsize:8",
            "u32 flags;\toffset:36;\tsize:4",
        );
        let l = layout(
            spec("io_uring_submit_req"),
            &Format::parse("s", &text).unwrap(),
        )
        .unwrap();
        assert_eq!((l.off[4], l.size[4]), (36, 4));
        // A 16-byte opcode does not fit the 1-byte slot.
        let text = SUBMIT.replace(
            "u8 opcode;\toffset:32;\tsize:1",
            "u16 opcode;\toffset:32;\tsize:2",
        );
        let e = layout(
            spec("io_uring_submit_req"),
            &Format::parse("s", &text).unwrap(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("io_uring_submit_req") && msg.contains("opcode"),
            "{msg}"
        );
        assert!(msg.contains("at most 1"), "{msg}");
    }

    #[test]
    fn signed_fields_narrower_than_their_slot_are_refused() {
        let text = SUBMIT.replace(
            "unsigned long long flags;\toffset:40;\tsize:8;\tsigned:0",
            "int flags;\toffset:40;\tsize:4;\tsigned:1",
        );
        let msg = layout(
            spec("io_uring_submit_req"),
            &Format::parse("s", &text).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("signed") && msg.contains("flags"), "{msg}");
    }

    #[test]
    fn missing_required_field_is_refused() {
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
        c.size[2][0] = 4;
        c.len[2] = 49;
        c.absent[10] = 3;
        c.flags = 3;
        c.wakeup_bytes = 0x01020304;
        c.kinds = 0x0a0b0c0d;
        let b = c.to_bytes();
        assert_eq!(b.len(), 340);
        assert_eq!(b[2 * SLOTS], 8);
        assert_eq!(b[130 + 2 * SLOTS], 4);
        assert_eq!(b[260 + 2], 49);
        assert_eq!(&b[276 + 40..276 + 44], &3u32.to_le_bytes());
        assert_eq!(&b[328..332], &3u32.to_le_bytes());
        assert_eq!(&b[332..336], &[4, 3, 2, 1]);
        assert_eq!(&b[336..340], &[0x0d, 0x0c, 0x0b, 0x0a]);
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
        let p = plan(&t, true, "running").unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.attach.len(), TRACEPOINTS.len() + 1);
    }
}
