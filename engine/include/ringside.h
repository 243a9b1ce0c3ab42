/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * ringside.h - program ABI v1 of the ringside BPF link engine.
 *
 * A ringside program is a function in an ELF section named "ringside/<name>",
 * built with `clang -O2 -target bpf`. After each io_uring completion of a step
 * it is attached to, the engine runs it with a read-only pointer to a
 * struct rs_ctx; the return value (RS_NEXT, RS_STOP, RS_FAIL) decides what
 * happens to the chain. Helpers let it issue, drop and unlink steps, post
 * completions to the application and read registered buffers.
 *
 * The names, numbers and offsets below are fixed: programs built against v1
 * keep working. The ABI is extended only by adding.
 */
#ifndef RINGSIDE_H
#define RINGSIDE_H

#include <linux/types.h>

#define RS_ABI_VERSION 1

/* Input of a decision: the completed request. 64 bytes, little endian. */
struct rs_ctx {
	__u64 user_data;  /*  0 user_data of the completed request */
	__s32 res;        /*  8 CQE result (bytes, or -errno) */
	__u32 cqe_flags;  /* 12 */
	__u64 chain_id;   /* 16 engine-assigned id of the chain */
	__u32 step;       /* 24 index of the completed step in its chain */
	__u32 nsteps;     /* 28 steps in the chain now */
	__u8 opcode;      /* 32 IORING_OP_* of the completed request */
	__u8 attempt;     /* 33 1 on first issue, +1 per resubmission of this step */
	__u16 ctx_flags;  /* 34 RS_CTX_* */
	__s32 fd;         /* 36 registered-file index as submitted */
	__u64 off;        /* 40 file offset as submitted */
	__u32 len;        /* 48 length as submitted */
	__u16 buf_index;  /* 52 registered buffer index, 0xffff if none */
	__u16 _pad;       /* 54 */
	__u64 buf_off;    /* 56 offset inside the registered buffer */
};

/* rs_ctx.ctx_flags */
#define RS_CTX_LAST_STEP 1 /* no step follows the completed one */

/* A request a program issues with rs_submit. 40 bytes. */
struct rs_sqe {
	__u8 opcode;      /*  0 must be on the engine's allow-list */
	__u8 _rsvd;       /*  1 must be 0 */
	__u16 buf_index;  /*  2 registered buffer, 0xffff if none */
	__s32 fd;         /*  4 registered-file index: never a raw fd */
	__u64 off;        /*  8 file offset (TIMEOUT: relative timeout in ns) */
	__u64 buf_off;    /* 16 offset inside the registered buffer */
	__u32 len;        /* 24 */
	__u32 op_flags;   /* 28 rw_flags / msg_flags / fsync_flags / timeout flags */
	__u64 user_data;  /* 32 */
};

_Static_assert(sizeof(struct rs_ctx) == 64, "rs_ctx is 64 bytes");
_Static_assert(__builtin_offsetof(struct rs_ctx, user_data) == 0, "rs_ctx.user_data");
_Static_assert(__builtin_offsetof(struct rs_ctx, res) == 8, "rs_ctx.res");
_Static_assert(__builtin_offsetof(struct rs_ctx, cqe_flags) == 12, "rs_ctx.cqe_flags");
_Static_assert(__builtin_offsetof(struct rs_ctx, chain_id) == 16, "rs_ctx.chain_id");
_Static_assert(__builtin_offsetof(struct rs_ctx, step) == 24, "rs_ctx.step");
_Static_assert(__builtin_offsetof(struct rs_ctx, nsteps) == 28, "rs_ctx.nsteps");
_Static_assert(__builtin_offsetof(struct rs_ctx, opcode) == 32, "rs_ctx.opcode");
_Static_assert(__builtin_offsetof(struct rs_ctx, attempt) == 33, "rs_ctx.attempt");
_Static_assert(__builtin_offsetof(struct rs_ctx, ctx_flags) == 34, "rs_ctx.ctx_flags");
_Static_assert(__builtin_offsetof(struct rs_ctx, fd) == 36, "rs_ctx.fd");
_Static_assert(__builtin_offsetof(struct rs_ctx, off) == 40, "rs_ctx.off");
_Static_assert(__builtin_offsetof(struct rs_ctx, len) == 48, "rs_ctx.len");
_Static_assert(__builtin_offsetof(struct rs_ctx, buf_index) == 52, "rs_ctx.buf_index");
_Static_assert(__builtin_offsetof(struct rs_ctx, _pad) == 54, "rs_ctx._pad");
_Static_assert(__builtin_offsetof(struct rs_ctx, buf_off) == 56, "rs_ctx.buf_off");

_Static_assert(sizeof(struct rs_sqe) == 40, "rs_sqe is 40 bytes");
_Static_assert(__builtin_offsetof(struct rs_sqe, opcode) == 0, "rs_sqe.opcode");
_Static_assert(__builtin_offsetof(struct rs_sqe, _rsvd) == 1, "rs_sqe._rsvd");
_Static_assert(__builtin_offsetof(struct rs_sqe, buf_index) == 2, "rs_sqe.buf_index");
_Static_assert(__builtin_offsetof(struct rs_sqe, fd) == 4, "rs_sqe.fd");
_Static_assert(__builtin_offsetof(struct rs_sqe, off) == 8, "rs_sqe.off");
_Static_assert(__builtin_offsetof(struct rs_sqe, buf_off) == 16, "rs_sqe.buf_off");
_Static_assert(__builtin_offsetof(struct rs_sqe, len) == 24, "rs_sqe.len");
_Static_assert(__builtin_offsetof(struct rs_sqe, op_flags) == 28, "rs_sqe.op_flags");
_Static_assert(__builtin_offsetof(struct rs_sqe, user_data) == 32, "rs_sqe.user_data");

/* Decisions: the program's return value. Anything else is a program error. */
#define RS_NEXT 0 /* go on with the next step */
#define RS_STOP 1 /* finish the chain now, successfully; drop the rest quietly */
#define RS_FAIL 2 /* fail the chain: the rest is cancelled with -ECANCELED */

/* rs_submit `where` */
#define RS_AFTER_CURRENT 0 /* linked right after the completed step */
#define RS_AT_END 1        /* appended to the chain */
#define RS_DETACHED 2      /* issued now, independent of the chain's order */

#define RS_NO_BUF 0xffff

/* rs_ctx.opcode of a `bpf` step (a step that runs a program instead of IO). */
#define RS_OP_BPF 0xfe

/* Opcodes rs_submit accepts (the engine's allow-list; kernel numbers). */
#define RS_OP_NOP 0
#define RS_OP_FSYNC 3
#define RS_OP_READ_FIXED 4
#define RS_OP_WRITE_FIXED 5
#define RS_OP_TIMEOUT 11
#define RS_OP_READ 22
#define RS_OP_WRITE 23
#define RS_OP_SEND 26
#define RS_OP_RECV 27

/* Maps: legacy kernel-style definitions in the "maps" section. */
#define RS_MAP_TYPE_HASH 1  /* BPF_MAP_TYPE_HASH */
#define RS_MAP_TYPE_ARRAY 2 /* BPF_MAP_TYPE_ARRAY */

struct rs_map_def {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
};

#define RS_SEC(name) __attribute__((section(name), used))

/* RS_MAP(counters, RS_MAP_TYPE_ARRAY, 4, 8, 16); */
#define RS_MAP(name, type_, key, value, entries)                              \
	struct rs_map_def name RS_SEC("maps") = {                              \
		.type = (type_), .key_size = (key), .value_size = (value),     \
		.max_entries = (entries), .map_flags = 0,                      \
	}

/* Define a program: RS_PROG(read_exact)(const struct rs_ctx *ctx) { ... } */
#define RS_PROG(name) RS_SEC("ringside/" #name) int name

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Kernel helpers (same numbers as the kernel, so bpf_helper_defs.h works too). */
#ifndef __BPF_HELPERS__
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
#endif

/* bpf_map_update_elem flags */
#define RS_ANY 0
#define RS_NOEXIST 1
#define RS_EXIST 2

/* ringside helpers */
static long (*rs_submit)(const struct rs_ctx *ctx, const struct rs_sqe *sqe, __u32 size,
			 __u32 where) = (void *)0x1000;
static long (*rs_drop)(const struct rs_ctx *ctx, __u32 step) = (void *)0x1001;
static long (*rs_unlink)(const struct rs_ctx *ctx, __u32 step) = (void *)0x1002;
static long (*rs_emit)(const struct rs_ctx *ctx, __u64 user_data, __s32 res,
		       __u32 flags) = (void *)0x1003;
static long (*rs_read_buf)(const struct rs_ctx *ctx, __u16 buf_index, __u64 off, void *dst,
			   __u32 len) = (void *)0x1004;
static long (*rs_set_res)(const struct rs_ctx *ctx, __s32 res) = (void *)0x1005;

/* Log a constant format string with up to three arguments to the decision log. */
#define rs_printk(fmt, ...)                                                    \
	({                                                                     \
		char ____fmt[] = fmt;                                          \
		bpf_trace_printk(____fmt, sizeof(____fmt), ##__VA_ARGS__);     \
	})

#endif /* RINGSIDE_H */
