"""
Disk-full test: the data dir on a small tmpfs.  An upload that runs out of
space fails with a clear JSON error, leaves no partial blob and no stuck
upload, reads keep working, and pushes work again once space is freed.

Needs root (to mount the tmpfs); CI runs as root.  Skipped otherwise.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

from tests.support import RegistryTestCase, sha256
from tests.web.test_corruption import blob_file

#: Size of the filesystem, and what the test leaves free before the big upload.
FILESYSTEM = "8m"
LEFT_FREE = 1536 * 1024
BIG = os.urandom(3 * 1024 * 1024)
SMALL = b"still readable " * 1000


def mount_tmpfs(path: str, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``path``; the reason it could not be, or None."""
    if os.geteuid() != 0:
        return "mounting a size-limited filesystem needs root (CI runs as root)"
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run mount: {error}"
    if result.returncode != 0:
        return f"mount -t tmpfs failed: {result.stderr.strip()}"
    return None


class DiskFullTests(RegistryTestCase):
    async def _start(self) -> None:
        self.mount_point = os.path.abspath(self.mktemp())
        os.makedirs(self.mount_point)
        reason = mount_tmpfs(self.mount_point, FILESYSTEM)
        if reason is not None:
            self.skipTest(reason)
        self.addCleanup(subprocess.run, ["umount", "-l", self.mount_point], check=False)
        self.data_dir = os.path.join(self.mount_point, "data")
        await self.open_server()

    def fill(self) -> str:
        """Take all but ``LEFT_FREE`` bytes of the filesystem; return the filler's path."""
        status = os.statvfs(self.mount_point)
        path = os.path.join(self.mount_point, "filler")
        with open(path, "wb") as f:
            f.write(b"\0" * (status.f_bavail * status.f_frsize - LEFT_FREE))
        return path

    def upload_sessions(self) -> int:
        connection = sqlite3.connect(os.path.join(self.data_dir, "metadata.sqlite3"))
        try:
            return int(connection.execute("SELECT COUNT(*) FROM uploads").fetchone()[0])
        finally:
            connection.close()

    async def test_a_full_disk_fails_cleanly_and_pushes_resume_once_space_is_freed(self) -> None:
        small = await self.push_blob("full/app", SMALL)
        filler = self.fill()

        # A monolithic push that does not fit: a clear error, nothing left behind.
        response, body = await self.request(
            "POST", f"/v2/full/app/blobs/uploads/?digest={sha256(BIG)}", data=BIG,
            headers={"Content-Type": "application/octet-stream"})
        self.assertError(response, body, 507, "BLOB_UPLOAD_INVALID")
        self.assertIn(b"no space left", body)
        self.assertFalse(os.path.exists(blob_file(self.data_dir, sha256(BIG))))
        self.assertEqual(os.listdir(os.path.join(self.data_dir, "uploads")), [])
        self.assertEqual(self.upload_sessions(), 0)

        # A chunked push runs out of space too, and stays resumable.
        response, body = await self.request("POST", "/v2/full/app/blobs/uploads/")
        self.assertEqual(response.code, 202, body)
        location = response.headers.getRawHeaders("Location")[0]
        response, body = await self.request(
            "PATCH", location, data=BIG, headers={"Content-Type": "application/octet-stream"})
        self.assertError(response, body, 507, "BLOB_UPLOAD_INVALID")

        # Reads keep working while the disk is full.
        response, body = await self.request("GET", f"/v2/full/app/blobs/{small}")
        self.assertEqual((response.code, body), (200, SMALL))
        response, body = await self.request("GET", "/v2/_catalog")
        self.assertEqual(response.code, 200)

        os.unlink(filler)
        # The interrupted upload resumes where its durable offset says.
        response, body = await self.request("GET", location)
        self.assertEqual(response.code, 204, body)
        # ("Range: 0-0" means either 0 or 1 byte; the session row says which.)
        offset = self.upload_offset(location)
        self.assertLess(offset, len(BIG))
        separator = "&" if "?" in location else "?"
        response, body = await self.request(
            "PUT", f"{location}{separator}digest={sha256(BIG)}", data=BIG[offset:],
            headers={"Content-Range": f"{offset}-{len(BIG) - 1}",
                     "Content-Type": "application/octet-stream"})
        self.assertEqual(response.code, 201, body)
        response, body = await self.request("GET", f"/v2/full/app/blobs/{sha256(BIG)}")
        self.assertEqual(response.code, 200)
        self.assertEqual(sha256(body), sha256(BIG))
        self.assertEqual(self.upload_sessions(), 0)
        self.assertEqual(os.listdir(os.path.join(self.data_dir, "uploads")), [])

    def upload_offset(self, location: str) -> int:
        upload_id = location.split("?")[0].rstrip("/").rsplit("/", 1)[1]
        connection = sqlite3.connect(os.path.join(self.data_dir, "metadata.sqlite3"))
        try:
            (offset,) = connection.execute(
                "SELECT offset FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        finally:
            connection.close()
        return int(offset)
