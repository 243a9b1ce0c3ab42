// SPDX-License-Identifier: GPL-2.0
/*
 * ringside's kernel loop: the engine's chain semantics as an io_uring
 * loop_step program (struct io_uring_bpf_ops, Linux 7.1+).
 *
 * io_uring_enter runs loop_step over and over. Each step handles one
 * completion (or starts one queued chain): it maps the CQE to its chain and
 * step, builds the same struct rs_ctx the userspace engine builds, runs the
 * chain's program and applies its decision as engine.rs does: next, stop,
 * fail, the actions helpers asked for, budgets, notification policy, drain.
 * Requests go out through the SQ ring and bpf_io_uring_submit_sqes; the
 * application's completions and finished chains go to the memory region it
 * registered (struct rs_kmem, rs_kernel.h); with hdr.record set, every event
 * and each decision's inputs go to the `events` ring buffer.
 *
 * The user's programs are not in this object: the engine's kernel backend
 * (engine/src/kernel/link.rs) appends them to the loaded program as BPF
 * subprograms behind a dispatcher that replaces the calls of
 * rs_dispatch_stub, and turns their helper calls 0x1000-0x1005, 5 and 6 into
 * calls of the rs_k_* functions (loop_helpers.h). Map helpers stay kernel
 * helpers on kernel maps.
 *
 * Frames are small on purpose: the kernel gives all frames of a call chain
 * 512 bytes, and the user's program needs most of them.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "ringside.h"
#include "rs_kernel.h"
#include "iou.h"

/* An index masked in a way the compiler keeps: clang drops a mask it can
 * prove redundant (after a range check on a value it loads again), and the
 * verifier then sees an unbounded offset. */
/* Each function a user program's helper call is linked to keeps every
 * parameter (an empty asm reads them): clang removes a static function's
 * unused parameters, which would move the others to other registers than
 * the helper ABI's r1-r5. rs_k_printk and rs_k_ktime use none: removing
 * all of them moves nothing. */
#define RS_IDX(v, m)                                          \
	({                                                    \
		__u64 __v = (v);                              \
		asm volatile("%0 &= %1" : "+r"(__v) : "i"(m)); \
		__v;                                          \
	})

#define EPERM 1
#define ENOENT 2
#define EINTR 4
#define EIO 5
#define E2BIG 7
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EINVAL 22
#define ECANCELED 125
#define EALREADY 114

/* io_uring SQE flags and opcodes the loop writes itself */
#define IOSQE_FIXED_FILE 1
#define IOSQE_IO_LINK 4
#define IOSQE_IO_HARDLINK 8
#define IORING_OP_ASYNC_CANCEL 14
#define IORING_ASYNC_CANCEL_ANY 4

/* Set by the loader before load (frozen .rodata: the verifier reads them
 * as constants). */
const volatile __u32 cfg_sq_mask = 0;
const volatile __u32 cfg_cq_mask = 0;
const volatile __u32 cfg_sq_tail_off = 0;
const volatile __u32 cfg_cq_head_off = 0;
const volatile __u32 cfg_cq_tail_off = 0;
const volatile __u32 cfg_cqes_off = 0;
const volatile __u64 cfg_rings_size = 4096;
const volatile __u64 cfg_sqes_size = 4096;
const volatile __u64 cfg_mem_uaddr = 0;
const volatile __u32 cfg_nfiles = 0;
const volatile __u32 cfg_nbufs = 0;
const volatile __u64 cfg_buf_addr[RS_MAX_BUFS] = {};
const volatile __u64 cfg_buf_size[RS_MAX_BUFS] = {};
/* Always 0: keeps the rs_k_* functions in the object (see the stub). */
const volatile __u32 cfg_never = 0;

struct rs_kact {
	__u8 kind;
	__u8 place;
	__u8 attempt;
	__u8 _pad;
	__u32 index;
	struct rs_ksqe sqe;
	__u64 user_data;
	__s32 res;
	__u32 flags;
}; /* 64 */

/* One decision's working state: the context the program reads, the chain
 * view and actions the helpers work on (decision.rs's Env), records. */
struct rs_kscratch {
	struct rs_ctx ctx;
	__u64 seq;
	__u32 record;
	__u32 step;
	__u32 nsteps;
	__u8 opcode;
	__u8 attempt;
	__u16 npending;
	__s32 fd;
	__u32 win_used;
	__u32 nact;
	__u32 submits;
	__u32 klimit;
	__u32 has_violation;
	__u32 vkind;
	__u32 b_submits;
	__u32 b_steps;
	__u32 b_attempts;
	__u64 vlimit;
	__u64 vvalue;
	struct rs_kpend pending[RS_WIN];
	struct rs_kact act[RS_MAX_ACTIONS];
	struct rs_ksqe tmp_sqe;
	struct rs_kcause cur_cause; /* the cause rs_cancelled and rs_fail report */
	struct rs_kev ev;
	struct rs_kcall call;
	struct rs_kdata data;
	struct rs_kdec dec;
	struct rs_kdecided decided;
	/* The decision rs_on_cqe found due: rs_loop_step runs it (a program
	 * runs from the loop's own frame, so that as much of the 512 bytes of
	 * stack as possible is left to it). */
	__u32 pd_cs;
	__u32 pd_pos;
	__s32 pd_res;
	__u32 pd_flags;
	__u32 pd_prog;
	__u32 pd_result;
	__u64 pd_seq;
	__u64 pd_t0;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rs_kscratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Read by the dispatcher's default case; never written. */
__u32 rs_bad_prog = 0;
/* Opaque to the compiler (mutable globals), so that it neither
 * specialises the rs_k_* functions for the stub's arguments nor drops
 * them: they must stay generic, the user's programs call them. */
__u64 rs_opaque = 0;
__u64 rs_sink = 0;

static __always_inline struct rs_kscratch *scr(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline void out(struct rs_kmem *mem, void *rec, __u64 size)
{
	if (bpf_ringbuf_output(&events, rec, size, 0))
		mem->hdr.lost++;
}

#include "loop_helpers.h"
#include "loop_chain.h"

SEC("ringside_loop")
int BPF_PROG(rs_loop_step, struct iou_ctx *uctx, struct iou_loop_params *lp)
{
	struct rs_kmem *mem;
	__u8 *rings, *sq;
	__u32 head, tail, n, i, sqt;

	mem = (struct rs_kmem *)bpf_io_uring_get_region(uctx, IOU_REGION_MEM, sizeof(struct rs_kmem));
	rings = bpf_io_uring_get_region(uctx, IOU_REGION_CQ, cfg_rings_size);
	sq = bpf_io_uring_get_region(uctx, IOU_REGION_SQ, cfg_sqes_size);
	if (!mem)
		return IOU_LOOP_STOP;
	if (!rings || !sq) {
		mem->hdr.error = RS_KERR_REGION;
		return IOU_LOOP_STOP;
	}
	mem->hdr.loop_steps++;
	if (mem->hdr.error)
		return IOU_LOOP_STOP;

	volatile __u32 *cq_head = (__u32 *)(rings + (cfg_cq_head_off & 0xfffc));
	volatile __u32 *cq_tail = (__u32 *)(rings + (cfg_cq_tail_off & 0xfffc));
	volatile __u32 *sq_tail = (__u32 *)(rings + (cfg_sq_tail_off & 0xfffc));
	if ((cfg_cq_head_off & 0xfffc) + 4 > cfg_rings_size ||
	    (cfg_cq_tail_off & 0xfffc) + 4 > cfg_rings_size ||
	    (cfg_sq_tail_off & 0xfffc) + 4 > cfg_rings_size) {
		mem->hdr.error = RS_KERR_REGION;
		return IOU_LOOP_STOP;
	}

	mem->hdr.nstage = 0;
	head = *cq_head;
	tail = *cq_tail;
	if ((mem->hdr.ctl & RS_CTL_SHUTDOWN) && !mem->hdr.shut) {
		rs_shutdown(mem);
	} else if (head != tail) {
		__u64 off = cfg_cqes_off + (__u64)(head & cfg_cq_mask) * 16;
		if (off + 16 > cfg_rings_size) {
			mem->hdr.error = RS_KERR_REGION;
			return IOU_LOOP_STOP;
		}
		__u64 ud = *(__u64 *)(rings + off);
		__s32 res = *(__s32 *)(rings + off + 8);
		__u32 fl = *(__u32 *)(rings + off + 12);
		*cq_head = head + 1;
		if (rs_on_cqe(mem, ud, res, fl) == 1) {
			struct rs_kscratch *s = scr();
			__u32 slot = rs_decide_pre(mem);
			__u64 ret = 0;

			if (slot && s)
				ret = (__u32)rs_dispatch_stub(&s->ctx, slot - 1);
			rs_decide_post(mem, ret);
		}
	} else if (!mem->hdr.shut) {
		rs_start_one(mem);
	}
	if (mem->hdr.shut && mem->hdr.inflight > 0 && mem->hdr.cancels == 0) {
		stage_own(mem, IORING_OP_ASYNC_CANCEL, 0, 0, IORING_ASYNC_CANCEL_ANY, RS_UD_CANCEL);
		mem->hdr.cancels++;
	}

	/* Nothing more to do now: wait, or give the thread back. */
	__u32 nt = *cq_tail;
	int busy = nt != *cq_head ||
		   (!mem->hdr.shut && rs_can_start(mem)) ||
		   ((mem->hdr.ctl & RS_CTL_SHUTDOWN) && !mem->hdr.shut);
	int stop = 0;
	if (mem->hdr.pause || mem->hdr.error) {
		mem->hdr.pause = 0;
		stop = 1;
	} else if (mem->hdr.comp_tail - mem->hdr.comp_head > RS_COMP_RING - 256 ||
		   mem->hdr.fin_tail - mem->hdr.fin_head > RS_FIN_RING - 8 ||
		   bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (1 << 21)) {
		stop = 1; /* let userspace read */
	} else if (!busy) {
		/* About to wait for a completion (what was staged is submitted
		 * first, below). Not when nothing is in flight or staged, nor
		 * when userspace did not ask to wait; and a wait has its deadline
		 * armed even in a step that also issues requests: a chain that
		 * blocks (a read of an empty pipe) is often just issued. */
		__u32 idle = mem->hdr.inflight == 0 && mem->hdr.cancels == 0 &&
			     (!mem->hdr.shut || mem->hdr.timers == 0) && mem->hdr.nstage == 0;
		if (idle || !(mem->hdr.ctl & RS_CTL_WAIT))
			stop = 1;
		else if ((mem->hdr.ctl & RS_CTL_WAIT_ONE) &&
			 (mem->hdr.comp_tail != mem->hdr.comp_head ||
			  mem->hdr.fin_tail != mem->hdr.fin_head))
			stop = 1; /* Engine::run: the application has something */
		else if (mem->hdr.deadline_ns) {
			__u64 now = bpf_ktime_get_ns();
			if (now >= mem->hdr.deadline_ns) {
				stop = 1;
			} else if (!mem->hdr.timer_armed && mem->hdr.nstage < RS_STAGE) {
				__u64 d = mem->hdr.deadline_ns - now;
				mem->timer_ts.tv_sec = d / 1000000000ull;
				mem->timer_ts.tv_nsec = d % 1000000000ull;
				mem->hdr.timer_gen++;
				mem->hdr.timer_armed = 1;
				mem->hdr.timers++;
				stage_own(mem, RS_OP_TIMEOUT,
					  cfg_mem_uaddr + __builtin_offsetof(struct rs_kmem, timer_ts), 1,
					  0, RS_UD_TIMER | mem->hdr.timer_gen);
			}
		}
	}

	/* Copy what was staged into the SQ ring and submit it. */
	n = mem->hdr.nstage;
	if (n > RS_STAGE)
		n = RS_STAGE;
	sqt = *sq_tail;
	for (i = 0; i < RS_STAGE; i++) {
		if (i >= n)
			break;
		__u64 at = (__u64)((sqt + i) & cfg_sq_mask) * 64;
		if (at + 64 > cfg_sqes_size)
			break;
		__u64 *d = (__u64 *)(sq + at);
		__u64 *src = (__u64 *)&mem->stage[RS_IDX(i, RS_STAGE - 1)][0];
		d[0] = src[0];
		d[1] = src[1];
		d[2] = src[2];
		d[3] = src[3];
		d[4] = src[4];
		d[5] = src[5];
		d[6] = src[6];
		d[7] = src[7];
	}
	if (n) {
		*sq_tail = sqt + n;
		int r = bpf_io_uring_submit_sqes(uctx, n);
		if (r != (int)n) {
			mem->hdr.error = RS_KERR_SUBMIT;
			mem->hdr.err_arg = r;
			return IOU_LOOP_STOP;
		}
	}
	mem->hdr.nstage = 0;
	if (stop)
		return IOU_LOOP_STOP;
	/* Wait for one more completion only when there is nothing else to do. */
	lp->cq_wait_idx = busy ? nt : nt + 1;
	return IOU_LOOP_CONTINUE;
}

SEC(".struct_ops.link")
struct io_uring_bpf_ops ringside_ops = {
	.loop_step = (void *)rs_loop_step,
};

char LICENSE[] SEC("license") = "GPL";
