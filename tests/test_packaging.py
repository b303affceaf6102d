"""The distribution a project installs: every file the two packages need is in the wheel, the
metadata is valid, and the build is free of deprecation warnings.

CI goes further (``make dist-check``): it installs the wheel into a fresh virtualenv and runs
``examples/host_project``'s tests there. This test catches the same omissions in ``make test``.
"""

from __future__ import annotations

import email
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("django_steps", "graphql_api")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the dev extra brings setuptools>=77, and the test needs no network.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = out.glob("*.whl")
    return wheel, result.stdout + result.stderr


def test_the_build_has_no_deprecation_warning(built):
    _, log = built
    assert "Deprecat" not in log and "deprecat" not in log, [
        line for line in log.splitlines() if "eprecat" in line
    ]


def test_the_wheel_holds_every_file_of_both_packages(built):
    wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            relative = path.relative_to(ROOT).as_posix()
            if relative not in names:
                missing.append(relative)
    assert missing == []
    # What a host project cannot run without, named so a failure says what broke.
    for required in (
        "django_steps/migrations/0001_squashed_0012_stats_indexes.py",
        "django_steps/management/commands/load_workflow.py",
        "graphql_api/templates/graphql_api/graphiql.html",
        "graphql_api/static/graphql_api/vendor/graphiql/graphiql-3.8.3.min.js",
        "django_steps/py.typed",
        "graphql_api/py.typed",
    ):
        assert required in names


def test_the_metadata_has_an_spdx_licence_and_its_files(built):
    wheel, _ = built
    archive = zipfile.ZipFile(wheel)
    dist_info = next(
        n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/METADATA")
    )
    metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License"] is None  # the deprecated free-text field
    licence_files = metadata.get_all("License-File")
    assert "LICENSE" in licence_files
    assert "graphql_api/static/graphql_api/vendor/graphiql/graphiql.LICENSE" in licence_files
    for name in licence_files:
        assert f"{dist_info}/licenses/{name}" in archive.namelist()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(metadata.get_all("Provides-Extra"))
    assert {"postgres", "redis", "server"} <= extras == set(project["optional-dependencies"])
