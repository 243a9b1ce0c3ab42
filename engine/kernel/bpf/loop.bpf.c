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
 * calls of the rs_k_* functions below. Map helpers stay kernel helpers on
 * kernel maps.
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

/* ------------------------------------------------------------------ */
/* Helpers the user's programs call (their calls are rewritten to these) */

static __always_inline void call_rec(struct rs_kscratch *s, __u32 helper, __s64 ret)
{
	if (!s->record)
		return;
	s->call.kind = RS_REC_CALL;
	s->call.helper = helper;
	s->call.seq = s->seq;
	s->call.ret = ret;
	bpf_ringbuf_output(&events, &s->call, sizeof(s->call), 0);
}

static __always_inline int act_room(struct rs_kscratch *s)
{
	if (s->nact >= RS_MAX_ACTIONS) {
		if (!s->klimit)
			s->klimit = RS_KLIM_ACTIONS;
		return 0;
	}
	return 1;
}

static __always_inline void violate(struct rs_kscratch *s, __u32 kind, __u64 limit, __u64 value)
{
	if (s->has_violation)
		return;
	s->has_violation = 1;
	s->vkind = kind;
	s->vlimit = limit;
	s->vvalue = value;
}

static __always_inline int op_allowed(__u8 op)
{
	return op == RS_OP_NOP || op == RS_OP_FSYNC || op == RS_OP_READ_FIXED ||
	       op == RS_OP_WRITE_FIXED || op == RS_OP_TIMEOUT || op == RS_OP_READ ||
	       op == RS_OP_WRITE || op == RS_OP_SEND || op == RS_OP_RECV;
}

static __always_inline int op_needs_file(__u8 op)
{
	return op == RS_OP_FSYNC || op == RS_OP_READ_FIXED || op == RS_OP_WRITE_FIXED ||
	       op == RS_OP_READ || op == RS_OP_WRITE || op == RS_OP_SEND || op == RS_OP_RECV;
}

static __always_inline int op_needs_buffer(__u8 op)
{
	return op == RS_OP_READ_FIXED || op == RS_OP_WRITE_FIXED || op == RS_OP_READ ||
	       op == RS_OP_WRITE || op == RS_OP_SEND || op == RS_OP_RECV;
}

/* rs_submit's checks and bookkeeping, on the template rs_k_submit copied to
 * the scratch map. A global function: checked once, not at every rs_submit
 * call of every program. */
__noinline long rs_submit_tmp(__u64 where)
{
	struct rs_kscratch *s = scr();
	struct rs_ksqe *q;
	__u32 index, attempt, i, n, at;

	if (!s)
		return -EFAULT;
	q = &s->tmp_sqe;
	if (where > RS_DETACHED)
		return -EINVAL;
	if (q->_rsvd)
		return -EINVAL;
	if (!op_allowed(q->opcode))
		return -EPERM;
	if (op_needs_file(q->opcode) && (q->fd < 0 || (__u32)q->fd >= cfg_nfiles))
		return -EPERM;
	if (op_needs_buffer(q->opcode)) {
		if (q->buf_index >= cfg_nbufs || q->buf_index >= RS_MAX_BUFS)
			return -EPERM;
		__u64 size_b = cfg_buf_size[RS_IDX(q->buf_index, RS_MAX_BUFS - 1)];
		__u64 end = q->buf_off + q->len;
		if (end < q->buf_off || end > size_b)
			return -EFAULT;
	} else if (q->buf_index != RS_NO_BUF && q->buf_index >= cfg_nbufs) {
		return -EPERM;
	}
	if (q->len > 0x7fffffff)
		return -EINVAL;
	s->submits++;
	if (s->submits > s->b_submits) {
		violate(s, RS_BUDGET_SUBMITS, s->b_submits, s->submits);
		return -E2BIG;
	}
	if (s->nsteps >= s->b_steps) {
		violate(s, RS_BUDGET_STEPS, s->b_steps, (__u64)s->nsteps + 1);
		return -E2BIG;
	}
	if (where == RS_AFTER_CURRENT && q->opcode == s->opcode && q->fd == s->fd)
		attempt = s->attempt == 255 ? 255 : s->attempt + 1;
	else
		attempt = 1;
	if (attempt > s->b_attempts) {
		violate(s, RS_BUDGET_ATTEMPTS, s->b_attempts, attempt);
		return -E2BIG;
	}
	/* Limits of this backend, beyond the engine's budgets. */
	if (s->win_used >= RS_WIN) {
		if (!s->klimit)
			s->klimit = RS_KLIM_WINDOW;
		return -E2BIG;
	}
	if (!act_room(s))
		return -E2BIG;
	if (where == RS_AFTER_CURRENT) {
		at = s->step + 1;
		for (i = 0; i < RS_WIN; i++) {
			if (i >= s->npending)
				break;
			if (s->pending[i].index >= at)
				s->pending[i].index++;
		}
		/* Later actions of this decision name indexes after the shift. */
		for (i = 0; i < RS_MAX_ACTIONS; i++) {
			if (i >= s->nact)
				break;
			struct rs_kact *a = &s->act[i];
			if ((a->kind == RS_ACT_SUBMIT || a->kind == RS_ACT_DROP ||
			     a->kind == RS_ACT_UNLINK) &&
			    a->index >= at)
				a->index++;
		}
		index = at;
	} else {
		index = s->nsteps;
	}
	s->nsteps++;
	if (where != RS_DETACHED) {
		/* Kept in index order. */
		n = s->npending;
		at = n;
		for (i = 0; i < RS_WIN; i++) {
			if (i >= n)
				break;
			if (s->pending[i].index >= index) {
				at = i;
				break;
			}
		}
		for (i = RS_WIN - 1; i > 0; i--) {
			if (i > at && i <= n)
				s->pending[i] = s->pending[i - 1];
		}
		if (at < RS_WIN) {
			s->pending[at].index = index;
			s->pending[at].unlinked = 0;
			s->pending[at].dropped = 0;
		}
		if (s->npending < RS_WIN)
			s->npending++;
	}
	struct rs_kact *a = &s->act[RS_IDX(s->nact, RS_MAX_ACTIONS - 1)];
	a->kind = RS_ACT_SUBMIT;
	a->place = where;
	a->attempt = attempt;
	a->index = index;
	a->sqe = *q;
	s->nact++;
	s->win_used++;
	return index;
}

static __noinline long rs_k_submit(const void *ctx, const void *sqe, __u64 size, __u64 where)
{
	asm volatile("" ::"r"(ctx), "r"(sqe), "r"(size), "r"(where));
	struct rs_kscratch *s = scr();
	long ret;

	if (!s)
		return -EFAULT;
	/* The template is wherever the program put it: copied as the
	 * userspace engine's AddrSpace::read does, EFAULT if unreadable. */
	if (size != sizeof(struct rs_ksqe))
		ret = -EINVAL;
	else if (bpf_probe_read_kernel(&s->tmp_sqe, sizeof(s->tmp_sqe), sqe))
		ret = -EFAULT;
	else
		ret = rs_submit_tmp(where);
	call_rec(s, 0x1000, ret);
	return ret;
}

static __always_inline long drop_unlink(struct rs_kscratch *s, __u64 step, int drop)
{
	__u32 i;

	for (i = 0; i < RS_WIN; i++) {
		if (i >= s->npending)
			break;
		struct rs_kpend *p = &s->pending[i];
		if ((__u64)p->index != step)
			continue;
		if (drop && p->dropped)
			return -EALREADY;
		if (!act_room(s))
			return -E2BIG;
		struct rs_kact *a = &s->act[RS_IDX(s->nact, RS_MAX_ACTIONS - 1)];
		a->kind = drop ? RS_ACT_DROP : RS_ACT_UNLINK;
		a->index = (__u32)step;
		if (drop)
			p->dropped = 1;
		else
			p->unlinked = 1;
		s->nact++;
		return 0;
	}
	return step >= s->nsteps ? -ENOENT : -EBUSY;
}

static __noinline long rs_k_drop(const void *ctx, __u64 step)
{
	asm volatile("" ::"r"(ctx), "r"(step));
	struct rs_kscratch *s = scr();
	long ret;

	if (!s)
		return -EFAULT;
	ret = drop_unlink(s, step, 1);
	call_rec(s, 0x1001, ret);
	return ret;
}

static __noinline long rs_k_unlink(const void *ctx, __u64 step)
{
	asm volatile("" ::"r"(ctx), "r"(step));
	struct rs_kscratch *s = scr();
	long ret;

	if (!s)
		return -EFAULT;
	ret = drop_unlink(s, step, 0);
	call_rec(s, 0x1002, ret);
	return ret;
}

static __noinline long rs_k_emit(const void *ctx, __u64 user_data, __u64 res, __u64 flags)
{
	asm volatile("" ::"r"(ctx), "r"(user_data), "r"(res), "r"(flags));
	struct rs_kscratch *s = scr();

	if (!s)
		return -EFAULT;
	if (act_room(s)) {
		struct rs_kact *a = &s->act[RS_IDX(s->nact, RS_MAX_ACTIONS - 1)];
		a->kind = RS_ACT_EMIT;
		a->user_data = user_data;
		a->res = (__s32)res;
		a->flags = (__u32)flags;
		s->nact++;
	}
	call_rec(s, 0x1003, 0);
	return 0;
}

static __noinline long rs_k_set_res(const void *ctx, __u64 res)
{
	asm volatile("" ::"r"(ctx), "r"(res));
	struct rs_kscratch *s = scr();

	if (!s)
		return -EFAULT;
	if (act_room(s)) {
		struct rs_kact *a = &s->act[RS_IDX(s->nact, RS_MAX_ACTIONS - 1)];
		a->kind = RS_ACT_SET_RES;
		a->res = (__s32)res;
		s->nact++;
	}
	call_rec(s, 0x1005, 0);
	return 0;
}

static __noinline long rs_k_read_buf(const void *ctx, __u64 buf, __u64 off, void *dst, __u64 len)
{
	asm volatile("" ::"r"(ctx), "r"(buf), "r"(off), "r"(dst), "r"(len));
	struct rs_kscratch *s = scr();
	long ret;
	__u32 n = len;

	if (!s)
		return -EFAULT;
	if (buf >= cfg_nbufs || buf >= RS_MAX_BUFS) {
		ret = -EPERM;
	} else {
		__u64 size = cfg_buf_size[RS_IDX(buf, RS_MAX_BUFS - 1)];
		__u64 end = off + len;
		ret = (end < off || end > size) ? -EFAULT : 0;
	}
	if (ret) {
		/* Zeroes the destination, as the userspace helper does. */
		bpf_probe_read_user(dst, n, (void *)0);
	} else {
		__u64 src = cfg_buf_addr[RS_IDX(buf, RS_MAX_BUFS - 1)] + off;
		ret = bpf_probe_read_user(dst, n, (void *)src);
		if (!ret)
			ret = n;
	}
	call_rec(s, 0x1004, ret);
	if (s->record && ret >= 0) {
		__u32 m = n;
		if (m > sizeof(s->data.bytes))
			m = sizeof(s->data.bytes);
		s->data.kind = RS_REC_DATA;
		s->data.len = m;
		s->data.seq = s->seq;
		bpf_probe_read_kernel(s->data.bytes, m, dst);
		bpf_ringbuf_output(&events, &s->data, 16 + m, 0);
	}
	return ret;
}

static __noinline __u64 rs_k_ktime(void)
{
	struct rs_kscratch *s = scr();
	__u64 ns = bpf_ktime_get_ns();

	if (s)
		call_rec(s, 5, ns);
	return ns;
}

/* bpf_trace_printk: the text is formatted in userspace from the recorded
 * decision (re-execution); in the kernel the call does nothing and returns
 * 0 (docs/kernel-backend.md). */
static __noinline long rs_k_printk(const void *fmt, __u64 size, __u64 a, __u64 b, __u64 c)
{
	rs_sink++;
	return 0;
}

/* Replaced at load time: every call of it becomes a call of the generated
 * dispatcher, which calls the program of slot `prog` and falls back to this
 * function for a slot it does not know. */
static __noinline int rs_dispatch_stub(const struct rs_ctx *ctx, __u32 prog)
{
	asm volatile("" ::"r"(ctx), "r"(prog));
	if (cfg_never) {
		/* Never runs (cfg_never is 0 and frozen, so the verifier skips
		 * it): references that keep the functions the loader links
		 * user programs to, with arguments the compiler cannot know. */
		__u64 o = rs_opaque;
		void *p = (void *)rs_opaque;
		rs_sink = rs_k_submit(ctx, p, o, o) + rs_k_drop(ctx, o) + rs_k_unlink(ctx, o) +
			  rs_k_emit(ctx, o, o, o) + rs_k_read_buf(ctx, o, o, p, o) +
			  rs_k_set_res(ctx, o) + rs_k_ktime() + rs_k_printk(p, o, o, o, o);
	}
	return 0x7fff0000 + rs_bad_prog;
}

/* ------------------------------------------------------------------ */
/* The chain machinery (engine.rs, on the memory region) */

static __always_inline struct rs_kchain *chain_at(struct rs_kmem *mem, __u32 cs)
{
	return &mem->chains[RS_IDX(cs, RS_MAX_CHAINS - 1)];
}

static __always_inline struct rs_kstep *step_at(struct rs_kchain *c, __u32 pos)
{
	return &c->steps[RS_IDX((c->start + pos), RS_WIN - 1)];
}

static __always_inline void ev_begin(struct rs_kscratch *s, __u32 kind, struct rs_kchain *c,
				     __u32 step)
{
	__builtin_memset(&s->ev, 0, sizeof(s->ev));
	s->ev.kind = kind;
	s->ev.chain = c->id;
	s->ev.step = step;
	s->ev.ts = bpf_ktime_get_ns();
}

static __always_inline void post(struct rs_kmem *mem, struct rs_kscratch *s, __u64 chain,
				 __u32 step, __u64 user_data, __s32 res, __u32 flags, __u8 kind)
{
	__u32 t = mem->hdr.comp_tail;

	if (t - mem->hdr.comp_head >= RS_COMP_RING) {
		mem->hdr.error = RS_KERR_COMP;
		return;
	}
	struct rs_kcomp *cp = &mem->comp[RS_IDX(t, RS_COMP_RING - 1)];
	cp->chain = chain;
	cp->user_data = user_data;
	cp->res = res;
	cp->flags = flags;
	cp->step = step;
	cp->kind = kind;
	mem->hdr.comp_tail = t + 1;
	if (s->record) {
		__builtin_memset(&s->ev, 0, sizeof(s->ev));
		s->ev.kind = RS_REC_APP;
		s->ev.chain = chain;
		s->ev.step = step;
		s->ev.ts = bpf_ktime_get_ns();
		s->ev.a = user_data;
		s->ev.b = (__u64)(__s64)res;
		s->ev.c = flags;
		s->ev.d = kind;
		out(mem, &s->ev, sizeof(s->ev));
	}
}

/* Report a cancelled step; with `notify`, post it under notify = all. */
__noinline int rs_cancelled(struct rs_kmem *mem, __u32 cs, __u32 index, __u32 issued,
			    __u32 notify)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	__u64 user_data = 0;

	if (!mem || !s)
		return 0;
	__u8 dropped = 0;

	c = chain_at(mem, cs);
	if (index >= c->base && index - c->base < c->nstored) {
		user_data = step_at(c, index - c->base)->sqe.user_data;
		/* The verdict is the step's own state, as in userspace. */
		dropped = step_at(c, index - c->base)->state == RS_ST_DROPPED;
	}
	if (s->record) {
		ev_begin(s, RS_REC_CANCELLED, c, index);
		s->ev.cause = s->cur_cause;
		s->ev.a = (__u64)(__s64)-ECANCELED;
		s->ev.b = issued;
		s->ev.d = dropped;
		out(mem, &s->ev, sizeof(s->ev));
	}
	if (notify && c->notify == RS_NOTIFY_ALL)
		post(mem, s, c->id, index, user_data, -ECANCELED, 0, RS_APP_CANCELLED);
	return 0;
}

/* The cause of the next rs_cancelled and rs_fail calls. */
static __always_inline void set_cause(struct rs_kscratch *s, struct rs_kcause *cause)
{
	s->cur_cause = *cause;
}

__noinline int rs_finish_if_idle(struct rs_kmem *mem, __u32 cs)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	__u8 outcome;
	__s32 res;

	if (!mem || !s)
		return 0;
	c = chain_at(mem, cs);
	if (c->state == RS_CH_FREE)
		return 0;
	if (c->inflight > 0 || (c->state == RS_CH_RUNNING && !mem->hdr.shut))
		return 0;
	if (c->has_failure)
		outcome = RS_OUT_FAILED;
	else if (c->cancelled)
		outcome = RS_OUT_CANCELLED;
	else if (c->stopped)
		outcome = RS_OUT_STOPPED;
	else
		outcome = RS_OUT_COMPLETED;
	if (c->has_final_res)
		res = c->final_res;
	else if (c->has_failure)
		res = c->fail_res;
	else if (c->cancelled)
		res = -ECANCELED;
	else
		res = c->last_res;
	mem->hdr.chains_finished++;
	if (s->record) {
		ev_begin(s, RS_REC_FINISHED, c, c->fail_step);
		s->ev.a = (__u64)(__s64)res;
		s->ev.b = outcome;
		s->ev.c = c->base + c->nstored;
		s->ev.d = c->stop_decision;
		s->ev.cause = c->fail_cause;
		out(mem, &s->ev, sizeof(s->ev));
	}
	__u32 t = mem->hdr.fin_tail;
	struct rs_kfin *f = &mem->fin[RS_IDX(t, RS_FIN_RING - 1)];
	f->chain = c->id;
	f->slot = cs;
	f->res = res;
	f->outcome = outcome;
	f->fail_step = c->fail_step;
	f->steps = c->base + c->nstored;
	f->stop_decision = c->stop_decision;
	f->cause = c->fail_cause;
	mem->hdr.fin_tail = t + 1;
	if (c->notify != RS_NOTIFY_NONE)
		post(mem, s, c->id, 0xffffffff, c->user_data, res,
		     outcome == RS_OUT_FAILED || outcome == RS_OUT_CANCELLED ? RS_FINAL_FAILED : 0,
		     RS_APP_FINAL);
	if (c->state != RS_CH_QUEUED && mem->hdr.running)
		mem->hdr.running--;
	if (mem->hdr.barrier == cs + 1)
		mem->hdr.barrier = 0;
	c->state = RS_CH_FREE;
	return 0;
}

/* Mark every pending step `to`, reporting each with the staged cause. */
static __always_inline void end_pending(struct rs_kmem *mem, __u32 cs, struct rs_kchain *c, __u8 to,
					__u32 notify)
{
	__u32 p;

	for (p = 0; p < RS_WIN; p++) {
		if (p >= c->nstored)
			break;
		struct rs_kstep *st = step_at(c, p);
		if (st->state != RS_ST_PENDING)
			continue;
		st->state = to;
		rs_cancelled(mem, cs, c->base + p, 0, notify);
	}
}

/* Fail the chain at `step` with the staged cause: cancel every step not
 * yet issued. */
__noinline int rs_fail(struct rs_kmem *mem, __u32 cs, __u32 step, __s32 res)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;

	if (!mem || !s)
		return 0;
	c = chain_at(mem, cs);
	if (!c->has_failure) {
		c->has_failure = 1;
		c->fail_step = step;
		c->fail_res = res;
		c->fail_cause = s->cur_cause;
	}
	c->state = RS_CH_FINISHING;
	end_pending(mem, cs, c, RS_ST_CANCELLED, 1);
	rs_finish_if_idle(mem, cs);
	return 0;
}

/* Put one request in the stage; 0 or -errno. */
__noinline int rs_issue(struct rs_kmem *mem, __u32 cs, __u32 pos, __u32 sqe_flags)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	struct rs_kstep *st;
	__u32 slot, n, gen;
	__u64 ud, *e;

	if (!mem || !s)
		return -EFAULT;
	c = chain_at(mem, cs);
	st = step_at(c, pos);
	n = mem->hdr.nstage;
	if (n >= RS_STAGE) {
		mem->hdr.error = RS_KERR_STAGE;
		return -EBUSY;
	}
	if (mem->hdr.nfree == 0 || mem->hdr.nfree > RS_MAX_SLOTS) {
		mem->hdr.error = RS_KERR_SLOTS;
		return -ENOMEM;
	}
	mem->hdr.nfree--;
	slot = mem->free[RS_IDX(mem->hdr.nfree, RS_MAX_SLOTS - 1)] & (RS_MAX_SLOTS - 1);
	struct rs_kslot *k = &mem->slots[slot];
	gen = k->gen + 1;
	k->gen = gen;
	k->chain = cs;
	k->uid = st->uid;
	k->used = 1;
	ud = ((__u64)gen << 32) | slot;

	/* struct io_uring_sqe, as the userspace engine's Ring::build writes it */
	e = (__u64 *)&mem->stage[RS_IDX(n, RS_STAGE - 1)][0];
	e[0] = e[1] = e[2] = e[3] = e[4] = e[5] = e[6] = e[7] = 0;
	__u8 op = st->sqe.opcode;
	__u8 fl = sqe_flags;
	if (op_needs_file(op))
		fl |= IOSQE_FIXED_FILE;
	__u64 addr = 0;
	if (st->sqe.buf_index < cfg_nbufs && st->sqe.buf_index < RS_MAX_BUFS)
		addr = cfg_buf_addr[RS_IDX(st->sqe.buf_index, RS_MAX_BUFS - 1)] + st->sqe.buf_off;
	__s32 fd = st->sqe.fd < 0 ? 0 : st->sqe.fd;
	__u32 opfl = st->sqe.op_flags;
	__u64 off = st->sqe.off;
	__u32 len = st->sqe.len;
	__u16 bi = 0;
	switch (op) {
	case RS_OP_NOP:
		fd = 0;
		addr = 0;
		len = 0;
		off = 0;
		opfl = 0;
		break;
	case RS_OP_READ_FIXED:
	case RS_OP_WRITE_FIXED:
		bi = st->sqe.buf_index;
		break;
	case RS_OP_READ:
	case RS_OP_WRITE:
		break;
	case RS_OP_RECV:
	case RS_OP_SEND:
		off = 0;
		break;
	case RS_OP_FSYNC:
		addr = 0;
		len = 0;
		off = 0;
		opfl &= 1; /* IORING_FSYNC_DATASYNC */
		break;
	case RS_OP_TIMEOUT: {
		struct rs_ktimespec *ts = &mem->ts[slot];
		ts->tv_sec = off / 1000000000ull;
		ts->tv_nsec = off % 1000000000ull;
		addr = cfg_mem_uaddr + __builtin_offsetof(struct rs_kmem, ts) +
		       slot * sizeof(struct rs_ktimespec);
		fd = 0;
		len = 1;
		off = 0;
		opfl &= 0x7f;
		break;
	}
	default:
		break;
	}
	/* opcode, flags, ioprio, fd | off | addr | len, op flags | user_data | buf_index */
	e[0] = (__u64)op | ((__u64)fl << 8) | ((__u64)(__u32)fd << 32);
	e[1] = off;
	e[2] = addr;
	e[3] = (__u64)len | ((__u64)opfl << 32);
	e[4] = ud;
	e[5] = bi;
	mem->hdr.nstage = n + 1;

	st->state = RS_ST_INFLIGHT;
	c->inflight++;
	mem->hdr.inflight++;
	mem->hdr.submitted++;
	if (s->record) {
		ev_begin(s, RS_REC_SUBMITTED, c, c->base + pos);
		st->submitted_ns = s->ev.ts;
		s->ev.sqe = st->sqe;
		s->ev.a = sqe_flags;
		s->ev.b = ud;
		s->ev.c = st->attempt;
		out(mem, &s->ev, sizeof(s->ev));
	}
	return 0;
}

static __always_inline void fail_submit(struct rs_kmem *mem, struct rs_kscratch *s, __u32 cs,
					__u32 index, int err)
{
	struct rs_kcause cause = {};

	cause.kind = RS_CAUSE_SUBMIT_FAILED;
	cause.value = -err;
	set_cause(s, &cause);
	rs_fail(mem, cs, index, err);
}

/* Position of the next in-order pending step after index `after` (-1: from
 * the start), or -1. */
static __always_inline int next_pending(struct rs_kchain *c, __s64 after)
{
	__u32 p;
	__s64 from = after < 0 ? 0 : after + 1 - (__s64)c->base;

	if (from < 0)
		from = 0;
	for (p = 0; p < RS_WIN; p++) {
		if (p >= c->nstored)
			break;
		if (p < from)
			continue;
		struct rs_kstep *st = step_at(c, p);
		if (!st->detached && st->state == RS_ST_PENDING)
			return p;
	}
	return -1;
}

/* Issue the next in-order step after `after`. */
__noinline int rs_advance(struct rs_kmem *mem, __u32 cs, __s64 after)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	int p, err;

	if (!mem || !s)
		return 0;
	c = chain_at(mem, cs);
	if (c->state != RS_CH_RUNNING || mem->hdr.shut) {
		rs_finish_if_idle(mem, cs);
		return 0;
	}
	p = next_pending(c, after);
	if (p < 0) {
		c->state = RS_CH_FINISHING;
		rs_finish_if_idle(mem, cs);
		return 0;
	}
	err = rs_issue(mem, cs, p, 0);
	if (err)
		fail_submit(mem, s, cs, c->base + p, err);
	return 0;
}

static __always_inline void compact(struct rs_kchain *c)
{
	__u32 i;

	for (i = 0; i < RS_WIN; i++) {
		if (c->nstored <= 1)
			break;
		struct rs_kstep *st = step_at(c, 0);
		if (!(st->state == RS_ST_DONE || st->state == RS_ST_CANCELLED ||
		      st->state == RS_ST_DROPPED))
			break;
		if (!(c->current >= 0 && (__s64)c->base < (__s64)c->current))
			break;
		c->start = (c->start + 1) & (RS_WIN - 1);
		c->nstored--;
		c->base++;
	}
}

/* Insert a step at `index`; returns its position. The helper checked
 * there is room (win_used). */
static __always_inline __u32 insert(struct rs_kchain *c, __u32 index, struct rs_ksqe *sqe,
				    __u8 attempt, __u8 detached)
{
	__u32 pos = index < c->base ? 0 : index - c->base;
	__u32 n = c->nstored, i;

	if (pos > n)
		pos = n;
	if (n >= RS_WIN)
		return RS_WIN; /* cannot happen: the helper refused */
	for (i = RS_WIN - 1; i > 0; i--) {
		if (i > pos && i <= n)
			*step_at(c, i) = *step_at(c, i - 1);
	}
	struct rs_kstep *st = step_at(c, pos);
	__builtin_memset(st, 0, sizeof(*st));
	st->sqe = *sqe;
	st->uid = c->next_uid++;
	st->attempt = attempt;
	st->detached = detached;
	st->state = RS_ST_PENDING;
	c->nstored = n + 1;
	return pos;
}

static __always_inline int pos_of_index(struct rs_kchain *c, __u32 index)
{
	if (index < c->base || index - c->base >= c->nstored)
		return -1;
	return index - c->base;
}

/* One decision on the completed step at `pos`; returns 1 when the chain
 * goes on. */
/* Apply action `i` of a decision, as Engine::apply does (a global function
 * for the same reason: rs_apply's loop checks one call, not every action's
 * every path). */
__noinline int rs_apply_one(struct rs_kmem *mem, __u32 cs, __u32 i, __u64 seq)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;

	if (!mem || !s)
		return 0;
	c = chain_at(mem, cs);
	{
		struct rs_kact *a = &s->act[RS_IDX(i, RS_MAX_ACTIONS - 1)];
		int p;
		switch (a->kind) {
		case RS_ACT_SUBMIT: {
			__u8 det = a->place == RS_DETACHED;
			__u32 np = insert(c, a->index, &a->sqe, a->attempt, det);
			if (np >= RS_WIN)
				break;
			if (s->record) {
				ev_begin(s, RS_REC_STEP_ADDED, c, c->base + np);
				s->ev.sqe = a->sqe;
				s->ev.a = a->place;
				s->ev.b = a->attempt;
				s->ev.c = seq;
				out(mem, &s->ev, sizeof(s->ev));
			}
			if (det) {
				int err = rs_issue(mem, cs, np, 0);
				if (err) {
					struct rs_kcause cause = {};
					step_at(c, np)->state = RS_ST_CANCELLED;
					cause.kind = RS_CAUSE_SUBMIT_FAILED;
					cause.value = -err;
					set_cause(s, &cause);
					rs_cancelled(mem, cs, c->base + np, 0, 1);
				}
			}
			break;
		}
		case RS_ACT_DROP:
			p = pos_of_index(c, a->index);
			if (p >= 0 && step_at(c, p)->state == RS_ST_PENDING) {
				struct rs_kcause cause = {};
				step_at(c, p)->state = RS_ST_DROPPED;
				cause.kind = RS_CAUSE_DROPPED;
				cause.decision = seq;
				set_cause(s, &cause);
				rs_cancelled(mem, cs, a->index, 0, 1);
			}
			break;
		case RS_ACT_UNLINK:
			p = pos_of_index(c, a->index);
			if (p >= 0) {
				step_at(c, p)->unlinked = 1;
				if (s->record) {
					ev_begin(s, RS_REC_UNLINKED, c, a->index);
					s->ev.a = seq;
					out(mem, &s->ev, sizeof(s->ev));
				}
			}
			break;
		case RS_ACT_EMIT:
			post(mem, s, c->id, 0xffffffff, a->user_data, a->res, a->flags,
			     RS_APP_EMIT);
			break;
		case RS_ACT_SET_RES:
			c->has_final_res = 1;
			c->final_res = a->res;
			break;
		}
	}
	return 0;
}

/* Apply a decision's actions in order. */
__noinline int rs_apply(struct rs_kmem *mem, __u32 cs, __u64 seq)
{
	struct rs_kscratch *s = scr();
	__u32 i, n;

	if (!mem || !s)
		return 0;
	n = s->nact;
	for (i = 0; i < RS_MAX_ACTIONS; i++) {
		if (i >= n)
			break;
		rs_apply_one(mem, cs, i, seq);
	}
	return 0;
}

/* The first half of a decision: the context, the view, the record of its
 * inputs. Returns the program's slot + 1, or 0 when it has none (a
 * kernel-backend limit, concluded by rs_decide_post). */
__noinline int rs_decide_pre(struct rs_kmem *mem)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	struct rs_kstep *st;
	__u32 index, i, prog, cs, pos, cqe_flags;
	__s32 res;
	__u64 seq, t0 = 0;

	if (!mem || !s)
		return 0;
	cs = s->pd_cs;
	pos = s->pd_pos;
	res = s->pd_res;
	cqe_flags = s->pd_flags;
	c = chain_at(mem, cs);
	st = step_at(c, pos);
	prog = st->prog ? st->prog : c->prog ? c->prog : mem->hdr.ring_prog;
	index = c->base + pos;

	/* The context, as Engine::context builds it. */
	s->ctx.user_data = st->sqe.user_data;
	s->ctx.res = res;
	s->ctx.cqe_flags = cqe_flags;
	s->ctx.chain_id = c->id;
	s->ctx.step = index;
	s->ctx.nsteps = c->base + c->nstored;
	s->ctx.opcode = st->sqe.opcode;
	s->ctx.attempt = st->attempt;
	s->ctx.ctx_flags = next_pending(c, index) < 0 ? RS_CTX_LAST_STEP : 0;
	s->ctx.fd = st->sqe.fd;
	s->ctx.off = st->sqe.off;
	s->ctx.len = st->sqe.len;
	s->ctx.buf_index = st->sqe.buf_index;
	s->ctx._pad = 0;
	s->ctx.buf_off = st->sqe.buf_off;

	/* The view, as Chain::view_into builds it. */
	s->step = index;
	s->nsteps = c->base + c->nstored;
	s->opcode = st->sqe.opcode;
	s->fd = st->sqe.fd;
	s->attempt = st->attempt;
	s->npending = 0;
	for (i = 0; i < RS_WIN; i++) {
		if (i >= c->nstored)
			break;
		struct rs_kstep *q = step_at(c, i);
		if (q->state != RS_ST_PENDING || q->detached)
			continue;
		struct rs_kpend *p = &s->pending[RS_IDX(s->npending, RS_WIN - 1)];
		p->index = c->base + i;
		p->unlinked = q->unlinked;
		p->dropped = 0;
		s->npending++;
	}
	s->win_used = c->nstored;
	s->nact = 0;
	s->submits = 0;
	s->klimit = 0;
	s->has_violation = 0;
	s->b_submits = mem->hdr.submits_per_decision;
	s->b_steps = mem->hdr.steps_per_chain;
	s->b_attempts = mem->hdr.attempts_per_step;
	seq = mem->hdr.decisions++;
	s->seq = seq;
	s->record = mem->hdr.record;
	if (s->record) {
		struct rs_kdec *d = &s->dec;
		d->kind = RS_REC_DECISION;
		d->prog = prog ? prog - 1 : 0;
		d->seq = seq;
		d->chain = c->id;
		__builtin_memcpy(d->ctx, &s->ctx, 64);
		d->step = index;
		d->nsteps = s->nsteps;
		d->opcode = s->opcode;
		d->attempt = s->attempt;
		d->npending = s->npending;
		d->fd = s->fd;
		__builtin_memcpy(d->pending, s->pending, sizeof(d->pending));
		out(mem, d, sizeof(*d));
		t0 = bpf_ktime_get_ns();
	}

	s->pd_seq = seq;
	s->pd_t0 = t0;
	if (prog == 0 || prog > RS_MAX_PROGS) {
		s->klimit = RS_KLIM_PROG;
		return 0;
	}
	return prog;
}

static __always_inline int rs_conclude(struct rs_kmem *mem, struct rs_kscratch *s,
				       struct rs_kchain *c, __u32 cs, __u32 pos, __u32 index,
				       __u64 seq, __u64 t0, __u64 ret);

/* The second half: the result, its record, the actions, the conclusion, and
 * what rs_on_cqe does after a decision. */
__noinline int rs_decide_post(struct rs_kmem *mem, __u64 ret)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	__u32 index, pos, cs, result = 0;
	__u64 seq, t0;
	int go_on;

	if (!mem || !s)
		return 0;
	cs = s->pd_cs;
	pos = s->pd_pos;
	seq = s->pd_seq;
	t0 = s->pd_t0;
	c = chain_at(mem, cs);
	index = c->base + pos;
	ret = (__u32)ret;
	go_on = rs_conclude(mem, s, c, cs, pos, index, seq, t0, ret);
	if (mem->hdr.ctl & RS_CTL_PAUSE_EACH)
		mem->hdr.pause = 1;
	if (go_on)
		rs_advance(mem, cs, index);
	if (c->state != RS_CH_FREE)
		compact(c);
	return 0;
}

static __always_inline int rs_conclude(struct rs_kmem *mem, struct rs_kscratch *s,
				       struct rs_kchain *c, __u32 cs, __u32 pos, __u32 index,
				       __u64 seq, __u64 t0, __u64 ret)
{
	__u32 result = 0;

	/* The program may have reused the view: nothing of it below. */
	if (s->klimit)
		result = 3;
	else if (s->has_violation)
		result = 2;
	else if (ret > RS_FAIL)
		result = 1;
	if (s->record) {
		struct rs_kdecided *d = &s->decided;
		d->kind = RS_REC_DECIDED;
		d->result = result;
		d->seq = seq;
		d->ret = ret;
		d->duration_ns = bpf_ktime_get_ns() - t0;
		d->vkind = result == 3 ? s->klimit : s->vkind;
		d->limit = s->vlimit;
		d->value = s->vvalue;
		mem->hdr.decision_ns += d->duration_ns;
		out(mem, d, sizeof(*d));
	}

	if (result == 0)
		rs_apply(mem, cs, seq);

	/* Conclude, as Engine::conclude does. */
	struct rs_kcause cause = {};
	cause.decision = seq;
	cause.step = index;
	if (result == 0 && ret == RS_NEXT)
		return 1;
	if (result == 0 && ret == RS_STOP) {
		c->stopped = 1;
		c->stop_decision = seq;
		c->state = RS_CH_FINISHING;
		cause.kind = RS_CAUSE_PROGRAM_STOP;
		set_cause(s, &cause);
		end_pending(mem, cs, c, RS_ST_DROPPED, 0);
		rs_finish_if_idle(mem, cs);
		return 0;
	}
	if (result == 0) {
		cause.kind = RS_CAUSE_PROGRAM_FAIL;
		set_cause(s, &cause);
		rs_fail(mem, cs, index, step_at(c, pos)->res);
	} else if (result == 1) {
		cause.kind = RS_CAUSE_BAD_RETURN;
		cause.value = ret;
		set_cause(s, &cause);
		rs_fail(mem, cs, index, -EINVAL);
	} else if (result == 2) {
		cause.kind = RS_CAUSE_BUDGET;
		cause.vkind = s->vkind;
		cause.limit = s->vlimit;
		cause.value = s->vvalue;
		set_cause(s, &cause);
		rs_fail(mem, cs, index, -E2BIG);
	} else {
		cause.kind = RS_CAUSE_KLIMIT;
		cause.vkind = s->klimit;
		set_cause(s, &cause);
		rs_fail(mem, cs, index, -E2BIG);
	}
	return 0;
}

static __always_inline int short_is_failure(__u8 op)
{
	return op == RS_OP_READ_FIXED || op == RS_OP_WRITE_FIXED || op == RS_OP_READ ||
	       op == RS_OP_WRITE || op == 1 || op == 2;
}

/* One completion, as Engine::on_cqe handles it. */
__noinline int rs_on_cqe(struct rs_kmem *mem, __u64 ud, __s32 res, __u32 cqe_flags)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	struct rs_kstep *st;
	__u32 slot, cs, uid, pos, index, p;
	int found = -1;

	if (!mem || !s)
		return 0;
	s->record = mem->hdr.record;
	if (ud == RS_UD_CANCEL) {
		if (mem->hdr.cancels)
			mem->hdr.cancels--;
		return 0;
	}
	if ((ud & 0xffffffff00000000ull) == RS_UD_TIMER) {
		if (mem->hdr.timers)
			mem->hdr.timers--;
		if ((__u32)ud == mem->hdr.timer_gen)
			mem->hdr.timer_armed = 0;
		return 0;
	}
	slot = ud & 0xffffffff;
	if (slot >= RS_MAX_SLOTS)
		return 0;
	struct rs_kslot *k = &mem->slots[slot];
	if (!k->used || k->gen != (__u32)(ud >> 32))
		return 0;
	k->used = 0;
	cs = k->chain;
	uid = k->uid;
	if (mem->hdr.nfree < RS_MAX_SLOTS) {
		mem->free[RS_IDX(mem->hdr.nfree, RS_MAX_SLOTS - 1)] = slot;
		mem->hdr.nfree++;
	}
	if (mem->hdr.inflight)
		mem->hdr.inflight--;
	mem->hdr.completed++;
	c = chain_at(mem, cs);
	if (c->state == RS_CH_FREE)
		return 0;
	for (p = 0; p < RS_WIN; p++) {
		if (p >= c->nstored)
			break;
		if (step_at(c, p)->uid == uid) {
			found = p;
			break;
		}
	}
	if (found < 0)
		return 0;
	pos = found;
	st = step_at(c, pos);
	if (c->inflight)
		c->inflight--;
	index = c->base + pos;
	__u8 op = st->sqe.opcode;
	__u32 len = st->sqe.len;
	__u8 detached = st->detached, unlinked = st->unlinked;
	__u64 sud = st->sqe.user_data;

	int link_cancel = c->driver == RS_DRV_KERNEL && c->has_failure;
	if (res == -ECANCELED && (link_cancel || mem->hdr.shut)) {
		struct rs_kcause cause = {};
		st->state = RS_ST_CANCELLED;
		st->res = res;
		if (link_cancel) {
			cause.kind = RS_CAUSE_KERNEL_LINK;
			cause.step = c->fail_step;
		} else {
			cause.kind = RS_CAUSE_SHUTDOWN;
		}
		if (c->inflight == 0 && c->state == RS_CH_RUNNING)
			c->state = RS_CH_FINISHING;
		set_cause(s, &cause);
		rs_cancelled(mem, cs, index, 1, 1);
		rs_finish_if_idle(mem, cs);
		return 0;
	}
	st->state = RS_ST_DONE;
	st->res = res;
	if (!detached) {
		c->last_res = res;
		if (c->current < 0 || (__s64)index > (__s64)c->current)
			c->current = index;
	}
	if (s->record) {
		ev_begin(s, RS_REC_COMPLETED, c, index);
		s->ev.a = (__u64)(__s64)res;
		s->ev.b = cqe_flags;
		s->ev.c = s->ev.ts > st->submitted_ns ? s->ev.ts - st->submitted_ns : 0;
		/* The short verdict, as the userspace engine gives it. */
		s->ev.d = res >= 0 && short_is_failure(op) && (__u32)res < len;
		out(mem, &s->ev, sizeof(s->ev));
	}
	if (c->notify == RS_NOTIFY_ALL)
		post(mem, s, c->id, index, sud, res, cqe_flags, RS_APP_STEP);
	int link_failure = res < 0 || (short_is_failure(op) && (__u32)res < len);

	if (c->driver != RS_DRV_ENGINE) {
		if (c->driver == RS_DRV_KERNEL && link_failure && !c->has_failure) {
			c->has_failure = 1;
			c->fail_step = index;
			c->fail_res = res;
			__builtin_memset(&c->fail_cause, 0, sizeof(c->fail_cause));
			c->fail_cause.kind = RS_CAUSE_KERNEL_LINK;
			c->fail_cause.step = index;
		}
		if (c->inflight == 0)
			c->state = RS_CH_FINISHING;
		rs_finish_if_idle(mem, cs);
		return 0;
	}
	if (detached || c->state != RS_CH_RUNNING || mem->hdr.shut) {
		rs_finish_if_idle(mem, cs);
		return 0;
	}
	int go_on;
	__u32 prog = st->prog ? st->prog : c->prog ? c->prog : mem->hdr.ring_prog;
	if (prog) {
		/* rs_loop_step runs the decision (rs_decide_pre, the program,
		 * rs_decide_post, which goes on as below). */
		s->pd_cs = cs;
		s->pd_pos = pos;
		s->pd_res = res;
		s->pd_flags = cqe_flags;
		return 1;
	}
	if (link_failure && !unlinked) {
		struct rs_kcause cause = {};
		cause.kind = RS_CAUSE_LINK_FAILED;
		cause.step = index;
		set_cause(s, &cause);
		rs_fail(mem, cs, index, res);
		go_on = 0;
	} else {
		go_on = 1;
	}
	if (go_on)
		rs_advance(mem, cs, index);
	if (c->state != RS_CH_FREE)
		compact(c);
	return 0;
}

/* Start one queued chain, honouring drain; returns 1 when one started. */
__noinline int rs_start_one(struct rs_kmem *mem)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	__u32 h, cs, p, n;

	if (!mem || !s)
		return 0;
	s->record = mem->hdr.record;
	h = mem->hdr.sub_head;
	if (h == mem->hdr.sub_tail || mem->hdr.barrier)
		return 0;
	cs = mem->sub[RS_IDX(h, RS_SUB_RING - 1)] & (RS_MAX_CHAINS - 1);
	c = chain_at(mem, cs);
	if (c->drain && mem->hdr.running > 0)
		return 0;
	mem->hdr.sub_head = h + 1;
	if (c->drain)
		mem->hdr.barrier = cs + 1;
	mem->hdr.running++;
	c->state = RS_CH_RUNNING;
	if (s->record) {
		ev_begin(s, RS_REC_STARTED, c, 0);
		out(mem, &s->ev, sizeof(s->ev));
	}
	if (c->driver == RS_DRV_ENGINE) {
		rs_advance(mem, cs, -1);
		return 1;
	}
	n = c->nstored;
	for (p = 0; p < RS_WIN; p++) {
		if (p >= n)
			break;
		__u32 fl = 0;
		if (p + 1 < n)
			fl = c->driver == RS_DRV_KERNEL_HARD ? IOSQE_IO_HARDLINK : IOSQE_IO_LINK;
		int err = rs_issue(mem, cs, p, fl);
		if (err) {
			fail_submit(mem, s, cs, p, err);
			break;
		}
	}
	return 1;
}

/* Shutdown: cancel what never started and what is pending. */
__noinline int rs_cancel_chain(struct rs_kmem *mem, __u32 cs)
{
	struct rs_kscratch *s = scr();
	struct rs_kchain *c;
	struct rs_kcause cause = {};

	if (!mem || !s)
		return 0;
	c = chain_at(mem, cs);
	if (c->state == RS_CH_FREE)
		return 0;
	if (!c->has_failure && !c->stopped)
		c->cancelled = 1;
	if (c->state != RS_CH_QUEUED)
		c->state = RS_CH_FINISHING;
	cause.kind = RS_CAUSE_SHUTDOWN;
	set_cause(s, &cause);
	end_pending(mem, cs, c, RS_ST_CANCELLED, 1);
	rs_finish_if_idle(mem, cs);
	return 0;
}

__noinline int rs_shutdown(struct rs_kmem *mem)
{
	struct rs_kscratch *s = scr();
	__u32 i, h, t, live = 0;

	if (!mem || !s)
		return 0;
	s->record = mem->hdr.record;
	mem->hdr.shut = 1;
	for (i = 0; i < RS_MAX_CHAINS; i++)
		if (mem->chains[i].state != RS_CH_FREE)
			live++;
	if (s->record) {
		__builtin_memset(&s->ev, 0, sizeof(s->ev));
		s->ev.kind = RS_REC_SHUTDOWN;
		s->ev.ts = bpf_ktime_get_ns();
		s->ev.a = live;
		s->ev.b = mem->hdr.inflight;
		out(mem, &s->ev, sizeof(s->ev));
	}
	h = mem->hdr.sub_head;
	t = mem->hdr.sub_tail;
	for (i = 0; i < RS_SUB_RING; i++) {
		if (h + i == t)
			break;
		rs_cancel_chain(mem, mem->sub[RS_IDX((h + i), RS_SUB_RING - 1)] & (RS_MAX_CHAINS - 1));
	}
	mem->hdr.sub_head = t;
	for (i = 0; i < RS_MAX_CHAINS; i++)
		rs_cancel_chain(mem, i);
	return 0;
}

/* Stage a request of the loop's own (cancel, timer). */
static __always_inline void stage_own(struct rs_kmem *mem, __u8 op, __u64 addr, __u32 len,
				      __u32 opfl, __u64 ud)
{
	__u32 n = mem->hdr.nstage;
	__u64 *e;

	if (n >= RS_STAGE)
		return;
	e = (__u64 *)&mem->stage[RS_IDX(n, RS_STAGE - 1)][0];
	e[0] = (__u64)op | ((op == IORING_OP_ASYNC_CANCEL ? 0xffffffffull : 0) << 32);
	e[1] = 0;
	e[2] = addr;
	e[3] = (__u64)len | ((__u64)opfl << 32);
	e[4] = ud;
	e[5] = e[6] = e[7] = 0;
	mem->hdr.nstage = n + 1;
}

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
		   (!mem->hdr.shut && mem->hdr.sub_head != mem->hdr.sub_tail && !mem->hdr.barrier) ||
		   ((mem->hdr.ctl & RS_CTL_SHUTDOWN) && !mem->hdr.shut);
	int stop = 0;
	if (mem->hdr.pause || mem->hdr.error) {
		mem->hdr.pause = 0;
		stop = 1;
	} else if (mem->hdr.comp_tail - mem->hdr.comp_head > RS_COMP_RING - 256 ||
		   mem->hdr.fin_tail - mem->hdr.fin_head > RS_FIN_RING - 8 ||
		   bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (1 << 21)) {
		stop = 1; /* let userspace read */
	} else if (!busy && mem->hdr.nstage == 0) {
		__u32 idle = mem->hdr.inflight == 0 && mem->hdr.cancels == 0 &&
			     (!mem->hdr.shut || mem->hdr.timers == 0);
		if (idle || !(mem->hdr.ctl & RS_CTL_WAIT))
			stop = 1;
		else if (mem->hdr.deadline_ns) {
			__u64 now = bpf_ktime_get_ns();
			if (now >= mem->hdr.deadline_ns) {
				stop = 1;
			} else if (!mem->hdr.timer_armed) {
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
