// A liburing client for the probes tests: one three-step linked chain of
// reads whose second read is short.
//
//   chain FILE MODE
//
// FILE must hold 4096 + 100 bytes. Step 1 reads 4096 bytes at 0 (full),
// step 2 reads 4096 at 4096 (gets 100: short, which breaks the link),
// step 3 reads 4096 at 0 and is cancelled with -ECANCELED.
//
// MODE "ring-later": print "ready PID", wait for a line on stdin, then
//   create the ring and submit (the tracer attached before the ring existed).
// MODE "ring-first": create the ring, print "ready PID", wait for a line on
//   stdin, then submit (the tracer attached to an existing ring).
//
// Prints "cqe USER_DATA RES" per completion and "ring FD" once; exit 0.
#include <liburing.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wait_go(void)
{
	char line[64];
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		exit(3);
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	static char buf[3][4096];
	int ring_first, fd, ret, i;

	if (argc != 3)
		return 2;
	ring_first = strcmp(argv[2], "ring-first") == 0;
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	if (!ring_first)
		wait_go();
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "queue_init: %s\n", strerror(-ret));
		return 1;
	}
	printf("ring %d\n", ring.ring_fd);
	if (ring_first)
		wait_go();

	for (i = 0; i < 3; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		off_t off = i == 1 ? 4096 : 0;

		io_uring_prep_read(sqe, fd, buf[i], sizeof(buf[i]), off);
		sqe->user_data = i + 1;
		if (i < 2)
			sqe->flags |= IOSQE_IO_LINK;
	}
	ret = io_uring_submit(&ring);
	if (ret != 3) {
		fprintf(stderr, "submit: %d\n", ret);
		return 1;
	}
	for (i = 0; i < 3; i++) {
		struct io_uring_cqe *cqe;

		ret = io_uring_wait_cqe(&ring, &cqe);
		if (ret < 0) {
			fprintf(stderr, "wait_cqe: %s\n", strerror(-ret));
			return 1;
		}
		printf("cqe %llu %d\n", (unsigned long long)cqe->user_data, cqe->res);
		io_uring_cqe_seen(&ring, cqe);
	}
	fflush(stdout);
	io_uring_queue_exit(&ring);
	return 0;
}
