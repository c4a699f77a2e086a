"""Watched ports, the severity table and NSG compliance: turns exposures into findings (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shared.core.addresses import DEFAULT_PUBLIC, AddressSet
from shared.core.errors import ConfigError
from shared.core.exposure import BROAD, INTERNET, NONE, TRUSTED, Evaluator
from shared.core.findings import Finding, finding_where, make_finding
from shared.core.frozen import fast_constructor
from shared.core.model import Nsg
from shared.core.unknowntokens import unknown_token_findings

SSH, SSH_CUSTOM, MANAGEMENT = "ssh", "ssh-custom", "management"
SSH_PORT = 22
DEFAULT_MANAGEMENT_PORTS = (3389, 5985, 5986, 23)

SEVERITY_ORDER = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

# docs/product.md §2: (port kind, exposure class) -> severity; None = compliant, no finding.
SEVERITY: dict[tuple[str, str], str | None] = {
    (SSH, INTERNET): "high", (SSH, BROAD): "medium", (SSH, TRUSTED): "low",
    (SSH_CUSTOM, INTERNET): "medium", (SSH_CUSTOM, BROAD): "low", (SSH_CUSTOM, TRUSTED): None,
    (MANAGEMENT, INTERNET): "high", (MANAGEMENT, BROAD): "medium", (MANAGEMENT, TRUSTED): None,
}


@dataclass(frozen=True, slots=True)
class WatchedPort:
    port: int
    kind: str


def parse_port_list(text: str, setting: str) -> tuple[int, ...]:
    """``"2222, 2200"`` -> ``(2222, 2200)``; anything else is a :class:`ConfigError` naming the setting."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ConfigError(f"{setting}: {part!r} is not a port number (1-65535)")
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def watched_ports(ssh_ports: Sequence[int] = (), management_ports: Sequence[int] = DEFAULT_MANAGEMENT_PORTS
                  ) -> tuple[WatchedPort, ...]:
    """Port 22 is always watched (kind ``ssh``); custom SSH and management ports come from settings."""
    clash = set(ssh_ports) & set(management_ports)
    if clash:
        raise ConfigError(f"port(s) {sorted(clash)} listed both as SSH ports and as management ports")
    if SSH_PORT in ssh_ports or SSH_PORT in management_ports:
        raise ConfigError("port 22 is always watched as 'ssh'; do not list it in SSH or management ports")
    return (WatchedPort(SSH_PORT, SSH),
            *(WatchedPort(p, SSH_CUSTOM) for p in ssh_ports),
            *(WatchedPort(p, MANAGEMENT) for p in management_ports))


@dataclass(frozen=True, slots=True)
class Policy:
    """What to watch and how to judge it. Build once (from settings or CLI options), reuse everywhere."""

    watched: tuple[WatchedPort, ...] = field(default_factory=watched_ports)
    public: AddressSet = DEFAULT_PUBLIC
    extra_service_tags: frozenset[str] = frozenset()

    def kind_of(self, port: int) -> str:
        for wp in self.watched:
            if wp.port == port:
                return wp.kind
        raise KeyError(port)


@dataclass(frozen=True, slots=True)
class NsgEvaluation:
    """All findings for one NSG and whether it is compliant."""

    nsg: Nsg
    findings: tuple[Finding, ...]

    @property
    def compliant(self) -> bool:
        return not self.findings or is_compliant(self.findings)


def is_compliant(findings: Iterable[Finding]) -> bool:
    """Compliant = no active finding of severity low or above (latent/info and exempt do not count)."""
    return not any(f.counts_against_compliance for f in findings)


def _finding_order(f: Finding) -> tuple[int, int, int]:
    return -SEVERITY_ORDER[f.severity], f.port, f.rule.priority


_make_evaluation = fast_constructor(NsgEvaluation)


class Engine:
    """One evaluation path for every trigger (event, sweep, CLI)."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.evaluator = Evaluator(self.policy.public)
        self._ports = tuple(wp.port for wp in self.policy.watched)
        # Per watched port: exposure class -> severity of an active finding, and of a latent one ("info" when
        # the rule would be a finding once the shadow went away); None = no finding. SEVERITY, looked up once.
        self._verdicts = tuple(
            (wp, {e: SEVERITY[(wp.kind, e)] for e in (INTERNET, BROAD, TRUSTED)},
             {e: "info" if SEVERITY[(wp.kind, e)] is not None else None for e in (INTERNET, BROAD, TRUSTED)})
            for wp in self.policy.watched)

    def evaluate(self, nsg: Nsg) -> NsgEvaluation:
        per_port = self.evaluator.evaluate(nsg, self._ports)
        findings: list[Finding] = []
        wheres: dict[int, str] = {}  # id(rule) -> finding_where(rule): a rule often has findings on several ports
        for wp, active, latent in self._verdicts:
            for rx in per_port[wp.port]:
                # Latent: shadowed entirely. Report only what would be a finding if the shadow went away.
                severity = active[rx.exposure] if rx.exposure != NONE else latent.get(rx.potential_exposure)
                if severity is not None:
                    where = wheres.get(id(rx.rule))
                    if where is None:
                        where = wheres[id(rx.rule)] = finding_where(rx.rule)
                    findings.append(make_finding(nsg, wp.port, wp.kind, rx, severity, where))
        unknown = unknown_token_findings(nsg, self.policy.extra_service_tags)  # docs/semantics.md
        if unknown:
            findings.extend(unknown)
        if len(findings) > 1:
            findings.sort(key=_finding_order)
        return _make_evaluation(nsg, tuple(findings))
