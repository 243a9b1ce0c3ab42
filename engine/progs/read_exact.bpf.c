// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * read_exact: a short read is not an error.
 *
 * A kernel link fails the chain on a short read and cancels what follows.
 * Under read_exact, a read (or recv, or write) that moved fewer bytes than
 * asked is resubmitted for the remainder, linked right after the current
 * step, until the whole length has moved; then the chain goes on. The total
 * bytes of the chain are kept per chain in `read_exact_bytes` and reported as
 * the chain's final result.
 *
 *   res <  0, -EAGAIN/-EINTR : resubmit the same request
 *   res <  0, other          : fail the chain
 *   res == 0 with len > 0    : end of file before the length: fail (-ENODATA)
 *   0 < res < len            : resubmit the remainder (off, buf_off += res)
 *   res == len               : next step
 */
#include "ringside.h"

#define EAGAIN 11
#define EINTR 4
#define ENODATA 61

RS_MAP(read_exact_bytes, RS_MAP_TYPE_HASH, 8, 8, 4096);

static __always_inline void account(const struct rs_ctx *ctx, __s32 res, int done)
{
	__u64 key = ctx->chain_id;
	__u64 *total = bpf_map_lookup_elem(&read_exact_bytes, &key);
	__u64 sum = res > 0 ? (__u64)res : 0;

	if (total)
		sum += *total;
	if (done) {
		rs_set_res(ctx, (__s32)sum);
		bpf_map_delete_elem(&read_exact_bytes, &key);
	} else if (total) {
		*total = sum;
	} else {
		bpf_map_update_elem(&read_exact_bytes, &key, &sum, RS_ANY);
	}
}

static __always_inline void forget(const struct rs_ctx *ctx)
{
	__u64 key = ctx->chain_id;
	bpf_map_delete_elem(&read_exact_bytes, &key);
}

static __always_inline long resubmit(const struct rs_ctx *ctx, __u32 done)
{
	struct rs_sqe sqe = {
		.opcode = ctx->opcode,
		.buf_index = ctx->buf_index,
		.fd = ctx->fd,
		.off = ctx->off + done,
		.buf_off = ctx->buf_off + done,
		.len = ctx->len - done,
		.user_data = ctx->user_data,
	};
	return rs_submit(ctx, &sqe, sizeof(sqe), RS_AFTER_CURRENT);
}

RS_PROG(read_exact)(const struct rs_ctx *ctx)
{
	__s32 res = ctx->res;

	if (res < 0) {
		if ((res == -EAGAIN || res == -EINTR) && resubmit(ctx, 0) >= 0)
			return RS_NEXT;
		forget(ctx);
		return RS_FAIL;
	}
	if ((__u32)res < ctx->len) {
		if (res == 0) {
			forget(ctx);
			rs_set_res(ctx, -ENODATA);
			return RS_FAIL;
		}
		if (resubmit(ctx, (__u32)res) < 0) {
			forget(ctx);
			return RS_FAIL;
		}
		account(ctx, res, 0);
		return RS_NEXT;
	}
	account(ctx, res, ctx->ctx_flags & RS_CTX_LAST_STEP);
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
