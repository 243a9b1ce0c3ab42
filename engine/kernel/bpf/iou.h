/* SPDX-License-Identifier: GPL-2.0 */
/*
 * iou.h - the few kernel types and kfuncs of the io_uring BPF loop
 * (Linux 7.1+) that loop.bpf.c uses, as 7.3.4's BTF has them
 * (`bpftool btf dump file /sys/kernel/btf/vmlinux format c` in the 7.x
 * guest; the full vmlinux.h is not needed: the loop reaches the rings
 * through offsets io_uring_setup reports, not through kernel structs, so
 * nothing here needs CO-RE).
 */
#ifndef RS_IOU_H
#define RS_IOU_H

/* Complete (if empty), not a forward declaration: libbpf checks each
 * kfunc's prototype against vmlinux's, and a BTF FWD is not compatible
 * with the kernel's STRUCT. Its members are never read. */
struct iou_ctx {
};

struct iou_loop_params {
	__u32 cq_wait_idx;
};

struct io_uring_bpf_ops {
	int (*loop_step)(struct iou_ctx *, struct iou_loop_params *);
	__u32 ring_fd;
	void *priv;
};

enum {
	IOU_LOOP_CONTINUE = 0,
	IOU_LOOP_STOP = 1,
};

enum {
	IOU_REGION_MEM = 0,
	IOU_REGION_CQ = 1,
	IOU_REGION_SQ = 2,
};

extern int bpf_io_uring_submit_sqes(struct iou_ctx *ctx, __u32 nr) __ksym;
extern __u8 *bpf_io_uring_get_region(struct iou_ctx *ctx, __u32 region_id,
				     const __u64 rdwr_buf_size) __ksym;

#endif /* RS_IOU_H */
