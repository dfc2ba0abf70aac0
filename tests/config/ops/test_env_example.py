"""deploy/env.example is complete: with its placeholders filled, production starts and `check --deploy` is clean."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "env.example"
SOURCES = ("config", "funding", "ledger", "settlement")


def example_values() -> dict[str, str]:
    values = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def clean_environment() -> dict[str, str]:
    """This process's environment without anything the engine reads: only the example speaks."""
    engine_names = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})=", EXAMPLE.read_text(encoding="utf-8")))
    return {
        key: value
        for key, value in os.environ.items()
        if key not in engine_names and not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "API_", "CACHE_"))
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True, text=True, timeout=120,
    )


def generated_secrets() -> dict[str, str]:
    result = manage({**clean_environment(), "DJANGO_ENV": "local"}, "generate_secrets")
    assert result.returncode == 0, result.stderr
    pairs = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert sorted(pairs) == ["API_SECRET_ENCRYPTION_KEY", "DJANGO_ADMIN_URL", "DJANGO_SECRET_KEY", "METRICS_TOKEN"]
    return pairs


def filled_example() -> dict[str, str]:
    """What an operator writes: the generated secrets, and real passwords in the service URLs."""
    values = {**example_values(), **generated_secrets()}
    return {key: value.replace("CHANGE-ME", "s3cret-from-the-vault") for key, value in values.items()}


def test_check_deploy_passes_with_the_filled_example():
    env = {**clean_environment(), **filled_example()}
    assert env["DJANGO_ENV"] == "production"
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_example_as_shipped_is_refused_until_every_placeholder_is_replaced():
    result = manage({**clean_environment(), **example_values()}, "check", "--deploy")
    assert result.returncode != 0
    assert (
        "API_SECRET_ENCRYPTION_KEY, CACHE_URL, CELERY_BROKER_URL, DATABASE_URL, DJANGO_ADMIN_URL, DJANGO_SECRET_KEY, "
        "METRICS_TOKEN still hold the env example's CHANGE-ME placeholder"
    ) in result.stderr


def test_the_example_can_be_read_from_a_file_named_by_django_env_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in filled_example().items()))
    env = {**clean_environment(), "DJANGO_ENV_FILE": str(env_file)}
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_setting_production_requires_is_in_the_example_and_every_name_in_it_is_read():
    settings_text = (ROOT / "config" / "settings.py").read_text()
    required = set(re.findall(r'env_required\("([A-Z_]+)"\)', settings_text))
    assert {"DJANGO_SECRET_KEY", "DJANGO_ADMIN_URL", "API_SECRET_ENCRYPTION_KEY", "DATABASE_URL"} <= required
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))
    assert required | {"CACHE_URL", "DJANGO_ENV", "DJANGO_STATIC_ROOT"} <= set(example_values())
    code = "\n".join(path.read_text() for package in SOURCES for path in (ROOT / package).rglob("*.py"))
    assert sorted(name for name in named if f'"{name}"' not in code) == []


def test_generated_secrets_are_fresh_each_time_and_accepted_by_production():
    first, second = generated_secrets(), generated_secrets()
    assert all(first[name] != second[name] for name in first)
    assert len(first["DJANGO_SECRET_KEY"]) >= 50
    from cryptography.fernet import Fernet

    Fernet(first["API_SECRET_ENCRYPTION_KEY"].encode())  # a valid Fernet key


def test_collected_static_files_are_served_by_the_app_in_production(tmp_path):
    """The admin and the API docs keep their CSS and scripts in production: collectstatic + WhiteNoise."""
    env = {**clean_environment(), **filled_example(), "DJANGO_STATIC_ROOT": str(tmp_path / "static")}
    collected = manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()  # hashed names, cached for good
    code = (
        "import django; django.setup(); from django.test import Client; "
        "from django.templatetags.static import static; "
        "url = static('admin/css/base.css'); "
        "response = Client().get(url, secure=True, HTTP_HOST='engine.bank.example'); "
        "print(url, response.status_code, response.headers['Cache-Control'], response.headers['Content-Type'], sep='|')"
    )
    served = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True, text=True, timeout=120,
    )
    assert served.returncode == 0, served.stderr
    url, status, cache_control, content_type = served.stdout.strip().split("|")
    assert re.fullmatch(r"/static/admin/css/base\.[0-9a-f]{12}\.css", url)
    assert (status, cache_control) == ("200", "max-age=315360000, public, immutable")
    assert content_type.startswith("text/css")
