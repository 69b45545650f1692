// SPDX-License-Identifier: MIT
/* policy.c - policy names (see policy.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

static const struct {
	const char *name;
	bool prefix, host, disk, lookahead;
} bases[] = {
	{"none", false, false, false, false},	{"gpu-lru", true, false, false, false},
	{"gpu-host", true, true, false, false}, {"gpu-host-disk", true, true, true, false},
	{"lookahead", true, true, true, true},
};

int sim_policy_parse(const char *name, struct sim_policy *p, struct sim_err *err)
{
	char buf[sizeof(p->name)], *mod, *save = NULL;
	size_t i;

	if (!name || !*name || strlen(name) >= sizeof(buf))
		return sim_errf(err, -EINVAL, "--policy: empty or too long name");
	strcpy(buf, name);
	mod = strchr(buf, ':');
	if (mod)
		*mod++ = 0;
	memset(p, 0, sizeof(*p));
	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
		if (!strcmp(bases[i].name, buf))
			break;
	if (i == sizeof(bases) / sizeof(bases[0]))
		return sim_errf(err, -EINVAL,
				"--policy: unknown policy \"%s\" (none, gpu-lru, gpu-host, "
				"gpu-host-disk, lookahead, all; modifiers :alias :copy :lfu)",
				buf);
	strcpy(p->name, name);
	p->prefix = bases[i].prefix;
	p->host = bases[i].host;
	p->disk = bases[i].disk;
	p->lookahead = bases[i].lookahead;
	p->attach = KVMM_ATTACH_AUTO;
	p->evict = KVMM_EVICT_LRU;
	for (char *m = mod ? strtok_r(mod, ":", &save) : NULL; m; m = strtok_r(NULL, ":", &save)) {
		if (!p->prefix)
			return sim_errf(err, -EINVAL,
					"--policy %s: \"none\" has no prefix cache to modify",
					name);
		if (!strcmp(m, "alias"))
			p->attach = KVMM_ATTACH_ALIAS;
		else if (!strcmp(m, "copy"))
			p->attach = KVMM_ATTACH_COPY;
		else if (!strcmp(m, "lfu"))
			p->evict = KVMM_EVICT_LFU;
		else
			return sim_errf(err, -EINVAL,
					"--policy %s: unknown modifier \":%s\" (alias, copy, lfu)",
					name, m);
	}
	return 0;
}

int sim_policy_list(const char *list, struct sim_policy *out, uint32_t *n, struct sim_err *err)
{
	char buf[512], *save = NULL;
	int ret;

	*n = 0;
	if (!list || strlen(list) >= sizeof(buf))
		return sim_errf(err, -EINVAL, "--policy: missing or too long");
	strcpy(buf, list);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "all")) {
			uint32_t m;

			if (*n + SIM_POLICY_ALL_N > SIM_MAX_POLICIES)
				return sim_errf(err, -E2BIG, "--policy: more than %d policies",
						SIM_MAX_POLICIES);
			ret = sim_policy_list(SIM_POLICY_ALL, out + *n, &m, err);
			if (ret)
				return ret;
			*n += m;
			continue;
		}
		if (*n == SIM_MAX_POLICIES)
			return sim_errf(err, -E2BIG, "--policy: more than %d policies",
					SIM_MAX_POLICIES);
		ret = sim_policy_parse(tok, &out[*n], err);
		if (ret)
			return ret;
		(*n)++;
	}
	if (!*n)
		return sim_errf(err, -EINVAL, "--policy: no policy named");
	for (uint32_t i = 0; i < *n; i++)
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(out[i].name, out[j].name))
				return sim_errf(err, -EINVAL, "--policy: \"%s\" given twice",
						out[i].name);
	return 0;
}
