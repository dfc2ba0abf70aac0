"""docs/api.md is what the server accepts: its vectors recomputed by the server's own code, a request built from
vector 1 authenticated by the server, its shell example run, its Java example compiled and run."""

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from funding.api import authentication
from funding.api.authentication import sign, string_to_sign
from funding.api.crypto import secret_encrypt
from funding.api.models import ApiKey
from funding.api.webhooks import webhook_signature

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
sys.path.insert(0, str(ROOT / "clients" / "python"))

from advance_client import sign_request, verify_webhook  # noqa: E402


def _vectors() -> dict[str, dict[str, str]]:
    vectors = {}
    for block in re.findall(r"```text\n(# [^\n]*vector[^\n]*\n.*?)```", DOC, re.DOTALL | re.IGNORECASE):
        title, *lines = block.strip("\n").split("\n")
        values = {}
        for line in lines:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
        vectors[title.lstrip("# ").split(":")[0]] = values
    return vectors


VECTORS = _vectors()
REQUEST_VECTORS = [VECTORS["Vector 1"], VECTORS["Vector 2"]]


def _block(language: str, after_heading: str) -> str:
    section = DOC[DOC.index(after_heading):]
    return re.search(rf"```{language}\n(.*?)```", section, re.DOTALL).group(1)


def test_the_doc_has_the_vectors():
    assert sorted(VECTORS) == ["Vector 1", "Vector 2", "Webhook vector"]


@pytest.mark.parametrize("vector", REQUEST_VECTORS, ids=["post", "get"])
def test_request_vectors_match_the_servers_signature(vector):
    body = vector["body"].encode()
    assert hashlib.sha256(body).hexdigest() == vector["body_sha256"]
    arguments = (vector["method"], vector["path"], vector["timestamp"], vector["nonce"], body)
    assert sign(vector["api_secret"], *arguments) == vector["signature"]
    assert sign_request(vector["api_secret"], *arguments) == vector["signature"]


def test_the_documented_string_to_sign_is_the_servers():
    vector = VECTORS["Vector 1"]
    documented = _block("text", "Its string to sign").rstrip("\n")
    assert documented == string_to_sign(
        vector["method"], vector["path"], vector["timestamp"], vector["nonce"], vector["body"].encode()
    )


def test_webhook_vector_matches_the_servers_signature():
    vector = VECTORS["Webhook vector"]
    body = vector["body"].encode()
    assert webhook_signature(vector["webhook_secret"], vector["timestamp"], body) == vector["signature"]
    headers = {"X-Timestamp": vector["timestamp"], "X-Signature": vector["signature"]}
    event = verify_webhook(vector["webhook_secret"], headers, body, now=float(vector["timestamp"]))
    assert event["data"]["version"] == 3


@pytest.mark.django_db
def test_the_server_authenticates_requests_built_from_the_vectors(company_line, client, monkeypatch):
    vector = VECTORS["Vector 1"]
    ApiKey.objects.create(key_id=vector["api_key"], company=company_line[0],
                          secret_encrypted=secret_encrypt(vector["api_secret"]))
    # The vectors carry a fixed time: the server's clock is moved to it (the clock is the only thing mocked).
    monkeypatch.setattr(authentication, "time", SimpleNamespace(time=lambda: float(vector["timestamp"]) + 5))

    def call(vector: dict, signature: str):
        headers = {"X-Api-Key": vector["api_key"], "X-Timestamp": vector["timestamp"], "X-Nonce": vector["nonce"],
                   "X-Signature": signature}
        if vector["method"] == "POST":
            headers["Idempotency-Key"] = "SETTLE-20261125-0001"
        return client.generic(vector["method"], vector["path"], data=vector["body"].encode(),
                              content_type="application/json", headers=headers)

    tampered = call(VECTORS["Vector 1"], "0" * 64)
    assert (tampered.status_code, tampered.json()["error"]["code"]) == (401, "authentication_failed")
    created = call(VECTORS["Vector 1"], VECTORS["Vector 1"]["signature"])
    assert created.status_code == 201, created.content
    assert created.json()["external_id"] == "SETTLE-20261125-0001"
    listed = call(VECTORS["Vector 2"], VECTORS["Vector 2"]["signature"])
    assert listed.status_code == 200, listed.content
    assert listed.json() == {"results": [], "next": None}  # nothing disbursed yet


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_shell_example_signs_like_the_server():
    vector = VECTORS["Vector 1"]
    script = _block("sh", "### curl and openssl")
    stub = 'curl() { printf "%s\\n" "$@"; }\n'  # prints what curl would send
    env = {"PATH": "/usr/bin:/bin", "BASE_URL": "http://engine.test", "API_KEY": vector["api_key"],
           "API_SECRET": vector["api_secret"], "TIMESTAMP": vector["timestamp"], "NONCE": vector["nonce"]}
    result = subprocess.run(["bash", "-c", stub + script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    sent = result.stdout.splitlines()
    assert f"X-Signature: {vector['signature']}" in sent
    assert "http://engine.test/api/v1/advances" in sent
    assert vector["body"] in sent  # the same bytes that were signed


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK on this machine")
def test_the_java_example_compiles_and_signs_like_the_server(tmp_path):
    (tmp_path / "AdvanceApiExample.java").write_text(_block("java", "### Java"), encoding="utf-8")
    request, webhook = VECTORS["Vector 1"], VECTORS["Webhook vector"]

    def java_string(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    (tmp_path / "VectorCheck.java").write_text(
        "import java.nio.charset.StandardCharsets;\nimport java.util.Map;\n"
        "public final class VectorCheck { public static void main(String[] a) throws Exception {\n"
        f"  System.out.println(AdvanceApiExample.sign({java_string(request['api_secret'])}, "
        f"{java_string(request['method'])}, {java_string(request['path'])}, {java_string(request['timestamp'])}, "
        f"{java_string(request['nonce'])}, {java_string(request['body'])}.getBytes(StandardCharsets.UTF_8)));\n"
        f"  byte[] body = {java_string(webhook['body'])}.getBytes(StandardCharsets.UTF_8);\n"
        f"  Map<String, String> headers = Map.of(\"x-timestamp\", {java_string(webhook['timestamp'])}, "
        f"\"x-signature\", {java_string(webhook['signature'])});\n"
        f"  long now = Long.parseLong({java_string(webhook['timestamp'])});\n"
        f"  System.out.println(AdvanceApiExample.verifyWebhook({java_string(webhook['webhook_secret'])}, headers, "
        "body, now));\n"
        f"  System.out.println(AdvanceApiExample.verifyWebhook(\"wrong-secret\", headers, body, now));\n"
        "}}\n",
        encoding="utf-8",
    )
    compiled = subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", str(tmp_path), "AdvanceApiExample.java",
                               "VectorCheck.java"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = subprocess.run(["java", "-cp", str(tmp_path), "VectorCheck"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [request["signature"], "true", "false"]
