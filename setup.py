"""Distribution kfp-mlops.

The top-level components/ and pipelines/ folders install as kfp_mlops.components
and kfp_mlops.pipelines, so no bare "components" or "pipelines" package appears in
site-packages. The version is read from kfp_mlops/_version.py without importing it.
"""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "kfp_mlops" / "_version.py").read_text(), re.M).group(1)


def _packages(folder: str, namespace: str) -> dict[str, str]:
    found = {}
    for init in sorted((HERE / folder).rglob("__init__.py")):
        rel = init.parent.relative_to(HERE / folder)
        name = ".".join((namespace, *rel.parts)) if rel.parts else namespace
        found[name] = str(init.parent.relative_to(HERE))
    return found


PACKAGE_DIRS = {
    "kfp_mlops": "kfp_mlops",
    **_packages("components", "kfp_mlops.components"),
    **_packages("pipelines", "kfp_mlops.pipelines"),
}

# What the data image (ingest, validate) needs; the heavy stacks are extras so a
# step's image carries only what that step imports.
# Ranges, so the package installs into an existing KFP environment; the exact versions
# we test with are in constraints.txt (pip install -c constraints.txt ...).
CORE = [
    "kfp>=2.14,<3",
    "kfp-kubernetes>=2.14,<3",
    "pyarrow>=17,<26",
    "numpy>=1.26,<3",
    "google-cloud-storage>=2.18,<4",
    "boto3>=1.34,<2",
    "requests>=2.31,<3",
]
EXTRAS = {
    "train": ["torch==2.13.0", "mlflow>=3.17,<3.18"],
    "features": ["feast>=0.67,<0.68", "pandas<3", "duckdb>=1.1,<3", "redis>=5,<9", "psycopg[binary]>=3.1,<4"],
    "monitor": ["evidently>=0.7.23,<0.8", "pandas<3"],
    # ingest of dvc:// sources (data image). moto[server] pulls antlr4 unbounded; DVC's
    # hydra-core needs 4.9.x, so the extra names it.
    "dvc": ["dvc>=3.67,<4", "antlr4-python3-runtime>=4.9.3,<4.10"],
    # The model server is built on KServe's Python model server; kserve holds psutil below 6.
    # The A/B gate runs in the same image: scipy for its statistics, DuckDB (features) for the log.
    "serve": ["kserve>=0.21,<0.22", "pandas<3", "httptools>=0.6,<1", "uvloop>=0.19,<1; sys_platform != 'win32'", "scipy>=1.11,<2"],
    "test": [
        "pytest>=8",
        # The README's test command runs two workers (pytest.ini: whole modules and shared builds per worker).
        "pytest-xdist>=3.8,<4",
        "gcp-storage-emulator>=2024.8",
        "moto[server]>=5,<6",
        "psutil>=5.9.6,<6",
        "pandas<3",
        # Real public tables that ship inside PyPI packages: the plain-table pipeline
        # tests and the model-quality benchmark (ours against these baselines).
        "scikit-learn>=1.5,<2",
        "statsmodels>=0.14,<1",
        "palmerpenguins>=0.1.4,<1",
        "vega_datasets>=0.9,<1",
        # The notebooks are executed by the tests; the workflows' lint job runs ruff.
        "nbclient>=0.10,<1",
        "nbformat>=5.10,<6",
        "ipykernel>=6.29,<8",
        "ruff>=0.15,<1",
        # validate's suites are compared with Great Expectations itself (not a runtime dependency).
        "great-expectations>=1.24,<1.25",
    ],
}
EXTRAS["all"] = sorted({req for name in ("train", "features", "monitor", "serve", "dvc") for req in EXTRAS[name]})

setup(
    name="kfp-mlops",
    version=VERSION,
    description="Kubeflow Pipelines components: ingest, validate, featurize, train, register, deploy, monitor",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["kfp-mlops=kfp_mlops.pipelines.cli:main"]},
)
