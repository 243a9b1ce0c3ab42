// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test program that only runs when loaded as trusted: it reads its context at
 * an offset the completion chooses, which the verifier cannot bound. The
 * interpreter stops it when that offset is outside the context; a recording
 * of it is refused by replay, check and export (programs from a file run
 * only when verified). */
#include "ringside.h"

RS_PROG(unproven)(const struct rs_ctx *ctx)
{
	const unsigned char *p = (const unsigned char *)ctx;

	return p[ctx->len & 0xff] ? RS_NEXT : RS_STOP;
}
