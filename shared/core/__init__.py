"""The pure core: addresses, ports, the NSG model, exposure, policy, planning, exemptions, KPIs.

No I/O, no Azure SDK, no imports from shared.app, shared.azure or shared.cli.
"""
