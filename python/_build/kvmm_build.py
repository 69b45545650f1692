# SPDX-License-Identifier: MIT
"""A PEP 517 / PEP 660 build backend for the pure-Python kvmm package, in the
standard library alone, so that `pip install ./python` needs no network
(the GPU machine and CI have none): it zips kvmm/ with its dist-info.
"""
import base64
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "kvmm"
TAG = "py3-none-any"


def _project():
    """name, version, description, requires-python from pyproject.toml's
    [project] table (flat string keys only: all this package uses)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]
    meta = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"', table, flags=re.M))
    for key in ("name", "version"):
        if key not in meta:
            raise RuntimeError(f"pyproject.toml: [project] has no {key}")
    return meta


def _dist_info(meta):
    return f"{meta['name']}-{meta['version']}.dist-info"


def _metadata(meta):
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {meta['version']}"]
    if "description" in meta:
        lines.append(f"Summary: {meta['description']}")
    if "requires-python" in meta:
        lines.append(f"Requires-Python: {meta['requires-python']}")
    if "license" in meta:
        lines.append(f"License: {meta['license']}")
    body = ""
    readme = ROOT / meta.get("readme", "README.md")
    if readme.is_file():
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + readme.read_text()
    return "\n".join(lines) + "\n" + body


def _wheel_text():
    return f"Wheel-Version: 1.0\nGenerator: kvmm_build\nRoot-Is-Purelib: true\nTag: {TAG}\n"


def _sources():
    for p in sorted((ROOT / PACKAGE).rglob("*.py")):
        if "__pycache__" not in p.parts:
            yield p.relative_to(ROOT).as_posix(), p.read_bytes()


def _write_wheel(wheel_directory, files):
    """files: [(archive name, bytes)] without the dist-info; returns the file name."""
    meta = _project()
    di = _dist_info(meta)
    files = list(files) + [(f"{di}/METADATA", _metadata(meta).encode()),
                           (f"{di}/WHEEL", _wheel_text().encode()),
                           (f"{di}/top_level.txt", f"{PACKAGE}\n".encode())]
    record = []
    name = f"{meta['name']}-{meta['version']}-{TAG}.whl"
    path = Path(wheel_directory) / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            z.writestr(_zinfo(arc), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{arc},sha256={digest.decode()},{len(data)}")
        record.append(f"{di}/RECORD,,")
        z.writestr(_zinfo(f"{di}/RECORD"), "\n".join(record) + "\n")
    return name


def _zinfo(arc):
    # Fixed timestamps and modes: the same sources give the same wheel.
    zi = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
    zi.external_attr = 0o644 << 16
    zi.compress_type = zipfile.ZIP_DEFLATED
    return zi


# -- PEP 517 hooks --
def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    meta = _project()
    d = Path(metadata_directory) / _dist_info(meta)
    d.mkdir(parents=True, exist_ok=True)
    (d / "METADATA").write_text(_metadata(meta))
    (d / "WHEEL").write_text(_wheel_text())
    (d / "top_level.txt").write_text(f"{PACKAGE}\n")
    return d.name


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _sources())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth line puts this source tree on sys.path (PEP 660's simplest form).
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth",
                                           f"{ROOT}\n".encode())])


def build_sdist(sdist_directory, config_settings=None):
    meta = _project()
    base = f"{meta['name']}-{meta['version']}"
    name = f"{base}.tar.gz"
    members = [("pyproject.toml", (ROOT / "pyproject.toml").read_bytes()),
               ("_build/kvmm_build.py", Path(__file__).read_bytes()),
               ("PKG-INFO", _metadata(meta).encode())]
    if (ROOT / "README.md").is_file():
        members.append(("README.md", (ROOT / "README.md").read_bytes()))
    members += list(_sources())
    with tarfile.open(Path(sdist_directory) / name, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for arc, data in members:
            ti = tarfile.TarInfo(f"{base}/{arc}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))
    return name

