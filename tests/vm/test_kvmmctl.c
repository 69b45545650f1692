// SPDX-License-Identifier: MIT
/*
 * test_kvmmctl: kvmmctl against the real module: every command in every
 * format (tables, JSON checked by a JSON parser, Prometheus text checked
 * line by line), its errors (the argument and the errno meaning named),
 * and --help equal to docs/kmod.md.
 */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define CTL "/bin/kvmmctl"
#define BIG 65536

static char out[BIG], err[BIG];

static int ctl(const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), CTL " %s", args);
	return vmt_run(cmd, out, sizeof(out), err, sizeof(err));
}

static int ctl_as(unsigned int uid, const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), CTL " %s", args);
	return vmt_run_as((int)uid, cmd, out, sizeof(out), err, sizeof(err));
}

#define EXPECT_HAS(buf, text)                                \
	do {                                                 \
		if (!strstr(buf, text))                      \
			FAIL("'%s' not in:\n%s", text, buf); \
	} while (0)

FIXTURE(ctl)
{
	int dev;
};

FIXTURE_SETUP(ctl)
{
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	ASSERT_EQ(access(CTL, X_OK), 0);
}

FIXTURE_TEARDOWN(ctl)
{
	vmt_pool_destroy(self->dev, "ctl0");
	vmt_pool_destroy(self->dev, "ctl1");
	vmt_limits(self->dev, KVMM_LIMITS_SET_GLOBAL | KVMM_LIMITS_SET_PER_UID, 0, 0, NULL);
	close(self->dev);
}

TEST_F(ctl, help_matches_docs)
{
	char doc[BIG];
	FILE *f = fopen("/etc/kvmm-vm/kvmmctl-help.txt", "r");
	size_t n;

	ASSERT_TRUE(f != NULL);
	n = fread(doc, 1, sizeof(doc) - 1, f);
	doc[n] = 0;
	fclose(f);
	ASSERT_EQ(ctl("--help"), 0);
	if (strcmp(out, doc))
		FAIL("kvmmctl --help differs from docs/kmod.md:\n--- help\n%s\n--- docs\n%s", out,
		     doc);
	ASSERT_EQ(ctl("--version"), 0);
	EXPECT_HAS(out, "ABI version 1");
}

TEST_F(ctl, status_in_three_formats)
{
	regex_t line;

	ASSERT_EQ(ctl("status"), 0);
	EXPECT_HAS(out, "module          kvmm api 1 at /dev/kvmm");
	EXPECT_HAS(out, "reclaim");
	EXPECT_HAS(out, "limit global");
	ASSERT_EQ(ctl("--json status"), 0);
	EXPECT_TRUE(vmt_json_valid(out));
	EXPECT_HAS(out, "\"api_version\":1");
	EXPECT_HAS(
		out,
		"\"features\":[\"memcg\",\"node-of-pci\",\"reclaim\",\"status-area\",\"eventfd\","
		"\"memcg-reclaim\",\"pmd-map\"]");
	EXPECT_HAS(out, "\"page_sizes\":[4096,2097152]");
	ASSERT_EQ(vmt_pool_create(self->dev, "ctl0", 4 << 20, 0, 12, KVMM_POOL_PERSISTENT, 0600) >=
			  0,
		  1);
	ASSERT_EQ(ctl("status --prometheus"), 0);
	/* every sample: name{labels} value, after its HELP and TYPE */
	ASSERT_EQ(regcomp(&line,
			  "^[a-z_][a-z0-9_]*(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\\})? "
			  "[0-9]+$",
			  REG_EXTENDED | REG_NOSUB),
		  0);
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		if (!strncmp(l, "# HELP ", 7) || !strncmp(l, "# TYPE ", 7))
			continue;
		if (regexec(&line, l, 0, NULL, 0))
			FAIL("not a Prometheus sample: '%s'", l);
	}
	regfree(&line);
	ASSERT_EQ(ctl("--prometheus status"), 0);
	EXPECT_HAS(out, "# TYPE kvmm_reclaimed_bytes_total counter");
	EXPECT_HAS(out, "kvmm_pool_size_bytes{pool=\"ctl0\",node=\"0\",uid=\"0\"} 4194304");
	EXPECT_HAS(out, "kvmm_pool_pages{pool=\"ctl0\",state=\"free\"} 1024");
	EXPECT_HAS(out, "kvmm_limit_bytes{scope=\"global\"}");
}

TEST_F(ctl, pool_lifecycle)
{
	ASSERT_EQ(ctl("pool create ctl0 64M --node 1 --page-size 2m --mode 0640 --populate"), 0);
	EXPECT_HAS(out, "name        ctl0");
	EXPECT_HAS(out, "size        64.0 MiB (32 pages of 2 MiB)");
	EXPECT_HAS(out, "node        1");
	EXPECT_HAS(out, "mode 0640");
	EXPECT_HAS(out, "flags       persistent");
	EXPECT_HAS(out, "pages       32 present; hot 32");
	/* it outlived kvmmctl */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/ctl0/persistent"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/ctl0/node"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/ctl0/pages_present"), 32);

	ASSERT_EQ(ctl("pools"), 0);
	EXPECT_HAS(out, "NAME");
	EXPECT_HAS(out, "ctl0");
	EXPECT_HAS(out, "64.0 MiB");
	ASSERT_EQ(ctl("pools --json"), 0);
	EXPECT_TRUE(vmt_json_valid(out));
	EXPECT_HAS(out, "\"name\":\"ctl0\"");
	EXPECT_HAS(out, "\"bytes\":67108864");
	EXPECT_HAS(out, "\"mode\":\"0640\"");
	ASSERT_EQ(ctl("pool open ctl0 --read-only"), 0);
	EXPECT_HAS(out, "name        ctl0");
	ASSERT_EQ(ctl("--json pool open ctl0"), 0);
	EXPECT_TRUE(vmt_json_valid(out));
	ASSERT_EQ(ctl("pool destroy ctl0"), 0);
	EXPECT_HAS(out, "destroyed ctl0");
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
	ASSERT_EQ(ctl("pools"), 0);
	EXPECT_HAS(out, "(no pools)");
	ASSERT_EQ(ctl("--json pools"), 0);
	EXPECT_EQ(strcmp(out, "{\"pools\":[]}\n"), 0);
}

TEST_F(ctl, gpu_node_by_pci_address)
{
	char link[256], *bdf, args[320];
	ssize_t n = readlink("/sys/class/nvme/nvme0/device", link, sizeof(link) - 1);

	ASSERT_GT(n, 0);
	link[n] = 0;
	bdf = strrchr(link, '/') + 1;
	snprintf(args, sizeof(args), "pool create ctl1 4M --gpu-node %s", bdf);
	ASSERT_EQ(ctl(args), 0);
	EXPECT_HAS(out, "name        ctl1");
	EXPECT_EQ(ctl("pool create ctl0 4M --gpu-node 00:1f.7"), 1);
	EXPECT_HAS(err, "no such NUMA node with memory, or no such PCI device (ENODEV)");
	EXPECT_EQ(ctl("pool create ctl0 4M --gpu-node nonsense"), 2);
	EXPECT_HAS(err, "--gpu-node 'nonsense' is not a PCI address");
}

TEST_F(ctl, usage_errors_name_the_argument)
{
	static const struct {
		const char *args, *msg;
	} cases[] = {
		{"", "needs a COMMAND"},
		{"frob", "unknown command 'frob'"},
		{"pool", "pool: needs create, open or destroy"},
		{"pool frob", "unknown subcommand 'frob'"},
		{"pool create ctl0", "needs NAME and SIZE"},
		{"pool create ctl0 12x", "SIZE '12x' is not a size"},
		{"pool create ctl0 0", "SIZE '0' is not a size"},
		{"pool create ctl0 3M", "SIZE '3M' is not a multiple of the 2 MiB page size"},
		{"pool create ctl0 4M --node abc", "--node 'abc' is not a NUMA node number"},
		{"pool create ctl0 4M --page-size 64k", "--page-size '64k' is not 4k or 2m"},
		{"pool create ctl0 4M --mode 0999", "--mode '0999' is not octal"},
		{"pool create ctl0 4M --bogus 1", "unknown option '--bogus'"},
		{"pool create ctl0 4M --node", "--node needs a value"},
		{"pool create ctl0 4M --node 0 --gpu-node 00:01.0", "exclude each other"},
		{"pool destroy", "pool destroy: needs NAME"},
		{"pool destroy a b", "pool destroy: takes only NAME"},
		{"limits", "limits: needs get or set"},
		{"limits set", "needs --global BYTES and/or --per-uid BYTES"},
		{"limits set --global lots", "--global BYTES 'lots' is not a size"},
		{"limits get extra", "unexpected argument 'extra'"},
		{"residency --watch -1", "unknown option '-1'"},
		{"residency --watch 0", "--watch SECONDS '0' is not a number of seconds"},
		{"residency --count x", "--count N 'x' is not a positive number"},
		{"--prometheus limits get", "--prometheus goes with status, pools or residency"},
		{"--device", "--device needs a PATH"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EXPECT_EQ(ctl(cases[i].args), 2);
		if (!strstr(err, cases[i].msg))
			FAIL("kvmmctl %s: '%s' not in: %s", cases[i].args, cases[i].msg, err);
	}
	/* nothing was created on the way */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
}

TEST_F(ctl, refusals_name_the_errno)
{
	ASSERT_EQ(ctl("pool create ctl0 4M"), 0);
	EXPECT_EQ(ctl("pool create ctl0 4M"), 1);
	EXPECT_HAS(err, "kvmmctl: pool create 'ctl0': a pool with this name exists (EEXIST)");
	EXPECT_EQ(ctl("pool destroy nope"), 1);
	EXPECT_HAS(err, "kvmmctl: pool destroy 'nope': no pool with this name (ENOENT)");
	EXPECT_EQ(ctl("pool open nope"), 1);
	EXPECT_HAS(err, "(ENOENT)");
	EXPECT_EQ(ctl("pool create bad/name 4M"), 1);
	EXPECT_HAS(err, "invalid argument (EINVAL)");
	EXPECT_EQ(ctl("pool create ctl1 4M --node 7"), 1);
	EXPECT_HAS(err, "(EINVAL)");
	ASSERT_EQ(ctl("limits set --global 6M"), 0);
	EXPECT_EQ(ctl("pool create ctl1 4M"), 1);
	EXPECT_HAS(err, "over the host-wide limit (kvmmctl limits get) (ENOSPC)");
	ASSERT_EQ(ctl("limits set --global 0 --per-uid 2M"), 0);
	EXPECT_EQ(ctl("pool create ctl1 4M"), 1);
	EXPECT_HAS(err, "over the per-uid limit (kvmmctl limits get) (EDQUOT)");
	EXPECT_EQ(ctl("--device /nonexistent status"), 1);
	EXPECT_HAS(err,
		   "kvmmctl: /nonexistent: no /dev/kvmm: the kvmm module is not loaded (ENODEV)");
	EXPECT_EQ(ctl("--device /dev/null status"), 1);
	EXPECT_HAS(err, "not a kvmm device (ENOTTY)");
	/* other users */
	EXPECT_EQ(ctl_as(1000, "status"), 1);
	EXPECT_HAS(err, "permission denied");
	EXPECT_HAS(err, "(EACCES)");
	ASSERT_EQ(chmod(KVMM_DEV, 0666), 0);
	EXPECT_EQ(ctl_as(1000, "limits set --global 1G"), 1);
	EXPECT_HAS(err, "needs CAP_SYS_ADMIN (root) (EPERM)");
	EXPECT_EQ(ctl_as(1000, "pool open ctl0"), 1);
	EXPECT_HAS(err, "the pool's mode does not allow this to your user or group (EACCES)");
	EXPECT_EQ(ctl_as(1000, "limits get"), 0);
	chmod(KVMM_DEV, 0600);
}

TEST_F(ctl, limits)
{
	ASSERT_EQ(ctl("limits set --global 1G --per-uid 256M"), 0);
	EXPECT_HAS(out, "global   1.0 GiB");
	EXPECT_HAS(out, "per uid  256.0 MiB");
	ASSERT_EQ(ctl("--json limits get"), 0);
	EXPECT_TRUE(vmt_json_valid(out));
	EXPECT_HAS(out, "\"global_bytes\":1073741824,\"per_uid_bytes\":268435456");
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/global_bytes"), 1ll << 30);
	ASSERT_EQ(ctl("limits set --per-uid 0"), 0);
	EXPECT_HAS(out, "per uid  none");
}

TEST_F(ctl, residency)
{
	struct kvmm_pool_residency r = {.size = sizeof(r), .pages = {1, 22, 333, 4}};
	int fd = vmt_pool_create(self->dev, "ctl0", 4 << 20, KVMM_NODE_ANY, 12,
				 KVMM_POOL_PERSISTENT, 0600);
	int lines = 0;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_RESIDENCY, &r), 0);
	ASSERT_EQ(ctl("residency ctl0"), 0);
	EXPECT_HAS(out, "GPU");
	EXPECT_HAS(out, "ctl0");
	EXPECT_HAS(out, "333");
	ASSERT_EQ(ctl("residency --json"), 0);
	EXPECT_TRUE(vmt_json_valid(out));
	EXPECT_HAS(out, "{\"name\":\"ctl0\",\"gpu\":1,\"host\":22,\"disk\":333,\"inflight\":4}");
	ASSERT_EQ(ctl("residency --prometheus"), 0);
	EXPECT_HAS(out, "kvmm_pool_residency_pages{pool=\"ctl0\",tier=\"disk\"} 333");
	/* --watch: as many JSON lines as asked for */
	ASSERT_EQ(ctl("--json residency ctl0 --watch 0.05 --count 3"), 0);
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		EXPECT_TRUE(vmt_json_valid(l));
		lines++;
	}
	EXPECT_EQ(lines, 3);
	EXPECT_EQ(ctl("residency nope"), 1);
	EXPECT_HAS(err, "residency 'nope': no pool with this name (ENOENT)");
	close(fd);
}
