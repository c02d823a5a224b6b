"""Every key the pipeline keeps in Redis, laid out so that one script's keys share a cluster slot.

    <prefix>{<error>}:window    the error's dedup window (SET NX EX: who sets it alerts)
    <prefix>{<error>}:repeats   repeats counted since the error's last alert
    <prefix>{<error>}:last      when it was last alerted
    <prefix>rate:{<webhook>}    the webhook's posts in the last minute (the shared Lark budget)

The braces are a hash tag: a cluster hashes only what is inside them, so the three keys of an
error (the claim script touches all three) live in one slot, and errors spread over every
master. `<error>` and `<webhook>` are hashes: no request data and no token is ever in a key.
"""

from __future__ import annotations

import hashlib

CLAIM_KEY_PARTS = ("window", "repeats", "last")


def claim_keys(prefix: str, error: str) -> list[str]:
    """The keys of one error, in the order the claim script reads them (window, repeats, last)."""
    base = f"{prefix}{{{error}}}"
    return [f"{base}:{part}" for part in CLAIM_KEY_PARTS]


def rate_key(prefix: str, webhook_url: str) -> str:
    """The sorted set of one webhook's posts."""
    webhook = hashlib.blake2b(webhook_url.encode(), digest_size=12).hexdigest()
    return f"{prefix}rate:{{{webhook}}}"


def keys_of_each_script(prefix: str, webhook_url: str | None) -> dict[str, list[str]]:
    """What each script (or command) touches at once, for an example error: each list must map to one slot."""
    keys = claim_keys(prefix, "0" * 32)
    touched = {"dedup claim": keys, "repeat count": keys[1:2]}
    if webhook_url is not None:
        touched["rate budget"] = [rate_key(prefix, webhook_url)]
    return touched
