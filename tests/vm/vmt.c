// SPDX-License-Identifier: MIT
/* vmt.c - helpers shared by the VM tests (see vmt.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
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
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
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
