"""The Azure ML lens (pure): computes parsed from ARM JSON, tied to their NSGs, judged on their SSH port.

A compute instance or cluster is reachable over SSH from the internet when all of these hold:

* it has a public IP (``connectivityEndpoints.publicIpAddress``, cluster nodes' ``publicIpAddress``, or
  ``enableNodePublicIp`` not false);
* SSH public access is on (instance ``sshSettings.sshPublicAccess == "Enabled"``; cluster
  ``remoteLoginPortPublicAccess`` ``Enabled``, or ``NotSpecified`` without a VNet);
* every NSG hop in front of it admits internet-class sources on its SSH port: the subnet's NSG, and the
  NSG AML creates for public nodes in the VNet's resource group (``<guid>-azurebatch-cloudservice…``, the
  nodes' NIC-level NSG). A hop with no NSG lets everything through; a compute without a subnet sits in
  AML's managed network, where no customer NSG filters at all.

Then it is ``critical``. Ports: an instance is judged on its actual ``sshPort`` (not only 22); a cluster on
22 (the nodes' sshd behind the load balancer's NAT) and on every NAT port ``listNodes`` reports, worst wins
(over-report, never under-report). The AML-managed NSG's required inbound rules (44224 from
``AzureMachineLearning``, 29876-29877 from ``BatchNodeManagement``) are recognised and never a finding.

Evaluation goes through the one :class:`shared.core.exposure.Evaluator` every path uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.core.effective import intersect_hops
from shared.core.errors import InputError
from shared.core.exposure import EXPOSURE_ORDER, INTERNET, NONE, Evaluator, PublicSources
from shared.core.findings import finding_id
from shared.core.model import Nsg, Rule, split_resource_id
from shared.core.policy import SEVERITY, SEVERITY_ORDER, SSH, SSH_CUSTOM, SSH_PORT
from shared.core.ports import PortSet

COMPUTE_INSTANCE, AML_COMPUTE = "ComputeInstance", "AmlCompute"
JUDGED_TYPES = (COMPUTE_INSTANCE, AML_COMPUTE)
COMPUTE_TYPE = "microsoft.machinelearningservices/workspaces/computes"
WORKSPACE_TYPE = "microsoft.machinelearningservices/workspaces"
AML_NSG_MARKER = "azurebatch-cloudservice"
# (port range, source service tag) of the inbound rules AML needs on its own NSG: never findings.
AML_REQUIRED_RULES = (((44224, 44224), "azuremachinelearning"), ((29876, 29877), "batchnodemanagement"))

COMPLIANT, NONCOMPLIANT, UNKNOWN, NOT_EVALUATED = "Compliant", "NonCompliant", "Unknown", "NotEvaluated"
OWNER_FINDING_KIND = "owner"
MAX_LISTED = 20


@dataclass(frozen=True, slots=True)
class ClusterNode:
    node_id: str
    public_ip: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class Compute:
    """What the lens needs of one AML compute (ids as ARM wrote them; compare lower-cased)."""

    id: str
    name: str
    compute_type: str
    workspace_id: str
    subscription_id: str
    resource_group: str
    location: str | None = None
    subnet_id: str | None = None
    public_ip: str | None = None
    node_public_ip: bool | None = None  # enableNodePublicIp as written (None: not said)
    ssh_access: str | None = None  # sshPublicAccess / remoteLoginPortPublicAccess as written
    ssh_port: int | None = None
    owner: str | None = None
    owner_source: str | None = None  # tag | assignedUser | None
    creator: str | None = None
    state: str | None = None
    vm_size: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    nodes: tuple[ClusterNode, ...] = ()

    @property
    def judged(self) -> bool:
        return self.compute_type in JUDGED_TYPES

    @property
    def has_public_ip(self) -> bool:
        if self.public_ip or any(n.public_ip for n in self.nodes):
            return True
        return self.node_public_ip is not False

    @property
    def shown_public_ip(self) -> str | None:
        if self.public_ip:
            return self.public_ip
        ips = sorted({n.public_ip for n in self.nodes if n.public_ip})
        return ", ".join(ips[:4]) if ips else None

    @property
    def ssh_public_access(self) -> bool:
        access = (self.ssh_access or "").lower()
        if self.compute_type == AML_COMPUTE:
            # NotSpecified: open on public nodes when the cluster has no VNet, closed inside one.
            return access == "enabled" or (access in ("notspecified", "") and self.subnet_id is None)
        return access == "enabled"

    @property
    def ssh_ports(self) -> tuple[int, ...]:
        if self.compute_type == AML_COMPUTE:
            return tuple(sorted({SSH_PORT, *(n.port for n in self.nodes if n.port)}))
        return (self.ssh_port or SSH_PORT,)

    @property
    def vnet_key(self) -> tuple[str, str] | None:
        """(subscription, resource group) of the compute's VNet, where AML puts its NSG; lower-cased."""
        if not self.subnet_id:
            return None
        parts = split_resource_id(self.subnet_id)
        if "subscriptions" not in parts or "resourcegroups" not in parts:
            return None
        return parts["subscriptions"].lower(), parts["resourcegroups"].lower()


# --- parsing -----------------------------------------------------------------------------------------

def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         *, required: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise InputError(f"compute {where}: missing {key!r}")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(f"compute {where}: {key!r} must be {name}, got {type(value).__name__}")
    return value


def _port(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise InputError(f"compute {where}: SSH port {value!r} is not a port number (1-65535)")
    return value


def workspace_of(compute_id: str) -> str:
    """``…/workspaces/ws/computes/c`` -> ``…/workspaces/ws``; InputError for anything else."""
    parts = compute_id.strip("/").split("/")
    low = [p.lower() for p in parts]
    ok = (len(parts) == 10 and low[0] == "subscriptions" and low[2] == "resourcegroups" and low[4] == "providers"
          and low[5] == "microsoft.machinelearningservices" and low[6] == "workspaces" and low[8] == "computes")
    if not ok:
        raise InputError(f"{compute_id!r} is not an Azure ML compute id")
    return "/" + "/".join(parts[:8])


def parse_nodes(raw: Any, where: str) -> tuple[ClusterNode, ...]:
    """``POST …/listNodes`` answer (``{"nodes": [...]}``) -> nodes; InputError when malformed."""
    if raw is None:
        return ()
    nodes = raw.get("nodes") if isinstance(raw, Mapping) else raw
    if nodes is None:
        return ()
    if not isinstance(nodes, list):
        raise InputError(f"compute {where}: listNodes 'nodes' must be a list")
    out = []
    for node in nodes:
        if not isinstance(node, Mapping):
            raise InputError(f"compute {where}: a listNodes entry is not an object")
        out.append(ClusterNode(str(node.get("nodeId") or ""), _get(node, "publicIpAddress", str, where),
                               _port(node.get("port"), where)))
    return tuple(out)


def parse_compute(raw: Any, owner_tag: str = "owner", nodes: Any = None) -> Compute:
    """Strict on the fields the lens uses (types, ids, ports), tolerant of everything else AML adds.

    Raises :class:`InputError` naming the compute when a used field has the wrong shape.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"compute must be a JSON object, got {type(raw).__name__}")
    cid = _get(raw, "id", str, "(no id)", required=True)
    where = cid
    ws = workspace_of(cid)
    name = _get(raw, "name", str, where) or cid.rsplit("/", 1)[-1]
    props = _get(raw, "properties", Mapping, where, required=True)
    ctype = _get(props, "computeType", str, where, required=True)
    inner = _get(props, "properties", Mapping, where) or {}
    tags_raw = _get(raw, "tags", Mapping, where) or {}
    tags = tuple((str(k), v) for k, v in tags_raw.items() if isinstance(v, str))
    subnet = _get(inner, "subnet", Mapping, where)
    subnet_id = _get(subnet, "id", str, where) if subnet else None
    endpoints = _get(inner, "connectivityEndpoints", Mapping, where) or {}
    ssh = _get(inner, "sshSettings", Mapping, where) or {}
    if ctype == AML_COMPUTE:
        access = _get(inner, "remoteLoginPortPublicAccess", str, where)
        port = None
    else:
        access = _get(ssh, "sshPublicAccess", str, where)
        port = _port(ssh.get("sshPort"), where)
    personal = _get(inner, "personalComputeInstanceSettings", Mapping, where) or {}
    assigned = _get(personal, "assignedUser", Mapping, where) or {}
    assigned_oid = _get(assigned, "objectId", str, where)
    created = _get(inner, "createdBy", Mapping, where) or {}
    creator = _get(created, "userName", str, where)
    owner, source = _owner(tags, owner_tag, assigned_oid, creator, _get(created, "userId", str, where))
    parts = split_resource_id(cid)
    return Compute(
        id=cid, name=name, compute_type=ctype, workspace_id=ws, subscription_id=parts["subscriptions"],
        resource_group=parts["resourcegroups"], location=_get(raw, "location", str, where),
        subnet_id=subnet_id or None, public_ip=_get(endpoints, "publicIpAddress", str, where) or None,
        node_public_ip=_get(inner, "enableNodePublicIp", bool, where), ssh_access=access, ssh_port=port,
        owner=owner, owner_source=source, creator=creator,
        state=_get(inner, "state", str, where) or _get(inner, "allocationState", str, where),
        vm_size=_get(inner, "vmSize", str, where), tags=tags, nodes=parse_nodes(nodes, where))


def _owner(tags: Sequence[tuple[str, str]], owner_tag: str, assigned_oid: str | None, creator: str | None,
           creator_oid: str | None) -> tuple[str | None, str | None]:
    """Owner tag first (the tagging standard), then the assigned user (shown by name when the creator is
    that user). The creator alone is not an owner: a compute without either is the low finding."""
    for key, value in tags:
        if key.lower() == owner_tag.lower() and value.strip():
            return value.strip(), "tag"
    if assigned_oid:
        if creator and creator_oid and creator_oid.lower() == assigned_oid.lower():
            return creator, "assignedUser"
        return assigned_oid, "assignedUser"
    return None, None


# --- NSG tie-in --------------------------------------------------------------------------------------

def is_aml_managed_nsg(nsg: Nsg) -> bool:
    return AML_NSG_MARKER in nsg.name.lower()


def is_aml_required_rule(rule: Rule) -> bool:
    """The inbound Allow AML needs on its own NSG (44224 from AzureMachineLearning, ...): never a finding."""
    if not rule.inbound or not rule.allows or not rule.destination_ports:
        return False
    sources = {t.lower() for t in rule.source_texts}
    return any(sources == {tag} and rule.destination_ports <= PortSet.of([f"{low}-{high}"])
               for (low, high), tag in AML_REQUIRED_RULES)


def guards(nsg: Nsg, compute: Compute) -> str | None:
    """How ``nsg`` stands in front of ``compute``: ``subnet``, ``aml-managed`` or None."""
    if compute.subnet_id and compute.subnet_id.lower() in {s.lower() for s in nsg.subnet_ids}:
        return "subnet"
    key = compute.vnet_key
    if key and is_aml_managed_nsg(nsg) and (nsg.subscription_id.lower(), nsg.resource_group.lower()) == key:
        return "aml-managed"
    return None


@dataclass(frozen=True, slots=True)
class HopView:
    """What one NSG in front of a compute admits on the compute's SSH ports."""

    nsg_id: str
    nsg_name: str
    role: str  # subnet | aml-managed
    allowed: Mapping[int, PublicSources]
    rules: Mapping[int, tuple[str, ...]]  # active Allow rules per port (what to change)
    required_rules: tuple[str, ...] = ()


def hop_view(evaluator: Evaluator, nsg: Nsg, role: str, ports: Iterable[int]) -> HopView:
    allowed: dict[int, PublicSources] = {}
    rules: dict[int, tuple[str, ...]] = {}
    for port, exposures in evaluator.evaluate(nsg, tuple(ports)).items():
        active = [rx for rx in exposures if rx.active]
        union = PublicSources()
        for rx in active:
            union = PublicSources(union.addresses | rx.exposed.addresses, union.tags | rx.exposed.tags)
        allowed[port] = union
        rules[port] = tuple(rx.rule.name for rx in active)
    required = tuple(r.name for r in nsg.rules if is_aml_required_rule(r)) if role == "aml-managed" else ()
    return HopView(nsg.id, nsg.name, role, allowed, rules, required)


def _union(items: Sequence[PublicSources]) -> PublicSources:
    out = PublicSources()
    for s in items:
        out = PublicSources(out.addresses | s.addresses, out.tags | s.tags)
    return out


# --- verdict -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ComputeFinding:
    finding_id: str
    kind: str  # ssh | ssh-custom | owner
    severity: str
    status: str  # Open | Latent
    port: int | None
    exposure: str | None
    reason: str
    nsg_id: str | None = None
    rule_names: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.status == "Open" and self.severity != "info"


@dataclass(frozen=True, slots=True)
class ComputeVerdict:
    compute: Compute
    status: str  # Compliant | NonCompliant | Unknown | NotEvaluated (SSH port policy only)
    severity: str | None
    exposure: str | None
    port: int | None
    reason: str
    findings: tuple[ComputeFinding, ...] = ()
    hops: tuple[HopView, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def open_finding_ids(self) -> list[str]:
        return sorted(f.finding_id for f in self.findings if f.open)


def approvals_of(evaluation: Any) -> dict[tuple[str, int], Mapping[str, Any]]:
    """(rule name lower-cased, port) -> the exemption summary, for the NSG's ``Exempt`` findings (an
    ``NsgEvaluation`` with exemptions applied): what :func:`judge` takes per NSG as ``approvals``."""
    return {(f.rule.name.lower(), f.port): dict(f.details.get("exemption") or {}) for f in evaluation.findings
            if f.status == "Exempt"}


def judge(compute: Compute, evaluator: Evaluator, nsgs: Sequence[Nsg], *, subnet_nsg_known: bool = True,
          aml_nsg_is_its_own: bool = False,
          approvals: Mapping[str, Mapping[tuple[str, int], Mapping[str, Any]]] | None = None) -> ComputeVerdict:
    """Judge one compute against the NSGs that may stand in front of it (others are ignored).

    ``nsgs`` may hold any NSGs: only those :func:`guards` ties to the compute count. ``subnet_nsg_known``:
    False when the inventory was incomplete, so a subnet no NSG claimed may still have one (then Unknown).
    ``aml_nsg_is_its_own``: AML names its NSG by a GUID, not by the compute, so an AML-managed NSG in the
    VNet's resource group narrows the path only when it can belong to no other compute (the caller knows: one
    public compute in that resource group). Otherwise it is listed in the path but never trusted to block.
    ``approvals``: per NSG id (lower-cased), the rules approved by an exemption (:func:`approvals_of`). A port
    whose every exposing rule is approved gives an ``Exempt`` finding and leaves the compute compliant, as an
    exempt finding leaves its NSG compliant; any unapproved exposing rule keeps it ``Open``.
    """
    hops = tuple(hop_view(evaluator, n, role, compute.ssh_ports)
                 for n in nsgs for role in (guards(n, compute),) if role is not None)
    findings: list[ComputeFinding] = []
    if compute.owner is None and compute.judged:
        findings.append(ComputeFinding(
            finding_id(compute.id, OWNER_FINDING_KIND, 0), OWNER_FINDING_KIND, "low", "Open", None, None,
            f"compute {compute.name} has no owner: no assigned user and no owner tag"
            + (f" (created by {compute.creator})" if compute.creator else "")))
    details: dict[str, Any] = {
        "workspaceId": compute.workspace_id, "subnetId": compute.subnet_id, "vmSize": compute.vm_size,
        "state": compute.state, "sshAccess": compute.ssh_access, "sshPorts": list(compute.ssh_ports),
        "enableNodePublicIp": compute.node_public_ip, "ownerSource": compute.owner_source,
        "creator": compute.creator,
        "nsgPath": [{"nsgId": h.nsg_id, "role": h.role,
                     **({"narrows": aml_nsg_is_its_own} if h.role == "aml-managed" else {}),
                     "allows": {str(p): evaluator.classify(s) for p, s in sorted(h.allowed.items())},
                     **({"amlRequiredRules": list(h.required_rules)} if h.required_rules else {})}
                    for h in hops[:MAX_LISTED]],
    }
    if compute.nodes:
        details["nodes"] = [{"nodeId": n.node_id, "publicIp": n.public_ip, "port": n.port}
                            for n in compute.nodes[:MAX_LISTED]]
    if not compute.judged:
        return ComputeVerdict(compute, NOT_EVALUATED, None, None, None,
                              f"compute type {compute.compute_type} carries no SSH settings in the AML API: "
                              "its NSGs are judged as NSGs", tuple(findings), hops, details)
    if not compute.ssh_public_access:
        port = compute.ssh_ports[0]
        return ComputeVerdict(compute, COMPLIANT, None, NONE, port, "SSH public access is disabled",
                              tuple(findings), hops, details)
    if not compute.has_public_ip:
        return ComputeVerdict(compute, COMPLIANT, None, NONE, compute.ssh_ports[0],
                              "no public IP (enableNodePublicIp is false): SSH is reachable only from the VNet",
                              tuple(findings), hops, details)
    subnet_hops = [h for h in hops if h.role == "subnet"]
    aml_hops = [h for h in hops if h.role == "aml-managed"] if aml_nsg_is_its_own else []
    if compute.subnet_id and not subnet_hops and not subnet_nsg_known:
        return ComputeVerdict(compute, UNKNOWN, None, None, compute.ssh_ports[0],
                              "the NSG of the compute's subnet could not be inventoried: exposure unknown",
                              tuple(findings), hops, details)
    everything = PublicSources(evaluator.public)
    worst: tuple[str, int, tuple[str, ...], str | None] = (NONE, compute.ssh_ports[0], (), None)
    approved: tuple[str, int, tuple[str, ...], str | None, list[Mapping[str, Any]]] | None = None
    for port in compute.ssh_ports:
        through = everything
        names: tuple[str, ...] = ()
        nsg_id = None
        used = list(subnet_hops)
        if subnet_hops:  # both hops must allow; several NSGs for one role: any of them may be the one in use
            through = _union([h.allowed.get(port, PublicSources()) for h in subnet_hops])
            names = tuple(n for h in subnet_hops for n in h.rules.get(port, ()))
            nsg_id = subnet_hops[0].nsg_id
        if aml_hops:
            through = intersect_hops(through, _union([h.allowed.get(port, PublicSources()) for h in aml_hops]),
                                     evaluator.public)
            if nsg_id is None:
                nsg_id = aml_hops[0].nsg_id
                names = tuple(n for h in aml_hops for n in h.rules.get(port, ()))
                used = list(aml_hops)
        cls = evaluator.classify(through)
        why = _approved(used, port, approvals) if names and cls != NONE else None
        if why is not None:
            if approved is None or EXPOSURE_ORDER[cls] > EXPOSURE_ORDER[approved[0]]:
                approved = (cls, port, names, nsg_id, why)
        elif EXPOSURE_ORDER[cls] > EXPOSURE_ORDER[worst[0]]:
            worst = (cls, port, names, nsg_id)
    if worst[0] == NONE and approved is not None:
        return _exempt_verdict(compute, approved, tuple(findings), hops, details)
    exposure, port, names, nsg_id = worst
    kind = SSH if port == SSH_PORT else SSH_CUSTOM
    where = _where(names, nsg_id, hops)
    if exposure == INTERNET:
        severity: str | None = "critical"
    elif exposure == NONE:
        severity = None
    else:
        severity = SEVERITY[(kind, exposure)]
    if severity is not None:
        reason = (f"public IP {compute.shown_public_ip or '(node public IPs)'} with SSH public access on TCP "
                  f"{port}, allowed from {exposure} sources {where}")
        findings.append(ComputeFinding(finding_id(compute.id, kind, port), kind, severity, "Open", port, exposure,
                                       reason, nsg_id, names))
        findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
        return ComputeVerdict(compute, NONCOMPLIANT, severity, exposure, port, reason, tuple(findings), hops,
                              details)
    if SSH_PORT in compute.ssh_ports:
        reason = ("latent: SSH public access is enabled on TCP 22 behind an NSG path that admits no internet "
                  "source; one NSG change exposes it (move SSH to the standard port: nsg-guard migrate-ssh)")
        findings.append(ComputeFinding(finding_id(compute.id, SSH, SSH_PORT), SSH, "info", "Latent", SSH_PORT,
                                       NONE, reason, nsg_id, names))
        return ComputeVerdict(compute, COMPLIANT, "info", exposure, SSH_PORT, reason, tuple(findings), hops,
                              details)
    reason = f"SSH on TCP {port} admits no internet-class source through the NSG path"
    if exposure != NONE:
        reason = f"SSH on TCP {port} only from {exposure} sources {where}"
    return ComputeVerdict(compute, COMPLIANT, None, exposure, port, reason, tuple(findings), hops, details)


def _where(names: tuple[str, ...], nsg_id: str | None, hops: Sequence[HopView]) -> str:
    return (f"by {', '.join(names[:4])} on {nsg_id.rstrip('/').rsplit('/', 1)[-1]}" if names and nsg_id
            else "with no customer NSG in the path" if not hops else "through the NSG path")


def _approved(hops: Sequence[HopView], port: int, approvals: Mapping[str, Mapping[tuple[str, int], Any]] | None
              ) -> list[Mapping[str, Any]] | None:
    """The exemptions of every rule that exposes ``port`` on these hops, or None when any of them has none."""
    if not approvals:
        return None
    out: list[Mapping[str, Any]] = []
    for h in hops:
        approved = approvals.get(h.nsg_id.lower(), {})
        for name in h.rules.get(port, ()):
            exemption = approved.get((name.lower(), port))
            if exemption is None:
                return None
            out.append(exemption)
    return out or None


def _exempt_verdict(compute: Compute, approved: tuple[str, int, tuple[str, ...], str | None,
                                                       list[Mapping[str, Any]]],
                    findings: tuple[ComputeFinding, ...], hops: tuple[HopView, ...], details: dict[str, Any]
                    ) -> ComputeVerdict:
    """Every rule exposing the compute's SSH is approved: an Exempt finding, the compute compliant."""
    exposure, port, names, nsg_id, exemptions = approved
    kind = SSH if port == SSH_PORT else SSH_CUSTOM
    severity = "critical" if exposure == INTERNET else SEVERITY[(kind, exposure)]
    tickets = sorted({str(e.get("ticket")) for e in exemptions if e.get("ticket")})
    reason = (f"public IP {compute.shown_public_ip or '(node public IPs)'} with SSH public access on TCP {port}, "
              f"allowed from {exposure} sources {_where(names, nsg_id, hops)}: approved by exemption"
              + (f" ({', '.join(tickets)})" if tickets else ""))
    exempt = ComputeFinding(finding_id(compute.id, kind, port), kind, severity, "Exempt", port, exposure, reason,
                            nsg_id, names)
    details = {**details, "exemptions": [dict(e) for e in exemptions[:MAX_LISTED]]}
    return ComputeVerdict(compute, COMPLIANT, None, exposure, port, reason, (*findings, exempt), hops, details)
