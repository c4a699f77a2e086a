"""Use cases: the event handler, sweep, revert jobs and revert, restore, outbox, rows, config, file readers and
output. Built on shared.core; Azure is reached only through the small protocols in shared.app.interfaces
(implemented in shared.azure), never imported here except where a use case builds its own adapters lazily
(documented at the import).
"""
