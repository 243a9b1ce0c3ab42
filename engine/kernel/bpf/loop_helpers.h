/* SPDX-License-Identifier: GPL-2.0 */
/* Part of loop.bpf.c (included once, there): the rs_k_* helpers the user's programs call and the dispatcher stub.
 * A header only to keep each file one job; not a library. */
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
