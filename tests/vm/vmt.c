// SPDX-License-Identifier: MIT
/* vmt.c - helpers shared by the VM tests (see vmt.h). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmt.h"

int vmt_dev(void)
{
	int fd = open(KVMM_DEV, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

long vmt_ioctl(int fd, unsigned long cmd, void *arg)
{
	long r = ioctl(fd, cmd, arg);

	return r < 0 ? -errno : r;
}

long vmt_ioctl_sized(int fd, unsigned long cmd, void *s, size_t len, uint32_t size, size_t bufsize,
		     int tail)
{
	unsigned char *buf = malloc(bufsize > len ? bufsize : len);
	long r;

	if (!buf)
		return -ENOMEM;
	memset(buf, tail, bufsize > len ? bufsize : len);
	memcpy(buf, s, len < bufsize ? len : bufsize);
	memcpy(buf, &size, sizeof(size));
	r = vmt_ioctl(fd, cmd, buf);
	memcpy(s, buf, len < bufsize ? len : bufsize);
	free(buf);
	return r;
}

static int vmt_vread(char *buf, size_t len, const char *fmt, va_list ap)
{
	char path[512];
	FILE *f;

	vsnprintf(path, sizeof(path), fmt, ap);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return -ENODATA;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

long long vmt_read_ll(const char *fmt, ...)
{
	char buf[128], *end;
	long long v;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vmt_vread(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r)
		return r;
	errno = 0;
	v = strtoll(buf, &end, 0);
	if (errno || end == buf || *end)
		return -EINVAL;
	return v;
}

int vmt_read_str(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vmt_vread(buf, len, fmt, ap);
	va_end(ap);
	return r;
}

int vmt_write(const char *val, const char *fmt, ...)
{
	char path[512];
	va_list ap;
	ssize_t n;
	int fd;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	return 0;
}

int vmt_as_user(unsigned int uid, unsigned int gid, int (*fn)(void *), void *arg)
{
	return vmt_as_user_in(uid, gid, -1, fn, arg);
}

int vmt_in_child(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn(arg));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int vmt_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

int vmt_kmsg_has(int kmsg, const char *text)
{
	char rec[2048];
	int found = 0;

	for (;;) {
		ssize_t n = read(kmsg, rec, sizeof(rec) - 1);

		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		if (strstr(rec, text))
			found = 1;
	}
	return found;
}

int vmt_as_user_in(unsigned int uid, unsigned int gid, int group, int (*fn)(void *), void *arg)
{
	gid_t g = (gid_t)group;
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setgroups(group < 0 ? 0 : 1, &g) || setresgid(gid, gid, gid) ||
		    setresuid(uid, uid, uid))
			_exit(125);
		/* a uid change drops the capabilities; make sure */
		prctl(PR_SET_KEEPCAPS, 0);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

long long vmt_mem_free(void)
{
	char line[256];
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemFree: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -ENODATA : kb * 1024;
}

int vmt_nr_nodes(void)
{
	int n = 0;

	for (int i = 0; i < 64; i++) {
		char path[96];

		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", i);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/* Copy up to KVMM_NAME_MAX bytes: tests also pass names with no room for
 * the NUL, which the kernel must reject. */
static void vmt_name(char *dst, const char *name)
{
	size_t n = strlen(name);

	memcpy(dst, name, n < KVMM_NAME_MAX ? n : KVMM_NAME_MAX);
}

int vmt_pool_create(int dev, const char *name, uint64_t bytes, int node, unsigned int page_shift,
		    uint32_t flags, uint32_t mode)
{
	struct kvmm_pool_create c = {
		.size = sizeof(c),
		.flags = flags,
		.bytes = bytes,
		.node = node,
		.page_shift = page_shift,
		.mode = mode,
	};

	vmt_name(c.name, name);
	return (int)vmt_ioctl(dev, KVMM_IOC_POOL_CREATE, &c);
}

int vmt_pool_open(int dev, const char *name, uint32_t flags)
{
	struct kvmm_pool_open o = {.size = sizeof(o), .flags = flags};

	vmt_name(o.name, name);
	return (int)vmt_ioctl(dev, KVMM_IOC_POOL_OPEN, &o);
}

int vmt_pool_destroy(int dev, const char *name)
{
	struct kvmm_pool_destroy d = {.size = sizeof(d)};

	vmt_name(d.name, name);
	return (int)vmt_ioctl(dev, KVMM_IOC_POOL_DESTROY, &d);
}

int vmt_pool_desc(int pool, struct kvmm_pool_desc *d)
{
	struct kvmm_pool_info i = {.size = sizeof(i)};
	long r = vmt_ioctl(pool, KVMM_IOC_POOL_INFO, &i);

	*d = i.desc;
	return (int)r;
}

long long vmt_set_state(int pool, uint64_t first, uint64_t count, unsigned int state)
{
	struct kvmm_page_range r = {.first = first, .count = count};
	struct kvmm_pool_set_state s = {
		.size = sizeof(s),
		.state = state,
		.nr_ranges = 1,
		.ranges = (uintptr_t)&r,
	};
	long ret = vmt_ioctl(pool, KVMM_IOC_POOL_SET_STATE, &s);

	return ret < 0 ? ret : (long long)s.changed;
}

long long vmt_populate(int pool, uint64_t first, uint64_t count)
{
	struct kvmm_pool_populate p = {.size = sizeof(p), .first = first, .count = count};
	long ret = vmt_ioctl(pool, KVMM_IOC_POOL_POPULATE, &p);

	return ret < 0 ? ret : (long long)p.populated;
}

int vmt_stats(int dev, struct kvmm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return (int)vmt_ioctl(dev, KVMM_IOC_GET_STATS, st);
}

int vmt_limits(int dev, uint32_t flags, uint64_t global, uint64_t per_uid, struct kvmm_limits *out)
{
	struct kvmm_limits l = {
		.size = sizeof(l),
		.flags = flags,
		.global_bytes = global,
		.per_uid_bytes = per_uid,
	};
	long r = vmt_ioctl(dev, KVMM_IOC_LIMITS, &l);

	if (out)
		*out = l;
	return (int)r;
}

int vmt_unload(void)
{
	/* the module may still be going away after its last fd: retry a bit */
	for (int i = 0; i < 50; i++) {
		if (!syscall(SYS_delete_module, "kvmm", O_NONBLOCK))
			return 0;
		if (errno != EAGAIN && errno != EBUSY && errno != EWOULDBLOCK)
			return -errno;
		usleep(20000);
	}
	return -errno;
}

int vmt_try_unload(void)
{
	return syscall(SYS_delete_module, "kvmm", O_NONBLOCK) ? -errno : 0;
}

int vmt_load(const char *params)
{
	int fd = open("/lib/kvmm/kvmm.ko", O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = (int)syscall(SYS_finit_module, fd, params, 0);
	r = r ? -errno : 0;
	close(fd);
	return r;
}

long long vmt_shrink(int node, unsigned long nr)
{
	const char *path = "/sys/kernel/debug/kvmm/shrink";
	long long freed = -1;
	char buf[64];
	int r;

	snprintf(buf, sizeof(buf), "%d %lu", node, nr);
	r = vmt_write(buf, "%s", path);
	if (r)
		return r;
	if (vmt_read_str(buf, sizeof(buf), "%s", path))
		return -EIO;
	if (sscanf(buf, "node %*d count %*u freed %lld", &freed) != 1)
		return -EIO;
	return freed;
}

int vmt_hog(size_t bytes)
{
	size_t chunk = 16 << 20;

	for (size_t done = 0; done < bytes; done += chunk) {
		char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);

		if (p == MAP_FAILED)
			return 2;
		for (size_t i = 0; i < chunk; i += 4096)
			p[i] = 1;
	}
	return 0;
}

static uint64_t vmt_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

void vmt_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *q = p;

	for (size_t i = 0; i < len / 8; i++)
		q[i] = vmt_mix(seed + i);
}

long vmt_check(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *q = p;

	for (size_t i = 0; i < len / 8; i++)
		if (q[i] != vmt_mix(seed + i))
			return (long)(i * 8);
	return -1;
}

int vmt_page_nodes(void *p, size_t len, int *nodes)
{
	size_t n = len / (size_t)sysconf(_SC_PAGESIZE);
	void **pages = malloc(n * sizeof(*pages));
	long r;

	if (!pages)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		pages[i] = (char *)p + i * (size_t)sysconf(_SC_PAGESIZE);
	r = syscall(SYS_move_pages, 0, n, pages, NULL, nodes, 0);
	free(pages);
	return r ? -errno : 0;
}

long long vmt_smaps_kb(const void *addr, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	size_t flen = strlen(field);
	long long kb = -ENOENT;
	bool in = false;
	char line[512];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		size_t tok = strcspn(line, " \n");
		unsigned long start;

		if (tok && line[tok - 1] != ':') {
			/* a mapping's header: "start-end perms offset dev inode path" */
			in = sscanf(line, "%lx-", &start) == 1 && start == (uintptr_t)addr;
		} else if (in && tok == flen + 1 && !strncmp(line, field, flen)) {
			sscanf(line + tok, "%lld", &kb);
			break;
		}
	}
	fclose(f);
	return kb;
}

long long vmt_meminfo_kb(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "r");
	size_t flen = strlen(field);
	long long kb = -ENOENT;
	char line[256];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			sscanf(line + flen + 1, "%lld", &kb);
			break;
		}
	fclose(f);
	return kb;
}

static void vmt_slurp(int fd, char *buf, size_t len)
{
	size_t n = 0;

	for (;;) {
		char tmp[4096];
		ssize_t r = read(fd, tmp, sizeof(tmp));

		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r && n + 1 < len; i++)
			buf[n++] = tmp[i];
	}
	if (len)
		buf[n] = 0;
}

int vmt_run(const char *cmd, char *out, size_t outlen, char *err, size_t errlen)
{
	return vmt_run_as(-1, cmd, out, outlen, err, errlen);
}

int vmt_run_as(int uid, const char *cmd, char *out, size_t outlen, char *err, size_t errlen)
{
	char errpath[] = "/tmp/vmt-err-XXXXXX";
	int po[2], efd, status;
	pid_t pid;

	efd = mkstemp(errpath);
	if (efd < 0 || pipe(po))
		return -1;
	unlink(errpath);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(efd, 2);
		close(po[0]);
		if (uid >= 0 &&
		    (setgroups(0, NULL) || setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) ||
		     setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid)))
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(po[1]);
	vmt_slurp(po[0], out, outlen);
	close(po[0]);
	if (waitpid(pid, &status, 0) != pid)
		status = -1;
	lseek(efd, 0, SEEK_SET);
	vmt_slurp(efd, err, errlen);
	close(efd);
	return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *json_value(const char *s, int depth);

static const char *json_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static const char *json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s && *s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)s[i]))
						return NULL;
				s += 4;
			} else if (!strchr("\"\\/bfnrt", *s) || !*s) {
				return NULL;
			}
		}
		s++;
	}
	return *s == '"' ? s + 1 : NULL;
}

static const char *json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (isdigit((unsigned char)*s))
		while (isdigit((unsigned char)*s))
			s++;
	else
		return NULL;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return NULL;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return NULL;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return s;
}

static const char *json_value(const char *s, int depth)
{
	if (depth > 64)
		return NULL;
	s = json_ws(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';

		s = json_ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (close == '}') {
				s = json_string(json_ws(s));
				if (!s)
					return NULL;
				s = json_ws(s);
				if (*s++ != ':')
					return NULL;
			}
			s = json_value(s, depth + 1);
			if (!s)
				return NULL;
			s = json_ws(s);
			if (*s == close)
				return s + 1;
			if (*s++ != ',')
				return NULL;
		}
	}
	if (*s == '"')
		return json_string(s);
	if (!strncmp(s, "true", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	if (!strncmp(s, "null", 4))
		return s + 4;
	return json_number(s);
}

int vmt_json_valid(const char *s)
{
	const char *e = json_value(s, 0);

	return e && !*json_ws(e);
}
