"""Azure service tags that may appear as NSG source prefixes, and how NSG Guard classifies them.

Service tags are Microsoft-controlled address sets. Product rule (docs §2.3): they count as non-public,
except ``AzureCloud`` and its regional forms (any Azure customer can hold those addresses), which are
**broad** public exposure. The names come from the Service Tags discovery data
(``tools/servicetags/generate.py`` writes :mod:`shared.core.servicetags_data`); a token that is not listed there is
*unknown*: evaluated as non-public and reported as a finding of its own (docs/semantics.md), never guessed.
``Internet.<region>`` is not a tag (``Internet`` has no regional form) and is rejected.
"""

from __future__ import annotations

from shared.core.servicetags_data import REGIONAL_TAG_NAMES, SERVICE_TAG_NAMES

SERVICE_TAGS: frozenset[str] = SERVICE_TAG_NAMES
REGIONAL_TAGS: frozenset[str] = REGIONAL_TAG_NAMES

# Tags whose addresses any Azure customer can hold: treated as broad public exposure.
PUBLIC_BROAD_TAGS: frozenset[str] = frozenset({"azurecloud"})


def tag_base(token: str) -> str:
    """``AzureCloud.WestEurope`` -> ``azurecloud``; ``AzureFrontDoor.Backend`` stays whole (it is a tag)."""
    low = token.lower()
    if low in SERVICE_TAGS:
        return low
    base, _, _region = low.rpartition(".")
    return base or low


def is_internet_region(token: str) -> bool:
    """``Internet.WestEurope``: not a tag (Azure rejects it); an input error rather than a guess."""
    base, dot, _ = token.lower().partition(".")
    return bool(dot) and base == "internet"


def is_service_tag(token: str, extra: frozenset[str] = frozenset()) -> bool:
    """A listed tag, a regional form of a tag that has regions, or an organisation tag (``--extra-tags``)."""
    low = token.lower()
    if low in SERVICE_TAGS or low in extra:
        return True
    base, dot, region = low.rpartition(".")
    return bool(dot and region and region.isascii() and region.isalnum()
                and (base in REGIONAL_TAGS or base in extra))


def is_public_broad_tag(token: str) -> bool:
    return tag_base(token) in PUBLIC_BROAD_TAGS
