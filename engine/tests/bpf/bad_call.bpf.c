// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test object: a bpf-to-bpf call (the loader refuses it, naming the call). */
#include "ringside.h"

static __attribute__((noinline)) int twice(int x)
{
	return x * 2;
}

RS_PROG(bad_call)(const struct rs_ctx *ctx)
{
	return twice(ctx->res) > 4 ? RS_NEXT : RS_STOP;
}
