"""Key rotation of the secrets at rest: reencrypt_api_secrets."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from funding.api.authentication import sign
from funding.api.crypto import secret_decrypt, secret_encrypt
from funding.api.models import ApiKey, WebhookEndpoint
from funding.api.services import api_key_issue, api_key_secret, webhook_endpoint_set
from funding.models import AuditEvent
from tests.factories import company_with_line

pytestmark = pytest.mark.django_db

OLD, NEW, OTHER = (Fernet.generate_key().decode() for _ in range(3))


def _run(*args) -> str:
    out = io.StringIO()
    call_command("reencrypt_api_secrets", *args, stdout=out)
    return out.getvalue().strip()


def test_rotation_reencrypts_every_secret_once_and_keeps_them_readable(business_day, settings):
    settings.API_SECRET_ENCRYPTION_KEYS = [OLD]
    company, _ = company_with_line()
    issued = [api_key_issue(company=company, actor_label="test") for _ in range(2)]
    _, webhook_secret = webhook_endpoint_set(company=company, url="https://hooks.example.com/x", actor_label="t")
    before = {k.pk: k.secret_encrypted for k in ApiKey.objects.all()}

    settings.API_SECRET_ENCRYPTION_KEYS = [NEW, OLD]  # the new key first, the old one still decrypts
    assert _run() == (
        "Re-encrypted 3 secrets with the first key (2 API keys, 1 webhook endpoints); 0 already current; "
        "0 unreadable."
    )
    assert all(k.secret_encrypted != before[k.pk] for k in ApiKey.objects.all())
    assert AuditEvent.objects.filter(action="api_secret.reencrypted").count() == 3

    # Idempotent: a second run changes nothing.
    after = {k.pk: k.secret_encrypted for k in ApiKey.objects.all()}
    assert json.loads(_run("--json")) == {
        "reencrypted": 0, "api_keys": 0, "webhook_endpoints": 0, "already_current": 3, "unreadable": []
    }
    assert {k.pk: k.secret_encrypted for k in ApiKey.objects.all()} == after

    # The old key can go: everything reads with the new key alone, and signatures still verify.
    settings.API_SECRET_ENCRYPTION_KEYS = [NEW]
    by_id = {i.key_id: i.secret for i in issued}
    for key in ApiKey.objects.all():
        assert api_key_secret(key) == by_id[key.key_id]
    assert secret_decrypt(WebhookEndpoint.objects.get(company=company).secret_encrypted) == webhook_secret
    key = issued[0]
    assert sign(api_key_secret(ApiKey.objects.get(key_id=key.key_id)), "GET", "/x", "1", "n" * 16, b"") == (
        sign(key.secret, "GET", "/x", "1", "n" * 16, b"")
    )


def test_a_secret_no_key_reads_is_named_and_the_others_are_still_done(business_day, settings):
    settings.API_SECRET_ENCRYPTION_KEYS = [OTHER]
    company, _ = company_with_line()
    lost = api_key_issue(company=company, actor_label="test")
    settings.API_SECRET_ENCRYPTION_KEYS = [OLD]
    kept = api_key_issue(company=company, actor_label="test")
    settings.API_SECRET_ENCRYPTION_KEYS = [NEW, OLD]
    with pytest.raises(CommandError, match=f"No configured key decrypts: api_key {lost.key_id}"):
        _run()
    assert secret_decrypt(ApiKey.objects.get(key_id=kept.key_id).secret_encrypted) == kept.secret
    settings.API_SECRET_ENCRYPTION_KEYS = [NEW]
    assert secret_decrypt(ApiKey.objects.get(key_id=kept.key_id).secret_encrypted) == kept.secret
    settings.API_SECRET_ENCRYPTION_KEYS = [OTHER]
    assert secret_decrypt(ApiKey.objects.get(key_id=lost.key_id).secret_encrypted) == lost.secret  # untouched


def test_nothing_to_do_without_a_new_key(business_day, settings):
    settings.API_SECRET_ENCRYPTION_KEYS = [OLD]
    company, _ = company_with_line()
    ApiKey.objects.create(key_id="ak_manual0001", company=company, secret_encrypted=secret_encrypt("sk_x"))
    assert _run().startswith("Re-encrypted 0 secrets with the first key (0 API keys, 0 webhook endpoints); 1 ")
