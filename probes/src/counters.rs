//! Counts that see every event: [`Probes::counters`](crate::Probes::counters).
//!
//! The BPF programs count each event in the per-CPU hash `rs_counts`, keyed
//! by the ring's ctx pointer, right after the tgid and ring filters: before
//! the kind mask ([`crate::kinds`]) and before the ring buffer. So the
//! counts are complete whatever is delivered: an event whose kind is off,
//! one lost because the ring buffer was full, one a consumer's bounded
//! queue dropped later, all were counted. A UI shows totals, rates and
//! in-flight requests from them and they stay right when its view drops
//! events.
//!
//! Events that are not about a ring (`task_work_run`, whose pointer is a
//! task context, and `new_task`) are counted under ring `0x0`.
//!
//! A ring is its ctx pointer *and* its generation ([`RingCounts::generation`]):
//! the kernel gives a freed ring's address to the next ring it creates,
//! and that ring starts from zero. Generation 0 is a ring created before
//! the session attached; a `create` event starts the next generation at
//! its address and carries it ([`crate::ProbeEvent::Create`]'s `generation`).

use crate::event::{Ptr, wire};
use crate::kinds::{NAMES, TASK_WORK_IDLE};
use serde::{Deserialize, Serialize};

/// Counter slots per ring (kinds 1..=12, [`TASK_WORK_IDLE`], spare).
pub const SLOTS: usize = 16;

/// Key under which the BPF side counts rings beyond its map's capacity
/// (4096 rings): never a kernel pointer, nor a pointer id.
pub const OTHER_RINGS: u64 = u64::MAX;

/// `struct rs_ring_key` of probes.bpf.c: what the counts are keyed by.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RawKey {
    pub ctx: u64,
    pub generation: u32,
    /// Zero: the BPF side hashes the key's bytes.
    pub pad: u32,
}

impl RawKey {
    pub(crate) fn new(ctx: u64, generation: u32) -> RawKey {
        RawKey {
            ctx,
            generation,
            pad: 0,
        }
    }
}

// SAFETY: plain integers, explicit padding, any bit pattern is valid.
unsafe impl aya::Pod for RawKey {}

/// `struct rs_counts` of probes.bpf.c, one CPU's copy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawCounts {
    pub n: [u64; SLOTS],
    pub lost: u64,
    pub finished: u64,
    /// `SETUP_KNOWN | tgid << 32 | io_ring_ctx.flags`, or 0.
    pub setup: u64,
}

/// Bit of [`RawCounts::setup`] saying the rest was read.
const SETUP_KNOWN: u64 = 1 << 63;

// SAFETY: plain integers, no padding, any bit pattern is valid.
unsafe impl aya::Pod for RawCounts {}

/// What happened on one ring (or, summed, on all of them), every CPU
/// added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events by kind: `by_kind[k]` for wire kind k
    /// ([`crate::event::wire`]`::KIND_*`), `by_kind[13]` for count-0
    /// `task_work_run` ([`TASK_WORK_IDLE`]); counted whether or not the
    /// kind is delivered. [`Counts::kind`] reads it by name.
    pub by_kind: [u64; SLOTS],
    /// Completions that end a request: `complete` with a request (not an
    /// aux CQE) and without `IORING_CQE_F_MORE` (not a multishot's
    /// intermediate CQE).
    pub finished: u64,
    /// Events of these that the ring buffer had no room for (lost to the
    /// consumer; still counted here).
    pub lost: u64,
}

impl Counts {
    /// `submit_req` events: requests submitted.
    pub fn submitted(&self) -> u64 {
        self.by_kind[wire::KIND_SUBMIT_REQ as usize]
    }

    /// `complete` events: CQEs posted (aux and multishot CQEs included).
    pub fn completed(&self) -> u64 {
        self.by_kind[wire::KIND_COMPLETE as usize]
    }

    /// Requests submitted and not yet finished: `submitted - finished`,
    /// at least 0. Approximate where a request posts no CQE
    /// (`IOSQE_CQE_SKIP_SUCCESS`: it stays counted) and right after an
    /// attach (completions of requests submitted before it are finished
    /// without a submit: the difference is floored at 0).
    pub fn in_flight(&self) -> u64 {
        self.submitted().saturating_sub(self.finished)
    }

    /// Events of the kind named as in the JSON (`"complete"`), or
    /// `"task_work_run_idle"`; `None` for an unknown name.
    pub fn kind(&self, name: &str) -> Option<u64> {
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| self.by_kind[*b as usize])
    }

    /// Every event counted, of every kind (count-0 task_work_run
    /// included).
    pub fn events(&self) -> u64 {
        self.by_kind.iter().sum()
    }

    /// Idle task work: `task_work_run` with count 0.
    pub fn idle_task_work(&self) -> u64 {
        self.by_kind[TASK_WORK_IDLE as usize]
    }

    fn add(&mut self, r: &RawCounts) {
        for (a, b) in self.by_kind.iter_mut().zip(r.n.iter()) {
            *a += b;
        }
        self.finished += r.finished;
        self.lost += r.lost;
    }

    pub(crate) fn add_counts(&mut self, c: &Counts) {
        for (a, b) in self.by_kind.iter_mut().zip(c.by_kind.iter()) {
            *a += b;
        }
        self.finished += c.finished;
        self.lost += c.lost;
    }

    pub(crate) fn from_cpus<'a>(cpus: impl IntoIterator<Item = &'a RawCounts>) -> Counts {
        let mut c = Counts::default();
        for r in cpus {
            c.add(r);
        }
        c
    }
}

/// One ring's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingCounts {
    /// The ring's ctx pointer as events carry it; `0x0` for events not
    /// about a ring, `0xffffffffffffffff` ([`OTHER_RINGS`]) for rings
    /// beyond the BPF map's capacity (4096).
    pub ring: Ptr,
    /// Which ring at that address: 0 for one created before attach, n for
    /// the n-th `create` at this address since (the `generation` of that create
    /// event). Older generations are rings that were freed: their counts
    /// are final.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// Its counts.
    pub counts: Counts,
    /// Its setup as the BPF side read it from the ring at a submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupSeen>,
}

/// A ring's setup read from the kernel's `struct io_ring_ctx` (see
/// [`crate::btf`]): known for every ring that submitted something since
/// attach, also those created before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupSeen {
    /// `IORING_SETUP_*` flags.
    pub flags: u32,
    /// The process that submitted (its SQPOLL thread's included).
    pub tgid: u32,
}

impl SetupSeen {
    /// What the CPUs' copies say: the first one read (all read the same
    /// ring; the flags do not change after setup).
    pub(crate) fn from_cpus<'a>(cpus: impl IntoIterator<Item = &'a RawCounts>) -> Option<Self> {
        cpus.into_iter()
            .map(|r| r.setup)
            .find(|s| s & SETUP_KNOWN != 0)
            .map(|s| SetupSeen {
                flags: s as u32,
                tgid: ((s >> 32) as u32) & 0x7fff_ffff,
            })
    }
}

/// A snapshot of [`Probes::counters`](crate::Probes::counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// CLOCK_MONOTONIC ns when it was read: the clock of the events'
    /// `ts_ns`, so rates can be computed between two snapshots.
    pub ts_ns: u64,
    /// Per ring, in ring pointer then generation order (`0x0` first when
    /// present, [`OTHER_RINGS`] last).
    pub rings: Vec<RingCounts>,
    /// Every ring added up (ring `0x0` included).
    pub total: Counts,
    /// Every event lost to the ring buffer (the `rs_lost` counter:
    /// [`Probes::lost`](crate::Probes::lost); equals `total.lost`).
    pub lost: u64,
    /// When the session found that every process it traced (followed
    /// children included) had exited, CLOCK_MONOTONIC ns
    /// ([`Probes::exited`](crate::Probes::exited)); `None` while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_ns: Option<u64>,
}

impl Counters {
    /// Builds a snapshot from per-ring counts (sorted here).
    pub fn new(ts_ns: u64, mut rings: Vec<RingCounts>, lost: u64) -> Counters {
        rings.sort_by_key(|r| (r.ring.0, r.generation));
        let mut total = Counts::default();
        for r in &rings {
            total.add_counts(&r.counts);
        }
        Counters {
            ts_ns,
            rings,
            total,
            lost,
            exited_ns: None,
        }
    }

    /// The counts of one ring: the one at `ring` of generation `generation`.
    pub fn ring(&self, ring: Ptr, generation: u32) -> Option<&Counts> {
        self.rings
            .iter()
            .find(|r| r.ring == ring && r.generation == generation)
            .map(|r| &r.counts)
    }
}

fn is_zero(g: &u32) -> bool {
    *g == 0
}

/// CLOCK_MONOTONIC in ns (what `bpf_ktime_get_ns` reads).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_layout_matches_c_struct() {
        // struct rs_ring_key: u64 ctx; u32 gen; u32 _pad;
        assert_eq!(std::mem::size_of::<RawKey>(), 16);
        // struct rs_counts: u64 n[16]; u64 lost; u64 finished; u64 setup;
        assert_eq!(std::mem::size_of::<RawCounts>(), 19 * 8);
        let r = RawCounts::default();
        let base = &r as *const _ as usize;
        assert_eq!(&r.lost as *const _ as usize - base, 128);
        assert_eq!(&r.finished as *const _ as usize - base, 136);
        assert_eq!(&r.setup as *const _ as usize - base, 144);
    }

    #[test]
    fn setup_from_whichever_cpu_read_it() {
        let none = RawCounts::default();
        let read = RawCounts {
            setup: SETUP_KNOWN | (4242u64 << 32) | 0x3100,
            ..RawCounts::default()
        };
        assert_eq!(SetupSeen::from_cpus([&none, &none]), None);
        assert_eq!(
            SetupSeen::from_cpus([&none, &read]),
            Some(SetupSeen {
                flags: 0x3100,
                tgid: 4242
            })
        );
        // Flags 0 (no setup flags) is known, not unknown.
        let zero = RawCounts {
            setup: SETUP_KNOWN | (7u64 << 32),
            ..RawCounts::default()
        };
        assert_eq!(
            SetupSeen::from_cpus([&zero]),
            Some(SetupSeen { flags: 0, tgid: 7 })
        );
    }

    #[test]
    fn sums_and_in_flight() {
        let mut a = RawCounts::default();
        a.n[wire::KIND_SUBMIT_REQ as usize] = 10;
        a.n[wire::KIND_COMPLETE as usize] = 7;
        a.finished = 6;
        a.lost = 1;
        let mut b = a;
        b.n[TASK_WORK_IDLE as usize] = 5;
        let c = Counts::from_cpus([&a, &b]);
        assert_eq!(c.submitted(), 20);
        assert_eq!(c.completed(), 14);
        assert_eq!(c.in_flight(), 8);
        assert_eq!(c.lost, 2);
        assert_eq!(c.idle_task_work(), 5);
        assert_eq!(c.kind("task_work_run_idle"), Some(5));
        assert_eq!(c.kind("complete"), Some(14));
        assert_eq!(c.kind("nope"), None);
        assert_eq!(c.events(), 39);
        // More finished than submitted (attached mid-flight): 0, not a wrap.
        let late = Counts {
            finished: 3,
            ..Counts::default()
        };
        assert_eq!(late.in_flight(), 0);
        let s = Counters::new(
            5,
            vec![
                RingCounts {
                    setup: None,
                    ring: Ptr(0xffff_0002),
                    generation: 1,
                    counts: late,
                },
                RingCounts {
                    setup: None,
                    ring: Ptr(0xffff_0002),
                    generation: 0,
                    counts: c,
                },
                RingCounts {
                    setup: None,
                    ring: Ptr(0),
                    generation: 0,
                    counts: late,
                },
            ],
            2,
        );
        assert_eq!(s.rings[0].ring, Ptr(0));
        assert_eq!(s.total.finished, c.finished + 6);
        // A ring created at a freed ring's address counts from zero.
        assert_eq!(s.ring(Ptr(0xffff_0002), 0).unwrap().submitted(), 20);
        assert_eq!(s.ring(Ptr(0xffff_0002), 1).unwrap().submitted(), 0);
        assert_eq!((s.rings[1].generation, s.rings[2].generation), (0, 1));
        assert_eq!(s.ring(Ptr(0xffff_0002), 2), None);
    }
}
