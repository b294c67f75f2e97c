"""Packaging for txoci, an OCI container registry on Twisted."""

from setuptools import find_packages, setup

setup(
    name="txoci",
    version="0.1.0",
    description="An OCI Distribution v1.1 container registry on Twisted and Klein",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["txoci", "txoci.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/txoci_plugin.py"], "txoci": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    entry_points={"console_scripts": ["txoci = txoci.service.cli:main"]},
    install_requires=[
        "twisted>=24.7",
        "klein>=24.8",
        "treq>=24.9",
        "attrs>=23.1",
        "werkzeug>=2",
        "zope.interface>=6",
        # Operations (txoci.service.metrics): /metrics in the Prometheus text format.
        "prometheus_client>=0.20",
        # Authentication (txoci.auth): htpasswd bcrypt, token JWTs and their keys.
        "bcrypt>=4.1",
        "PyJWT>=2.8",
        "cryptography>=42",
    ],
    extras_require={
        "test": [
            "hypothesis>=6.100",
            "oras>=0.2.25",
            "python-dxf>=12",
            "cryptography>=42",
            "mypy>=1.10",
            "mypy-zope>=1.0",
            "ruff>=0.5",
            "types-setuptools",
        ],
        # The documentation site (docs/, built by .ci/run with warnings as errors).
        "docs": [
            # Sphinx 9's class-based autodoc, which autointerface plugs into, is its legacy mode.
            "sphinx>=8.1,<10",
            "myst-parser>=4",
            "repoze.sphinx.autointerface>=1.0",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        # The license is the ``license`` field above; setuptools >= 77 deprecates license classifiers.
    ],
)
