"""Secrets at rest: Fernet with keys from settings, so a database dump alone never yields a usable secret."""

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet() -> MultiFernet:
    # The first key encrypts; all of them decrypt, so the key can be rotated without losing old secrets.
    keys = [k.strip() for k in settings.API_SECRET_ENCRYPTION_KEYS if k.strip()]
    return MultiFernet([Fernet(_as_fernet_key(k)) for k in keys])


def _as_fernet_key(value: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value.encode())
        if len(raw) == 32:
            return value.encode()
    except (ValueError, TypeError):
        pass
    # Any other string is stretched into a key; production should set a real Fernet key.
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest())


def secret_encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the stored secret cannot be decrypted with the configured keys") from exc


def secret_is_current(token: str) -> bool:
    """Is the token encrypted with the first (current) key? Then re-encrypting it would change nothing."""
    keys = [k.strip() for k in settings.API_SECRET_ENCRYPTION_KEYS if k.strip()]
    try:
        Fernet(_as_fernet_key(keys[0])).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def secret_reencrypt(token: str) -> str:
    """The same secret encrypted with the first key (key rotation). Raises ValueError if no key decrypts it."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the stored secret cannot be decrypted with the configured keys") from exc


def secret_generate(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"
