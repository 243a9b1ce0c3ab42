/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * rs_kernel.h - what ringside's kernel loop (loop.bpf.c) and the engine's
 * kernel backend (engine/src/kernel/) share: the layout of the memory region
 * registered with IORING_REGISTER_MEM_REGION, and the records the loop
 * writes to its BPF ring buffer. engine/src/kernel/abi.rs mirrors every
 * struct here with the same sizes (its tests check them).
 *
 * Layout rules: little endian, every field naturally aligned, explicit
 * padding, sizes multiples of 8.
 */
#ifndef RS_KERNEL_H
#define RS_KERNEL_H

#define RS_KMAGIC 0x4b535352u /* "RSSK" */
#define RS_KVERSION 1

/* Steps of one chain the loop holds at once: finished steps before the
 * current one leave the window, as the userspace engine compacts them. */
#define RS_WIN 16
#define RS_MAX_CHAINS 256
#define RS_MAX_SLOTS 1024
#define RS_SUB_RING 256     /* >= RS_MAX_CHAINS */
#define RS_COMP_RING 4096   /* application completions */
#define RS_FIN_RING 256     /* >= RS_MAX_CHAINS */
#define RS_STAGE 64         /* SQEs one loop step may stage */
#define RS_MAX_ACTIONS 32   /* actions one decision may ask for */
#define RS_MAX_BUFS 64
#define RS_MAX_PROGS 64

/* user_data of the loop's own requests (never a slot's: slots use < 2^32
 * generations in the high half and a slot index < RS_MAX_SLOTS below). */
#define RS_UD_TIMER 0xfffffffe00000000ull /* | generation */
#define RS_UD_CANCEL 0xffffffffffffffffull

/* rs_kmem_hdr.ctl, set by userspace before each io_uring_enter */
#define RS_CTL_WAIT 1       /* wait for completions (else one pass, no waiting) */
#define RS_CTL_PAUSE_EACH 2 /* return to userspace after every decision */
#define RS_CTL_SHUTDOWN 4   /* stop issuing, cancel, reap everything */
#define RS_CTL_WAIT_ONE 8   /* with RS_CTL_WAIT: return once the application has a
                             * completion or a finished chain to read */

/* rs_kmem_hdr.error: the loop stopped itself; nothing runs until reset */
#define RS_KERR_REGION 1    /* a region was missing or too small */
#define RS_KERR_SUBMIT 2    /* bpf_io_uring_submit_sqes failed; err_arg = its result */
#define RS_KERR_STAGE 3     /* more than RS_STAGE SQEs in one step */
#define RS_KERR_SLOTS 4     /* no free slot for a request */
#define RS_KERR_COMP 5      /* the application's completion ring is full */

/* chain states (struct rs_kchain.state) */
#define RS_CH_FREE 0
#define RS_CH_QUEUED 1
#define RS_CH_RUNNING 2
#define RS_CH_FINISHING 3

/* drivers */
#define RS_DRV_ENGINE 0
#define RS_DRV_KERNEL 1
#define RS_DRV_KERNEL_HARD 2

/* notify */
#define RS_NOTIFY_ALL 0
#define RS_NOTIFY_FINAL 1
#define RS_NOTIFY_NONE 2

/* step states */
#define RS_ST_PENDING 0
#define RS_ST_INFLIGHT 1
#define RS_ST_DONE 2
#define RS_ST_CANCELLED 3
#define RS_ST_DROPPED 4

/* cancel causes (struct rs_kcause.kind), as the engine's CancelCause */
#define RS_CAUSE_NONE 0
#define RS_CAUSE_KERNEL_LINK 1  /* step = failed step */
#define RS_CAUSE_LINK_FAILED 2  /* step = failed step */
#define RS_CAUSE_PROGRAM_FAIL 3 /* decision, step */
#define RS_CAUSE_PROGRAM_STOP 4 /* decision, step */
#define RS_CAUSE_DROPPED 5      /* decision */
#define RS_CAUSE_BAD_RETURN 6   /* decision, value = r0 (ProgramError) */
#define RS_CAUSE_BUDGET 7       /* decision, vkind, limit, value */
#define RS_CAUSE_SHUTDOWN 8
#define RS_CAUSE_SUBMIT_FAILED 9 /* value = errno */
#define RS_CAUSE_KLIMIT 10      /* decision, vkind = RS_KLIM_* (ProgramError) */

/* kernel-backend limits a decision can hit (RS_CAUSE_KLIMIT) */
#define RS_KLIM_WINDOW 1  /* more than RS_WIN unfinished steps in the chain */
#define RS_KLIM_ACTIONS 2 /* more than RS_MAX_ACTIONS actions in one decision */
#define RS_KLIM_PROG 3    /* no such program in the loop (an engine bug) */

/* budget kinds, as the engine's BudgetKind */
#define RS_BUDGET_INSNS 0
#define RS_BUDGET_SUBMITS 1
#define RS_BUDGET_STEPS 2
#define RS_BUDGET_ATTEMPTS 3

/* outcomes */
#define RS_OUT_COMPLETED 0
#define RS_OUT_STOPPED 1
#define RS_OUT_FAILED 2
#define RS_OUT_CANCELLED 3

/* application completion kinds, as the engine's AppKind */
#define RS_APP_FINAL 0
#define RS_APP_STEP 1
#define RS_APP_CANCELLED 2
#define RS_APP_EMIT 3
#define RS_FINAL_FAILED 1 /* rs_kcomp.flags of a failed chain's final completion */

/* actions */
#define RS_ACT_SUBMIT 1
#define RS_ACT_DROP 2
#define RS_ACT_UNLINK 3
#define RS_ACT_EMIT 4
#define RS_ACT_SET_RES 5

/* The template of a request, as struct rs_sqe of ringside.h. */
struct rs_ksqe {
	__u8 opcode;
	__u8 _rsvd;
	__u16 buf_index;
	__s32 fd;
	__u64 off;
	__u64 buf_off;
	__u32 len;
	__u32 op_flags;
	__u64 user_data;
}; /* 40 */

struct rs_kstep {
	struct rs_ksqe sqe; /* 0 */
	__u32 uid;          /* 40 */
	__s32 res;          /* 44 */
	__u8 state;         /* 48 RS_ST_* */
	__u8 attempt;       /* 49 */
	__u8 detached;      /* 50 */
	__u8 unlinked;      /* 51 */
	__u16 prog;         /* 52 program slot + 1, 0 = none */
	__u16 _pad;         /* 54 */
	__u64 submitted_ns; /* 56 */
}; /* 64 */

struct rs_kcause {
	__u8 kind;      /* RS_CAUSE_* */
	__u8 vkind;     /* RS_BUDGET_* or RS_KLIM_* */
	__u16 _pad;
	__u32 step;
	__u64 decision;
	__u64 limit;
	__u64 value;
}; /* 32 */

struct rs_kchain {
	__u64 id;            /* 0 */
	__u64 user_data;     /* 8 */
	__u32 base;          /* 16 index of the window's first step */
	__u32 nstored;       /* 20 steps in the window */
	__u32 next_uid;      /* 24 */
	__u32 inflight;      /* 28 */
	__u8 state;          /* 32 RS_CH_* */
	__u8 driver;         /* 33 RS_DRV_* */
	__u8 notify;         /* 34 RS_NOTIFY_* */
	__u8 drain;          /* 35 */
	__u8 has_failure;    /* 36 */
	__u8 stopped;        /* 37 */
	__u8 cancelled;      /* 38 */
	__u8 has_final_res;  /* 39 */
	__u16 prog;          /* 40 chain program slot + 1, 0 = none */
	__u16 start;         /* 42 slot in steps[] of the window's first step */
	__s32 final_res;     /* 44 */
	__s32 last_res;      /* 48 */
	__s32 current;       /* 52 index of the last completed step, -1 none */
	__u32 fail_step;     /* 56 */
	__s32 fail_res;      /* 60 */
	struct rs_kcause fail_cause; /* 64 */
	__u64 stop_decision; /* 96 */
	__u64 _pad1;         /* 104 */
	struct rs_kstep steps[RS_WIN]; /* 112 a ring: position p is steps[(start + p) % RS_WIN] */
};

/* One in-flight request. */
struct rs_kslot {
	__u32 gen;
	__u16 chain; /* chain slot */
	__u16 used;
	__u32 uid;
	__u32 _pad;
}; /* 16 */

/* A completion for the application. */
struct rs_kcomp {
	__u64 chain;
	__u64 user_data;
	__s32 res;
	__u32 flags;
	__u32 step; /* 0xffffffff: none */
	__u8 kind;  /* RS_APP_* */
	__u8 _pad[3];
}; /* 32 */

/* A finished chain. */
struct rs_kfin {
	__u64 chain;
	__u32 slot;
	__s32 res;
	__u8 outcome; /* RS_OUT_* */
	__u8 _pad[3];
	__u32 fail_step;
	__u32 steps;
	__u32 _pad2;
	__u64 stop_decision;
	struct rs_kcause cause;
}; /* 72 */

struct rs_ktimespec {
	__s64 tv_sec;
	__s64 tv_nsec;
};

struct rs_kmem_hdr {
	__u32 magic;                /* 0 RS_KMAGIC, written by userspace */
	__u32 version;              /* 4 */
	__u32 ctl;                  /* 8 RS_CTL_* (userspace) */
	__u32 record;               /* 12 stream events and decisions (userspace) */
	__u64 deadline_ns;          /* 16 CLOCK_MONOTONIC, 0 = none (userspace) */
	__u32 submits_per_decision; /* 24 budgets (userspace) */
	__u32 steps_per_chain;      /* 28 */
	__u32 attempts_per_step;    /* 32 */
	__u32 ring_prog;            /* 36 ring program slot + 1, 0 = none (userspace) */
	__u32 sub_head;             /* 40 chain queue: loop consumes */
	__u32 sub_tail;             /* 44 userspace produces */
	__u32 comp_head;            /* 48 completions: userspace consumes */
	__u32 comp_tail;            /* 52 loop produces */
	__u32 fin_head;             /* 56 finished chains: userspace consumes */
	__u32 fin_tail;             /* 60 loop produces */
	__u32 running;              /* 64 chains started and not finished */
	__u32 barrier;              /* 68 drain chain slot + 1, 0 = none */
	__u32 shut;                 /* 72 shutdown under way */
	__u32 inflight;             /* 76 requests of chains in the kernel */
	__u32 cancels;              /* 80 the loop's cancel requests in the kernel */
	__u32 timers;               /* 84 the loop's timers in the kernel */
	__u32 timer_gen;            /* 88 */
	__u32 timer_armed;          /* 92 */
	__u32 error;                /* 96 RS_KERR_* */
	__s32 err_arg;              /* 100 */
	__u32 nfree;                /* 104 free slots on the stack below */
	__u32 pause;                /* 108 the loop returns at the next step */
	__u64 decisions;            /* 112 */
	__u64 submitted;            /* 120 */
	__u64 completed;            /* 128 */
	__u64 chains_finished;      /* 136 */
	__u64 loop_steps;           /* 144 */
	__u64 lost;                 /* 152 records the ring buffer had no room for */
	__u64 decision_ns;          /* 160 */
	__u32 nstage;               /* 168 staged SQEs */
	__u32 _pad;                 /* 172 */
	__u64 _rsvd[8];             /* 176 */
}; /* 240 */

struct rs_kmem {
	struct rs_kmem_hdr hdr;
	__u32 sub[RS_SUB_RING];
	struct rs_kcomp comp[RS_COMP_RING];
	struct rs_kfin fin[RS_FIN_RING];
	struct rs_kslot slots[RS_MAX_SLOTS];
	__u16 free[RS_MAX_SLOTS];
	struct rs_ktimespec ts[RS_MAX_SLOTS];
	struct rs_ktimespec timer_ts;
	__u8 stage[RS_STAGE][64];
	struct rs_kchain chains[RS_MAX_CHAINS];
};

/* ---- records on the ring buffer (when hdr.record) ---- */

#define RS_REC_STARTED 1
#define RS_REC_SUBMITTED 2   /* sqe, a = sqe flags, b = ring user_data, c = attempt */
#define RS_REC_COMPLETED 3   /* a = res, b = cqe flags, c = latency ns */
#define RS_REC_STEP_ADDED 4  /* sqe, a = place, b = attempt, c = decision */
#define RS_REC_UNLINKED 5    /* a = decision */
#define RS_REC_CANCELLED 6   /* cause, a = res, b = issued */
#define RS_REC_APP 7         /* a = user_data, b = res, c = flags, d = kind, step */
#define RS_REC_FINISHED 8    /* a = res, b = outcome, c = steps, d = stop decision, cause */
#define RS_REC_SHUTDOWN 9    /* a = chains, b = inflight */
#define RS_REC_DECISION 10   /* struct rs_kdec */
#define RS_REC_CALL 11       /* struct rs_kcall */
#define RS_REC_DATA 12       /* struct rs_kdata header + len bytes (rs_read_buf) */
#define RS_REC_DECIDED 13    /* struct rs_kdecided */

struct rs_kev {
	__u32 kind;
	__u32 step;
	__u64 chain;
	__u64 ts;
	__u64 a, b, c, d;
	struct rs_kcause cause;
	struct rs_ksqe sqe;
}; /* 128 */

struct rs_kpend {
	__u32 index;
	__u8 unlinked;
	__u8 dropped;
	__u16 _pad;
};

/* A decision's inputs: what re-executing it in userspace needs besides
 * the calls' recorded inputs. */
struct rs_kdec {
	__u32 kind;
	__u32 prog;        /* program slot */
	__u64 seq;
	__u64 chain;
	__u8 ctx[64];
	__u32 step;
	__u32 nsteps;
	__u8 opcode;
	__u8 attempt;
	__u16 npending;
	__s32 fd;
	struct rs_kpend pending[RS_WIN];
}; /* 128 + 16 * 8 = 224 */

/* One helper call: its id and result (ktime: the value). */
struct rs_kcall {
	__u32 kind;
	__u32 helper;
	__u64 seq;
	__s64 ret;
	__u64 _pad;
}; /* 32 */

/* Bytes rs_read_buf copied, right after its rs_kcall. */
struct rs_kdata {
	__u32 kind;
	__u32 len;
	__u64 seq;
	__u8 bytes[512];
};

/* How the decision ended, as the loop saw it. */
struct rs_kdecided {
	__u32 kind;
	__u32 result;      /* 0 verdict, 1 bad return, 2 budget, 3 kernel limit */
	__u64 seq;
	__u64 ret;         /* r0 */
	__u64 duration_ns;
	__u32 vkind;
	__u32 _pad;
	__u64 limit;
	__u64 value;
}; /* 56 */

#endif /* RS_KERNEL_H */
