// SPDX-License-Identifier: GPL-2.0
/*
 * ringside kernel probes: io_uring tracepoints -> one BPF ring buffer.
 *
 * Built with `clang -O2 -target bpf` (see Makefile); the .o is committed so
 * the Rust workspace builds without clang.
 *
 * Why offsets come from a config array and not from constants: the layout of
 * tracepoint records changes between kernels. The loader (src/format.rs)
 * parses /sys/kernel/tracing/events/io_uring/<tp>/format at load time, checks
 * each field's size, and writes the offsets into `rs_cfg` (.rodata). The map
 * is frozen before the programs load, so the verifier sees them as constants
 * and every field read below becomes a fixed-offset load.
 *
 * Why the filter comes first: an untraced process must pay as little as
 * possible, so the first thing every program does is one hash lookup of the
 * current tgid. Nothing is copied before it matches.
 *
 * Why the traced process never waits: bpf_ringbuf_reserve() fails instead of
 * blocking when the buffer is full; the event is counted in the per-CPU
 * `rs_lost` counter and dropped. Wakeups are batched (BPF_RB_NO_WAKEUP below a
 * fill level) so the producer does not pay an irq_work per event.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Legacy map definitions: the object is built without -g (reproducible
 * bytes), so there is no BTF to describe `.maps` style definitions. aya reads
 * this layout from the "maps" section. */
struct rs_map_def {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
};

/* Event kinds: keep in sync with src/event.rs (wire::KIND_*). */
#define RS_CREATE 1
#define RS_SUBMIT_REQ 2
#define RS_COMPLETE 3
#define RS_LINK 4
#define RS_FAIL_LINK 5
#define RS_REQ_FAILED 6
#define RS_CQE_OVERFLOW 7
#define RS_SHORT_WRITE 8
#define RS_POLL_ARM 9
#define RS_QUEUE_ASYNC_WORK 10
#define RS_TASK_WORK_RUN 11
#define RS_NEWTASK 12
#define RS_NKINDS 13
#define RS_NFIELDS 10
/* Counter slot and kind-mask bit of a task_work_run with count 0 (the
 * SQPOLL thread's idle loop fires it all the time): not a wire kind. */
#define RS_TASK_WORK_IDLE 13
#define RS_NSLOTS 16

/* Records are copied into a stack buffer of RS_BUF + 8 bytes; the loader
 * refuses formats whose fields we use lie beyond RS_BUF. Offsets are masked
 * with RS_BUF - 1 so that even a wrong config can't read past the buffer. */
#define RS_BUF 128

/* cfg.flags */
#define RS_CFG_RING_FILTER 1u  /* only events whose ctx is in rs_rings */
#define RS_CFG_FOLLOW_RINGS 2u /* also events from other tasks on rs_rings */
#define RS_CFG_FOLLOW_FORKS 4u /* add new child processes to rs_tgids */
#define RS_CFG_FLOOR 8u        /* benchmark: return at once, emit nothing */

struct rs_cfg {
	/* off[kind][slot]: byte offset of a field inside the tracepoint
	 * record; 0 = the field does not exist on this kernel (offset 0 is the
	 * common header, never one of ours). Slot meanings: src/format.rs. */
	__u8 off[RS_NKINDS][RS_NFIELDS];
	/* size[kind][slot]: the field's size on this kernel (1, 2, 4, 8):
	 * widths change between kernels (flags: u32 on 6.1, u64 later), the
	 * value is zero-extended into its event slot. */
	__u8 size[RS_NKINDS][RS_NFIELDS];
	/* bytes of the record to copy (max off+size used by this kind). */
	__u8 len[RS_NKINDS];
	__u8 _pad[3]; /* explicit: absent is 4-byte aligned at 276 */
	/* absent[kind]: optional event fields this kernel's record lacks
	 * (wire::absent in src/event.rs); copied into every event. */
	__u32 absent[RS_NKINDS];
	__u32 flags;
	/* wake the consumer only when this many bytes are waiting */
	__u32 wakeup_bytes;
	/* kinds emitted: bit k for kind k, bit RS_TASK_WORK_IDLE for
	 * task_work_run with count 0. Every kind is counted either way. */
	__u32 kinds;
};

/* Zero here; the loader overrides it (aya EbpfLoader::override_global). */
const volatile struct rs_cfg rs_cfg = {};

/* The wire event: 80 bytes, little endian; decoded by src/event.rs. */
struct rs_event {
	__u64 ts_ns;     /*  0 bpf_ktime_get_ns() */
	__u64 ctx;       /*  8 ring ctx (task ctx for task_work_run) */
	__u64 req;       /* 16 request pointer */
	__u64 user_data; /* 24 */
	__u64 a;         /* 32 kind-specific */
	__u64 b;         /* 40 kind-specific */
	__u32 tgid;      /* 48 */
	__u32 tid;       /* 52 */
	__s32 res;       /* 56 */
	__u32 c;         /* 60 kind-specific */
	__u32 d;         /* 64 kind-specific */
	__u16 cpu;       /* 68 */
	__u8 kind;       /* 70 */
	__u8 opcode;     /* 71 */
	__u32 absent;    /* 72 rs_cfg.absent[kind] */
	__u32 _rsvd;     /* 76 zero */
};

struct rs_map_def SEC("maps") rs_events = {
	.type = BPF_MAP_TYPE_RINGBUF,
	.max_entries = 16 << 20, /* overridden by the loader */
};

/* Traced tgids (threads, io-wq and SQPOLL workers share their tgid). */
struct rs_map_def SEC("maps") rs_tgids = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u8),
	.max_entries = 4096,
};

/* Ring ctx pointers: the ring filter, or the rings followed when a
 * completion is posted from another task (kworker on ring exit, MSG_RING). */
struct rs_map_def SEC("maps") rs_rings = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u64),
	.value_size = sizeof(__u8),
	.max_entries = 4096,
};

/* [0] events dropped because the ring buffer was full. */
struct rs_map_def SEC("maps") rs_lost = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

/* Counts of one ring (key: struct rs_ring_key below; ctx 0 for events
 * that are not about a ring: task_work_run, new_task), per CPU, taken
 * where every event passes: after the tgid and ring filters, before the
 * kind mask and the ring buffer. Userspace sums the CPUs
 * (Probes::counters). Keep in sync with src/counters.rs. */
struct rs_counts {
	__u64 n[RS_NSLOTS]; /* by kind; n[RS_TASK_WORK_IDLE]: count-0 task_work_run */
	__u64 lost;         /* of those, dropped: the ring buffer was full */
	__u64 finished;     /* completions that end a request (req set, no CQE_F_MORE) */
	/* RS_SETUP_KNOWN | submitter tgid << 32 | io_ring_ctx.flags (the
	 * IORING_SETUP_* flags), read from the ring itself at this CPU's
	 * first submit once rs_ctx_off is set; 0 until then. The one way to
	 * learn the flags of a ring created before the probes attached. */
	__u64 setup;
};

#define RS_SETUP_KNOWN (1ull << 63)

/* [0]: offset of `flags` in the kernel's struct io_ring_ctx plus one (0:
 * not known yet). Userspace finds it in the kernel's BTF, in the
 * background, after the programs are attached: it is looked up only
 * while a ring's `setup` is still 0. */
struct rs_map_def SEC("maps") rs_ctx_off = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 1,
};

/* What rs_counts is keyed by: a ring is its ctx pointer and its
 * generation, because the kernel hands a freed ring's address to the next
 * ring it creates, and the new ring's counts must not add to the old one's.
 * Keep in sync with src/counters.rs. */
struct rs_ring_key {
	__u64 ctx; /* 0: not about a ring (task_work_run, new_task) */
	__u32 gen; /* 0: created before attach; n: the n-th create at ctx since */
	__u32 _pad;
};

/* Rings created since attach, by ctx: the generation of the ring now at
 * that address (how many creates it saw). Written only by create events;
 * a ring no create named (it is older than the session) has no entry and
 * is generation 0. */
struct rs_map_def SEC("maps") rs_gen = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u64),
	.value_size = sizeof(__u32),
	.max_entries = 16384,
};

struct rs_map_def SEC("maps") rs_counts = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(struct rs_ring_key),
	.value_size = sizeof(struct rs_counts),
	.max_entries = 4096,
};

/* Ctx of the key (generation 0) that takes the counts of rings beyond the
 * map's capacity (never a kernel pointer); userspace inserts it before
 * attaching. */
#define RS_OTHER_RINGS 0xffffffffffffffffull

/* A field of the raw tracepoint record at the offset and with the size
 * userspace found in its format file (offset 0: the field does not exist),
 * zero-extended. Format fields are naturally aligned (userspace checks): a
 * typed load. rs_cfg is frozen, so the verifier knows off and size and
 * keeps only the one load each call site needs. */
static __always_inline __u64 rd(const __u8 *buf, int kind, int slot)
{
	__u32 off = rs_cfg.off[kind][slot];
	if (!off)
		return 0;
	off &= RS_BUF - 1;
	switch (rs_cfg.size[kind][slot]) {
	case 1:
		return *(const __u8 *)(buf + off);
	case 2:
		return *(const __u16 *)(buf + off);
	case 4:
		return *(const __u32 *)(buf + off);
	default:
		return *(const __u64 *)(buf + off);
	}
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&rs_lost, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline struct rs_counts *counts_of(struct rs_ring_key *key)
{
	struct rs_counts *c = bpf_map_lookup_elem(&rs_counts, key);
	if (c)
		return c;
	struct rs_counts zero;
	__builtin_memset(&zero, 0, sizeof(zero));
	bpf_map_update_elem(&rs_counts, key, &zero, BPF_NOEXIST);
	c = bpf_map_lookup_elem(&rs_counts, key);
	if (c)
		return c;
	key->ctx = RS_OTHER_RINGS; /* the map is full */
	key->gen = 0;
	return bpf_map_lookup_elem(&rs_counts, key);
}

/* The generation of the ring at ctx; a create starts the next one. A
 * create that finds rs_gen full stays generation 0 (it is counted with a
 * ring older than the session that had the same address, if one did). */
static __always_inline __u32 gen_of(__u64 ctx, int create)
{
	__u32 *g = bpf_map_lookup_elem(&rs_gen, &ctx);
	if (!create)
		return g ? *g : 0;
	__u32 next = g ? *g + 1 : 1;
	if (bpf_map_update_elem(&rs_gen, &ctx, &next, BPF_ANY))
		return 0;
	return next;
}

static __always_inline int emit(void *tp, const int kind)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	/* 8-byte aligned so the fixed-offset loads below are aligned. */
	__u8 buf[RS_BUF + 8] __attribute__((aligned(8)));
	__u32 len = rs_cfg.len[kind];

	/* Measures what the tracepoint machinery costs by itself. rs_cfg is
	 * frozen, so the verifier drops this branch when the flag is clear. */
	if (rs_cfg.flags & RS_CFG_FLOOR)
		return 0;
	if (!bpf_map_lookup_elem(&rs_tgids, &tgid)) {
		/* Another task. Completions of a traced ring can be posted by
		 * a kworker (ring teardown, fallback work) or by a sender
		 * (MSG_RING): follow them by ring, but only for the kinds
		 * that can happen there. */
		if (!(rs_cfg.flags & RS_CFG_FOLLOW_RINGS))
			return 0;
		if (kind != RS_COMPLETE && kind != RS_FAIL_LINK && kind != RS_CQE_OVERFLOW &&
		    kind != RS_REQ_FAILED)
			return 0;
		__u32 off = rs_cfg.off[kind][0];
		__u64 ring = 0;
		if (!off)
			return 0;
		bpf_probe_read_kernel(&ring, sizeof(ring), (__u8 *)tp + off);
		if (!bpf_map_lookup_elem(&rs_rings, &ring))
			return 0;
	}

	if (len > RS_BUF)
		len = RS_BUF;
	__builtin_memset(buf, 0, sizeof(buf));
	if (bpf_probe_read_kernel(buf, len, tp))
		return 0;

	__u64 ring = rd(buf, kind, 0);
	if ((rs_cfg.flags & RS_CFG_RING_FILTER) && kind != RS_TASK_WORK_RUN && kind != RS_CREATE) {
		if (!bpf_map_lookup_elem(&rs_rings, &ring))
			return 0;
	}

	/* Count it, enabled or not: the counters say what happened, the
	 * mask only what is delivered. */
	int slot = kind;
	struct rs_ring_key key = {.ctx = ring, .gen = 0, ._pad = 0};
	if (kind == RS_CREATE)
		key.ctx = rd(buf, kind, 1);
	if (kind == RS_TASK_WORK_RUN) {
		key.ctx = 0; /* a task ctx, not a ring */
		if (rd(buf, kind, 1) == 0)
			slot = RS_TASK_WORK_IDLE;
	}
	if (key.ctx)
		key.gen = gen_of(key.ctx, kind == RS_CREATE);
	__u32 gen = key.gen;
	/* Per-CPU values: no atomics needed. */
	struct rs_counts *cnt = counts_of(&key);
	if (cnt) {
		cnt->n[slot & (RS_NSLOTS - 1)] += 1;
		if (kind == RS_COMPLETE && rd(buf, kind, 1) != 0 &&
		    !(rd(buf, kind, 4) & 2 /* IORING_CQE_F_MORE */))
			cnt->finished += 1;
		if (kind == RS_SUBMIT_REQ && !cnt->setup) {
			__u32 zero = 0;
			__u32 *off = bpf_map_lookup_elem(&rs_ctx_off, &zero);
			__u32 flags = 0;
			if (off && *off && *off <= 4096 &&
			    !bpf_probe_read_kernel(&flags, sizeof(flags),
						   (__u8 *)(unsigned long)ring + *off - 1))
				cnt->setup = RS_SETUP_KNOWN | (__u64)tgid << 32 | flags;
		}
	}
	if (!(rs_cfg.kinds & (1u << slot)))
		return 0;

	struct rs_event *e = bpf_ringbuf_reserve(&rs_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		if (cnt)
			cnt->lost += 1;
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = tgid;
	e->tid = (__u32)pid_tgid;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	e->opcode = 0;
	e->req = 0;
	e->user_data = 0;
	e->a = 0;
	e->b = 0;
	e->res = 0;
	e->c = 0;
	e->d = 0;
	e->absent = rs_cfg.absent[kind];
	e->_rsvd = 0;
	e->ctx = ring;

	switch (kind) {
	case RS_CREATE: /* fd, ctx, sq_entries, cq_entries, flags; b: generation */
		e->ctx = rd(buf, kind, 1);
		e->res = (__s32)rd(buf, kind, 0);
		e->c = rd(buf, kind, 2);
		e->d = rd(buf, kind, 3);
		e->a = rd(buf, kind, 4);
		e->b = gen;
		break;
	case RS_SUBMIT_REQ: /* ctx, req, user_data, opcode, flags, sq_thread */
		e->req = rd(buf, kind, 1);
		e->user_data = rd(buf, kind, 2);
		e->opcode = rd(buf, kind, 3);
		e->a = rd(buf, kind, 4);
		e->c = rd(buf, kind, 5);
		break;
	case RS_COMPLETE: /* ctx, req, user_data, res, cflags, extra1, extra2 */
		e->req = rd(buf, kind, 1);
		e->user_data = rd(buf, kind, 2);
		e->res = (__s32)rd(buf, kind, 3);
		e->c = rd(buf, kind, 4);
		e->a = rd(buf, kind, 5);
		e->b = rd(buf, kind, 6);
		break;
	case RS_LINK: /* ctx, req, target_req */
		e->req = rd(buf, kind, 1);
		e->a = rd(buf, kind, 2);
		break;
	case RS_FAIL_LINK: /* ctx, req, user_data, opcode, link */
		e->req = rd(buf, kind, 1);
		e->user_data = rd(buf, kind, 2);
		e->opcode = rd(buf, kind, 3);
		e->a = rd(buf, kind, 4);
		break;
	case RS_REQ_FAILED: /* ctx, req, user_data, opcode, flags, off, len, error, addr, buf_index */
		e->req = rd(buf, kind, 1);
		e->user_data = rd(buf, kind, 2);
		e->opcode = rd(buf, kind, 3);
		e->c = (__u32)rd(buf, kind, 4) | ((__u32)rd(buf, kind, 9) << 16);
		e->a = rd(buf, kind, 5);
		e->d = rd(buf, kind, 6);
		e->res = (__s32)rd(buf, kind, 7);
		e->b = rd(buf, kind, 8);
		break;
	case RS_CQE_OVERFLOW: /* ctx, -, user_data, res, cflags, ocqe */
		e->user_data = rd(buf, kind, 2);
		e->res = (__s32)rd(buf, kind, 3);
		e->c = rd(buf, kind, 4);
		e->a = rd(buf, kind, 5);
		break;
	case RS_SHORT_WRITE: /* ctx, fpos, wanted, got (got travels in user_data) */
		e->a = rd(buf, kind, 1);
		e->b = rd(buf, kind, 2);
		e->user_data = rd(buf, kind, 3);
		break;
	case RS_POLL_ARM: /* ctx, req, user_data, opcode, mask, events */
		e->req = rd(buf, kind, 1);
		e->user_data = rd(buf, kind, 2);
		e->opcode = rd(buf, kind, 3);
		e->c = rd(buf, kind, 4);
		e->d = rd(buf, kind, 5);
		break;
	case RS_QUEUE_ASYNC_WORK: /* ctx, req, user_data, opcode, flags, work, rw */
		e->req = rd(buf, kind, 1);
		e->user_data = rd(buf, kind, 2);
		e->opcode = rd(buf, kind, 3);
		e->a = rd(buf, kind, 4);
		e->b = rd(buf, kind, 5);
		e->c = rd(buf, kind, 6);
		break;
	case RS_TASK_WORK_RUN: /* tctx, count */
		e->c = rd(buf, kind, 1);
		break;
	}

	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&rs_events, BPF_RB_AVAIL_DATA) >= rs_cfg.wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	return 0;
}

#define RS_TP(name, kind)                                                          \
	SEC("tracepoint/io_uring/io_uring_" #name)                                 \
	int rs_##name(void *tp)                                                    \
	{                                                                          \
		return emit(tp, kind);                                             \
	}

RS_TP(create, RS_CREATE)
RS_TP(submit_req, RS_SUBMIT_REQ)
RS_TP(complete, RS_COMPLETE)
RS_TP(link, RS_LINK)
RS_TP(fail_link, RS_FAIL_LINK)
RS_TP(req_failed, RS_REQ_FAILED)
RS_TP(cqe_overflow, RS_CQE_OVERFLOW)
RS_TP(short_write, RS_SHORT_WRITE)
RS_TP(poll_arm, RS_POLL_ARM)
RS_TP(queue_async_work, RS_QUEUE_ASYNC_WORK)
RS_TP(task_work_run, RS_TASK_WORK_RUN)

/* A traced process forked: trace the child too (not new threads: they share
 * the tgid already). Attached only with follow_forks. The event tells
 * userspace that the set of traced tgids grew. */
SEC("tracepoint/task/task_newtask")
int rs_newtask(void *tp)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u8 buf[RS_BUF + 8] __attribute__((aligned(8)));
	const int kind = RS_NEWTASK;
	__u32 len = rs_cfg.len[kind];

	if (!(rs_cfg.flags & RS_CFG_FOLLOW_FORKS))
		return 0;
	if (!bpf_map_lookup_elem(&rs_tgids, &tgid))
		return 0;
	if (len > RS_BUF)
		len = RS_BUF;
	__builtin_memset(buf, 0, sizeof(buf));
	if (bpf_probe_read_kernel(buf, len, tp))
		return 0;
	__u64 clone_flags = rd(buf, kind, 1);
	if (clone_flags & 0x00010000 /* CLONE_THREAD */)
		return 0;
	__u32 child = rd(buf, kind, 0);
	__u8 one = 1;
	bpf_map_update_elem(&rs_tgids, &child, &one, BPF_ANY);

	/* Emitted whatever the kind mask says: userspace learns the traced
	 * set from it (and leaves it out of its output when masked). */
	struct rs_ring_key key = {.ctx = 0, .gen = 0, ._pad = 0};
	struct rs_counts *cnt = counts_of(&key);
	if (cnt)
		cnt->n[kind] += 1;
	struct rs_event *e = bpf_ringbuf_reserve(&rs_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		if (cnt)
			cnt->lost += 1;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = tgid;
	e->tid = (__u32)pid_tgid;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	e->c = child;
	e->a = clone_flags;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
