// SPDX-License-Identifier: MIT
/*
 * harness.c - runner of the VM tests declared with harness.h: forks each
 * test, enforces its timeout, watches /dev/kmsg, prints TAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

jmp_buf __kt_jmp;
bool __kt_in_body;

static struct __kt_test *kt_head, **kt_tail = &kt_head;

/* Shared with the forked test: its verdict and why. */
struct kt_result {
	int failed;
	int skipped;
	char msg[1024];
	int nforbid;
	char forbid[8][64];
};
static struct kt_result *kt_res;

/* Kernel messages that fail any test (tools/testing/selftests and
 * liburing's runtests.sh look for the same). */
static const char *const kt_bad_kmsg[] = {
	"BUG:",
	"WARNING:",
	"Oops",
	"lockdep",
	"possible recursive locking",
	"circular locking",
	"list_add corruption",
	"list_del corruption",
	"refcount_t:",
	"general protection fault",
	"Kernel panic",
	"INFO: task",
	"kernel BUG",
	"Bad page",
	"UBSAN:",
	"KASAN:",
	"stack-protector",
	"scheduling while atomic",
};

void __kt_register(struct __kt_test *t)
{
	t->next = NULL;
	*kt_tail = t;
	kt_tail = &t->next;
}

void __kt_register_variant(struct __kt_fixture *f, struct __kt_variant *v)
{
	struct __kt_variant **p = &f->variants;

	while (*p)
		p = &(*p)->next;
	v->next = NULL;
	*p = v;
}

static const struct {
	int err;
	const char *name;
} kt_errnames[] = {
	{EPERM, "EPERM"},
	{ENOENT, "ENOENT"},
	{ESRCH, "ESRCH"},
	{EINTR, "EINTR"},
	{EIO, "EIO"},
	{ENXIO, "ENXIO"},
	{E2BIG, "E2BIG"},
	{EBADF, "EBADF"},
	{EAGAIN, "EAGAIN"},
	{ENOMEM, "ENOMEM"},
	{EACCES, "EACCES"},
	{EFAULT, "EFAULT"},
	{EBUSY, "EBUSY"},
	{EEXIST, "EEXIST"},
	{ENODEV, "ENODEV"},
	{EINVAL, "EINVAL"},
	{ENFILE, "ENFILE"},
	{EMFILE, "EMFILE"},
	{ENOTTY, "ENOTTY"},
	{EFBIG, "EFBIG"},
	{ENOSPC, "ENOSPC"},
	{ERANGE, "ERANGE"},
	{ENAMETOOLONG, "ENAMETOOLONG"},
	{ENOSYS, "ENOSYS"},
	{EOVERFLOW, "EOVERFLOW"},
	{EOPNOTSUPP, "EOPNOTSUPP"},
	{EDQUOT, "EDQUOT"},
	{EPROTO, "EPROTO"},
	{ENODATA, "ENODATA"},
	{EBADFD, "EBADFD"},
};

const char *__kt_errname(long long err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < sizeof(kt_errnames) / sizeof(kt_errnames[0]); i++)
		if (kt_errnames[i].err == err)
			return kt_errnames[i].name;
	return "";
}

static void kt_vrecord(const char *file, int line, const char *fmt, va_list ap)
{
	size_t n = strlen(kt_res->msg);

	if (n >= sizeof(kt_res->msg) - 2)
		return;
	if (n)
		kt_res->msg[n++] = '\n';
	n += (size_t)snprintf(kt_res->msg + n, sizeof(kt_res->msg) - n, "%s:%d: ", file, line);
	if (n < sizeof(kt_res->msg))
		vsnprintf(kt_res->msg + n, sizeof(kt_res->msg) - n, fmt, ap);
}

static void kt_stop(void)
{
	fflush(stdout);
	if (__kt_in_body)
		longjmp(__kt_jmp, 1);
	/* outside a body (teardown): nothing to unwind to */
	_exit(1);
}

void __kt_fail(int fatal, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kt_vrecord(file, line, fmt, ap);
	va_end(ap);
	kt_res->failed = 1;
	if (fatal)
		kt_stop();
}

void __kt_cmp_fail(int fatal, const char *file, int line, const char *expr, long long a,
		   long long b)
{
	const char *na = a < 0 && a > -4096 ? __kt_errname(a) : "";
	const char *nb = b < 0 && b > -4096 ? __kt_errname(b) : "";

	__kt_fail(fatal, file, line, "%s: got %lld%s%s%s, want %lld%s%s%s", expr, a,
		  *na ? " (-" : "", na, *na ? ")" : "", b, *nb ? " (-" : "", nb, *nb ? ")" : "");
}

void __kt_skip(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kt_res->msg, sizeof(kt_res->msg), fmt, ap);
	va_end(ap);
	(void)file;
	(void)line;
	kt_res->skipped = 1;
	kt_stop();
}

void kt_forbid_kmsg(const char *pattern)
{
	if (kt_res->nforbid < 8)
		snprintf(kt_res->forbid[kt_res->nforbid++], sizeof(kt_res->forbid[0]), "%s",
			 pattern);
}

/* Read the kernel messages logged since kmsg was positioned; return 1 and
 * describe the first bad one in why. */
static int kt_check_kmsg(int kmsg, char *why, size_t len)
{
	char rec[2048];
	int bad = 0;

	if (kmsg < 0)
		return 0;
	for (;;) {
		ssize_t n = read(kmsg, rec, sizeof(rec) - 1);
		char *text;
		size_t i;

		if (n < 0 && errno == EPIPE) /* overwritten records: keep reading */
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		text = strchr(rec, ';');
		text = text ? text + 1 : rec;
		text[strcspn(text, "\n")] = 0;
		for (i = 0; !bad && i < sizeof(kt_bad_kmsg) / sizeof(kt_bad_kmsg[0]); i++)
			if (strstr(text, kt_bad_kmsg[i]))
				bad = 1;
		for (i = 0; !bad && i < (size_t)kt_res->nforbid; i++)
			if (strstr(text, kt_res->forbid[i]))
				bad = 1;
		if (bad && !why[0])
			snprintf(why, len, "kernel log: %.400s", text);
	}
	return bad;
}

static void kt_print_msg(const char *msg)
{
	const char *p = msg;

	while (*p) {
		size_t n = strcspn(p, "\n");

		printf("# %.*s\n", (int)n, p);
		p += n;
		if (*p)
			p++;
	}
}

static int kt_run_one(const struct __kt_test *t, const struct __kt_variant *v, int num,
		      const char *name)
{
	char why[512] = "";
	struct timespec t0, t1;
	int kmsg, status = 0, timed_out = 0, verdict;
	pid_t pid;

	memset(kt_res, 0, sizeof(*kt_res));
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		printf("not ok %d - %s # fork: %s\n", num, name, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		t->run(v ? v->data : NULL);
		fflush(stdout);
		_exit(kt_res->failed ? 1 : 0);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec >= (time_t)t->timeout) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			timed_out = 1;
			break;
		}
		usleep(2000);
	}
	/* whatever the test forked must not outlive it */
	kill(-pid, SIGKILL);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	if (timed_out)
		snprintf(why, sizeof(why), "timeout after %u s", t->timeout);
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status) && !kt_res->failed)
		snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
	verdict = why[0] || kt_res->failed ? 1 : kt_res->skipped ? 2 : 0;
	/* a passing (or skipped) test that upset the kernel fails */
	if (kt_check_kmsg(kmsg, why + strlen(why), sizeof(why) - strlen(why)))
		verdict = 1;
	if (kmsg >= 0)
		close(kmsg);

	if (kt_res->msg[0] && verdict != 2)
		kt_print_msg(kt_res->msg);
	if (why[0])
		printf("# %s\n", why);
	if (verdict == 2)
		printf("ok %d - %s # SKIP %s\n", num, name, kt_res->msg);
	else
		printf("%s %d - %s\n", verdict ? "not ok" : "ok", num, name);
	if (t1.tv_sec - t0.tv_sec >= 1)
		printf("# %s took %.1f s\n", name,
		       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	fflush(stdout);
	return verdict;
}

static int kt_selected(const char *name, const char *filter)
{
	return !filter || strstr(name, filter);
}

int main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	int total = 0, num = 0, failed = 0, skipped = 0;
	const struct __kt_test *t;
	char name[256];

	kt_res = mmap(NULL, sizeof(*kt_res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	if (kt_res == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* count first: TAP wants the plan up front */
	for (t = kt_head; t; t = t->next) {
		const struct __kt_variant *v = t->fixture ? t->fixture->variants : NULL;

		do {
			snprintf(name, sizeof(name), "%s%s%s%s%s",
				 t->fixture ? t->fixture->name : "", t->fixture ? "." : "",
				 v ? v->name : "", v ? "." : "", t->name);
			total += kt_selected(name, filter);
			v = v ? v->next : NULL;
		} while (v);
	}
	printf("TAP version 13\n1..%d\n", total);
	for (t = kt_head; t; t = t->next) {
		const struct __kt_variant *v = t->fixture ? t->fixture->variants : NULL;

		do {
			int r;

			snprintf(name, sizeof(name), "%s%s%s%s%s",
				 t->fixture ? t->fixture->name : "", t->fixture ? "." : "",
				 v ? v->name : "", v ? "." : "", t->name);
			if (kt_selected(name, filter)) {
				r = kt_run_one(t, v, ++num, name);
				failed += r == 1;
				skipped += r == 2;
			}
			v = v ? v->next : NULL;
		} while (v);
	}
	printf("# %d tests: %d passed, %d failed, %d skipped\n", total, total - failed - skipped,
	       failed, skipped);
	if (failed)
		return 1;
	return total && skipped == total ? 77 : 0;
}
