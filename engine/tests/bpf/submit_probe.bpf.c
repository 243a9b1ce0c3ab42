// SPDX-License-Identifier: MIT OR Apache-2.0
/* Test program: submits the template pre-loaded in probe_cfg (with the given
 * size and where) and reports rs_submit's return value as the chain's result. */
#include "ringside.h"

struct probe_cfg {
	struct rs_sqe sqe;
	__u32 size;
	__u32 where;
	__u64 _pad;
};

RS_MAP(probe_cfg, RS_MAP_TYPE_ARRAY, 4, sizeof(struct probe_cfg), 1);

RS_PROG(submit_probe)(const struct rs_ctx *ctx)
{
	__u32 zero = 0;
	struct probe_cfg *c = bpf_map_lookup_elem(&probe_cfg, &zero);
	__u8 buf[48];

	if (!c)
		return RS_FAIL;
	__builtin_memcpy(buf, c, 48);
	__u32 size = c->size;
	if (size > 48)
		size = 48;
	long r = rs_submit(ctx, (struct rs_sqe *)buf, size, c->where);
	rs_set_res(ctx, (__s32)r);
	return RS_STOP;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
