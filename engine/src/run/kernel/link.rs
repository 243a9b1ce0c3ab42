//! Linking the user's programs into ringside's loop and loading it (libbpf).
//!
//! The loop object (`engine/kernel/bpf/loop.bpf.o`) is opened with libbpf,
//! its program in a section of ringside's own (`ringside_loop`, a custom
//! libbpf handler of type struct_ops), so that libbpf calls back just before
//! the program goes to the kernel: by then libbpf has placed every
//! subprogram, resolved the kfuncs and maps, and computed func_info and
//! line_info. The callback then appends, at the end of the instructions,
//!
//! - a dispatcher: `if r2 == slot call program_slot; exit` for each program,
//!   then a call of `rs_dispatch_stub` (its "no such program" answer);
//! - each user program, unchanged but for two rewrites: its map `lddw`s name
//!   kernel maps (`BPF_PSEUDO_MAP_FD`, rodata as `BPF_PSEUDO_MAP_VALUE`), and
//!   each helper call 0x1000-0x1005, 5 (`bpf_ktime_get_ns`) and 6
//!   (`bpf_trace_printk`) becomes a BPF-to-BPF call of the loop's `rs_k_*`
//!   function that implements it (map helpers stay kernel helpers);
//!
//! retargets the loop's calls of the stub to the dispatcher, and adds
//! func_info and line_info records for the new functions. They reuse the
//! stub's BTF type: a *static* function, so the kernel verifies each program
//! in its caller's context (its `ctx` is the loop's struct rs_ctx) and its
//! helper calls with the program's own argument registers. The instructions
//! of program N start at [`Loaded::starts`]`[N]`: verifier messages are
//! renumbered with them.

use super::{KernelError, MapCall, ObjectProblem};
use libbpf_sys as sys;
use std::ffi::{CStr, CString, c_char, c_int, c_long, c_void};
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::sync::Mutex;

/// The committed loop object.
pub const LOOP_OBJECT: &[u8] = include_bytes!("../../../kernel/bpf/loop.bpf.o");

const SECTION: &str = "ringside_loop";

/// libbpf's section handlers are process-wide: one load at a time.
static LOAD_LOCK: Mutex<()> = Mutex::new(());

/// What libbpf said during the load in progress (its warnings and errors;
/// the verifier's log goes to the program's own log buffer).
static LIBBPF_SAID: Mutex<String> = Mutex::new(String::new());

unsafe extern "C" {
    fn vsnprintf(
        buf: *mut c_char,
        n: usize,
        fmt: *const c_char,
        ap: *mut sys::__va_list_tag,
    ) -> c_int;
}

unsafe extern "C" fn libbpf_print(
    level: sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut sys::__va_list_tag,
) -> c_int {
    if level == sys::LIBBPF_DEBUG {
        return 0;
    }
    let mut buf = [0u8; 1024];
    // SAFETY: libbpf's format and arguments; vsnprintf bounds the write.
    let n = unsafe { vsnprintf(buf.as_mut_ptr() as *mut c_char, buf.len(), fmt, ap) };
    if n > 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let mut said = LIBBPF_SAID.lock().unwrap_or_else(|e| e.into_inner());
        if said.len() < 64 << 10 {
            said.push_str(&String::from_utf8_lossy(&buf[..end]));
        }
    }
    0
}

/// libbpf's last lines (for an error that has no verifier log).
fn libbpf_said() -> String {
    let said = LIBBPF_SAID.lock().unwrap_or_else(|e| e.into_inner());
    let lines: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(6)..].join("; ")
}

/// What an `lddw` of a user program names.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// A kernel map.
    Map(RawFd),
    /// Byte `offset` of a (frozen, one-entry array) rodata map.
    Rodata(RawFd, u32),
}

/// One user program to link.
#[derive(Clone, Debug)]
pub struct UserProg {
    /// Its name, for messages.
    pub name: String,
    /// Its instructions as verified by ringside (relocated `lddw`s hold 0).
    pub code: Vec<u8>,
    /// (instruction, target) of each `lddw` to patch.
    pub relocs: Vec<(usize, Target)>,
}

/// The constants the loop is built with (its `cfg_*` rodata).
#[derive(Clone, Debug, Default)]
pub struct LoopConfig {
    pub sq_mask: u32,
    pub cq_mask: u32,
    pub sq_tail_off: u32,
    pub cq_head_off: u32,
    pub cq_tail_off: u32,
    pub cqes_off: u32,
    pub rings_size: u64,
    pub sqes_size: u64,
    pub mem_uaddr: u64,
    pub nfiles: u32,
    pub buf_addr: Vec<u64>,
    pub buf_size: Vec<u64>,
}

/// A loaded and attached loop.
pub struct Loaded {
    obj: *mut sys::bpf_object,
    link: *mut sys::bpf_link,
    /// fd of the `events` ring buffer.
    pub events_fd: RawFd,
    /// First instruction of each user program in the loaded program.
    pub starts: Vec<usize>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: both came from libbpf and are destroyed once, link first
        // (it detaches the ops from the ring).
        unsafe {
            if !self.link.is_null() {
                sys::bpf_link__destroy(self.link);
            }
            sys::bpf_object__close(self.obj);
        }
    }
}

// SAFETY: the object and link are only touched through &mut self (or
// dropped), from whichever thread owns the engine.
unsafe impl Send for Loaded {}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// State the prepare callback works with.
struct Prep<'a> {
    progs: &'a [UserProg],
    btf: *const sys::btf,
    insns: Vec<[u8; 8]>,
    func_info: Vec<u8>,
    line_info: Vec<u8>,
    starts: Vec<usize>,
    error: Option<LinkError>,
}

/// Why the user's programs could not be linked into the loop (in libbpf's
/// prepare callback).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// libbpf handed over no instructions.
    #[error("libbpf gave no instructions")]
    NoInsns,
    /// The loop object has no func_info to extend.
    #[error("the loop object has no func_info (built without -g?)")]
    NoFuncInfo,
    /// A func_info record names a type the BTF lacks.
    #[error("func_info type {0} is not in the BTF")]
    FuncInfoType(u32),
    /// A function of the loop's that linking calls is not in it.
    #[error("the loop has no {0}")]
    NoFunction(&'static str),
    /// A program's relocation is not at an `lddw`.
    #[error("program {program}: relocation at instruction {insn} is not an lddw")]
    NotLddw {
        /// The program.
        program: String,
        /// The instruction.
        insn: usize,
    },
    /// The stub has no line_info to copy for the new functions.
    #[error("the stub has no line_info")]
    NoStubLineInfo,
    /// libbpf did not take the linked instructions.
    #[error("bpf_program__set_insns: {0}")]
    SetInsns(i32),
}

/// Why the kernel's BTF could not be read (so whether it has the loop's
/// ops is unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")]
pub struct NoKernelBtf;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (dst & 0xf) | (src << 4);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

fn imm(b: &[u8; 8]) -> i32 {
    i32::from_le_bytes(b[4..8].try_into().expect("4 bytes"))
}

fn set_imm(b: &mut [u8; 8], v: i32) {
    b[4..8].copy_from_slice(&v.to_le_bytes());
}

fn src(b: &[u8; 8]) -> u8 {
    b[1] >> 4
}

fn set_src(b: &mut [u8; 8], s: u8) {
    b[1] = (b[1] & 0x0f) | (s << 4);
}

const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const JNE_K: u8 = 0x55;
const LDDW: u8 = 0x18;
const PSEUDO_MAP_FD: u8 = 1;
const PSEUDO_MAP_VALUE: u8 = 2;
const PSEUDO_CALL: u8 = 1;

/// The loop function implementing a helper, by helper id.
fn implementation(helper: i32) -> Option<&'static str> {
    Some(match helper {
        5 => "rs_k_ktime",
        6 => "rs_k_printk",
        0x1000 => "rs_k_submit",
        0x1001 => "rs_k_drop",
        0x1002 => "rs_k_unlink",
        0x1003 => "rs_k_emit",
        0x1004 => "rs_k_read_buf",
        0x1005 => "rs_k_set_res",
        _ => return None,
    })
}

impl Prep<'_> {
    fn link(
        &mut self,
        prog: *mut sys::bpf_program,
        opts: &mut sys::bpf_prog_load_opts,
    ) -> Result<(), LinkError> {
        // SAFETY: libbpf's own program, its instructions valid until load.
        let (ptr, cnt) = unsafe {
            (
                sys::bpf_program__insns(prog),
                sys::bpf_program__insn_cnt(prog),
            )
        };
        if ptr.is_null() {
            return Err(LinkError::NoInsns);
        }
        // SAFETY: cnt instructions of 8 bytes at ptr.
        let old = unsafe { std::slice::from_raw_parts(ptr as *const [u8; 8], cnt as usize) };
        let rec = opts.func_info_rec_size as usize;
        if opts.func_info.is_null() || rec < 8 {
            return Err(LinkError::NoFuncInfo);
        }
        // SAFETY: func_info_cnt records of rec bytes, as libbpf built them.
        let fi = unsafe {
            std::slice::from_raw_parts(
                opts.func_info as *const u8,
                rec * opts.func_info_cnt as usize,
            )
        };
        let mut funcs: Vec<(String, u32, u32)> = Vec::new();
        for r in fi.chunks(rec) {
            let off = u32::from_le_bytes(r[0..4].try_into().expect("4"));
            let tid = u32::from_le_bytes(r[4..8].try_into().expect("4"));
            // SAFETY: a type id libbpf put in func_info, of the object's BTF.
            let name = unsafe {
                let t = sys::btf__type_by_id(self.btf, tid);
                if t.is_null() {
                    return Err(LinkError::FuncInfoType(tid));
                }
                let n = sys::btf__name_by_offset(self.btf, (*t).name_off);
                if n.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(n).to_string_lossy().into_owned()
                }
            };
            funcs.push((name, off, tid));
        }
        let find = |name: &str| {
            funcs
                .iter()
                .find(|f| f.0 == name)
                .map(|f| (f.1 as usize, f.2))
        };
        let (stub, stub_tid) =
            find("rs_dispatch_stub").ok_or(LinkError::NoFunction("rs_dispatch_stub"))?;

        let mut insns: Vec<[u8; 8]> = old.to_vec();
        // Calls of the stub go to the dispatcher.
        let disp = insns.len();
        for (i, b) in insns.iter_mut().enumerate() {
            if b[0] == CALL
                && src(b) == PSEUDO_CALL
                && (i as i64 + 1 + imm(b) as i64) as usize == stub
            {
                set_imm(b, (disp as i64 - (i as i64 + 1)) as i32);
            }
        }
        // The dispatcher: 3 instructions per program, then the stub's answer.
        let n = self.progs.len();
        let first_user = disp + 3 * n + 2;
        let mut starts = Vec::with_capacity(n);
        let mut at = first_user;
        for p in self.progs {
            starts.push(at);
            at += p.code.len() / 8;
        }
        for (slot, &start) in starts.iter().enumerate() {
            let pc = insns.len();
            insns.push(insn(JNE_K, 2, 0, 2, slot as i32));
            insns.push(insn(
                CALL,
                0,
                PSEUDO_CALL,
                0,
                (start as i64 - (pc as i64 + 2)) as i32,
            ));
            insns.push(insn(EXIT, 0, 0, 0, 0));
        }
        let pc = insns.len();
        insns.push(insn(
            CALL,
            0,
            PSEUDO_CALL,
            0,
            (stub as i64 - (pc as i64 + 1)) as i32,
        ));
        insns.push(insn(EXIT, 0, 0, 0, 0));
        debug_assert_eq!(insns.len(), first_user);

        // The programs.
        for (p, &start) in self.progs.iter().zip(&starts) {
            let code: Vec<[u8; 8]> = p
                .code
                .chunks_exact(8)
                .map(|c| c.try_into().expect("8"))
                .collect();
            let mut code = code;
            for &(i, t) in &p.relocs {
                if i + 1 >= code.len() || code[i][0] != LDDW {
                    return Err(LinkError::NotLddw {
                        program: p.name.clone(),
                        insn: i,
                    });
                }
                match t {
                    Target::Map(fd) => {
                        set_src(&mut code[i], PSEUDO_MAP_FD);
                        set_imm(&mut code[i], fd);
                        set_imm(&mut code[i + 1], 0);
                    }
                    Target::Rodata(fd, off) => {
                        set_src(&mut code[i], PSEUDO_MAP_VALUE);
                        set_imm(&mut code[i], fd);
                        set_imm(&mut code[i + 1], off as i32);
                    }
                }
            }
            for (i, b) in code.iter_mut().enumerate() {
                if b[0] != CALL || src(b) != 0 {
                    continue;
                }
                let Some(f) = implementation(imm(b)) else {
                    continue;
                };
                let (target, _) = find(f).ok_or(LinkError::NoFunction(f))?;
                set_src(b, PSEUDO_CALL);
                set_imm(b, (target as i64 - (start + i + 1) as i64) as i32);
            }
            insns.extend(code);
        }

        // func_info: the dispatcher and each program, typed as the stub.
        let mut func_info = fi.to_vec();
        for off in std::iter::once(disp).chain(starts.iter().copied()) {
            let mut r = vec![0u8; rec];
            r[0..4].copy_from_slice(&(off as u32).to_le_bytes());
            r[4..8].copy_from_slice(&stub_tid.to_le_bytes());
            func_info.extend(r);
        }
        // line_info: each function needs one at its start; the stub's first.
        let lrec = opts.line_info_rec_size as usize;
        let mut line_info = Vec::new();
        if !opts.line_info.is_null() && lrec >= 16 {
            // SAFETY: line_info_cnt records of lrec bytes, as libbpf built them.
            let li = unsafe {
                std::slice::from_raw_parts(
                    opts.line_info as *const u8,
                    lrec * opts.line_info_cnt as usize,
                )
            };
            line_info = li.to_vec();
            let model = li
                .chunks(lrec)
                .find(|r| u32::from_le_bytes(r[0..4].try_into().expect("4")) as usize == stub)
                .ok_or(LinkError::NoStubLineInfo)?
                .to_vec();
            for off in std::iter::once(disp).chain(starts.iter().copied()) {
                let mut r = model.clone();
                r[0..4].copy_from_slice(&(off as u32).to_le_bytes());
                line_info.extend(r);
            }
        }
        self.insns = insns;
        self.func_info = func_info;
        self.line_info = line_info;
        self.starts = starts;
        // SAFETY: libbpf copies the instructions.
        let r = unsafe {
            sys::bpf_program__set_insns(
                prog,
                self.insns.as_mut_ptr() as *mut sys::bpf_insn,
                self.insns.len() as _,
            )
        };
        if r != 0 {
            return Err(LinkError::SetInsns(r));
        }
        opts.func_info = self.func_info.as_ptr() as *const c_void;
        opts.func_info_cnt = (self.func_info.len() / rec) as u32;
        if !self.line_info.is_empty() {
            opts.line_info = self.line_info.as_ptr() as *const c_void;
            opts.line_info_cnt = (self.line_info.len() / lrec) as u32;
        }
        // Sleepable: bpf_io_uring_submit_sqes is.
        opts.prog_flags |= sys::BPF_F_SLEEPABLE;
        Ok(())
    }
}

unsafe extern "C" fn prepare(
    prog: *mut sys::bpf_program,
    opts: *mut sys::bpf_prog_load_opts,
    cookie: c_long,
) -> c_int {
    // SAFETY: the cookie is the Prep that `load` keeps alive across
    // bpf_object__load, and libbpf passes a valid opts.
    let (prep, opts) = unsafe { (&mut *(cookie as *mut Prep<'_>), &mut *opts) };
    match prep.link(prog, opts) {
        Ok(()) => 0,
        Err(e) => {
            prep.error = Some(e);
            -libc::EINVAL
        }
    }
}

/// Write `value`'s bytes to the rodata variable `name`.
fn set_var(
    btf: *const sys::btf,
    data: &mut [u8],
    name: &str,
    value: &[u8],
) -> Result<(), KernelError> {
    let sec = CString::new(".rodata").expect("no nul");
    // SAFETY: btf is the object's; the DATASEC's var_secinfos follow its
    // btf_type header (vlen of them, 12 bytes each), as BTF lays them out.
    unsafe {
        let id = sys::btf__find_by_name_kind(btf, sec.as_ptr(), sys::BTF_KIND_DATASEC);
        if id < 0 {
            return Err(KernelError::Object(ObjectProblem::NoRodata));
        }
        let t = sys::btf__type_by_id(btf, id as u32);
        let vlen = ((*t).info & 0xffff) as usize;
        let infos = (t as *const u8).add(12) as *const [u32; 3];
        for i in 0..vlen {
            let [ty, off, size] = *infos.add(i);
            let vt = sys::btf__type_by_id(btf, ty);
            let n = CStr::from_ptr(sys::btf__name_by_offset(btf, (*vt).name_off));
            if n.to_bytes() == name.as_bytes() {
                let (off, size) = (off as usize, size as usize);
                if value.len() > size || off + value.len() > data.len() {
                    return Err(KernelError::Object(ObjectProblem::VarSize {
                        name: name.to_string(),
                        len: value.len(),
                        size,
                    }));
                }
                data[off..off + value.len()].copy_from_slice(value);
                return Ok(());
            }
        }
    }
    Err(KernelError::Object(ObjectProblem::NoVar(name.to_string())))
}

fn u64s(v: &[u64], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n * 8];
    for (i, x) in v.iter().take(n).enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// A verifier log in ringside's numbering ([`renumber`]).
pub struct Renumbered {
    /// The whole log.
    pub text: String,
    /// Where it stopped in a user program: the last instruction it
    /// walked, when that was one of a user program's.
    pub at: Option<(String, usize)>,
    /// The line of the last instruction it walked (the loop's own too).
    walked: Option<usize>,
}

/// Verifier messages with ringside's numbering: an instruction of user
/// program N at absolute index i is named `<name> insn i - start`, both in
/// the lines the verifier walks (`i: (op) ...`) and in the lines newer
/// kernels quote it in when they explain an error (`  i | (op) ...`, the
/// failing one marked `  >>> i | (op) ...`). Where it stopped is the
/// last instruction walked: the quoted ones are context around it.
pub fn renumber(log: &str, progs: &[UserProg], starts: &[usize]) -> Renumbered {
    let mut r = Renumbered {
        text: String::new(),
        at: None,
        walked: None,
    };
    for (n, line) in log.lines().enumerate() {
        let body = line.trim_start();
        let (marker, body) = match body.strip_prefix(">>> ") {
            Some(b) => (">>> ", b),
            None => ("", body),
        };
        let indent = &line[..line.len() - body.len() - marker.len()];
        let d = body.bytes().take_while(u8::is_ascii_digit).count();
        let (num, rest) = body.split_at(d);
        let walked = d > 0 && indent.is_empty() && marker.is_empty() && rest.starts_with(':');
        if walked {
            r.walked = Some(n);
        }
        let at = (walked || (d > 0 && rest.starts_with(" |")))
            .then(|| num.parse::<usize>().ok())
            .flatten()
            .and_then(|i| {
                progs
                    .iter()
                    .zip(starts)
                    .find(|&(p, &s)| i >= s && i < s + p.code.len() / 8)
                    .map(|(p, &s)| (p.name.clone(), i - s))
            });
        match at {
            Some((name, i)) => {
                let _ = writeln!(r.text, "{indent}{marker}[{name} insn {i}]{rest}");
                if walked {
                    r.at = Some((name, i));
                }
            }
            None => {
                r.text.push_str(line);
                r.text.push('\n');
            }
        }
    }
    r
}

impl Renumbered {
    /// The verifier's conclusion: from the last instruction it walked
    /// (with the line that says what is wrong, and a newer kernel's
    /// explanation after it) on, at most 60 lines; the last 12 when it
    /// walked none.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        let from = self.walked.unwrap_or(lines.len().saturating_sub(12));
        lines[from..lines.len().min(from + 60)].join("\n")
    }

    /// What the verifier said is wrong: the first line after the last
    /// instruction it walked (from the log's start when it walked none,
    /// as for a back-edge), unless that is already its statistics.
    pub fn reason(&self) -> Option<String> {
        let from = self.walked.map_or(0, |i| i + 1);
        let line = self
            .text
            .lines()
            .skip(from)
            .map(str::trim)
            .find(|l| !l.is_empty())?;
        let stats = ["processed ", "verification time", "stack depth"];
        (!stats.iter().any(|p| line.starts_with(p))).then(|| line.to_string())
    }
}

/// Open, link, load and attach the loop to `ring_fd`.
pub fn load(progs: &[UserProg], cfg: &LoopConfig, ring_fd: RawFd) -> Result<Loaded, KernelError> {
    let _g = LOAD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: libbpf calls below get valid pointers that outlive each call;
    // the Prep lives across bpf_object__load, which calls `prepare` with it.
    unsafe {
        LIBBPF_SAID
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        sys::libbpf_set_print(Some(libbpf_print));
        struct Quiet;
        impl Drop for Quiet {
            fn drop(&mut self) {
                // SAFETY: resets libbpf's print function; no load runs now.
                unsafe { sys::libbpf_set_print(None) };
            }
        }
        let _quiet = Quiet;
        let sec = CString::new(SECTION).expect("no nul");
        let mut prep = Box::new(Prep {
            progs,
            btf: std::ptr::null(),
            insns: Vec::new(),
            func_info: Vec::new(),
            line_info: Vec::new(),
            starts: Vec::new(),
            error: None,
        });
        let hopts = sys::libbpf_prog_handler_opts {
            sz: std::mem::size_of::<sys::libbpf_prog_handler_opts>() as _,
            cookie: &mut *prep as *mut Prep<'_> as c_long,
            prog_setup_fn: None,
            prog_prepare_load_fn: Some(prepare),
            prog_attach_fn: None,
        };
        let handler = sys::libbpf_register_prog_handler(
            sec.as_ptr(),
            sys::BPF_PROG_TYPE_STRUCT_OPS,
            0,
            &hopts,
        );
        if handler < 0 {
            return Err(KernelError::Object(ObjectProblem::RegisterHandler(handler)));
        }
        struct Unreg(c_int);
        impl Drop for Unreg {
            fn drop(&mut self) {
                // SAFETY: the id libbpf_register_prog_handler returned.
                unsafe { sys::libbpf_unregister_prog_handler(self.0) };
            }
        }
        let _unreg = Unreg(handler);
        let name = CString::new("ringside_loop").expect("no nul");
        let mut oopts: sys::bpf_object_open_opts = std::mem::zeroed();
        oopts.sz = std::mem::size_of::<sys::bpf_object_open_opts>() as _;
        oopts.object_name = name.as_ptr();
        // A developer's rebuilt loop, without rebuilding ringside.
        let object = match std::env::var_os("RINGSIDE_KERNEL_LOOP_OBJECT") {
            Some(path) => std::fs::read(&path).map_err(|e| {
                KernelError::Object(ObjectProblem::ObjectFile {
                    path: path.to_string_lossy().into_owned(),
                    message: e.to_string(),
                })
            })?,
            None => LOOP_OBJECT.to_vec(),
        };
        let obj =
            sys::bpf_object__open_mem(object.as_ptr() as *const c_void, object.len() as _, &oopts);
        if obj.is_null() {
            return Err(KernelError::Object(ObjectProblem::Open(errno())));
        }
        let mut loaded = Loaded {
            obj,
            link: std::ptr::null_mut(),
            events_fd: -1,
            starts: Vec::new(),
        };
        let btf = sys::bpf_object__btf(obj);
        prep.btf = btf;

        // The constants.
        let mut map = sys::bpf_object__next_map(obj, std::ptr::null());
        let mut rodata = None;
        let mut ops = None;
        while !map.is_null() {
            let n = CStr::from_ptr(sys::bpf_map__name(map))
                .to_string_lossy()
                .into_owned();
            if n.ends_with(".rodata") {
                rodata = Some(map);
            } else if n == "ringside_ops" {
                ops = Some(map);
            }
            map = sys::bpf_object__next_map(obj, map);
        }
        let (Some(rodata), Some(ops)) = (rodata, ops) else {
            return Err(KernelError::Object(ObjectProblem::NoOpsOrRodata));
        };
        let mut size: usize = 0;
        let data =
            sys::bpf_map__initial_value(rodata, &mut size as *mut usize as *mut _) as *mut u8;
        if data.is_null() {
            return Err(KernelError::Object(ObjectProblem::NoInitialValue(
                ".rodata",
            )));
        }
        let data = std::slice::from_raw_parts_mut(data, size);
        let n32 = |v: u32| v.to_le_bytes().to_vec();
        let n64 = |v: u64| v.to_le_bytes().to_vec();
        for (k, v) in [
            ("cfg_sq_mask", n32(cfg.sq_mask)),
            ("cfg_cq_mask", n32(cfg.cq_mask)),
            ("cfg_sq_tail_off", n32(cfg.sq_tail_off)),
            ("cfg_cq_head_off", n32(cfg.cq_head_off)),
            ("cfg_cq_tail_off", n32(cfg.cq_tail_off)),
            ("cfg_cqes_off", n32(cfg.cqes_off)),
            ("cfg_rings_size", n64(cfg.rings_size)),
            ("cfg_sqes_size", n64(cfg.sqes_size)),
            ("cfg_mem_uaddr", n64(cfg.mem_uaddr)),
            ("cfg_nfiles", n32(cfg.nfiles)),
            ("cfg_nbufs", n32(cfg.buf_addr.len() as u32)),
            ("cfg_buf_addr", u64s(&cfg.buf_addr, super::abi::MAX_BUFS)),
            ("cfg_buf_size", u64s(&cfg.buf_size, super::abi::MAX_BUFS)),
        ] {
            set_var(btf, data, k, &v)?;
        }
        // The ring the ops bind to: struct { prog *loop_step; u32 ring_fd; void *priv; }.
        let mut osize: usize = 0;
        let ov = sys::bpf_map__initial_value(ops, &mut osize as *mut usize as *mut _) as *mut u8;
        if ov.is_null() || osize < 12 {
            return Err(KernelError::Object(ObjectProblem::NoInitialValue(
                "ringside_ops",
            )));
        }
        std::ptr::copy_nonoverlapping((ring_fd as u32).to_le_bytes().as_ptr(), ov.add(8), 4);

        // The verifier's log, if it refuses.
        let mut log = vec![0u8; 8 << 20];
        let prog = sys::bpf_object__next_program(obj, std::ptr::null_mut());
        if prog.is_null() {
            return Err(KernelError::Object(ObjectProblem::NoProgram));
        }
        sys::bpf_program__set_log_buf(prog, log.as_mut_ptr() as *mut c_char, log.len() as _);
        let r = sys::bpf_object__load(obj);
        if r != 0 {
            if let Some(e) = prep.error.take() {
                return Err(KernelError::Link(e));
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).into_owned();
            if text.trim().is_empty() {
                return Err(KernelError::Object(ObjectProblem::Load {
                    errno: -r,
                    libbpf: libbpf_said(),
                }));
            }
            let r = renumber(&text, progs, &prep.starts);
            // The whole log, renumbered, where the user asked for it.
            if let Some(path) = std::env::var_os("RINGSIDE_KERNEL_VERIFIER_LOG") {
                let _ = std::fs::write(path, &r.text);
            }
            // The verifier's conclusion is at the end; keep the tail.
            let (reason, message) = (r.reason(), r.tail());
            return Err(KernelError::Verifier {
                program: r.at.as_ref().map(|a| a.0.clone()),
                insn: r.at.map(|a| a.1),
                reason,
                message,
            });
        }
        loaded.starts = std::mem::take(&mut prep.starts);
        let ev = CString::new("events").expect("no nul");
        let evm = sys::bpf_object__find_map_by_name(obj, ev.as_ptr());
        if evm.is_null() {
            return Err(KernelError::Object(ObjectProblem::NoEventsMap));
        }
        loaded.events_fd = sys::bpf_map__fd(evm);
        let link = sys::bpf_map__attach_struct_ops(ops);
        if link.is_null() {
            let e = errno();
            return Err(KernelError::Attach { errno: e });
        }
        loaded.link = link;
        Ok(loaded)
    }
}

/// Create a kernel map.
pub fn create_map(
    name: &str,
    hash: bool,
    key: u32,
    value: u32,
    entries: u32,
    flags: u32,
) -> Result<RawFd, KernelError> {
    let n = CString::new(
        name.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(15)
            .collect::<String>(),
    )
    .expect("no nul");
    // SAFETY: valid name and options.
    let fd = unsafe {
        let mut o: sys::bpf_map_create_opts = std::mem::zeroed();
        o.sz = std::mem::size_of::<sys::bpf_map_create_opts>() as _;
        o.map_flags = flags;
        sys::bpf_map_create(
            if hash {
                sys::BPF_MAP_TYPE_HASH
            } else {
                sys::BPF_MAP_TYPE_ARRAY
            },
            n.as_ptr(),
            key,
            value,
            entries,
            &o,
        )
    };
    if fd < 0 {
        return Err(KernelError::Map {
            what: MapCall::Create { name: name.into() },
            errno: -fd,
        });
    }
    Ok(fd)
}

/// Write a map entry.
pub fn map_update(fd: RawFd, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
    // SAFETY: key and value are at least the map's sizes (the caller's map definition).
    let r = unsafe {
        sys::bpf_map_update_elem(
            fd,
            key.as_ptr() as *const c_void,
            value.as_ptr() as *const c_void,
            flags,
        )
    };
    if r < 0 { Err(-r) } else { Ok(()) }
}

/// Delete a map entry.
pub fn map_delete(fd: RawFd, key: &[u8]) -> Result<(), i32> {
    // SAFETY: key is the map's key size.
    let r = unsafe { sys::bpf_map_delete_elem(fd, key.as_ptr() as *const c_void) };
    if r < 0 { Err(-r) } else { Ok(()) }
}

/// Read a map entry.
pub fn map_lookup(fd: RawFd, key: &[u8], value_size: usize) -> Option<Vec<u8>> {
    let mut v = vec![0u8; value_size];
    // SAFETY: key is the map's key size, v its value size.
    let r = unsafe {
        sys::bpf_map_lookup_elem(
            fd,
            key.as_ptr() as *const c_void,
            v.as_mut_ptr() as *mut c_void,
        )
    };
    (r == 0).then_some(v)
}

/// Every key of a map.
pub fn map_keys(fd: RawFd, key_size: usize) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        // SAFETY: key buffers of the map's key size; NULL starts the walk.
        let r = unsafe {
            sys::bpf_map_get_next_key(
                fd,
                cur.as_ref()
                    .map_or(std::ptr::null(), |k| k.as_ptr() as *const c_void),
                next.as_mut_ptr() as *mut c_void,
            )
        };
        if r != 0 || keys.len() > (1 << 20) {
            return keys;
        }
        keys.push(next.clone());
        cur = Some(next);
    }
}

/// Freeze a map (rodata).
pub fn freeze(fd: RawFd) -> Result<(), i32> {
    // SAFETY: a map fd.
    let r = unsafe { sys::bpf_map_freeze(fd) };
    if r < 0 { Err(-r) } else { Ok(()) }
}

/// The ring buffer's records, collected by [`RingBuf::consume`].
pub struct RingBuf {
    rb: *mut sys::ring_buffer,
    // Boxed: libbpf holds its address as the callback's ctx, which must not
    // move with the RingBuf.
    #[allow(clippy::box_collection)]
    records: Box<Vec<Vec<u8>>>,
}

// SAFETY: used from the engine's thread only, through &mut self.
unsafe impl Send for RingBuf {}

unsafe extern "C" fn sample(ctx: *mut c_void, data: *mut c_void, size: sys::size_t) -> c_int {
    // SAFETY: ctx is the RingBuf's boxed Vec; data holds size bytes.
    unsafe {
        let v = &mut *(ctx as *mut Vec<Vec<u8>>);
        v.push(std::slice::from_raw_parts(data as *const u8, size as usize).to_vec());
    }
    0
}

impl RingBuf {
    /// Open the ring buffer map `fd`.
    pub fn new(fd: RawFd) -> Result<RingBuf, KernelError> {
        let mut records = Box::new(Vec::new());
        // SAFETY: a ring buffer map fd; the boxed Vec outlives the ring_buffer.
        let rb = unsafe {
            sys::ring_buffer__new(
                fd,
                Some(sample),
                &mut *records as *mut Vec<Vec<u8>> as *mut c_void,
                std::ptr::null(),
            )
        };
        if rb.is_null() {
            return Err(KernelError::Map {
                what: MapCall::OpenEvents,
                errno: errno(),
            });
        }
        Ok(RingBuf { rb, records })
    }

    /// Every record written so far, in order.
    pub fn consume(&mut self) -> Vec<Vec<u8>> {
        // SAFETY: a live ring_buffer.
        unsafe { sys::ring_buffer__consume(self.rb) };
        std::mem::take(&mut *self.records)
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        // SAFETY: created by ring_buffer__new, freed once.
        unsafe { sys::ring_buffer__free(self.rb) };
    }
}

/// Whether the running kernel has `struct io_uring_bpf_ops` in its BTF.
pub fn kernel_has_ops() -> Result<bool, NoKernelBtf> {
    // SAFETY: libbpf reads /sys/kernel/btf/vmlinux; the btf is freed.
    unsafe {
        sys::libbpf_set_print(None);
        let btf = sys::btf__load_vmlinux_btf();
        if btf.is_null() {
            return Err(NoKernelBtf);
        }
        let n = CString::new("io_uring_bpf_ops").expect("no nul");
        let id = sys::btf__find_by_name_kind(btf, n.as_ptr(), sys::BTF_KIND_STRUCT);
        sys::btf__free(btf);
        Ok(id > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(name: &str, insns: usize) -> UserProg {
        UserProg {
            name: name.into(),
            code: vec![0; insns * 8],
            relocs: Vec::new(),
        }
    }

    #[test]
    fn verifier_lines_in_a_user_program_get_its_own_numbering() {
        let progs = [prog("a", 10), prog("b", 5)];
        let starts = [100, 110];
        let log =
            "99: (95) exit\n100: (b7) r0 = 0\n112: (85) call pc+3\nR2 !read_ok\n115: (95) exit\n";
        let Renumbered { at, text: out, .. } = renumber(log, &progs, &starts);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "99: (95) exit", "the loop's own numbering stays");
        assert_eq!(lines[1], "[a insn 0]: (b7) r0 = 0");
        assert_eq!(lines[2], "[b insn 2]: (85) call pc+3");
        assert_eq!(lines[3], "R2 !read_ok");
        assert_eq!(lines[4], "115: (95) exit", "past b's end: the loop's");
        assert_eq!(at, Some(("b".to_string(), 2)));
    }

    #[test]
    fn quoted_instructions_in_an_explanation_get_the_numbering_too() {
        // 7.3.4 explains a refusal by quoting the instruction.
        let progs = [prog("h", 10)];
        let starts = [4900];
        let log = "4907: (7a) *(u64 *)(r4 +0) = 1\ninvalid variable-offset write to stack R4\n  4907 | (7a) *(u64 *)(r4 +0) = 1\nSuggestion:\n  12 | not ours\n";
        let Renumbered { at, text: out, .. } = renumber(log, &progs, &starts);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "[h insn 7]: (7a) *(u64 *)(r4 +0) = 1");
        assert_eq!(lines[2], "  [h insn 7] | (7a) *(u64 *)(r4 +0) = 1");
        assert_eq!(
            lines[4], "  12 | not ours",
            "outside every program: as it was"
        );
        assert_eq!(at, Some(("h".to_string(), 7)));
    }

    /// 7.3.4's explanation of a refusal, as the hostile corpus met it: the
    /// walked instructions, the classic reason, then a block that quotes
    /// the failing instruction and its neighbours twice.
    const EXPLAINED: &str = "4903: (d4) r3 = le32 r3
4904: (bf) r4 = r10
4905: (1f) r4 -= r3
R4 subtraction from stack pointer prohibited
Verification failed: Register Type Safety: Subtraction from stack pointer

Reason:
  R4 is a stack pointer. The verifier does not allow BPF_SUB to move stack pointers.

At:
  rs_dispatch_stub @ loop_helpers.h:342:0
  Source context:
      340 | ...
      341 | ...
  >>> 342 | static __noinline int rs_dispatch_stub(const struct rs_ctx *ctx, __u32 prog)
          | ^-- error: subtraction from stack pointer
      343 | ...
      344 | ...
  Instruction context:
      4903 | (d4) r3 = le32 r3
      4904 | (bf) r4 = r10
  >>> 4905 | (1f) r4 -= r3
      4906 | (7a) *(u64 *)(r4 +0) = 1
      4907 | (b7) r0 = 0

Causal path:
  rs_dispatch_stub @ loop_helpers.h:342:0
  Source context:
      340 | ...
      341 | ...
  >>> 342 | static __noinline int rs_dispatch_stub(const struct rs_ctx *ctx, __u32 prog)
          | ^-- update: R4 changed from uninitialized value to stack pointer at offset 0
      343 | ...
      344 | ...
  Instruction context:
      4903 | (d4) r3 = le32 r3
  >>> 4904 | (bf) r4 = r10
      4905 | (1f) r4 -= r3
      4906 | (7a) *(u64 *)(r4 +0) = 1

Suggestion:
  Use addition from R10 to form stack addresses within the tracked stack frame.

processed 10640 insns (limit 1000000) max_states_per_insn 4 total_states 137 peak_states 60 mark_read 0
";

    #[test]
    fn an_explained_refusal_names_the_walked_instruction_and_keeps_the_reason() {
        let progs = [prog("h", 8)];
        let r = renumber(EXPLAINED, &progs, &[4901]);
        let out = &r.text;
        assert_eq!(
            r.at,
            Some(("h".to_string(), 4)),
            "the failing instruction, not the last one quoted around it"
        );
        assert!(
            out.contains("\n  >>> [h insn 4] | (1f) r4 -= r3\n"),
            "{out}"
        );
        assert!(out.contains("\n      [h insn 5] | (7a)"), "{out}");
        assert!(
            out.contains("\n  >>> 342 | static"),
            "a source line stays:\n{out}"
        );
        assert_eq!(
            r.reason().as_deref(),
            Some("R4 subtraction from stack pointer prohibited")
        );
        let tail = r.tail();
        assert!(
            tail.starts_with("[h insn 4]: (1f) r4 -= r3\nR4 subtraction"),
            "{tail}"
        );
        assert!(tail.contains("Use addition from R10"), "{tail}");
    }

    #[test]
    fn the_verifier_tail_starts_at_its_last_instruction() {
        let mut log = "0: (b7) r0 = 0\n".repeat(100);
        log.push_str("107: (61) r1 = *(u32 *)(r2 +0)\n");
        log.push_str("R2 invalid mem access 'scalar'\nprocessed 12 insns\n");
        let r = renumber(&log, &[prog("p", 10)], &[100]);
        let t = r.tail();
        assert!(t.starts_with("[p insn 7]"), "{t}");
        assert_eq!(t.lines().count(), 3);
        assert_eq!(
            r.reason().as_deref(),
            Some("R2 invalid mem access 'scalar'")
        );
    }

    #[test]
    fn a_verifier_log_without_a_reason_gives_none() {
        let h = [prog("h", 10)];
        let reason = |log: &str| renumber(log, &h, &[4900]).reason();
        assert_eq!(reason("0: (b7) r0 = 0\n\nprocessed 1 insns\n"), None);
        assert_eq!(
            reason("back-edge from insn 5 to 3\nprocessed 0 insns\n").as_deref(),
            Some("back-edge from insn 5 to 3"),
            "no instruction walked: the log's first words"
        );
        let hint = "4907: (7a) *(u64 *)(r4 +0) = 1\n  \ninvalid variable-offset write to stack R4\nSuggestion:\n";
        assert_eq!(
            reason(hint).as_deref(),
            Some("invalid variable-offset write to stack R4")
        );
    }
}
