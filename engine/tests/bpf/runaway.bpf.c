// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test program: never stops issuing work. user_data selects how:
 *   0: resubmit the same NOP right after itself, forever (attempts budget)
 *   1: append a NOP at the end, forever (steps budget)
 *   2: submit 20 NOPs in one decision (submissions-per-completion budget) */
#include "ringside.h"

RS_PROG(runaway)(const struct rs_ctx *ctx)
{
	struct rs_sqe nop = {
		.opcode = RS_OP_NOP,
		.buf_index = RS_NO_BUF,
		.fd = -1,
		.user_data = ctx->user_data,
	};

	if (ctx->user_data == 2) {
#pragma unroll
		for (int i = 0; i < 20; i++)
			rs_submit(ctx, &nop, sizeof(nop), RS_AT_END);
		return RS_NEXT;
	}
	rs_submit(ctx, &nop, sizeof(nop), ctx->user_data == 1 ? RS_AT_END : RS_AFTER_CURRENT);
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
