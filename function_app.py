"""Azure Functions entry point (Python v2 model): a routing table from triggers to ``shared`` use cases.

Nothing here creates clients or imports Azure SDKs or our domain modules at import time: the worker
imports this module on every cold start, and each function imports what it needs on first invocation.
"""

import azure.functions as func

app = func.FunctionApp()


@app.function_name("on_nsg_change")
@app.event_grid_trigger(arg_name="event")
def on_nsg_change(event: func.EventGridEvent) -> None:
    """Every NSG write/delete: re-read the NSG, evaluate it, record findings (raises to get redelivered)."""
    from shared.azure.wiring import event_deps
    from shared.handlers import handle_nsg_event

    handle_nsg_event(event, event_deps())
