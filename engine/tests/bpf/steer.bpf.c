// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test program: what it does depends on the completed step's user_data.
 *   1: drop the next step          2: unlink the next step
 *   3: issue a detached nop and post a completion (user_data 77, res 5)
 *   4: (a bpf step) stop the chain if the previous result was 0, else go on
 *   5: insert a nop at the end (user_data 6), then one right after (user_data 7)
 *   else: go on */
#include "ringside.h"

RS_PROG(steer)(const struct rs_ctx *ctx)
{
	struct rs_sqe nop = { .opcode = RS_OP_NOP, .buf_index = RS_NO_BUF, .fd = -1, .user_data = 77 };

	switch (ctx->user_data) {
	case 1:
		return rs_drop(ctx, ctx->step + 1) == 0 ? RS_NEXT : RS_FAIL;
	case 2:
		return rs_unlink(ctx, ctx->step + 1) == 0 ? RS_NEXT : RS_FAIL;
	case 3:
		if (rs_submit(ctx, &nop, sizeof(nop), RS_DETACHED) < 0)
			return RS_FAIL;
		rs_emit(ctx, 77, 5, 0);
		return RS_NEXT;
	case 4:
		if (ctx->opcode != RS_OP_BPF)
			return RS_FAIL;
		return ctx->res == 0 ? RS_STOP : RS_NEXT;
	case 5:
		nop.user_data = 6;
		if (rs_submit(ctx, &nop, sizeof(nop), RS_AT_END) < 0)
			return RS_FAIL;
		nop.user_data = 7;
		if (rs_submit(ctx, &nop, sizeof(nop), RS_AFTER_CURRENT) < 0)
			return RS_FAIL;
		return RS_NEXT;
	}
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
