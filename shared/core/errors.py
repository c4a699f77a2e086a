"""Error types shared by every layer, so callers can tell bad input from transient trouble."""

from __future__ import annotations


class NsgGuardError(Exception):
    """Base class for errors NSG Guard raises on purpose."""


class InputError(NsgGuardError, ValueError):
    """Bad input data (an NSG, a rule, an event, a setting). Permanent: retrying cannot fix it.

    The message always names where the problem is (file, NSG, rule, field) so a person can fix it.
    """

    def __init__(self, message: str, *, source: str | None = None, nsg: str | None = None,
                 rule: str | None = None, field: str | None = None) -> None:
        self.reason = message
        self.source = source
        self.nsg = nsg
        self.rule = rule
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(f"file {self.source}")
        if self.nsg:
            where.append(f"NSG {self.nsg}")
        if self.rule:
            where.append(f"rule {self.rule}")
        if self.field:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, source: str | None = None, nsg: str | None = None,
                rule: str | None = None) -> InputError:
        """Return a copy with more location filled in (inner parsers know less than outer ones)."""
        return InputError(self.reason, source=self.source or source, nsg=self.nsg or nsg,
                          rule=self.rule or rule, field=self.field)


class ConfigError(InputError):
    """An invalid setting (environment variable or CLI option)."""


class TransientError(NsgGuardError):
    """A failure that may succeed on retry (throttling, 5xx, network). Event handlers re-raise it."""


class NsgNotFound(NsgGuardError):
    """The NSG (or compute) does not exist (any more): deleted between the event and our read, or never existed."""
