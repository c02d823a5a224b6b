"""Every key the pipeline keeps in Redis, laid out so that one script's keys share a cluster slot.

    <prefix>{<error>}:window      the error's dedup window (SET NX EX: who sets it alerts)
    <prefix>{<error>}:repeats     repeats counted since the error's last alert
    <prefix>{<error>}:last        when it was last alerted
    <prefix>{<error>}:escalated   the thresholds announced in its window, per destination (a hash)
    <prefix>{<error>}:seen        what the fleet remembers of it: new or back (a hash)
    <prefix>{<fleet>}:firing      errors carded and not yet recovered (a sorted set; opt-in)
    <prefix>{<fleet>}:steward     the lease of the replica that sweeps and summarises
    <prefix>{<fleet>}:day:<due>   the errors of the summary period ending at <due>, with :total,
                                  :new, :watched and :sent beside it (opt-in)
    <prefix>rate:{<webhook>}      the webhook's posts in the last minute (the shared Lark budget)

The braces are a hash tag: a cluster hashes only what is inside them, so the keys of an error
(the claim script touches all five) live in one slot, and errors spread over every master; so
do the keys of a fleet (a service and environment). `<error>`, `<fleet>` and `<webhook>` are
hashes: no request data and no token is ever in a key.
"""

from __future__ import annotations

import hashlib

CLAIM_KEY_PARTS = ("window", "repeats", "last", "escalated", "seen")


def claim_keys(prefix: str, error: str) -> list[str]:
    """The keys of one error, in the order the claim script reads them (window, repeats, last,
    escalated, seen)."""
    base = f"{prefix}{{{error}}}"
    return [f"{base}:{part}" for part in CLAIM_KEY_PARTS]


def repeats_keys(prefix: str, error: str) -> list[str]:
    """The keys the repeats script reads (window, repeats, escalated, seen)."""
    window, repeats, _, escalated, seen = claim_keys(prefix, error)
    return [window, repeats, escalated, seen]


def memory_key(prefix: str, error: str) -> str:
    """The hash of what the fleet remembers of one error (see `memory.py`)."""
    return claim_keys(prefix, error)[4]


def fleet_key(prefix: str, fleet: str, name: str) -> str:
    """A key of a fleet's own (`firing`, `steward`, `day:<due>`...)."""
    return f"{prefix}{{{fleet}}}:{name}"


def day_key(prefix: str, fleet: str, due: float) -> str:
    """The sorted set of the errors counted in the summary period ending at `due` (and the base
    of its `:total`, `:new`, `:watched` and `:sent` keys)."""
    return fleet_key(prefix, fleet, f"day:{int(due)}")


def rate_key(prefix: str, webhook_url: str) -> str:
    """The sorted set of one webhook's posts."""
    webhook = hashlib.blake2b(webhook_url.encode(), digest_size=12).hexdigest()
    return f"{prefix}rate:{{{webhook}}}"


def keys_of_each_script(prefix: str, webhook_url: str | None) -> dict[str, list[str]]:
    """What each script (or command) touches at once, for an example error: each list must map to one slot."""
    error, fleet = "0" * 32, "1" * 32
    day = day_key(prefix, fleet, 0)
    touched = {
        "dedup claim": claim_keys(prefix, error),
        "repeat count": repeats_keys(prefix, error),
        "steward's lease": [fleet_key(prefix, fleet, "steward")],
        "daily summary": [f"{day}:watched", f"{day}:sent"],
    }
    if webhook_url is not None:
        touched["rate budget"] = [rate_key(prefix, webhook_url)]
    return touched
