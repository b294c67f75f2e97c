"""
Typed registry failures.

Every failure the registry reports to a client is one of these: each carries
the OCI error code and HTTP status of the distribution spec's error table
(spec.md, "Error Codes"), a human message, optional detail, and any headers
the response needs (a 416 carries the upload's current ``Range``).  The web
layer renders them; nothing else decides a status code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RegistryError(Exception):
    """A failure that maps onto the OCI error envelope."""

    code: ClassVar[str] = "UNSUPPORTED"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "the operation is unsupported"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message if message is not None else self.default_message
        self.detail = detail
        self.headers = dict(headers or {})
        if status is not None:
            self.status_override: int | None = status
        else:
            self.status_override = None
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        """The HTTP status this failure is answered with."""
        return self.status_override if self.status_override is not None else self.status

    def as_json(self) -> dict[str, Any]:
        """One entry of the spec's ``errors`` array."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return entry


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"
    status = 404
    default_message = "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"
    status = 400
    default_message = "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"
    status = 404
    default_message = "blob upload unknown to registry"


class RangeNotSatisfiable(BlobUploadInvalid):
    """An out-of-order chunk: 416 with the upload's current ``Range``."""

    status = 416
    default_message = "chunk does not start at the end of the upload"


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"
    status = 400
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"
    status = 400
    default_message = "manifest references a manifest or blob unknown to registry"


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"
    status = 400
    default_message = "manifest invalid"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"
    status = 404
    default_message = "manifest unknown to registry"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"
    status = 400
    default_message = "invalid repository name"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"
    status = 404
    default_message = "repository name not known to registry"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"
    status = 400
    default_message = "provided length did not match content length"


class PayloadTooLarge(SizeInvalid):
    status = 413
    default_message = "request body is larger than the registry accepts"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"
    status = 401
    default_message = "authentication required"


class Denied(RegistryError):
    code = "DENIED"
    status = 403
    default_message = "requested access to the resource is denied"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"
    status = 405
    default_message = "the operation is unsupported"


class TooManyRequests(RegistryError):
    code = "TOOMANYREQUESTS"
    status = 429
    default_message = "too many requests"


class RequestInvalid(RegistryError):
    """A malformed request that no more specific code describes."""

    code = "UNSUPPORTED"
    status = 400
    default_message = "malformed request"


class StorageFull(RegistryError):
    """The data dir ran out of space while writing."""

    code = "BLOB_UPLOAD_INVALID"
    status = 507
    default_message = "the registry has no space left to store this upload"
