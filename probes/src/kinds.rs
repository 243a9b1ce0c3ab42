//! Which probe event kinds a session delivers: `--events KIND,...` /
//! `--no-events KIND,...`.
//!
//! Kinds are named as the events' JSON `"kind"` (docs/probes.md), plus one
//! that is not a kind of its own: `task_work_run_idle`, a `task_work_run`
//! whose `count` is 0. An SQPOLL thread fires those all the time while it
//! spins with nothing to do (9.8M of 9.95M events in an 8 s fio run), so
//! they are off by default: [`KindSet::default`] is every kind except
//! `task_work_run_idle`. The mask travels to the BPF side in `rs_cfg`:
//! events of a kind that is off are never copied into the ring buffer
//! (they are still counted, see [`crate::counters`]).

use crate::event::{ProbeEvent, wire};
use std::fmt;
use std::str::FromStr;

/// Bit (and counter slot) of a count-0 `task_work_run`: not a wire kind.
pub const TASK_WORK_IDLE: u8 = 13;

/// Bit of the `ring` records the session makes in userspace (a ring's
/// identity and setup, [`ProbeEvent::Ring`]): not a wire kind, never
/// counted in the kernel.
pub const RING: u8 = 14;

/// Every name [`KindSet`] accepts, with its bit, in the order of the
/// docs. `all` is accepted too (every kind, idle task work included).
pub const NAMES: &[(&str, u8)] = &[
    ("create", wire::KIND_CREATE),
    ("submit_req", wire::KIND_SUBMIT_REQ),
    ("complete", wire::KIND_COMPLETE),
    ("link", wire::KIND_LINK),
    ("fail_link", wire::KIND_FAIL_LINK),
    ("req_failed", wire::KIND_REQ_FAILED),
    ("cqe_overflow", wire::KIND_CQE_OVERFLOW),
    ("short_write", wire::KIND_SHORT_WRITE),
    ("poll_arm", wire::KIND_POLL_ARM),
    ("queue_async_work", wire::KIND_QUEUE_ASYNC_WORK),
    ("task_work_run", wire::KIND_TASK_WORK_RUN),
    ("new_task", wire::KIND_NEWTASK),
    ("ring", RING),
    ("task_work_run_idle", TASK_WORK_IDLE),
];

const ALL: u32 = {
    let mut m = 0u32;
    let mut i = 0;
    while i < NAMES.len() {
        m |= 1 << NAMES[i].1;
        i += 1;
    }
    m
};

/// A set of event kinds (a bit mask; bit k is wire kind k, bit
/// [`TASK_WORK_IDLE`] is count-0 `task_work_run`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KindSet(u32);

/// A kind name that is not one ([`KindSet::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind `{name}`; the kinds are: {}", valid_list())]
pub struct UnknownKind {
    /// What was given.
    pub name: String,
}

fn valid_list() -> String {
    let mut s: Vec<String> = NAMES.iter().map(|(n, _)| n.to_string()).collect();
    s.push("all".into());
    s.join(", ")
}

impl Default for KindSet {
    /// Every kind except `task_work_run_idle`.
    fn default() -> Self {
        KindSet(ALL & !(1 << TASK_WORK_IDLE))
    }
}

impl KindSet {
    /// Every kind, idle task work included.
    pub const fn all() -> Self {
        KindSet(ALL)
    }

    /// No kind.
    pub const fn none() -> Self {
        KindSet(0)
    }

    /// What `--events` and `--no-events` choose: `events` (the union, when
    /// given) or else the default, minus every set in `no_events`.
    pub fn select(events: &[KindSet], no_events: &[KindSet]) -> KindSet {
        let base = if events.is_empty() {
            KindSet::default()
        } else {
            events.iter().fold(KindSet::none(), |a, b| a.union(*b))
        };
        no_events.iter().fold(base, |a, b| a.minus(*b))
    }

    /// The bit mask for `rs_cfg.kinds`.
    pub const fn mask(self) -> u32 {
        self.0
    }

    /// Both.
    pub const fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }

    /// Self without other's kinds.
    pub const fn minus(self, other: KindSet) -> KindSet {
        KindSet(self.0 & !other.0)
    }

    /// Whether the kind with this bit is in ([`wire`] kinds, or
    /// [`TASK_WORK_IDLE`]).
    pub const fn contains_bit(self, bit: u8) -> bool {
        bit < 32 && self.0 & (1 << bit) != 0
    }

    /// Whether this event is one the set delivers.
    pub fn contains(self, ev: &ProbeEvent) -> bool {
        self.contains_bit(bit_of(ev))
    }

    /// The names in the set, in [`NAMES`] order.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(_, b)| self.contains_bit(*b))
            .map(|(n, _)| *n)
            .collect()
    }

    /// One name's set.
    pub fn from_name(name: &str) -> Result<KindSet, UnknownKind> {
        if name == "all" {
            return Ok(KindSet::all());
        }
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| KindSet(1 << b))
            .ok_or_else(|| UnknownKind { name: name.into() })
    }
}

/// The bit an event falls under.
pub fn bit_of(ev: &ProbeEvent) -> u8 {
    match ev {
        ProbeEvent::TaskWorkRun { count: 0, .. } => TASK_WORK_IDLE,
        ProbeEvent::Create { .. } => wire::KIND_CREATE,
        ProbeEvent::SubmitReq { .. } => wire::KIND_SUBMIT_REQ,
        ProbeEvent::Complete { .. } => wire::KIND_COMPLETE,
        ProbeEvent::Link { .. } => wire::KIND_LINK,
        ProbeEvent::FailLink { .. } => wire::KIND_FAIL_LINK,
        ProbeEvent::ReqFailed { .. } => wire::KIND_REQ_FAILED,
        ProbeEvent::CqeOverflow { .. } => wire::KIND_CQE_OVERFLOW,
        ProbeEvent::ShortWrite { .. } => wire::KIND_SHORT_WRITE,
        ProbeEvent::PollArm { .. } => wire::KIND_POLL_ARM,
        ProbeEvent::QueueAsyncWork { .. } => wire::KIND_QUEUE_ASYNC_WORK,
        ProbeEvent::TaskWorkRun { .. } => wire::KIND_TASK_WORK_RUN,
        ProbeEvent::NewTask { .. } => wire::KIND_NEWTASK,
        ProbeEvent::Ring(_) => RING,
    }
}

impl FromStr for KindSet {
    type Err = UnknownKind;

    /// `"submit_req,complete"`: comma-separated names (spaces around them
    /// are ignored), or `all`.
    fn from_str(s: &str) -> Result<KindSet, UnknownKind> {
        s.split(',')
            .map(str::trim)
            .try_fold(KindSet::none(), |acc, n| {
                Ok(acc.union(KindSet::from_name(n)?))
            })
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KindSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Header, Ptr};

    #[test]
    fn default_is_everything_but_idle_task_work() {
        let d = KindSet::default();
        assert!(!d.contains_bit(TASK_WORK_IDLE));
        assert_eq!(d.names().len(), NAMES.len() - 1);
        assert!(d.contains_bit(wire::KIND_TASK_WORK_RUN));
        assert!(KindSet::all().contains_bit(TASK_WORK_IDLE));
        // Bit 0 is no kind.
        assert_eq!(KindSet::all().mask() & 1, 0);
    }

    #[test]
    fn parse_lists() {
        let s: KindSet = "submit_req, complete".parse().unwrap();
        assert_eq!(s.names(), ["submit_req", "complete"]);
        assert_eq!(s.to_string(), "submit_req,complete");
        assert_eq!("all".parse::<KindSet>().unwrap(), KindSet::all());
        for (n, b) in NAMES {
            let k: KindSet = n.parse().unwrap();
            assert_eq!(k.mask(), 1 << b, "{n}");
        }
        // Round trip through Display.
        let d = KindSet::default();
        assert_eq!(d.to_string().parse::<KindSet>().unwrap(), d);
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let e = "submit,complete".parse::<KindSet>().unwrap_err();
        assert_eq!(e.name, "submit");
        let m = e.to_string();
        assert!(m.starts_with("unknown event kind `submit`; the kinds are: create, submit_req,"));
        assert!(
            m.ends_with("new_task, ring, task_work_run_idle, all"),
            "{m}"
        );
        assert!("".parse::<KindSet>().is_err());
        assert!("complete,".parse::<KindSet>().is_err());
        // Names are the JSON kinds: case matters.
        assert!("Complete".parse::<KindSet>().is_err());
    }

    #[test]
    fn select_events_and_no_events() {
        let p = |s: &str| s.parse::<KindSet>().unwrap();
        assert_eq!(KindSet::select(&[], &[]), KindSet::default());
        assert_eq!(KindSet::select(&[p("complete")], &[]), p("complete"));
        assert_eq!(
            KindSet::select(&[p("complete"), p("link")], &[]),
            p("complete,link")
        );
        let s = KindSet::select(&[], &[p("task_work_run,poll_arm")]);
        assert!(!s.contains_bit(wire::KIND_TASK_WORK_RUN));
        assert!(!s.contains_bit(wire::KIND_POLL_ARM));
        assert!(s.contains_bit(wire::KIND_COMPLETE));
        assert_eq!(KindSet::select(&[p("all")], &[p("all")]), KindSet::none());
        assert_eq!(
            KindSet::select(&[p("all")], &[p("task_work_run_idle")]),
            KindSet::default()
        );
    }

    #[test]
    fn events_fall_under_their_kind() {
        let hdr = Header::default();
        let idle = ProbeEvent::TaskWorkRun {
            hdr,
            tctx: Ptr(1),
            count: 0,
        };
        let busy = ProbeEvent::TaskWorkRun {
            hdr,
            tctx: Ptr(1),
            count: 3,
        };
        assert_eq!(bit_of(&idle), TASK_WORK_IDLE);
        assert!(!KindSet::default().contains(&idle));
        assert!(KindSet::default().contains(&busy));
        let nt = ProbeEvent::NewTask {
            hdr,
            child: 5,
            clone_flags: 0,
        };
        assert_eq!(nt.kind(), "new_task");
        assert!(!"complete".parse::<KindSet>().unwrap().contains(&nt));
    }
}
