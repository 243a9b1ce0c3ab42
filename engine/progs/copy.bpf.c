// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * copy: read -> write, passing the read's result as the write's length.
 *
 * The chain starts with a read from the source file (registered index
 * copy_cfg.fd_in) into the start of a registered buffer (buf_off 0, len
 * copy_cfg.chunk). On each read completion with
 * data, the program issues a write of exactly `res` bytes (not the `len` the
 * read asked for) to copy_cfg.fd_out at the same offset, linked right after
 * the read. On each write completion it issues the next read at off + res,
 * until a read returns 0 (end of file): the chain then stops successfully.
 * A short write is resubmitted for its remainder. Errors fail the chain.
 *
 * copy_cfg (array map, key 0) is pre-loaded by the application:
 *   { __u32 fd_in; __u32 fd_out; __u32 chunk; __u32 _pad; }
 */
#include "ringside.h"

struct copy_cfg {
	__u32 fd_in;
	__u32 fd_out;
	__u32 chunk;
	__u32 _pad;
};

RS_MAP(copy_cfg, RS_MAP_TYPE_ARRAY, 4, sizeof(struct copy_cfg), 1);

RS_PROG(copy)(const struct rs_ctx *ctx)
{
	__u32 zero = 0;
	struct copy_cfg *cfg = bpf_map_lookup_elem(&copy_cfg, &zero);
	__s32 res = ctx->res;

	if (!cfg || res < 0)
		return RS_FAIL;

	struct rs_sqe sqe = {
		.buf_index = ctx->buf_index,
		.buf_off = ctx->buf_off,
		.user_data = ctx->user_data,
	};
	if (ctx->opcode == RS_OP_READ || ctx->opcode == RS_OP_READ_FIXED) {
		if (res == 0)
			return RS_STOP; /* end of file: copied everything */
		sqe.opcode = ctx->opcode == RS_OP_READ ? RS_OP_WRITE : RS_OP_WRITE_FIXED;
		sqe.fd = cfg->fd_out;
		sqe.off = ctx->off;
		sqe.len = (__u32)res;
	} else if ((__u32)res < ctx->len) {
		/* short write: the remainder */
		sqe.opcode = ctx->opcode;
		sqe.fd = ctx->fd;
		sqe.off = ctx->off + res;
		sqe.buf_off = ctx->buf_off + res;
		sqe.len = ctx->len - res;
	} else {
		sqe.opcode = ctx->opcode == RS_OP_WRITE ? RS_OP_READ : RS_OP_READ_FIXED;
		sqe.fd = cfg->fd_in;
		/* the write ended a chunk that started at buf_off of the read */
		sqe.off = ctx->off + res;
		sqe.buf_off = 0;
		sqe.len = cfg->chunk;
	}
	if (rs_submit(ctx, &sqe, sizeof(sqe), RS_AFTER_CURRENT) < 0)
		return RS_FAIL;
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
