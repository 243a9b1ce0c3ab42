//! Ring discovery: a process's io_uring file descriptors and what
//! `/proc/PID/fdinfo/FD` says about each.
//!
//! What fdinfo cannot tell: the kernel ctx pointer that the tracepoints
//! report. For rings created after attach, the `create` event ties ctx to
//! (pid, fd). For rings created before, [`RingDirectory`] links them when the
//! evidence is unambiguous (the process has one ring, or the event came from
//! the ring's SQPOLL thread) and says "unknown" otherwise.

use crate::error::ProbeError;
use crate::event::{Header, ProbeEvent, Ptr};
pub use crate::event::{RegisteredBuffer, RegisteredFile, RingSetup, RingWhen};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Parsed `/proc/PID/fdinfo/FD` of an io_uring fd. Fields the kernel did not
/// print (older kernels, or the ring lock was busy) are `None`/empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fdinfo {
    /// SQ ring size (SqMask + 1).
    pub sq_entries: Option<u32>,
    /// SQ head (consumed by the kernel).
    pub sq_head: Option<u32>,
    /// SQ tail (written by the application).
    pub sq_tail: Option<u32>,
    /// Kernel's cached SQ head.
    pub cached_sq_head: Option<u32>,
    /// SQEs written but not consumed yet (tail - head).
    pub sq_pending: Option<u32>,
    /// CQ ring size (CqMask + 1).
    pub cq_entries: Option<u32>,
    /// CQ head (consumed by the application).
    pub cq_head: Option<u32>,
    /// CQ tail (written by the kernel).
    pub cq_tail: Option<u32>,
    /// Kernel's cached CQ tail.
    pub cached_cq_tail: Option<u32>,
    /// CQEs posted but not reaped yet (tail - head).
    pub cq_pending: Option<u32>,
    /// The pending SQE lines, as printed.
    pub sqes: Vec<String>,
    /// The pending CQE lines, as printed.
    pub cqes: Vec<String>,
    /// SQPOLL thread pid, when the ring uses IORING_SETUP_SQPOLL.
    pub sq_thread: Option<u32>,
    /// CPU the SQPOLL thread is bound to.
    pub sq_thread_cpu: Option<i32>,
    /// Registered files (the slots that hold one; empty slots are not
    /// listed).
    pub registered_files: Vec<RegisteredFile>,
    /// Size of the registered-file table (`UserFiles: N`), empty slots
    /// included.
    #[serde(default)]
    pub file_slots: Option<u32>,
    /// Registered buffers (the slots that hold one).
    pub registered_buffers: Vec<RegisteredBuffer>,
    /// Size of the registered-buffer table (`UserBufs: N`), empty slots
    /// included.
    #[serde(default)]
    pub buffer_slots: Option<u32>,
    /// Requests waiting on poll (`PollList` lines).
    pub poll_list: Vec<String>,
    /// CQEs in the overflow list (`CqOverflowList` lines).
    pub cq_overflow: Vec<String>,
    /// Every other `Key: value` line, kept as text.
    pub other: BTreeMap<String, String>,
    /// The kernel printed only the generic lines (pos, flags, ...): it
    /// skips the ring details when the ring lock is busy (it only trylocks,
    /// 6.x). Every ring field is then `None`; [`discover()`] retries a few
    /// times before settling for this.
    pub busy: bool,
}

impl Fdinfo {
    /// Ring uses SQPOLL.
    pub fn sqpoll(&self) -> bool {
        self.sq_thread.is_some()
    }

    /// Parses fdinfo text. `path` names the file in errors. Unknown keys go
    /// to `other`; a malformed number in a known key is an error.
    pub fn parse(path: &str, text: &str) -> Result<Fdinfo, ProbeError> {
        let mut f = Fdinfo::default();
        let mut section = String::new();
        let mut sq_mask = None;
        let mut cq_mask = None;
        let mut saw_ring_key = false;
        for (i, line) in text.lines().enumerate() {
            let bad = |reason: String| ProbeError::Fdinfo {
                path: path.to_string(),
                reason: format!("line {}: {reason}", i + 1),
            };
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                // An entry of the current section.
                let entry = line.trim();
                match section.as_str() {
                    "SQEs" => f.sqes.push(entry.to_string()),
                    "CQEs" => f.cqes.push(entry.to_string()),
                    "PollList" => f.poll_list.push(entry.to_string()),
                    "CqOverflowList" => f.cq_overflow.push(entry.to_string()),
                    // An empty slot of a sparse table: 6.1 prints it for
                    // files, later kernels for buffers.
                    "UserFiles" | "UserBufs" if entry.ends_with("<none>") => {}
                    "UserFiles" => {
                        let (idx, rest) = entry
                            .split_once(':')
                            .ok_or_else(|| bad(format!("registered file entry {entry:?}")))?;
                        let index = idx
                            .trim()
                            .parse()
                            .map_err(|e| bad(format!("registered file index {idx:?}: {e}")))?;
                        f.registered_files.push(RegisteredFile {
                            index,
                            path: rest.trim().to_string(),
                        });
                    }
                    "UserBufs" => {
                        // "    0: 0x5600e6db6620/4096"
                        let parsed = entry.split_once(':').and_then(|(idx, rest)| {
                            let (a, l) = rest.trim().split_once('/')?;
                            Some((
                                idx.trim().parse::<u32>().ok()?,
                                parse_num(a)?,
                                parse_num(l)?,
                            ))
                        });
                        let (index, addr, len) = parsed
                            .ok_or_else(|| bad(format!("registered buffer entry {entry:?}")))?;
                        f.registered_buffers
                            .push(RegisteredBuffer { index, addr, len });
                    }
                    _ => {
                        f.other
                            .entry(format!("{section}[]"))
                            .and_modify(|v| {
                                v.push('\n');
                                v.push_str(entry)
                            })
                            .or_insert_with(|| entry.to_string());
                    }
                }
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(bad(format!("expected \"Key: value\", got {line:?}")));
            };
            let key = key.trim();
            let value = value.trim();
            section = key.to_string();
            let num = || -> Result<u64, ProbeError> {
                parse_num(value).ok_or_else(|| bad(format!("{key}: not a number: {value:?}")))
            };
            let num32 = || -> Result<u32, ProbeError> {
                let n = num()?;
                u32::try_from(n).map_err(|_| bad(format!("{key}: {n} does not fit 32 bits")))
            };
            let int = || -> Result<i64, ProbeError> {
                value
                    .parse::<i64>()
                    .map_err(|e| bad(format!("{key}: {value:?}: {e}")))
            };
            match key {
                "SqMask" => sq_mask = Some(num32()?),
                "SqHead" => f.sq_head = Some(num32()?),
                "SqTail" => f.sq_tail = Some(num32()?),
                "CachedSqHead" => f.cached_sq_head = Some(num32()?),
                "CqMask" => cq_mask = Some(num32()?),
                "CqHead" => f.cq_head = Some(num32()?),
                "CqTail" => f.cq_tail = Some(num32()?),
                "CachedCqTail" => f.cached_cq_tail = Some(num32()?),
                "SqThread" => {
                    let v = int()?;
                    f.sq_thread = u32::try_from(v).ok().filter(|&p| p > 0);
                }
                "SqThreadCpu" => {
                    let v = int()?;
                    f.sq_thread_cpu = i32::try_from(v).ok().filter(|&c| c >= 0);
                }
                // Counts of the entries that follow; the entries are kept.
                "SQEs" | "CQEs" => {
                    num()?;
                }
                "UserFiles" => f.file_slots = Some(num32()?),
                "UserBufs" => f.buffer_slots = Some(num32()?),
                "PollList" | "CqOverflowList" => {}
                _ => {
                    f.other.insert(key.to_string(), value.to_string());
                    continue;
                }
            }
            saw_ring_key = true;
        }
        if !saw_ring_key {
            if !f.other.contains_key("flags") {
                return Err(ProbeError::Fdinfo {
                    path: path.to_string(),
                    reason: "neither io_uring fields (SqMask, SqHead, ...) nor the generic ones (pos, flags)".into(),
                });
            }
            f.busy = true;
        }
        f.sq_entries = sq_mask.and_then(|m| m.checked_add(1));
        f.cq_entries = cq_mask.and_then(|m| m.checked_add(1));
        f.sq_pending = f.sq_tail.zip(f.sq_head).map(|(t, h)| t.wrapping_sub(h));
        f.cq_pending = f.cq_tail.zip(f.cq_head).map(|(t, h)| t.wrapping_sub(h));
        Ok(f)
    }
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// One io_uring fd of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingFd {
    /// Owner pid.
    pub pid: u32,
    /// The fd.
    pub fd: i32,
    /// What fdinfo says about it.
    pub info: Fdinfo,
}

/// True when `/proc/PID` exists and the process is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next()),
            Some('Z') | Some('X') | None
        ),
        Err(_) => false,
    }
}

/// The processes descended from `pid` (children, their children, ...),
/// not `pid` itself: what `follow_forks` traces from the start, since a
/// child forked before the attach (fio's job process) fires no
/// `task_newtask` the probes could see. Read from every process's
/// `/proc/PID/stat` parent pid, so it needs no CONFIG_PROC_CHILDREN.
pub fn descendants(pid: u32) -> Vec<u32> {
    descendants_in(Path::new("/proc"), pid)
}

/// [`descendants`] under another proc root (tests).
pub fn descendants_in(proc_root: &Path, pid: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    if let Ok(rd) = std::fs::read_dir(proc_root) {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) S ppid ...": fields after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(pp) = ppid {
                children.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            if c != pid && !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The io_uring fds of `pid`, with their fdinfo.
///
/// Errors: [`ProbeError::NoSuchPid`] when the process does not exist. A pid
/// with no rings gives an empty list (the caller decides whether that is an
/// error). fds that close while we read are skipped.
pub fn discover(pid: u32) -> Result<Vec<RingFd>, ProbeError> {
    discover_in(Path::new("/proc"), pid)
}

/// [`discover()`] under another proc root (tests).
pub fn discover_in(proc_root: &Path, pid: u32) -> Result<Vec<RingFd>, ProbeError> {
    discover_with(proc_root, pid, 20)
}

/// [`discover()`] that reads each fdinfo once: a busy ring comes back
/// with [`Fdinfo::busy`] set instead of being retried (the probes' periodic
/// re-read, which must not sleep in the event loop).
pub fn discover_once(pid: u32) -> Result<Vec<RingFd>, ProbeError> {
    discover_with(Path::new("/proc"), pid, 1)
}

fn discover_with(proc_root: &Path, pid: u32, attempts: u32) -> Result<Vec<RingFd>, ProbeError> {
    let dir = proc_root.join(pid.to_string()).join("fd");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProbeError::NoSuchPid { pid });
        }
        Err(e) => {
            return Err(ProbeError::Io {
                what: format!("listing {}", dir.display()),
                error: e,
            });
        }
    };
    let mut out = Vec::new();
    for ent in rd {
        let Ok(ent) = ent else { continue };
        let Ok(target) = std::fs::read_link(ent.path()) else {
            continue; // closed meanwhile
        };
        if target.as_os_str() != "anon_inode:[io_uring]" {
            continue;
        }
        let Some(fd) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let p = proc_root
            .join(pid.to_string())
            .join("fdinfo")
            .join(fd.to_string());
        let mut info = None;
        // A busy ring prints no details (the kernel only trylocks its
        // lock): try a few times, then keep what we have.
        for attempt in 0..attempts.max(1) {
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    return Err(ProbeError::Io {
                        what: format!("reading {}", p.display()),
                        error: e,
                    });
                }
            };
            let parsed = Fdinfo::parse(&p.display().to_string(), &text)?;
            let busy = parsed.busy;
            info = Some(parsed);
            if !busy || attempt + 1 >= attempts {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200 << (attempt / 4)));
        }
        let Some(info) = info else {
            continue; // closed meanwhile
        };
        out.push(RingFd { pid, fd, info });
    }
    out.sort_by_key(|r| r.fd);
    Ok(out)
}

/// Records made from what fdinfo and the BPF side say (the type is the
/// event's, [`crate::event`]).
impl RingSetup {
    /// The record for `pid`'s ring `fd` from what fdinfo says (`info`:
    /// `None` when it could not be read) and what a create event said
    /// (`created`).
    pub fn new(
        ts_ns: u64,
        when: RingWhen,
        pid: u32,
        fd: Option<i32>,
        info: Option<&Fdinfo>,
        created: Option<&CreateInfo>,
    ) -> RingSetup {
        let busy = info.is_none_or(|i| i.busy);
        let info = info.filter(|_| !busy);
        RingSetup {
            hdr: Header {
                ts_ns,
                cpu: 0,
                tgid: pid,
                tid: 0,
            },
            when,
            ring: created.map_or(Ptr::NULL, |c| c.ring),
            fd,
            owner_tid: created.map(|c| c.tid),
            setup_flags: created.map(|c| c.flags),
            sq_entries: info
                .and_then(|i| i.sq_entries)
                .or(created.map(|c| c.sq_entries)),
            cq_entries: info
                .and_then(|i| i.cq_entries)
                .or(created.map(|c| c.cq_entries)),
            sq_thread: info.and_then(|i| i.sq_thread),
            sq_thread_cpu: info.and_then(|i| i.sq_thread_cpu),
            file_slots: info.and_then(|i| i.file_slots),
            files: info.map_or(Vec::new(), |i| i.registered_files.clone()),
            buffer_slots: info.and_then(|i| i.buffer_slots),
            buffers: info.map_or(Vec::new(), |i| i.registered_buffers.clone()),
            sq_pending: info.and_then(|i| i.sq_pending),
            cq_pending: info.and_then(|i| i.cq_pending),
            cq_overflow: info.map(|i| i.cq_overflow.len().min(u32::MAX as usize) as u32),
        }
    }

    /// The record for a ring whose setup the BPF side read from the ring
    /// itself ([`crate::counters::SetupSeen`]): a ring created before
    /// attach. It names the ring by ctx (its fd is not known here: the
    /// `attach` record of the same ring names it by fd) and carries only
    /// the flags.
    pub fn seen(ts_ns: u64, ring: Ptr, seen: crate::counters::SetupSeen) -> RingSetup {
        RingSetup {
            hdr: Header {
                ts_ns,
                cpu: 0,
                tgid: seen.tgid,
                tid: 0,
            },
            when: RingWhen::Changed,
            ring,
            fd: None,
            owner_tid: None,
            setup_flags: Some(seen.flags),
            sq_entries: None,
            cq_entries: None,
            sq_thread: None,
            sq_thread_cpu: None,
            file_slots: None,
            files: Vec::new(),
            buffer_slots: None,
            buffers: Vec::new(),
            sq_pending: None,
            cq_pending: None,
            cq_overflow: None,
        }
    }

    /// What [`RingDirectory::add_discovered`] wants for this ring, when its
    /// fd is known.
    pub fn ring_fd(&self) -> Option<RingFd> {
        let fd = self.fd?;
        Some(RingFd {
            pid: self.hdr.tgid,
            fd,
            info: Fdinfo {
                sq_entries: self.sq_entries,
                cq_entries: self.cq_entries,
                sq_thread: self.sq_thread,
                sq_thread_cpu: self.sq_thread_cpu,
                registered_files: self.files.clone(),
                file_slots: self.file_slots,
                registered_buffers: self.buffers.clone(),
                buffer_slots: self.buffer_slots,
                sq_pending: self.sq_pending,
                cq_pending: self.cq_pending,
                ..Fdinfo::default()
            },
        })
    }
}

/// What an `io_uring_create` event said about a ring, kept to join with
/// later fdinfo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateInfo {
    /// Ring ctx pointer.
    pub ring: Ptr,
    /// The creating thread.
    pub tid: u32,
    /// `IORING_SETUP_*` flags.
    pub flags: u32,
    /// SQ entries.
    pub sq_entries: u32,
    /// CQ entries.
    pub cq_entries: u32,
}

/// How a ring ctx pointer was tied to an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingSource {
    /// From an `io_uring_create` event: certain.
    CreateEvent,
    /// The event came from the ring's SQPOLL thread (fdinfo `SqThread`).
    SqThread,
    /// The process had exactly one io_uring fd when discovered.
    OnlyRing,
    /// Seen in events, fd unknown (the process has several rings, created
    /// before attach).
    Unknown,
}

/// What is known about one ring ctx pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingIdentity {
    /// Kernel ctx pointer.
    pub ring: Ptr,
    /// Owner process (the tgid of the first event seen on it).
    pub pid: u32,
    /// File descriptor, when known.
    pub fd: Option<i32>,
    /// How `fd` was learned.
    pub source: RingSource,
    /// SQ entries, when known (create event or fdinfo).
    pub sq_entries: Option<u32>,
    /// CQ entries, when known.
    pub cq_entries: Option<u32>,
    /// `IORING_SETUP_*` flags, when known (create event only).
    pub setup_flags: Option<u32>,
}

/// Maps ring ctx pointers to (pid, fd) as events arrive.
#[derive(Debug, Default, Clone)]
pub struct RingDirectory {
    discovered: HashMap<u32, Vec<RingFd>>,
    rings: BTreeMap<Ptr, RingIdentity>,
}

impl RingDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what discovery found for a pid (before attach).
    pub fn add_discovered(&mut self, pid: u32, fds: Vec<RingFd>) {
        self.discovered.insert(pid, fds);
    }

    /// The discovered fds of a pid.
    pub fn discovered(&self, pid: u32) -> &[RingFd] {
        self.discovered.get(&pid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Learns from one event. Returns the ring's identity when this event
    /// was the first one seen on it.
    pub fn observe(&mut self, ev: &ProbeEvent) -> Option<&RingIdentity> {
        if let ProbeEvent::Ring(r) = ev {
            return self.observe_setup(r);
        }
        let hdr = *ev.header();
        if let ProbeEvent::Create {
            ring,
            fd,
            sq_entries,
            cq_entries,
            flags,
            ..
        } = *ev
        {
            let id = RingIdentity {
                ring,
                pid: hdr.tgid,
                fd: (fd >= 0).then_some(fd),
                source: RingSource::CreateEvent,
                sq_entries: Some(sq_entries),
                cq_entries: Some(cq_entries),
                setup_flags: Some(flags),
            };
            // A create replaces what we had: the address may be reused by
            // a new ring after the old one was freed.
            self.rings.insert(ring, id);
            return self.rings.get(&ring);
        }
        let ring = ev.ring().filter(|r| !r.is_null())?;
        if self.rings.contains_key(&ring) {
            return None;
        }
        self.place(ring, hdr.tgid, Some(hdr.tid), None)
    }

    /// Ties a ctx first seen in an event of (pid, tid) to one of pid's
    /// discovered fds: the ring whose SQPOLL thread tid is, else pid's
    /// only ring, else none.
    fn place(
        &mut self,
        ring: Ptr,
        pid: u32,
        tid: Option<u32>,
        setup_flags: Option<u32>,
    ) -> Option<&RingIdentity> {
        let fds = self.discovered(pid);
        let by_sq = fds
            .iter()
            .find(|r| tid.is_some() && r.info.sq_thread == tid);
        let (fd, source, info) = if let Some(r) = by_sq {
            (Some(r.fd), RingSource::SqThread, Some(&r.info))
        } else if fds.len() == 1 {
            (Some(fds[0].fd), RingSource::OnlyRing, Some(&fds[0].info))
        } else {
            (None, RingSource::Unknown, None)
        };
        let id = RingIdentity {
            ring,
            pid,
            fd,
            source,
            sq_entries: info.and_then(|i| i.sq_entries),
            cq_entries: info.and_then(|i| i.cq_entries),
            setup_flags,
        };
        self.rings.insert(ring, id);
        self.rings.get(&ring)
    }

    /// Learns from a `ring` record: its fd joins the owner's discovered
    /// rings (replacing an older record of the same fd), and a record that
    /// names its ctx ties the two as a create event does. Returns the
    /// identity when the ctx was not known yet.
    fn observe_setup(&mut self, r: &RingSetup) -> Option<&RingIdentity> {
        let pid = r.hdr.tgid;
        if let Some(rfd) = r.ring_fd() {
            let fds = self.discovered.entry(pid).or_default();
            fds.retain(|x| x.fd != rfd.fd);
            fds.push(rfd);
            fds.sort_by_key(|x| x.fd);
        }
        if r.ring.is_null() {
            return None;
        }
        if let Some(id) = self.rings.get_mut(&r.ring) {
            id.setup_flags = r.setup_flags.or(id.setup_flags);
            return None;
        }
        if r.fd.is_none() {
            // Flags read from a ring created before attach
            // ([`RingSetup::seen`]) before any of its events came: placed
            // as its first event would be.
            return self.place(r.ring, pid, None, r.setup_flags);
        }
        self.rings.insert(
            r.ring,
            RingIdentity {
                ring: r.ring,
                pid,
                fd: r.fd,
                source: RingSource::CreateEvent,
                sq_entries: r.sq_entries,
                cq_entries: r.cq_entries,
                setup_flags: r.setup_flags,
            },
        );
        self.rings.get(&r.ring)
    }

    /// Every ring seen so far.
    pub fn rings(&self) -> impl Iterator<Item = &RingIdentity> {
        self.rings.values()
    }

    /// One ring.
    pub fn get(&self, ring: Ptr) -> Option<&RingIdentity> {
        self.rings.get(&ring)
    }
}

/// The rings of `pid` and, with `children`, of every process descended
/// from it (they are traced too: [`crate::AttachOptions::follow_forks`]). An error
/// only when `pid` itself does not exist; a child that exits meanwhile is
/// left out.
pub fn discover_tree(pid: u32, children: bool) -> Result<Vec<(u32, Vec<RingFd>)>, ProbeError> {
    let mut out = vec![(pid, discover(pid)?)];
    if children {
        for c in descendants(pid) {
            if let Ok(fds) = discover(c) {
                out.push((c, fds));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
