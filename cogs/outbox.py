"""The outbox sender: one lane per kind of scheduled post that leases ready rows, posts them through the
kind's cog, and records the outcome. The rules (leases, catch-up, backoff) live in coach/outbox.py; the
kinds register how to deliver, how to find an earlier attempt's message, and what to do after. Reading
Discord's answers and finding channels and earlier posts is in cogs/delivery.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from coach import metrics
from coach.clock import to_unix
from coach.outbox import NONCE_WINDOW, Fail, Job, Outcome, Retry, Sent, Skip, TakeReport, backoff, crashpoint
from coach.pacer import paced_as
from cogs.delivery import GuildUnavailable as GuildUnavailable  # the kinds' cogs import these from here too
from cogs.delivery import classify
from cogs.delivery import find_in_history as find_in_history
from cogs.delivery import has_custom_id_prefix as has_custom_id_prefix
from cogs.delivery import postable_channel as postable_channel

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.outbox")

Take = Callable[[datetime], Awaitable[TakeReport]]
Deliver = Callable[[Job], Awaitable[Sent]]
Find = Callable[[Job], Awaitable[Sent | None]]
After = Callable[[Job, str, Sent | None, str | None], Awaitable[None]]


@dataclass
class Lane:
    kind: str
    take: Take | None
    deliver: Deliver
    find: Find | None
    after: After | None
    in_flight: int
    queue: asyncio.Queue[Job] = field(init=False)
    pump: asyncio.Task[None] | None = None
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    again: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.in_flight)


class Outbox:
    """Lanes run side by side; the send budget (coach/pacer.py) shares Discord's limit between them."""

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self.owner = bot.settings.instance
        self.lease = bot.settings.outbox_lease_seconds
        self.lanes: dict[str, Lane] = {}
        self.counts: Counter[str] = Counter()   # what happened since the last summary line
        self._closing = False

    def register(self, kind: str, deliver: Deliver, *, take: Take | None = None, find: Find | None = None,
                 after: After | None = None, in_flight: int = 8) -> None:
        """A kind of scheduled post: `take(now)` moves its due schedules into the outbox (None: rows are
        written elsewhere, e.g. recaps with their round), `deliver(job)` posts one row."""
        self.lanes[kind] = Lane(kind, take, deliver, find, after, in_flight)

    async def take_due(self, now: datetime) -> dict[str, TakeReport]:
        """Every kind takes its due schedules into the outbox; a kind that fails doesn't stop the others."""
        reports: dict[str, TakeReport] = {}
        for lane in self.lanes.values():
            if lane.take is None:
                continue
            try:
                reports[lane.kind] = await lane.take(now)
                if reports[lane.kind].queued:
                    crashpoint("after_take")
            except Exception:
                log.exception("taking due %s posts failed; trying again on the next tick", lane.kind)
        return reports

    async def start(self) -> None:
        """Rows this instance leased before it was killed are ready again at once (others wait out the lease)."""
        released = await self.bot.storage.release_leases(self.owner)
        if released:
            log.info("%d scheduled post(s) were in flight when the last run stopped; resuming them", released)
            self.counts["resumed"] += released

    def wake(self) -> None:
        if self._closing:
            return
        for lane in self.lanes.values():
            lane.again = True
            if not lane.workers:
                lane.workers = [asyncio.create_task(self._worker(lane), name=f"bounce-{lane.kind}-{i}")
                                for i in range(lane.in_flight)]
            if lane.pump is None or lane.pump.done():
                lane.pump = asyncio.create_task(self._pump(lane), name=f"bounce-{lane.kind}-pump")

    async def drain(self) -> None:
        """Wait until every ready row has been handled (tests, the benchmarks, catch-up at start)."""
        while True:
            pumps = [lane.pump for lane in self.lanes.values() if lane.pump is not None and not lane.pump.done()]
            if pumps:
                await asyncio.wait(pumps)
                continue
            for lane in self.lanes.values():
                await lane.queue.join()
            if not any(lane.pump is not None and not lane.pump.done() for lane in self.lanes.values()):
                return

    async def close(self) -> None:
        """Stop leasing; posts already on their way finish briefly (so they are recorded)."""
        self._closing = True
        tasks = [t for lane in self.lanes.values() for t in ([lane.pump] if lane.pump else []) + lane.workers]
        for lane in self.lanes.values():
            if lane.pump is not None:
                lane.pump.cancel()
        with contextlib.suppress(TimeoutError):  # join() returns at once for a lane with nothing in hand
            await asyncio.wait_for(asyncio.gather(*(lane.queue.join() for lane in self.lanes.values())), 5)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def run_now(self, job_id: int) -> tuple[str, str | None]:
        """Post one row at once, here (/coach post-now); returns its (state, reason) afterwards."""
        kind_jobs = await self.bot.storage.lease_jobs("", self.owner, self.bot.clock.now(), self.lease, 1,
                                                      job_id=job_id)
        for job in kind_jobs:
            await self.run(job)
        return await self.bot.storage.get_job(job_id) or ("failed", "internal_error")

    # ------------------------------------------------------------------ lanes

    async def _pump(self, lane: Lane) -> None:
        """Lease a lane's ready rows a few at a time, oldest due first, just ahead of its workers."""
        try:
            while lane.again:
                lane.again = False
                while True:
                    jobs = await self.bot.storage.lease_jobs(lane.kind, self.owner, self.bot.clock.now(),
                                                             self.lease, lane.in_flight)
                    for job in jobs:
                        await lane.queue.put(job)  # waits while the workers are a batch behind
                    if len(jobs) < lane.in_flight:
                        break
                    lane.again = False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("leasing %s posts failed; retrying on the next tick", lane.kind)

    async def _worker(self, lane: Lane) -> None:
        while True:
            job = await lane.queue.get()
            try:
                await asyncio.shield(self.run(job))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s post %s: unexpected failure", job.kind, job.ref_id)
            finally:
                lane.queue.task_done()

    async def run(self, job: Job) -> None:
        """Deliver one leased row and record what happened. Never raises for a Discord or network failure."""
        lane = self.lanes[job.kind]
        now = self.bot.clock.now()
        if to_unix(now) > job.expires_at:  # retried until the grace window closed, or taken too late
            reason = f"gave_up:{job.error}" if job.error else "missed"
            await self._finish(job, lane, "failed", None, reason, now)
            log.warning("%s post %s (guild %s) could not be made within the grace window (%s); skipped",
                        job.kind, job.ref_id, job.guild_id, reason)
            return
        try:
            with paced_as(job.kind):  # the send budget takes turns between kinds
                sent = await self._attempt(job, lane, now)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
            outcome = classify(exc)
            if not isinstance(outcome, Skip):  # skipped (answered, switched off): nothing failed
                metrics.post_failed(job.kind, exc)
            if type(outcome) is Fail and outcome.reason == "internal_error":
                log.error("%s post %s (guild %s) failed", job.kind, job.ref_id, job.guild_id, exc_info=exc)
            await self._failed(job, lane, outcome, now)
            return
        metrics.post_sent(job.kind)
        await self._finish(job, lane, "done", sent, None, self.bot.clock.now())
        crashpoint("after_record")

    async def _attempt(self, job: Job, lane: Lane, now: datetime) -> Sent:
        """Past Discord's nonce window, look for the first attempt's message before posting again."""
        if lane.find is not None and job.attempts > 1 and job.first_try_at is not None and \
                now - datetime.fromtimestamp(job.first_try_at, now.tzinfo) > NONCE_WINDOW:
            found = await lane.find(job)
            if found is not None:
                self.counts["found"] += 1
                return found
        crashpoint("before_post")
        sent = await lane.deliver(job)
        crashpoint("after_post")
        return sent

    async def _failed(self, job: Job, lane: Lane, outcome: Outcome, now: datetime) -> None:
        if isinstance(outcome, Skip):
            await self._finish(job, lane, "skipped", None, outcome.reason, now)
            return
        if isinstance(outcome, Retry):
            retry_at = now + backoff(job.attempts)
            if to_unix(retry_at) <= job.expires_at:
                await self.bot.storage.retry_job(job, to_unix(retry_at), outcome.reason)
                self.counts["retrying"] += 1
                log.info("%s post %s (guild %s): %s; retrying in %ds", job.kind, job.ref_id, job.guild_id,
                         outcome.reason, (retry_at - now).total_seconds())
                return
            reason = f"gave_up:{outcome.reason}"
        else:
            reason = outcome.reason
        log.warning("%s post %s (guild %s) not posted: %s", job.kind, job.ref_id, job.guild_id, reason)
        await self._finish(job, lane, "failed", None, reason, now)

    async def _finish(self, job: Job, lane: Lane, state: str, sent: Sent | None, reason: str | None,
                      now: datetime) -> None:
        queued = await self.bot.storage.finish_job(job, state, now, sent=sent, reason=reason)
        if queued is None:
            return  # someone else finished it (a lease taken over): their record stands
        self.counts[f"{job.kind}:{state}"] += 1
        if queued:
            self.wake()  # what a post queued with it (a round's weekly recap) goes out right after it
        if lane.after is not None:
            try:
                await lane.after(job, state, sent, reason)
            except Exception:
                log.exception("%s post %s: follow-up after %s failed", job.kind, job.ref_id, state)

    def summary(self, reports: dict[str, TakeReport]) -> str | None:
        """One line of what happened since the last call (None when nothing did): due schedules taken, late
        and missed ones, and posts done, skipped, failed, retrying or resumed."""
        counts, self.counts = self.counts, Counter()
        parts = []
        for kind, r in reports.items():
            if r.due:
                parts.append(f"{kind} due {r.due} (queued {r.queued}, late {r.late}, missed {r.missed}"
                             + (f", broken {r.broken}" if r.broken else "") + ")")
        parts += [f"{k} {v}" for k, v in sorted(counts.items())]
        return "; ".join(parts) or None
