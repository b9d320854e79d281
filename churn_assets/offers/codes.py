"""Discount codes and control-group assignment, both deterministic for a user and campaign."""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from churn_assets.warehouse.settings import PROJECT_ROOT

CODE_KEY_VARIABLE = "CHURN_OFFER_CODE_KEY"
# Crockford-like alphabet without 0/O and 1/I/L, so codes survive being read aloud or retyped.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10


def load_code_key(key_file: Path | None = None) -> bytes:
    """Return the secret behind discount codes: CHURN_OFFER_CODE_KEY, else a key file created once.

    Without the key, codes cannot be derived from user ids, so they are not guessable.
    """
    from_environment = os.environ.get(CODE_KEY_VARIABLE)
    if from_environment:
        return from_environment.encode()
    key_file = key_file or PROJECT_ROOT / ".warehouse" / "offer-code.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return key_file.read_text().strip().encode()


def _digest(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()


def discount_code(key: bytes, campaign_id: str, user_id: str, prefix: str, discount_percent: int) -> str:
    """Return the code of one user in one campaign, e.g. SAVE20-7K3QXM2P9A."""
    number = int.from_bytes(_digest(key, "code", campaign_id, user_id)[:16], "big")
    characters = []
    for _ in range(CODE_LENGTH):
        number, remainder = divmod(number, len(CODE_ALPHABET))
        characters.append(CODE_ALPHABET[remainder])
    return f"{prefix}{discount_percent}-{''.join(characters)}"


def offer_id(campaign_id: str, user_id: str) -> str:
    """Return a stable id for the offer decision of one user in one campaign."""
    return hashlib.sha256(f"{campaign_id}\x1f{user_id}".encode()).hexdigest()[:24]


def is_control(campaign_id: str, user_id: str, control_share: float) -> bool:
    """Assign a user to the control group by a hash of user and campaign (no key needed to audit it)."""
    bucket = int.from_bytes(hashlib.sha256(f"control\x1f{campaign_id}\x1f{user_id}".encode()).digest()[:8], "big")
    return bucket / 2**64 < control_share


