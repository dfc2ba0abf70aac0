"""`pip install ./clients/python` gives an importable advance_client package that needs only requests."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"


def test_the_client_installs_with_pip_and_imports_from_where_it_was_installed(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import advance_client as c; "
        "from advance_client import AdvanceClient, ApiError, signed_headers, verify_webhook, InsufficientLimit; "
        "print(c.__file__, c.__version__, issubclass(InsufficientLimit, ApiError))"
    )
    imported = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    path, version, typed = imported.stdout.split()
    assert Path(path) == target / "advance_client" / "__init__.py"
    assert (version, typed) == ("1.1.0", "True")
    assert (target / "advance_client" / "py.typed").exists()


def test_the_client_wheel_declares_requests_only(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "dist").glob("advance_client-1.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(archive.read("advance_client-1.1.0.dist-info/METADATA").decode())
    assert {f"advance_client/{name}" for name in
            ("__init__.py", "client.py", "errors.py", "signing.py", "_version.py", "py.typed")} <= names
    assert metadata.get_all("Requires-Dist") == ["requests<3,>=2.28"]
    assert metadata["Name"] == "advance-client"
