#!/bin/sh
# lint.sh: clang-format on userspace C, checkpatch and sparse on the module.
# Records results in build/results/lint.res like any test stage.
set -u
cd "$(dirname "$0")/.."
res=${KVMM_RESULTS:-build/results}/lint.res
mkdir -p "$(dirname "$res")" build/logs/lint
rm -f "$res"
rc=0

# 1. clang-format (userspace; the module follows the kernel's style instead)
files=$(git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null | grep -vE '^(kmod|uapi)/')
if ! command -v clang-format >/dev/null; then
	echo "SKIP lint/clang-format (not installed)" >> "$res"
elif [ -n "$files" ]; then
	bad=""
	for f in $files; do
		clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
	done
	if [ -n "$bad" ]; then
		echo "FAIL lint/clang-format:$bad (run: make format)" >> "$res"
		echo "clang-format: needs formatting:$bad"; rc=1
	else
		echo "PASS lint/clang-format" >> "$res"
	fi
fi

# 1b. the exported symbols match the public header
if scripts/check-abi.sh > build/logs/lint/abi.log 2>&1; then echo "PASS lint/abi-map" >> "$res"; else echo "FAIL lint/abi-map (see build/logs/lint/abi.log)" >> "$res"; cat build/logs/lint/abi.log; rc=1; fi

# 1c. pyflakes over the Python binding, its tests and examples
pyfiles=$(git ls-files '*.py' 2>/dev/null)
if [ -z "$pyfiles" ]; then
	:
elif ! /usr/bin/python3 -m pyflakes --version >/dev/null 2>&1; then
	echo "SKIP lint/pyflakes (python3-pyflakes not installed)" >> "$res"
elif /usr/bin/python3 -m pyflakes $pyfiles > build/logs/lint/pyflakes.log 2>&1; then
	echo "PASS lint/pyflakes" >> "$res"
else
	echo "FAIL lint/pyflakes (see build/logs/lint/pyflakes.log)" >> "$res"; cat build/logs/lint/pyflakes.log; rc=1
fi

# 2. checkpatch on the module sources
kfiles=$(ls kmod/*.c kmod/*.h uapi/*.h 2>/dev/null | grep -v '\.mod\.c$')
if [ -n "$kfiles" ]; then
	if cp=$(scripts/checkpatch.sh 2>build/logs/lint/checkpatch-setup.log); then
		# shellcheck disable=SC2086
		if "$cp" --no-tree --strict --show-types -q --ignore SPDX_LICENSE_TAG,FILE_PATH_CHANGES -f $kfiles \
				> build/logs/lint/checkpatch.log 2>&1; then
			echo "PASS lint/checkpatch" >> "$res"
		else
			echo "FAIL lint/checkpatch (see build/logs/lint/checkpatch.log)" >> "$res"
			head -40 build/logs/lint/checkpatch.log; rc=1
		fi
	else
		echo "SKIP lint/checkpatch (no linux-source; see build/logs/lint/checkpatch-setup.log)" >> "$res"
	fi
fi

# 3. sparse and W=1 over the module, when its build fragment provides it
if grep -qs '^module-lint:' mk/kmod.mk; then
	if make --no-print-directory module-lint > build/logs/lint/module.log 2>&1; then
		echo "PASS lint/module-sparse-W1" >> "$res"
	else
		echo "FAIL lint/module-sparse-W1 (see build/logs/lint/module.log)" >> "$res"
		tail -30 build/logs/lint/module.log; rc=1
	fi
fi

printf '%-9s' "lint:"; KVMM_SHOW_SKIPS= KVMM_RESULTS=$(dirname "$res") scripts/summary.sh lint | tail -1
exit $rc
