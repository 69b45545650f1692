#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Packaging: the in-tree build backend makes a valid wheel, `pip install
./python` works offline, and the installed package finds libkvmm through
$KVMM_LIB, the in-tree build or the system loader, in that order."""
import base64
import csv
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tap import run, skip

import kvmm

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "python"
LIB = ROOT / "build" / "default" / "lib" / "libkvmm.so.0"

PROBE = ("import kvmm, sys\n"
         "with kvmm.Backend('host') as be, kvmm.Cache(be, num_layers=1, num_kv_heads=1, "
         "head_dim=64, max_seqs=1, max_tokens=64, budget_bytes=2 << 20) as c:\n"
         "    s = c.open(); s.step(3); assert s.len == 3\n"
         "print(kvmm.__file__); print(kvmm.library_path())\n")


def backend():
    spec = importlib.util.spec_from_file_location("kvmm_build", PKG / "_build" / "kvmm_build.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def python(code, env_extra, cwd="/"):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KVMM_LIB")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True)


def test_wheel_is_valid():
    b = backend()
    assert b.get_requires_for_build_wheel() == []
    with tempfile.TemporaryDirectory() as d:
        name = b.build_wheel(d)
        assert name == f"kvmm-{kvmm.__version__}-py3-none-any.whl"
        with zipfile.ZipFile(Path(d) / name) as z:
            names = set(z.namelist())
            srcs = {p.relative_to(PKG).as_posix() for p in (PKG / "kvmm").glob("*.py")}
            assert srcs <= names, srcs - names
            di = f"kvmm-{kvmm.__version__}.dist-info"
            meta = z.read(f"{di}/METADATA").decode()
            assert "Name: kvmm" in meta and f"Version: {kvmm.__version__}" in meta
            rows = list(csv.reader(io.StringIO(z.read(f"{di}/RECORD").decode())))
            assert {r[0] for r in rows} == names
            for path, digest, size in rows:
                if path.endswith("RECORD"):
                    continue
                data = z.read(path)
                want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                assert digest == "sha256=" + want.decode() and int(size) == len(data), path
        again = b.build_wheel(d + "/")  # reproducible
        assert again == name


def test_editable_and_sdist():
    b = backend()
    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(Path(d) / b.build_editable(d)) as z:
            pth = [n for n in z.namelist() if n.endswith(".pth")]
            assert len(pth) == 1 and z.read(pth[0]).decode().strip() == str(PKG)
        import tarfile
        with tarfile.open(Path(d) / b.build_sdist(d)) as t:
            names = t.getnames()
            assert f"kvmm-{kvmm.__version__}/kvmm/cache.py" in names
            assert f"kvmm-{kvmm.__version__}/pyproject.toml" in names


def test_pip_install_offline_and_library_lookup():
    if importlib.util.find_spec("pip") is None:
        skip("pip is not installed (python3-pip)")
    if not LIB.exists():
        skip("libkvmm not built")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                            "--disable-pip-version-check", "--target", d, str(PKG)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        # 1. $KVMM_LIB wins
        r = python(PROBE, {"PYTHONPATH": d, "KVMM_LIB": str(LIB)})
        assert r.returncode == 0, r.stderr
        file, lib = r.stdout.split()
        assert file.startswith(d) and lib == str(LIB)
        # ... and a wrong one is an error, not a silent fallback
        r = python(PROBE, {"PYTHONPATH": d, "KVMM_LIB": "/nonexistent/libkvmm.so.0"})
        assert r.returncode != 0 and "$KVMM_LIB: /nonexistent/libkvmm.so.0" in r.stderr, r.stderr
        assert "LibraryNotFoundError" in r.stderr
        # 2. installed away from the tree, without $KVMM_LIB: the system loader
        r = python(PROBE, {"PYTHONPATH": d, "LD_LIBRARY_PATH": str(LIB.parent)})
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[1] == "libkvmm.so.0"
        r = python(PROBE, {"PYTHONPATH": d, "LD_LIBRARY_PATH": "/nonexistent"})
        if r.returncode != 0:  # (unless a libkvmm is installed system-wide)
            assert "system loader: libkvmm.so.0" in r.stderr, r.stderr
    # 3. from the tree: the in-tree build
    r = python(PROBE, {"PYTHONPATH": str(PKG)})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.split()[1]) == LIB


def test_import_works_without_the_library():
    r = python("import kvmm; print(kvmm.__version__)\n"
               "try:\n    kvmm.Backend('host')\n"
               "except kvmm.LibraryNotFoundError as e:\n    print('missing', e)\n",
               {"PYTHONPATH": str(PKG), "KVMM_LIB": "/nonexistent/x.so"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(kvmm.__version__) and "missing" in r.stdout
    assert "make all" in r.stdout


if __name__ == "__main__":
    run(globals())
