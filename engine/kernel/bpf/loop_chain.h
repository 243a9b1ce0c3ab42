/* SPDX-License-Identifier: GPL-2.0 */
/* Part of loop.bpf.c (included once, there): the chain machinery: steps, posting, causes, conclude, cancel.
 * A header only to keep each file one job; not a library. */
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

/* Whether the next queued chain can start now (rs_start_one starts it):
 * one is queued, no drain chain runs, and the next is not a drain chain
 * waiting for running ones. The loop is busy only while this holds: a drain chain
 * that must wait is not work, and counting it as work made the loop spin
 * inside io_uring_enter, past its deadline, until an earlier chain ended. */
static __always_inline int rs_can_start(struct rs_kmem *mem)
{
	__u32 h = mem->hdr.sub_head;

	if (h == mem->hdr.sub_tail || mem->hdr.barrier)
		return 0;
	__u32 cs = mem->sub[RS_IDX(h, RS_SUB_RING - 1)] & (RS_MAX_CHAINS - 1);
	return !(chain_at(mem, cs)->drain && mem->hdr.running > 0);
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
	if (!rs_can_start(mem))
		return 0;
	h = mem->hdr.sub_head;
	cs = mem->sub[RS_IDX(h, RS_SUB_RING - 1)] & (RS_MAX_CHAINS - 1);
	c = chain_at(mem, cs);
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
