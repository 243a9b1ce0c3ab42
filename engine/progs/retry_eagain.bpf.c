// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * retry_eagain: resubmit on -EAGAIN, with backoff, up to N attempts.
 *
 * A request on a non-blocking file or socket that has nothing to give yet
 * completes with -EAGAIN. Instead of failing the chain (a kernel link would),
 * the program issues a timeout of attempt * backoff_ns followed by the same
 * request again, both right after the current step. The resubmitted request
 * has the same opcode and file, so the engine counts it as attempt + 1; after
 * max_attempts the chain fails. The timeout's own completion (-ETIME) is not
 * an error. Other errors fail the chain; anything else goes on.
 *
 * retry_cfg (array map, key 0) is pre-loadable:
 *   { __u32 max_attempts; __u32 op_flags; __u64 backoff_ns; }
 * Zeroes mean 8 attempts and 1 ms. rs_ctx does not carry the request's
 * flags, so the retry uses op_flags from the map: MSG_DONTWAIT (64) for a
 * recv that should keep answering -EAGAIN rather than wait in the kernel.
 */
#include "ringside.h"

#define EAGAIN 11
#define ETIME 62

struct retry_cfg {
	__u32 max_attempts;
	__u32 op_flags;
	__u64 backoff_ns;
};

RS_MAP(retry_cfg, RS_MAP_TYPE_ARRAY, 4, sizeof(struct retry_cfg), 1);

RS_PROG(retry_eagain)(const struct rs_ctx *ctx)
{
	__s32 res = ctx->res;

	if (ctx->opcode == RS_OP_TIMEOUT)
		return (res == -ETIME || res == 0) ? RS_NEXT : RS_FAIL;
	if (res >= 0)
		return RS_NEXT;
	if (res != -EAGAIN)
		return RS_FAIL;

	__u32 zero = 0;
	struct retry_cfg *cfg = bpf_map_lookup_elem(&retry_cfg, &zero);
	__u32 max = 8;
	__u32 op_flags = 0;
	__u64 backoff = 1000000;
	if (cfg) {
		op_flags = cfg->op_flags;
		if (cfg->max_attempts)
			max = cfg->max_attempts;
		if (cfg->backoff_ns)
			backoff = cfg->backoff_ns;
	}
	if (ctx->attempt >= max)
		return RS_FAIL;

	struct rs_sqe again = {
		.opcode = ctx->opcode,
		.buf_index = ctx->buf_index,
		.fd = ctx->fd,
		.off = ctx->off,
		.buf_off = ctx->buf_off,
		.len = ctx->len,
		.op_flags = op_flags,
		.user_data = ctx->user_data,
	};
	if (rs_submit(ctx, &again, sizeof(again), RS_AFTER_CURRENT) < 0)
		return RS_FAIL;
	struct rs_sqe wait = {
		.opcode = RS_OP_TIMEOUT,
		.buf_index = RS_NO_BUF,
		.fd = -1,
		.off = backoff * ctx->attempt,
		.user_data = ctx->user_data,
	};
	/* Placed after the current step too, so it runs before the retry. */
	if (rs_submit(ctx, &wait, sizeof(wait), RS_AFTER_CURRENT) < 0)
		return RS_FAIL;
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
