# SPDX-License-Identifier: MIT
"""Shared start of the Python GPU tests: skip cleanly (exit 77) without a
CUDA device, or without torch; make tests/python's TAP runner importable."""
import errno
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import kvmm  # noqa: E402


def skip_program(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


def require_cuda():
    """The CUDA backend (device 0), or exit 77 with "SKIP: no CUDA device"."""
    try:
        return kvmm.Backend("cuda")
    except kvmm.KvmmError as e:
        if e.errno == errno.ENODEV:
            skip_program("no CUDA device")
        raise


def require_torch():
    try:
        import torch
    except ImportError:
        skip_program("torch is not installed")
    if not torch.cuda.is_available():
        skip_program("no CUDA device (torch sees none)")
    return torch
