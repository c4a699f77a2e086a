"""NSG Guard: keeps SSH and management ports of Azure compute off the open internet.

All domain logic lives in this package. Azure SDKs are imported only under ``shared.azure`` and only
lazily, so importing the package (and ``function_app``) stays cheap on a Functions cold start.
"""

__version__ = "0.1.0"
ENGINE_VERSION = __version__
