"""Azure Functions entry point (Python v2 model): a routing table from triggers to ``shared.handlers``.

Nothing here creates clients or imports Azure SDKs at import time; the worker imports this module on
every cold start.
"""

import azure.functions as func

app = func.FunctionApp()
