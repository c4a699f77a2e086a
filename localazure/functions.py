"""Call the app's Functions the way the Functions worker does: index ``function_app`` once, build the real
trigger objects (``func.EventGridEvent``, ``func.TimerRequest``) and invoke the user function."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any


@cache
def indexed() -> dict[str, Any]:
    """``Function`` objects by name (bindings, trigger settings), indexed once like the worker does."""
    import function_app

    # get_functions() indexes and validates the app; like the worker, do it once per process. It logs a
    # warning on the root logger that auth levels only apply to HTTP functions (we have none): silence it.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}
    finally:
        root.setLevel(level)


def functions() -> dict[str, Any]:
    """The user functions by name."""
    return {name: fn.get_user_function() for name, fn in indexed().items()}


def function(name: str) -> Any:
    return indexed()[name].get_user_function()


def eventgrid_event(event: dict[str, Any]) -> Any:
    """A ``func.EventGridEvent`` from an Event Grid schema event, as the worker hands it to the trigger."""
    import azure.functions as func

    from shared.app.events import _parse_time

    return func.EventGridEvent(id=event["id"], data=event["data"], topic=event.get("topic"),
                               subject=event.get("subject"), event_type=event["eventType"],
                               event_time=_parse_time(event.get("eventTime")),
                               data_version=event.get("dataVersion"))


def deliver(event: dict[str, Any]) -> Any:
    """Deliver one Event Grid event to ``on_nsg_change`` (exceptions propagate: Event Grid would retry)."""
    return function("on_nsg_change")(eventgrid_event(event))
