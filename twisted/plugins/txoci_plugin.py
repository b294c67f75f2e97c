"""twistd plugin: ``twistd oci`` serves a txoci registry."""

from twisted.application.service import ServiceMaker

txoci = ServiceMaker(
    "txoci",
    "txoci.service.plugin",
    "An OCI container registry (OCI Distribution v1.1).",
    "oci",
)
