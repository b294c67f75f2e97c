"""
txoci: an OCI Distribution v1.1 container registry on Twisted.

The public API for embedding is :func:`open_registry` with :class:`Settings`,
and :class:`RegistryService`; ``twistd oci`` runs the same service.
"""

from txoci.service.embed import OpenRegistry, RegistryService, Settings, open_registry
from txoci.web.request import streaming_site

__all__ = ["OpenRegistry", "RegistryService", "Settings", "open_registry", "streaming_site"]
__version__ = "0.1.0"
