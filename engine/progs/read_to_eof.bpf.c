// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * read_to_eof: read a file or stream to its end with one request in flight,
 * accumulating the byte count in a map, and post one completion at EOF.
 *
 * The chain starts with one read of `len` bytes into a registered buffer.
 * Each completion with data issues the next read at off + res into the same
 * buffer region (the program only counts; a real consumer would rotate
 * buffers) and adds res to `read_to_eof_bytes[chain_id]`. At EOF (res == 0)
 * it posts the total with rs_emit and stops the chain. Errors fail it.
 * Meant for notify = "none": the application sees just the one completion.
 */
#include "ringside.h"

RS_MAP(read_to_eof_bytes, RS_MAP_TYPE_HASH, 8, 8, 4096);

RS_PROG(read_to_eof)(const struct rs_ctx *ctx)
{
	__u64 key = ctx->chain_id;
	__s32 res = ctx->res;
	__u64 *total = bpf_map_lookup_elem(&read_to_eof_bytes, &key);
	__u64 sum = total ? *total : 0;

	if (res < 0) {
		bpf_map_delete_elem(&read_to_eof_bytes, &key);
		return RS_FAIL;
	}
	if (res == 0) {
		rs_emit(ctx, ctx->user_data, (__s32)sum, 0);
		rs_set_res(ctx, (__s32)sum);
		bpf_map_delete_elem(&read_to_eof_bytes, &key);
		return RS_STOP;
	}
	sum += res;
	if (total)
		*total = sum;
	else if (bpf_map_update_elem(&read_to_eof_bytes, &key, &sum, RS_ANY) < 0)
		return RS_FAIL;

	struct rs_sqe sqe = {
		.opcode = ctx->opcode,
		.buf_index = ctx->buf_index,
		.fd = ctx->fd,
		.off = ctx->off + res,
		.buf_off = ctx->buf_off,
		.len = ctx->len,
		.user_data = ctx->user_data,
	};
	if (rs_submit(ctx, &sqe, sizeof(sqe), RS_AFTER_CURRENT) < 0) {
		bpf_map_delete_elem(&read_to_eof_bytes, &key);
		return RS_FAIL;
	}
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
