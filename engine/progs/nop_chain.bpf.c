// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * nop_chain: the upstream kernel's BPF loop benchmark as a ringside program.
 *
 * The chain starts with one NOP whose user_data is the chain's length N.
 * Each completion appends the next NOP until the chain has N steps: a
 * program decides every step, as in the kernel's 100M-NOP measurement of its
 * io_uring BPF loop. `ringside bench engine` runs it.
 */
#include "ringside.h"

RS_PROG(nop_chain)(const struct rs_ctx *ctx)
{
	if (ctx->res < 0)
		return RS_FAIL;
	if ((__u64)ctx->step + 1 >= ctx->user_data)
		return RS_STOP;
	struct rs_sqe next = {
		.opcode = RS_OP_NOP,
		.buf_index = RS_NO_BUF,
		.fd = -1,
		.user_data = ctx->user_data,
	};
	/* At the end (not "after current"): a new step, not a resubmission. */
	if (rs_submit(ctx, &next, sizeof(next), RS_AT_END) < 0)
		return RS_FAIL;
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
