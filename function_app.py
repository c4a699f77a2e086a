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
    from shared.app.handlers import handle_nsg_event
    from shared.azure.wiring import event_deps

    handle_nsg_event(event, event_deps())


@app.function_name("nightly_sweep")
@app.timer_trigger(arg_name="timer", schedule="%SWEEP_SCHEDULE%", run_on_startup=False)
def nightly_sweep(timer: func.TimerRequest) -> None:
    """Every NSG in scope via Resource Graph, evaluated page by page; one sweep summary row."""
    from shared.azure.wiring import sweep_from_env

    sweep_from_env()


@app.function_name("outbox_retry")
@app.timer_trigger(arg_name="timer", schedule="%OUTBOX_SCHEDULE%", run_on_startup=False)
def outbox_retry(timer: func.TimerRequest) -> None:
    """Rows parked because ingestion failed: retried with backoff until accepted."""
    from shared.azure.wiring import retry_outbox_from_env

    retry_outbox_from_env()


@app.function_name("revert_job")
@app.queue_trigger(arg_name="msg", queue_name="nsg-guard-revert", connection="REVERT_QUEUE")
def revert_job(msg: func.QueueMessage) -> None:
    """One revert job per NSG (enqueued by on_nsg_change): lease, re-read, plan, record, write, verify.
    Raises to be retried; the host moves a message to nsg-guard-revert-poison after maxDequeueCount."""
    from shared.app.revertjobs import handle_revert_job
    from shared.azure.wiring import job_deps

    handle_revert_job(msg.get_body(), msg.dequeue_count or 1, job_deps())
