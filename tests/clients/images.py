"""Building and reading image layers for the client tests."""

from __future__ import annotations

import gzip
import io
import tarfile


def make_tar(files: dict[str, bytes]) -> bytes:
    """A reproducible tar archive of ``files`` (a layer, or a root filesystem)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def layer_files(blob: bytes) -> dict[str, bytes]:
    """The regular files of a (possibly gzipped) layer tar, by name without ``./``."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name.removeprefix("./").lstrip("/")] = extracted.read()
    return out
