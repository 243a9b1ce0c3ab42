// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test object: three maps of 256 MiB of values each, each within the limit
 * of one map, together over the limit of one object (512 MiB). */
#include "ringside.h"

RS_MAP(big0, RS_MAP_TYPE_ARRAY, 4, 256, 1 << 20);
RS_MAP(big1, RS_MAP_TYPE_ARRAY, 4, 256, 1 << 20);
RS_MAP(big2, RS_MAP_TYPE_ARRAY, 4, 256, 1 << 20);

RS_PROG(big_maps)(const struct rs_ctx *ctx)
{
	return RS_NEXT;
}
