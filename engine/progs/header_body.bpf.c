// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * header_body: length-prefixed messages.
 *
 * The chain starts with a read of a 4-byte little-endian length header into a
 * registered buffer. When the header is complete, the program reads the
 * length from the buffer with rs_read_buf and issues the body read of exactly
 * that many bytes right after the header, into the buffer just past it. Short
 * reads of header or body are resubmitted for the remainder. The chain's
 * final result is the body length. A body longer than the buffer fails the
 * chain (rs_submit returns -EFAULT).
 *
 * Body requests carry the header's user_data with bit 63 set, so the program
 * tells them apart.
 */
#include "ringside.h"

#define BODY_BIT (1ull << 63)
#define HDR_LEN 4

static __always_inline long again(const struct rs_ctx *ctx, __u32 done)
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

RS_PROG(header_body)(const struct rs_ctx *ctx)
{
	__s32 res = ctx->res;

	if (res <= 0)
		return RS_FAIL; /* error, or the stream ended mid-message */
	if ((__u32)res < ctx->len)
		return again(ctx, (__u32)res) < 0 ? RS_FAIL : RS_NEXT;
	if (ctx->user_data & BODY_BIT)
		return RS_NEXT; /* body complete */

	/* Header complete: it ends at buf_off + len; it started HDR_LEN before. */
	__u64 hdr_at = ctx->buf_off + ctx->len - HDR_LEN;
	__u32 body_len = 0;
	if (rs_read_buf(ctx, ctx->buf_index, hdr_at, &body_len, sizeof(body_len)) < 0)
		return RS_FAIL;
	rs_set_res(ctx, (__s32)body_len);
	if (body_len == 0)
		return RS_NEXT;

	struct rs_sqe sqe = {
		.opcode = ctx->opcode,
		.buf_index = ctx->buf_index,
		.fd = ctx->fd,
		.off = ctx->off + res,
		.buf_off = hdr_at + HDR_LEN,
		.len = body_len,
		.user_data = ctx->user_data | BODY_BIT,
	};
	if (rs_submit(ctx, &sqe, sizeof(sqe), RS_AFTER_CURRENT) < 0)
		return RS_FAIL;
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
