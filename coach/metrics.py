"""Bounce's Prometheus metrics: every metric object in one place, and one-line helpers to count with.

No discord import: errors are read by duck typing (`status`, `code`). Call sites count with one line, e.g.
`metrics.post_sent("round")` or `metrics.post_failed("dm", exc)`. Gauges that describe the live process
(gateway, servers, scheduler lag) are set by the web server right before each scrape.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "REGISTRY", "answered", "dms_switched_off", "interaction_answered",
           "interaction_received", "post_failed", "post_sent", "render"]

disable_created_metrics()  # no *_created series: half the output, nothing Bounce's dashboards need
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files of the bot process

POSTS_SENT = Counter("bounce_posts_sent", "Messages the bot posted, by kind (round, dm, lesson, recap, "
                     "celebration).", ["kind"], registry=REGISTRY)
POSTS_FAILED = Counter("bounce_posts_failed", "Posts that did not go out, by kind and Discord error code (the JSON "
                       "code, e.g. 50013; http_<status> when Discord gave none; or the reason found before asking, "
                       "e.g. channel_deleted).", ["kind", "code"], registry=REGISTRY)
ANSWERS = Counter("bounce_answers", "Check-in answers recorded, by path: button (channel round), command "
                  "(/checkin), dm_button, dm_text.", ["path"], registry=REGISTRY)
DMS_OFF = Counter("bounce_dms_switched_off", "Members whose DM check-ins were switched off because their DMs are "
                  "closed (Discord 50007).", registry=REGISTRY)
INTERACTION_LATENCY = Histogram(
    "bounce_interaction_answer_seconds", "From an interaction's arrival to the bot's first answer to it (Discord "
    "allows 3 s).", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0), registry=REGISTRY)
SEND_QUEUE = Gauge("bounce_send_queue_length", "Requests waiting for a slot in the global send budget.",
                   registry=REGISTRY)
SCHEDULER_LAG = Gauge("bounce_scheduler_lag_seconds", "How long the oldest due post (round, DM round, lesson, "
                      "recap) has been waiting, to be taken or in the outbox; 0 when nothing is overdue.",
                      registry=REGISTRY)
LAST_TICK_AGE = Gauge("bounce_scheduler_last_tick_age_seconds", "Seconds since the scheduler's last pass ended "
                      "(-1 before the first).", registry=REGISTRY)
GATEWAY_LATENCY = Gauge("bounce_gateway_latency_seconds", "Heartbeat round trip to Discord's gateway, per shard.",
                        ["shard"], registry=REGISTRY)
GATEWAY_CONNECTED = Gauge("bounce_gateway_connected", "1 while the shard's gateway connection is open.", ["shard"],
                          registry=REGISTRY)
SERVERS = Gauge("bounce_servers", "Servers this process is in.", registry=REGISTRY)
PAGE_VIEWS = Counter("bounce_web_page_views", "Server pages served (200).", registry=REGISTRY)

#: When each interaction in flight arrived (monotonic seconds), until its first answer.
_arrived: dict[int, float] = {}
_ARRIVED_MAX = 10_000


def post_sent(kind: str) -> None:
    POSTS_SENT.labels(kind).inc()


def error_code(error: Any) -> str:
    """A failure as a label: Discord's JSON error code, else http_<status>, else the reason given as a string."""
    if isinstance(error, str):
        return error.split(":")[0] or "unknown"
    reason = getattr(error, "reason", None)  # the outbox's outcomes (coach.outbox.Outcome): decided before asking
    if isinstance(reason, str):
        return reason.split(":")[0] or "unknown"
    code = getattr(error, "code", 0)
    if code:
        return str(code)
    status = getattr(error, "status", None)
    return f"http_{status}" if status else type(error).__name__


def post_failed(kind: str, error: Any) -> None:
    POSTS_FAILED.labels(kind, error_code(error)).inc()


def answered(via: str) -> None:
    ANSWERS.labels(via).inc()


def dms_switched_off() -> None:
    DMS_OFF.inc()


def interaction_received(interaction_id: int) -> None:
    if len(_arrived) >= _ARRIVED_MAX:  # answers that never came (the interaction failed): forget the oldest
        for key in list(_arrived)[: _ARRIVED_MAX // 10]:
            del _arrived[key]
    _arrived.setdefault(interaction_id, time.monotonic())


def interaction_answered(interaction_id: int) -> None:
    """The bot's first answer (callback) to an interaction: observe how long it took. Later ones are ignored."""
    started = _arrived.pop(interaction_id, None)
    if started is not None:
        INTERACTION_LATENCY.observe(time.monotonic() - started)


def render() -> bytes:
    """Everything in the text exposition format."""
    return generate_latest(REGISTRY)
