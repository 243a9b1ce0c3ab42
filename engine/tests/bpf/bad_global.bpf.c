// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test object: a global variable (the loader refuses it: state goes in maps). */
#include "ringside.h"

__u64 counter;

RS_PROG(bad_global)(const struct rs_ctx *ctx)
{
	counter += ctx->res;
	return RS_NEXT;
}
