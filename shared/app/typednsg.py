"""The common NSG document (ARM / Resource Graph shape, known rule fields) decoded straight into typed structs.

Issue 15: decoding a list element into dicts and then reading every field back out of them costs more than the
rest of the parse. msgspec can decode the JSON bytes of an NSG into typed structs instead, checking the shape and
the type of every field in C (3.4 to 2.6 µs/rule for the decode, 1.1 to 0.4 for the field reads, bench/README.md).
This is a fast path only: whatever the structs do not take (an unknown rule field, the ``az`` flattened shape, a
null or a value of another type, an ASG, anything :func:`shared.core.model.typed_nsg_builder` does not build)
makes :func:`typed_parser` return None, and the caller decodes the same bytes into dicts for
:func:`shared.core.model.parse_nsg`, which accepts or words the error exactly as before. Every struct's fields
are read by the dict path with ``get``, so a missing field and a null one are the same input there too.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from shared.core.model import _FAST_FIELDS, RULE_ENVELOPE_KEYS, RULE_PROPERTY_KEYS, Nsg, typed_nsg_builder

try:  # a pinned dependency; the fallback keeps a bare checkout working
    import msgspec
except ImportError:  # pragma: no cover - exercised only without the dependency
    msgspec = None  # type: ignore[assignment]


if msgspec is not None:
    _UNSET: Any = msgspec.UNSET

    class RuleProperties(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        """``properties`` of a security rule: every field of SecurityRulePropertiesFormat, nothing else. String
        lists are decoded as tuples (an empty one is the shared ``()``: no allocation); the builder hands them
        back as lists wherever the dict path reads them."""

        priority: int
        direction: str
        access: str
        protocol: str
        destinationPortRange: str | None = None
        destinationPortRanges: tuple[str, ...] | None = None
        sourcePortRange: str | None = None
        sourcePortRanges: tuple[str, ...] | None = None
        sourceAddressPrefix: str | None = None
        sourceAddressPrefixes: tuple[str, ...] | None = None
        sourceApplicationSecurityGroups: list[Any] | None = None
        destinationAddressPrefix: str | None = None
        destinationAddressPrefixes: tuple[str, ...] | None = None
        destinationApplicationSecurityGroups: list[Any] | None = None
        description: str | None = None
        provisioningState: Any = None

    class TypedRule(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        name: str
        properties: RuleProperties
        id: str | None = None
        etag: Any = None
        type: Any = None

    class IdRef(msgspec.Struct, gc=False):
        id: str

    class TypedNsgProperties(msgspec.Struct, gc=False):
        securityRules: list[TypedRule]
        defaultSecurityRules: list[TypedRule] | None = None
        subnets: list[IdRef] | None = None
        networkInterfaces: list[IdRef] | None = None

    class TypedNsg(msgspec.Struct, gc=False):
        """An NSG in ARM shape; other top-level fields (Resource Graph's ``tenantId``, ``sku``...) are ignored,
        as :func:`shared.core.model.parse_nsg` ignores them. A top-level ``securityRules`` (ambiguous) is
        kept to send the NSG to the dict path."""

        name: str
        id: str
        properties: TypedNsgProperties
        type: str | None = None
        location: Any = None
        etag: Any = None
        tags: dict[str, str] | None = None
        subscriptionId: Any = None
        resourceGroup: Any = None
        securityRules: Any = _UNSET

    # Both parsers must agree on what a rule may hold: a field here that the dict path rejected (or the
    # reverse) would change what a file is told. tests/test_typed_nsg.py holds them to it as well.
    assert set(RuleProperties.__struct_fields__) == RULE_PROPERTY_KEYS
    assert set(TypedRule.__struct_fields__) == RULE_ENVELOPE_KEYS


class TypedReader:
    """``reader(json_bytes) -> Nsg | None`` for one NSG document, plus the pieces the list reader uses for a run
    of elements at once (``shared/app/jsonstream.py``): :meth:`many` decodes a JSON list of NSGs into structs
    in one call, :meth:`build` turns one struct into the Nsg (or None). Every None means: decode the same bytes
    into dicts and give them to :func:`shared.core.model.parse_nsg`."""

    __slots__ = ("_many", "_one", "build")

    def __init__(self, extra_tags: frozenset[str]) -> None:
        self._one = msgspec.json.Decoder(TypedNsg).decode
        self._many = msgspec.json.Decoder(list[TypedNsg]).decode
        build_nsg = typed_nsg_builder(extra_tags, attrgetter(*_FAST_FIELDS))

        def build(doc: Any) -> Nsg | None:
            if doc.securityRules is not _UNSET:  # both shapes at once: parse_nsg words it
                return None
            try:
                return build_nsg(doc)
            except Exception:  # InputError or anything else: the dict path decides, and words it
                return None

        self.build: Callable[[Any], Nsg | None] = build

    def __call__(self, data: Any) -> Nsg | None:
        try:
            doc = self._one(data)
        except _FAILURES:
            return None
        return self.build(doc)

    def many(self, data: Any) -> list[Any] | None:
        """The structs of a JSON list of NSG documents, or None when one of them does not fit (or the text is
        not a JSON list msgspec reads)."""
        try:
            return self._many(data)  # type: ignore[no-any-return]
        except _FAILURES:
            return None


_FAILURES: tuple[type[BaseException], ...] = (UnicodeDecodeError, RecursionError)
if msgspec is not None:
    _FAILURES = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def typed_parser(extra_tags: frozenset[str] = frozenset()) -> TypedReader | None:
    """The :class:`TypedReader` for a scan with these extra service tags: ``parse(json_bytes)`` gives the Nsg
    :func:`shared.core.model.parse_nsg` builds from the same document (``strict`` or not: a document this takes
    has no unknown rule field), or None when the document is not of the common shape or not valid (the caller
    then decodes it into dicts and parses those). None instead of a reader when msgspec is not installed."""
    if msgspec is None:
        return None
    return TypedReader(extra_tags)
