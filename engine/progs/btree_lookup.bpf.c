// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * btree_lookup: XRP-style lookups in an on-disk B+tree without waking the
 * application between levels.
 *
 * The chain starts with a read of the root node into a registered buffer;
 * the searched key is the chain's user_data. On each node read the program
 * looks at the node with rs_read_buf: in an internal node it picks the child
 * whose range holds the key and issues that child's read right after the
 * current step; in a leaf it posts the value (or -ENOENT) with rs_emit, sets
 * it as the chain's result and stops. One io_uring_enter per level is all
 * the application pays for; it sees one completion per lookup.
 *
 * On-disk node, 512 bytes, little endian (struct bt_node below):
 *   magic "RSBT" (0x54425352), leaf (1/0), nkeys (<= 31),
 *   keys[31]  ascending; in internal nodes keys[i] is the smallest key
 *             under child i,
 *   vals[31]  leaf: values (32-bit, stored in 64); internal: the byte
 *             offset of child i in the file.
 */
#include "ringside.h"

#define BT_MAGIC 0x54425352u
#define BT_MAX 31
#define BT_NODE_SIZE 512
#define ENOENT 2
#define EUCLEAN 117

struct bt_head {
	__u32 magic;
	__u16 leaf;
	__u16 nkeys;
	__u64 keys[BT_MAX];
};

struct bt_node {
	struct bt_head head;
	__u64 vals[BT_MAX];
	__u64 _pad;
};

_Static_assert(sizeof(struct bt_node) == BT_NODE_SIZE, "node size");

RS_PROG(btree_lookup)(const struct rs_ctx *ctx)
{
	__u64 key = ctx->user_data;
	struct bt_head node;
	__s32 found = -1;
	__u32 idx = 0;

	if (ctx->res < 0)
		return RS_FAIL;
	if ((__u32)ctx->res < BT_NODE_SIZE || ctx->len < BT_NODE_SIZE) {
		rs_emit(ctx, key, -EUCLEAN, 0);
		return RS_FAIL; /* a node is read whole or the tree is broken */
	}
	if (rs_read_buf(ctx, ctx->buf_index, ctx->buf_off, &node, sizeof(node)) < 0)
		return RS_FAIL;
	if (node.magic != BT_MAGIC || node.nkeys == 0 || node.nkeys > BT_MAX) {
		rs_emit(ctx, key, -EUCLEAN, 0);
		rs_set_res(ctx, -EUCLEAN);
		return RS_FAIL;
	}

#pragma unroll
	for (int i = 0; i < BT_MAX; i++) {
		if (i < node.nkeys && node.keys[i] <= key) {
			idx = i;
			if (node.keys[i] == key)
				found = i;
		}
	}

	__u64 val = 0;
	__u64 val_at = ctx->buf_off + sizeof(struct bt_head) + (__u64)idx * 8;
	if (node.leaf) {
		if (found < 0) {
			rs_emit(ctx, key, -ENOENT, 0);
			rs_set_res(ctx, -ENOENT);
			return RS_STOP;
		}
		val_at = ctx->buf_off + sizeof(struct bt_head) + (__u64)found * 8;
		if (rs_read_buf(ctx, ctx->buf_index, val_at, &val, sizeof(val)) < 0)
			return RS_FAIL;
		rs_emit(ctx, key, (__s32)val, 0);
		rs_set_res(ctx, (__s32)val);
		return RS_STOP;
	}
	if (rs_read_buf(ctx, ctx->buf_index, val_at, &val, sizeof(val)) < 0)
		return RS_FAIL;

	struct rs_sqe next = {
		.opcode = ctx->opcode,
		.buf_index = ctx->buf_index,
		.fd = ctx->fd,
		.off = val,
		.buf_off = ctx->buf_off,
		.len = BT_NODE_SIZE,
		.user_data = key,
	};
	if (rs_submit(ctx, &next, sizeof(next), RS_AFTER_CURRENT) < 0)
		return RS_FAIL;
	return RS_NEXT;
}

char LICENSE[] RS_SEC("license") = "Dual MIT/GPL";
