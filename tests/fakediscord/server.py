"""FakeDiscord: an aiohttp server on 127.0.0.1 that discord.py 2.7 talks to as if it were Discord.

REST lives under /api/v10 (Discord's JSON shapes, contract-checked against the OpenAPI spec),
the gateway is a JSON websocket at /gateway (text frames, no compression), and files the bot
uploaded are served back under /attachments/.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import math
import re
import secrets
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from .contract import DEFAULT_SPEC, Contract, _template_key, check_limits, errors_tree, load_contract
from .interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    CB_AUTOCOMPLETE,
    CB_DEFERRED_MESSAGE,
    CB_DEFERRED_UPDATE,
    CB_MESSAGE,
    CB_MODAL,
    CB_UPDATE,
    EPHEMERAL,
    LOADING,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionHandle,
    public,
)
from .world import (
    ADMINISTRATOR,
    ATTACH_FILES,
    EMBED_LINKS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    MANAGE_MESSAGES,
    MANAGE_ROLES,
    MENTION_EVERYONE,
    PRIVILEGED_INTENTS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    USE_APPLICATION_COMMANDS,
    VIEW_CHANNEL,
    FakeDiscordError,
    World,
    iso_now,
)

API_PREFIX = "/api/v10"
MAX_GUILDS_PER_SHARD = 2500  # Discord closes an IDENTIFY whose shard would hold more with 4011
RECOMMENDED_GUILDS_PER_SHARD = 1000  # what GET /gateway/bot's `shards` is based on
SESSION_START_TOTAL = 1000  # IDENTIFYs per day (GET /gateway/bot's session_start_limit)
HEARTBEAT_INTERVAL_MS = 41250
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
DM_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | MENTION_EVERYONE

ERRORS: dict[int, tuple[int, str]] = {
    0: (500, "500: Internal Server Error"),
    10003: (404, "Unknown Channel"),
    10004: (404, "Unknown Guild"),
    10007: (404, "Unknown Member"),
    10008: (404, "Unknown Message"),
    10013: (404, "Unknown User"),
    10011: (404, "Unknown Role"),
    10015: (404, "Unknown Webhook"),
    10062: (404, "Unknown interaction"),
    10063: (404, "Unknown application command"),
    40060: (400, "Interaction has already been acknowledged."),
    50001: (403, "Missing Access"),
    50005: (403, "Cannot edit a message authored by another user"),
    50006: (400, "Cannot send an empty message"),
    50007: (403, "Cannot send messages to this user"),
    50013: (403, "Missing Permissions"),
    50033: (400, "Invalid Recipient(s)"),
    50035: (400, "Invalid Form Body"),
    50109: (400, "The request body contains invalid JSON."),
}
DEFAULT_FAULT_CODES = {400: 50035, 401: 0, 403: 50013, 404: 10003, 500: 0, 502: 0, 503: 0, 504: 0}

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class ApiError(Exception):
    def __init__(self, code: int, message: str | None = None, *, status: int | None = None,
                 errors: dict | None = None) -> None:
        default_status, default_message = ERRORS.get(code, (400, "Bad Request"))
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.errors = errors
        super().__init__(f"{self.status} {self.code} {self.message}")

    def body(self) -> dict:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str  # without /api/v10
    route: str | None  # template, e.g. "/channels/{channel_id}/messages" (None: unimplemented)
    json: Any
    query: dict[str, str]
    status: int = 0
    files: list[str] = field(default_factory=list)
    at: float = 0.0  # time.monotonic()
    authorization: str | None = None

    def __repr__(self) -> str:
        return f"<{self.method} {self.path} -> {self.status}>"


@dataclass
class Fault:
    method: str
    route: str
    status: int
    code: int | None
    retry_after: float | None
    times: int
    global_: bool
    message: str | None = None

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method not in ("*", method):
            return False
        if "{" in self.route:
            return template is not None and _template_key(self.route) == _template_key(template)
        return self.route.rstrip("/") == path.rstrip("/")


@dataclass
class Req:
    method: str
    path: str
    template: str
    params: dict[str, str]
    body: Any
    files: list[dict]
    query: dict[str, str]
    record: Recorded

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise ApiError(50035, f"Value {self.params[name]!r} is not snowflake.") from None


class Connection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.queue: asyncio.Queue[dict | None] = asyncio.Queue()
        self.session: Session | None = None
        self.hb_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.closed = asyncio.Event()


@dataclass
class Session:
    id: str
    intents: int
    token: str
    seq: int = 0
    log: list[dict] = field(default_factory=list)
    conn: Connection | None = None
    shard: tuple[int, int] = (0, 1)  # [shard_id, num_shards] from IDENTIFY; an unsharded IDENTIFY is [0, 1]

    def owns(self, guild_id: int | None) -> bool:
        """This session's shard carries the guild's events (a DM, `None`, goes to shard 0, as on Discord)."""
        shard_id, count = self.shard
        return shard_id == (0 if guild_id is None else shard_of(guild_id, count))


def shard_of(guild_id: int, count: int) -> int:
    """Discord's routing: a guild's events go to shard (guild_id >> 22) % num_shards."""
    return (guild_id >> 22) % count


def event_guild(event: str, data: Any) -> int | None:
    """The guild a gateway event belongs to (None: a DM or no guild at all)."""
    if not isinstance(data, dict):
        return None
    raw = data.get("id") if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") else data.get("guild_id")
    return int(raw) if raw else None


Handler = Callable[[Req], Awaitable[tuple[int, Any]]]


class FakeDiscord(World):
    """Loopback Discord for tests. See tests/fakediscord/README.md for the API."""

    def __init__(
        self,
        *,
        spec_path: Path | None = DEFAULT_SPEC,
        global_rate_limit: int | None = None,
        interaction_deadline: float = 3.0,
        allowed_privileged_intents: int = PRIVILEGED_INTENTS,
        max_guilds_per_shard: int = MAX_GUILDS_PER_SHARD,
    ) -> None:
        super().__init__()
        self.contract: Contract | None = load_contract(spec_path)
        self.global_rate_limit = global_rate_limit
        self.interaction_deadline = interaction_deadline
        self.allowed_privileged_intents = allowed_privileged_intents
        self.max_guilds_per_shard = max_guilds_per_shard
        self.token = "fake-bot-token." + secrets.token_urlsafe(12)
        self.api_base = ""
        self.gateway_url = ""
        self.base_url = ""
        self.port = 0
        # records
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.messages: dict[int, list[dict]] = collections.defaultdict(list)  # POST /channels/{id}/messages
        self.role_changes: list[tuple[str, int, int, int]] = []  # (PUT|DELETE, guild, member, role) that succeeded
        self.nonce_window = 180.0   # seconds an enforced nonce returns the first message (Discord: "a few minutes")
        self.nonce_dedupes = 0
        self._nonces: dict[tuple[int, str], tuple[dict, float]] = {}
        self.channel_log: dict[int, list[dict]] = collections.defaultdict(list)  # every visible message
        self.deleted_messages: list[dict] = []
        self.commands: dict[int | None, list[dict]] = {}
        self.command_writes = 0
        self.command_creates = 0
        self.interactions: list[InteractionHandle] = []
        self.faults: list[Fault] = []
        self.faults_hit = 0
        self.global_429s = 0
        self.invalid_requests = 0  # 401/403/429 answers (Discord bans IPs at 10,000 per 10 minutes)
        self.per_second: collections.Counter[int] = collections.Counter()
        self.tokens_seen: set[str] = set()
        self.dropped_events: list[tuple[str, str]] = []
        # gateway
        self.connections = 0
        self.identify_count = 0
        self.resume_count = 0
        self.heartbeats = 0
        self.intents: int | None = None
        self.identify_payloads: list[dict] = []
        self.ready = asyncio.Event()
        self.sessions: dict[str, Session] = {}
        self.gateway_closes: list[tuple[int, list[int] | None]] = []  # (close code, shard) of refused IDENTIFYs
        self._live: dict[tuple[int, int], Session] = {}  # the current session of each shard ([id, count])
        self._resumed = asyncio.Event()
        self._conns: set[Connection] = set()
        self._gateway_open = asyncio.Event()  # cleared by hold_gateway(): new connections wait
        self._gateway_open.set()
        # internals
        self._msg_index: dict[int, dict] = {}
        self._by_id: dict[int, InteractionHandle] = {}
        self._by_token: dict[str, InteractionHandle] = {}
        self._blobs: dict[int, tuple[str, bytes, str]] = {}
        self._window: collections.deque[float] = collections.deque()
        self._gate: asyncio.Event | None = None  # hold_requests(): REST requests wait here, uncounted
        self._t0 = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._routes = self._build_routes()

    # ================================================================== lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle_api)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/gateway/", self._handle_gateway)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._handle_attachment)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_base = self.base_url + API_PREFIX
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"
        self._t0 = time.monotonic()

    async def stop(self) -> None:
        self._gateway_open.set()
        for conn in list(self._conns):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ================================================================== helpers for tests
    def take_violations(self) -> list[str]:
        """Return and clear the recorded violations (for tests that provoke them on purpose)."""
        out, self.violations[:] = list(self.violations), []
        return out

    def callbacks(self, interaction_id: int) -> int:
        """How many times the interaction was answered (successful callbacks): exactly once is right."""
        return sum(1 for r in self.requests_to("/interactions/{interaction_id}/{interaction_token}/callback")
                   if r.path.split("/")[-3] == str(interaction_id) and r.status < 300)

    def requests_to(self, route: str, method: str | None = None) -> list[Recorded]:
        """Requests whose template (or concrete path) matches `route`."""
        key = _template_key(route)
        return [
            r for r in self.requests
            if (method is None or r.method == method.upper())
            and ((r.route is not None and _template_key(r.route) == key) or r.path == route)
        ]

    def describe_requests(self, n: int = 10) -> str:
        return ", ".join(f"{r.method} {r.path} -> {r.status}" for r in self.requests[-n:]) or "(none)"

    def max_per_second(self) -> int:
        return max(self.per_second.values(), default=0)

    def busiest_window(self, window: float = 1.0) -> int:
        """Most requests under the global limit (bot-authenticated, not interactions) that arrived in any
        sliding `window` seconds: what the global rate limit counts."""
        times = [r.at for r in self.requests if (r.authorization or "").startswith("Bot ")
                 and not r.path.startswith(("/interactions/", "/webhooks/"))]
        best = start = 0
        for end, at in enumerate(times):
            while times[start] <= at - window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def hold_requests(self) -> None:
        """A stalled Discord (or network): REST requests are held, unanswered and uncounted, until
        `release_requests()`; then they all arrive at once, each counted when it arrives."""
        if self._gate is None:
            self._gate = asyncio.Event()

    def release_requests(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def all_messages(self, channel_id: int) -> list[dict]:
        """Every visible message in a channel: bot posts, non-ephemeral interaction answers, user messages."""
        return self.channel_log[channel_id]

    def message(self, message_id: int) -> dict | None:
        return self._msg_index.get(int(message_id))

    def inject_fault(
        self,
        method: str,
        route: str,
        *,
        status: int,
        code: int | None = None,
        retry_after: float | None = None,
        times: int = 1,
        global_: bool = False,
        message: str | None = None,
    ) -> None:
        """The next `times` requests matching (method, route template or concrete path) get this answer."""
        self.faults.append(Fault(method.upper(), route, status, code, retry_after, times, global_, message))

    # ================================================================== REST plumbing
    def _build_routes(self) -> list[tuple[str, re.Pattern[str], str, Handler]]:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/oauth2/applications/@me", self._get_app),
            ("GET", "/applications/@me", self._get_app),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            ("POST", "/applications/{application_id}/commands", self._post_command),
            ("GET", "/applications/{application_id}/commands/{command_id}", self._get_command),
            ("PATCH", "/applications/{application_id}/commands/{command_id}", self._patch_command),
            ("DELETE", "/applications/{application_id}/commands/{command_id}", self._delete_command),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._put_commands),
            ("POST", "/applications/{application_id}/guilds/{guild_id}/commands", self._post_command),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", self._get_command),
            ("PATCH", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", self._patch_command),
            ("DELETE", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
             self._delete_command),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self._callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._post_followup),
            ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self._get_original),
            ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self._patch_original),
            ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self._delete_original),
            ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self._get_followup),
            ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self._patch_followup),
            ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self._delete_followup),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("GET", "/channels/{channel_id}/messages", self._get_messages),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._patch_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self._get_roles),
            ("GET", "/guilds/{guild_id}/members", self._list_members),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._put_member_role),
            ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._delete_member_role),
        ]
        out = []
        for method, template, handler in table:
            pattern = re.escape(template)
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
            out.append((method, re.compile("^" + pattern + "$"), template, handler))
        return out

    def _match(self, method: str, path: str) -> tuple[str | None, Handler | None, dict[str, str]]:
        template_seen = None
        for m, pattern, template, handler in self._routes:
            match = pattern.match(path)
            if match:
                if m == method:
                    return template, handler, match.groupdict()
                template_seen = template_seen or template
        return template_seen, None, {}

    @staticmethod
    def _respond(status: int, body: Any = None, headers: dict[str, str] | None = None) -> web.Response:
        if status == 204 or body is None:
            return web.Response(status=status, headers=headers)
        hdrs = {"Content-Type": "application/json"}  # exactly: discord.py compares the header verbatim
        hdrs.update(headers or {})
        return web.Response(status=status, body=json.dumps(body).encode(), headers=hdrs)

    def violation(self, line: str) -> None:
        self.violations.append(line)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[dict]]:
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            form = await request.post()
            payload: Any = None
            files: list[dict] = []
            for name, value in form.items():
                if name == "payload_json":
                    payload = json.loads(value if isinstance(value, str) else value.file.read())
                elif isinstance(value, web.FileField):
                    files.append({"field": name, "filename": value.filename, "data": value.file.read(),
                                  "content_type": value.content_type})
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        return json.loads(raw), []

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if self._gate is not None:
            await self._gate.wait()
        method = request.method.upper()
        path = "/" + request.match_info["tail"]
        now = time.monotonic()
        self.per_second[int(now - self._t0)] += 1
        template, handler, params = self._match(method, path)
        auth = request.headers.get("Authorization")
        record = Recorded(method=method, path=path, route=template if handler else None, json=None,
                          query=dict(request.query), at=now, authorization=auth)
        self.requests.append(record)
        try:
            try:
                body, files = await self._read_body(request)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ApiError(50109) from None
            record.json = body
            record.files = [f["filename"] for f in files]
            status, out, headers = await self._process(request, record, template, handler, params, body, files)
        except ApiError as e:
            status, out, headers = e.status, e.body(), {}
        except Exception as e:  # a bug in the fake (or a body it cannot read): make it loud, never a 5xx
            traceback.print_exc()  # (discord.py would retry a 5xx for ~25 s)
            self.violation(f"{method} {path}: fake discord crashed: {e!r}")
            status, out, headers = 400, {"message": f"fake discord crashed: {e!r}", "code": 0}, {}
        record.status = status
        if status in (401, 403) or (status == 429 and headers.get("X-RateLimit-Scope") != "shared"):
            self.invalid_requests += 1
        return self._respond(status, out, headers)

    async def _process(self, request: web.Request, record: Recorded, template: str | None,
                       handler: Handler | None, params: dict[str, str], body: Any, files: list[dict]
                       ) -> tuple[int, Any, dict[str, str]]:
        method, path = record.method, record.path
        if handler is None or template is None:
            self.violation(f"{method} {path}: unimplemented route (fake discord answers 404)")
            return 404, {"message": "404: Not Found", "code": 0}, {}
        interaction_route = path.startswith(("/interactions/", "/webhooks/"))
        if not interaction_route:
            if not record.authorization or not record.authorization.startswith("Bot "):
                return 401, {"message": "401: Unauthorized", "code": 0}, {}
            self.tokens_seen.add(record.authorization[4:])
            limited = self._global_limit(record.at)
            if limited is not None:
                return limited
        fault = next((f for f in self.faults if f.matches(method, path, template)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            self.faults_hit += 1
            return self._fault_response(fault)
        self._contract_check(method, template, body)
        req = Req(method, path, template, params, body, files, dict(request.query), record)
        status, out = await handler(req)
        return status, out, {}

    def _global_limit(self, now: float) -> tuple[int, Any, dict[str, str]] | None:
        if not self.global_rate_limit:
            return None
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= self.global_rate_limit:
            self.global_429s += 1
            retry = max(0.01, self._window[0] + 1.0 - now)
            headers = {"Retry-After": f"{retry:.3f}", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global",
                       "Via": "1.1 google"}
            return 429, {"message": "You are being rate limited.", "retry_after": round(retry, 3),
                         "global": True, "code": 0}, headers
        self._window.append(now)
        return None

    def _fault_response(self, f: Fault) -> tuple[int, Any, dict[str, str]]:
        if f.status == 429:
            retry = 0.1 if f.retry_after is None else f.retry_after
            headers = {
                "Retry-After": f"{retry}",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
                "X-RateLimit-Reset-After": f"{retry}",
                "X-RateLimit-Bucket": "fakebucket" + format(abs(hash(f.route)) % 10**8, "08d"),
                "X-RateLimit-Scope": "global" if f.global_ else "user",
                "Via": "1.1 google",
            }
            if f.global_:
                headers["X-RateLimit-Global"] = "true"
            body = {"message": f.message or "You are being rate limited.", "retry_after": retry,
                    "global": f.global_}
            if f.global_:
                self.global_429s += 1
            return 429, body, headers
        code = f.code if f.code is not None else DEFAULT_FAULT_CODES.get(f.status, 0)
        message = f.message or (ERRORS[code][1] if code in ERRORS else f"{f.status}: Error")
        if f.status >= 500:
            message = f.message or f"{f.status}: Internal Server Error"
        return f.status, {"message": message, "code": code}, {}

    def _contract_check(self, method: str, template: str, body: Any) -> None:
        if body is None:
            return
        problems = []
        if self.contract is not None:
            problems.extend(self.contract.validate(method, template, body))
        problems.extend(check_limits(method, template, body))
        problems = list(dict.fromkeys(problems))
        if problems:
            for p, msg in problems:
                self.violation(f"{method} {template}: {p}: {msg}")
            raise ApiError(50035, errors=errors_tree(problems))

    async def _handle_attachment(self, request: web.Request) -> web.StreamResponse:
        aid = int(request.match_info["attachment_id"])
        if aid not in self._blobs:
            return web.Response(status=404, text="Not Found")
        _name, data, ctype = self._blobs[aid]
        return web.Response(body=data, headers={"Content-Type": ctype or "application/octet-stream"})

    # ================================================================== REST: users & application
    def _bot_user_full(self) -> dict:
        return {**self.users[self.bot_user_id], "verified": True, "mfa_enabled": False, "email": None,
                "locale": "en-US", "bio": ""}

    async def _get_gateway(self, req: Req) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, req: Req) -> tuple[int, Any]:
        """The gateway URL, the recommended shard count (one per 1,000 guilds) and the IDENTIFY budget."""
        guilds = sum(1 for g in self.guilds.values() if self.bot_user_id in g.members)
        elapsed_ms = int((time.monotonic() - self._t0) * 1000)
        return 200, {
            "url": self.gateway_url,
            "shards": max(1, math.ceil(guilds / RECOMMENDED_GUILDS_PER_SHARD)),
            "session_start_limit": {"total": SESSION_START_TOTAL,
                                    "remaining": max(0, SESSION_START_TOTAL - self.identify_count),
                                    "reset_after": max(0, 86_400_000 - elapsed_ms), "max_concurrency": 1},
        }

    async def _get_me(self, req: Req) -> tuple[int, Any]:
        return 200, self._bot_user_full()

    async def _get_user(self, req: Req) -> tuple[int, Any]:
        uid = req.int_param("user_id")
        if uid not in self.users:
            raise ApiError(10013)
        return 200, self.users[uid]

    async def _create_dm(self, req: Req) -> tuple[int, Any]:
        body = req.body or {}
        try:
            uid = int(body.get("recipient_id"))
        except (TypeError, ValueError):
            raise ApiError(50033) from None
        if uid not in self.users:
            raise ApiError(50033)
        return 200, self.dm_channel(uid)

    async def _get_app(self, req: Req) -> tuple[int, Any]:
        return 200, {
            "id": str(self.application_id),
            "name": "Bounce",
            "icon": None,
            "description": "Finish what you start.",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": self.users[self.app_owner_id],
            "team": None,
            "bot": self.users[self.bot_user_id],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "tags": [],
            "approximate_guild_count": len(self.guilds),
            "integration_types_config": {"0": {}},
        }

    # ================================================================== REST: application commands
    def _command_scope(self, req: Req) -> int | None:
        if req.int_param("application_id") != self.application_id:
            raise ApiError(50001)
        if "guild_id" not in req.params:
            return None
        gid = req.int_param("guild_id")
        if gid not in self.guilds or self.bot_user_id not in self.guilds[gid].members:
            raise ApiError(50001)
        return gid

    def _finalize_command(self, body: dict, scope: int | None, cmd_id: int) -> dict:
        dmp = body.get("default_member_permissions")
        cmd: dict[str, Any] = {
            "id": str(cmd_id),
            "application_id": str(self.application_id),
            "version": str(self.snowflake()),
            "type": body.get("type") or 1,
            "name": body["name"],
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description") or "",
            "description_localizations": body.get("description_localizations"),
            "default_member_permissions": None if dmp is None else str(dmp),
            "nsfw": bool(body.get("nsfw")),
            "integration_types": body.get("integration_types") or [0],
            "contexts": body.get("contexts"),
        }
        if body.get("options"):
            cmd["options"] = copy.deepcopy(body["options"])
        if scope is None:
            cmd["dm_permission"] = body.get("dm_permission", True) is not False
        else:
            cmd["guild_id"] = str(scope)
        return cmd

    def _upsert(self, scope: int | None, body: dict, existing: list[dict]) -> tuple[dict, bool]:
        kind = body.get("type") or 1
        old = next((c for c in existing if c["name"] == body["name"] and c["type"] == kind), None)
        if old is None:
            self.command_creates += 1
            return self._finalize_command(body, scope, self.snowflake()), True
        return self._finalize_command(body, scope, int(old["id"])), False

    async def _get_commands(self, req: Req) -> tuple[int, Any]:
        return 200, self.commands.get(self._command_scope(req), [])

    async def _put_commands(self, req: Req) -> tuple[int, Any]:
        scope = self._command_scope(req)
        existing = self.commands.get(scope, [])
        new = [self._upsert(scope, body, existing)[0] for body in (req.body or [])]
        self.commands[scope] = new
        self.command_writes += 1
        return 200, new

    async def _post_command(self, req: Req) -> tuple[int, Any]:
        scope = self._command_scope(req)
        existing = self.commands.setdefault(scope, [])
        cmd, created = self._upsert(scope, req.body, existing)
        self.commands[scope] = [c for c in existing if c["id"] != cmd["id"]] + [cmd]
        self.command_writes += 1
        return (201 if created else 200), cmd

    def _find_command(self, req: Req) -> tuple[int | None, dict]:
        scope = self._command_scope(req)
        cid = req.params["command_id"]
        for c in self.commands.get(scope, []):
            if c["id"] == cid:
                return scope, c
        raise ApiError(10063)

    async def _get_command(self, req: Req) -> tuple[int, Any]:
        return 200, self._find_command(req)[1]

    async def _patch_command(self, req: Req) -> tuple[int, Any]:
        scope, cmd = self._find_command(req)
        merged = {**cmd, **(req.body or {})}
        new = self._finalize_command(merged, scope, int(cmd["id"]))
        self.commands[scope] = [new if c["id"] == cmd["id"] else c for c in self.commands[scope]]
        self.command_writes += 1
        return 200, new

    async def _delete_command(self, req: Req) -> tuple[int, Any]:
        scope, cmd = self._find_command(req)
        self.commands[scope] = [c for c in self.commands[scope] if c["id"] != cmd["id"]]
        self.command_writes += 1
        return 204, None

    # ================================================================== messages (shared)
    def _attachments_from_files(self, channel_id: int, body: dict, files: list[dict]) -> tuple[list[dict], dict]:
        meta = {str(a.get("id")): a for a in (body.get("attachments") or []) if isinstance(a, dict)}
        out, blobs = [], {}
        for f in files:
            m = re.fullmatch(r"files\[(\d+)\]", f["field"])
            index = m.group(1) if m else f["field"]
            info = meta.get(index, {})
            filename = info.get("filename") or f["filename"]
            aid = self.snowflake()
            url = f"{self.base_url}/attachments/{channel_id}/{aid}/{filename}"
            att = {"id": str(aid), "filename": filename, "size": len(f["data"]), "url": url, "proxy_url": url,
                   "content_type": f.get("content_type") or "application/octet-stream"}
            if info.get("description"):
                att["description"] = info["description"]
            self._blobs[aid] = (filename, f["data"], att["content_type"])
            out.append(att)
            blobs[filename] = f["data"]
        return out, blobs

    def _mentions(self, msg: dict, guild_id: int | None) -> None:
        content = msg.get("content") or ""
        am = msg.get("_allowed_mentions")
        users = [int(u) for u in _USER_MENTION.findall(content)]
        roles = [int(r) for r in _ROLE_MENTION.findall(content)]
        everyone = "@everyone" in content or "@here" in content
        if am is not None:
            parse = am.get("parse") or []
            allowed_users = {int(u) for u in am.get("users") or []}
            allowed_roles = {int(r) for r in am.get("roles") or []}
            users = [u for u in users if "users" in parse or u in allowed_users]
            roles = [r for r in roles if "roles" in parse or r in allowed_roles]
            everyone = everyone and "everyone" in parse
        if (everyone or roles) and guild_id is not None:
            cid = int(msg["channel_id"])
            may_mention_all = bool(self.channel_permissions(cid, self.bot_user_id) & MENTION_EVERYONE)
            everyone = everyone and may_mention_all
            # A role that isn't mentionable pings only when the author may mention all roles (Discord's rule).
            known = self.guild(guild_id).roles
            roles = [r for r in roles if may_mention_all or known.get(r, {}).get("mentionable")]
        ref = msg.get("referenced_message")
        if ref and (am is None or am.get("replied_user", True)):
            users.append(int(ref["author"]["id"]))
        msg["mentions"] = [self.users[u] for u in dict.fromkeys(users) if u in self.users]
        msg["mention_roles"] = [str(r) for r in dict.fromkeys(roles)]
        msg["mention_everyone"] = everyone

    def _new_message(self, channel_id: int, body: dict, files: list[dict], *, author_id: int,
                     flags: int = 0, interaction: InteractionHandle | None = None) -> dict:
        guild_id = self.channel_guild.get(channel_id)
        attachments, blobs = self._attachments_from_files(channel_id, body, files)
        msg: dict[str, Any] = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "author": self.users[author_id],
            "content": body.get("content") or "",
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [{"type": "rich", **e} for e in body.get("embeds") or []],
            "components": copy.deepcopy(body.get("components") or []),
            "pinned": False,
            "type": 0,
            "flags": flags,
            "_allowed_mentions": body.get("allowed_mentions"),
            "_files": blobs,
        }
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        if body.get("poll"):
            msg["poll"] = body["poll"]
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            target = self._msg_index.get(int(ref["message_id"]))
            if target is None and ref.get("fail_if_not_exists", True):
                raise ApiError(50035, errors=errors_tree([("message_reference", "Unknown message")]))
            msg["type"] = 19
            msg["message_reference"] = {"type": 0, "message_id": str(ref["message_id"]),
                                        "channel_id": str(channel_id),
                                        **({"guild_id": str(guild_id)} if guild_id else {})}
            msg["referenced_message"] = public(target)
        if interaction is not None:
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
            msg["type"] = 20 if interaction.type == APPLICATION_COMMAND else 0
            msg["interaction_metadata"] = {
                "id": str(interaction.id), "type": interaction.type, "user": self.users[interaction.user_id],
                "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
            }
        self._mentions(msg, guild_id)
        self._msg_index[int(msg["id"])] = msg
        return msg

    def _apply_edit(self, msg: dict, body: dict, files: list[dict]) -> dict:
        body = body or {}
        if "content" in body:
            msg["content"] = body["content"] or ""
        if "embeds" in body:
            msg["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            msg["components"] = copy.deepcopy(body["components"] or [])
        if "allowed_mentions" in body:
            msg["_allowed_mentions"] = body["allowed_mentions"]
        if "flags" in body and body["flags"] is not None:
            keep = msg.get("flags", 0) & EPHEMERAL
            msg["flags"] = (int(body["flags"]) & ~LOADING) | keep
        cid = int(msg["channel_id"])
        new_atts, blobs = self._attachments_from_files(cid, body, files)
        if "attachments" in body:
            keep_ids = {str(a.get("id")) for a in body["attachments"] or [] if isinstance(a, dict)}
            kept = [a for a in msg.get("attachments", []) if a["id"] in keep_ids]
            msg["_files"] = {a["filename"]: msg.get("_files", {}).get(a["filename"], b"") for a in kept}
            msg["attachments"] = kept + new_atts
        else:
            msg["attachments"] = msg.get("attachments", []) + new_atts
        msg.setdefault("_files", {}).update(blobs)
        msg["flags"] = msg.get("flags", 0) & ~LOADING
        msg["edited_timestamp"] = iso_now()
        msg["_edited"] = True
        self._mentions(msg, self.channel_guild.get(cid))
        if not msg.get("flags", 0) & EPHEMERAL and self.find_channel(cid) is not None:
            self._emit("MESSAGE_UPDATE", public(msg))
        return msg

    def _log_message(self, msg: dict) -> None:
        cid = int(msg["channel_id"])
        if msg.get("flags", 0) & EPHEMERAL:
            return
        self.channel_log[cid].append(msg)
        ch = self.find_channel(cid)
        if ch is not None:
            ch["last_message_id"] = msg["id"]
        self._emit("MESSAGE_CREATE", public(msg))

    def _forget_message(self, msg: dict) -> None:
        mid = int(msg["id"])
        self._msg_index.pop(mid, None)
        cid = int(msg["channel_id"])
        for lst in (self.messages.get(cid), self.channel_log.get(cid)):
            if lst is not None and msg in lst:
                lst.remove(msg)
        self.deleted_messages.append(msg)
        if not msg.get("flags", 0) & EPHEMERAL:
            data = {"id": msg["id"], "channel_id": msg["channel_id"]}
            if msg.get("guild_id"):
                data["guild_id"] = msg["guild_id"]
            self._emit("MESSAGE_DELETE", data)

    # ================================================================== REST: channels
    def _channel_or_404(self, req: Req) -> tuple[int, dict]:
        cid = req.int_param("channel_id")
        ch = self.find_channel(cid)
        if ch is None:
            raise ApiError(10003)
        return cid, ch

    def _require(self, cid: int, perms: int, code: int = 50013) -> None:
        if cid in self.dm_channel_user:
            return
        if self.channel_permissions(cid, self.bot_user_id) & perms != perms:
            raise ApiError(code)

    async def _get_channel(self, req: Req) -> tuple[int, Any]:
        cid, ch = self._channel_or_404(req)
        self._require(cid, VIEW_CHANNEL, 50001)
        return 200, ch

    async def _post_message(self, req: Req) -> tuple[int, Any]:
        cid, _ch = self._channel_or_404(req)
        body = req.body or {}
        if cid in self.dm_channel_user:
            uid = self.dm_channel_user[cid]
            if uid in self.dms_closed or not self.shares_guild_with_bot(uid):
                raise ApiError(50007)
        else:
            need = VIEW_CHANNEL | SEND_MESSAGES
            if body.get("embeds"):
                need |= EMBED_LINKS
            if req.files:
                need |= ATTACH_FILES
            self._require(cid, need)
        if not (body.get("content") or body.get("embeds") or body.get("components") or req.files
                or body.get("sticker_ids") or body.get("poll")):
            self.violation(f"POST {req.template}: (body): empty message (no content, embeds, components or files)")
            raise ApiError(50006)
        key = (cid, str(body.get("nonce"))) if body.get("nonce") is not None and body.get("enforce_nonce") else None
        if key is not None:  # Discord: the same nonce from the same author within a few minutes = that message
            seen = self._nonces.get(key)
            if seen is not None and time.monotonic() - seen[1] <= self.nonce_window and \
                    int(seen[0]["id"]) in self._msg_index:
                self.nonce_dedupes += 1
                return 200, public(seen[0])
        msg = self._new_message(cid, body, req.files, author_id=self.bot_user_id, flags=body.get("flags") or 0)
        self.messages[cid].append(msg)
        self._log_message(msg)
        if key is not None:
            self._nonces[key] = (msg, time.monotonic())
        return 200, public(msg)

    def _message_or_404(self, req: Req) -> tuple[int, dict]:
        cid, _ch = self._channel_or_404(req)
        msg = self._msg_index.get(req.int_param("message_id"))
        if msg is None or int(msg["channel_id"]) != cid or msg.get("flags", 0) & EPHEMERAL:
            raise ApiError(10008)
        return cid, msg

    async def _get_message(self, req: Req) -> tuple[int, Any]:
        cid, msg = self._message_or_404(req)
        self._require(cid, VIEW_CHANNEL | READ_MESSAGE_HISTORY, 50001)
        return 200, public(msg)

    async def _get_messages(self, req: Req) -> tuple[int, Any]:
        cid, _ch = self._channel_or_404(req)
        self._require(cid, VIEW_CHANNEL | READ_MESSAGE_HISTORY, 50001)
        limit = int(req.query.get("limit", 50))
        msgs = list(reversed(self.channel_log[cid]))
        if "before" in req.query:
            msgs = [m for m in msgs if int(m["id"]) < int(req.query["before"])]
        if "after" in req.query:
            msgs = [m for m in msgs if int(m["id"]) > int(req.query["after"])]
        return 200, [public(m) for m in msgs[:limit]]

    async def _patch_message(self, req: Req) -> tuple[int, Any]:
        cid, msg = self._message_or_404(req)
        if int(msg["author"]["id"]) != self.bot_user_id:
            raise ApiError(50005)
        return 200, public(self._apply_edit(msg, req.body, req.files))

    async def _delete_message(self, req: Req) -> tuple[int, Any]:
        cid, msg = self._message_or_404(req)
        if int(msg["author"]["id"]) != self.bot_user_id:
            self._require(cid, MANAGE_MESSAGES)
        self._forget_message(msg)
        return 204, None

    async def _typing(self, req: Req) -> tuple[int, Any]:
        cid, _ch = self._channel_or_404(req)
        self._require(cid, VIEW_CHANNEL | SEND_MESSAGES)
        return 204, None

    # ================================================================== REST: guilds
    def _guild_or_error(self, req: Req) -> int:
        gid = req.int_param("guild_id")
        if gid not in self.guilds:
            raise ApiError(10004)
        if self.bot_user_id not in self.guilds[gid].members:
            raise ApiError(50001)
        return gid

    async def _get_guild(self, req: Req) -> tuple[int, Any]:
        gid = self._guild_or_error(req)
        data = self.guild_payload(gid, full=False)
        if req.query.get("with_counts") in ("true", "1", "True"):
            data["approximate_member_count"] = len(self.guilds[gid].members)
            data["approximate_presence_count"] = 0
        return 200, data

    async def _get_guild_channels(self, req: Req) -> tuple[int, Any]:
        return 200, list(self.guilds[self._guild_or_error(req)].channels.values())

    async def _get_roles(self, req: Req) -> tuple[int, Any]:
        return 200, list(self.guilds[self._guild_or_error(req)].roles.values())

    def _member_role_change(self, req: Req) -> tuple[int, int, int]:
        """Discord's checks for adding or removing a member's role: the bot needs Manage Roles, and the role must
        sit below the bot's highest role; unknown role 10011, unknown member 10007."""
        gid = self._guild_or_error(req)
        uid, rid = req.int_param("user_id"), req.int_param("role_id")
        g = self.guilds[gid]
        if rid not in g.roles:
            raise ApiError(10011)
        if uid not in g.members:
            raise ApiError(10007)
        if not self.base_permissions(gid, self.bot_user_id) & MANAGE_ROLES:
            raise ApiError(50013)
        role = g.roles[rid]
        if role["managed"] or rid == gid or role["position"] >= self.top_role_position(gid, self.bot_user_id):
            raise ApiError(50013)
        self.role_changes.append((req.method, gid, uid, rid))
        return gid, uid, rid

    async def _put_member_role(self, req: Req) -> tuple[int, Any]:
        gid, uid, rid = self._member_role_change(req)
        member = self.guilds[gid].members[uid]
        if str(rid) not in member["roles"]:
            member["roles"].append(str(rid))
        return 204, None

    async def _delete_member_role(self, req: Req) -> tuple[int, Any]:
        gid, uid, rid = self._member_role_change(req)
        member = self.guilds[gid].members[uid]
        member["roles"] = [r for r in member["roles"] if r != str(rid)]
        return 204, None

    async def _get_member(self, req: Req) -> tuple[int, Any]:
        gid = self._guild_or_error(req)
        uid = req.int_param("user_id")
        if uid not in self.guilds[gid].members:
            raise ApiError(10007)
        return 200, self.member_payload(gid, uid)

    async def _list_members(self, req: Req) -> tuple[int, Any]:
        gid = self._guild_or_error(req)
        limit = int(req.query.get("limit", 1))
        after = int(req.query.get("after", 0))
        uids = sorted(u for u in self.guilds[gid].members if u > after)[:limit]
        return 200, [self.member_payload(gid, u) for u in uids]

    # ================================================================== REST: interactions
    def _late(self, h: InteractionHandle, what: str) -> bool:
        elapsed = time.monotonic() - h.created
        if elapsed > self.interaction_deadline:
            self.violation(
                f"POST /interactions/{{interaction_id}}/{{interaction_token}}/callback: {what} answered after "
                f"{elapsed:.2f}s (> {self.interaction_deadline:.0f}s deadline: the user sees 'interaction failed')"
            )
            return True
        return False

    async def _callback(self, req: Req) -> tuple[int, Any]:
        h = self._by_id.get(req.int_param("interaction_id"))
        if h is None or h.token != req.params["interaction_token"]:
            raise ApiError(10062)
        if self._late(h, h.describe()):
            raise ApiError(10062)
        if h.response_body is not None:
            self.violation(f"POST {req.template}: {h.describe()} was already acknowledged")
            raise ApiError(40060)
        body = req.body or {}
        kind = body.get("type")
        data = body.get("data") or {}
        allowed = {
            APPLICATION_COMMAND: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_MODAL},
            MESSAGE_COMPONENT: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE, CB_MODAL},
            AUTOCOMPLETE: {CB_AUTOCOMPLETE},
            MODAL_SUBMIT: {CB_MESSAGE, CB_DEFERRED_MESSAGE}
            | ({CB_DEFERRED_UPDATE, CB_UPDATE} if h.source_message is not None else set()),
        }[h.type]
        if kind not in allowed:
            msg = f"callback type {kind} is not valid for interaction type {h.type}"
            self.violation(f"POST {req.template}: type: {msg}")
            raise ApiError(50035, errors=errors_tree([("type", msg)]))
        message = None
        if kind == CB_MESSAGE:
            message = self._new_message(h.channel_id, data, req.files, author_id=self.bot_user_id,
                                        flags=data.get("flags") or 0, interaction=h)
            h.original = message
            self._log_message(message)
        elif kind == CB_DEFERRED_MESSAGE:
            flags = ((data.get("flags") or 0) & EPHEMERAL) | LOADING
            message = self._new_message(h.channel_id, {}, [], author_id=self.bot_user_id, flags=flags,
                                        interaction=h)
            h.original = message
            self._log_message(message)
        elif kind in (CB_DEFERRED_UPDATE, CB_UPDATE):
            h.original = h.source_message
            if kind == CB_UPDATE and h.source_message is not None:
                message = self._apply_edit(h.source_message, data, req.files)
        recorded = copy.deepcopy(body)
        if req.files:
            recorded["_files"] = [f["filename"] for f in req.files]
        h._set_response(recorded)
        interaction: dict[str, Any] = {"id": str(h.id), "type": h.type, "activity_instance_id": None}
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=bool(message.get("flags", 0) & LOADING),
                response_message_ephemeral=bool(message.get("flags", 0) & EPHEMERAL),
            )
            resource["message"] = public(message)
        return 200, {"interaction": interaction, "resource": resource}

    def _webhook_handle(self, req: Req) -> InteractionHandle:
        h = self._by_token.get(req.params["webhook_token"])
        if h is None or req.params["webhook_id"] != str(self.application_id):
            raise ApiError(10015)
        return h

    async def _post_followup(self, req: Req) -> tuple[int, Any]:
        h = self._webhook_handle(req)
        if h.response_body is None:
            self.violation(f"POST {req.template}: followup for {h.describe()} before it was acknowledged")
            raise ApiError(10015)
        body = req.body or {}
        if not (body.get("content") or body.get("embeds") or body.get("components") or req.files
                or body.get("poll")):
            self.violation(f"POST {req.template}: (body): empty message (no content, embeds, components or files)")
            raise ApiError(50006)
        original = h.original
        if (h.response_type == CB_DEFERRED_MESSAGE and original is not None
                and original.get("flags", 0) & LOADING and not original.get("_edited")):
            # Discord: the first followup after a deferred response edits the loading message.
            msg = self._apply_edit(original, {k: v for k, v in body.items() if k != "flags"}, req.files)
        else:
            msg = self._new_message(h.channel_id, body, req.files, author_id=self.bot_user_id,
                                    flags=(body.get("flags") or 0), interaction=h)
            self._log_message(msg)
        h.followups.append(msg)
        h._notify()
        if req.query.get("wait") in ("true", "1", "True"):
            return 200, public(msg)
        return 204, None

    def _original_or_404(self, h: InteractionHandle) -> dict:
        if h.original is None or h.original_deleted:
            raise ApiError(10008)
        return h.original

    async def _get_original(self, req: Req) -> tuple[int, Any]:
        return 200, public(self._original_or_404(self._webhook_handle(req)))

    async def _patch_original(self, req: Req) -> tuple[int, Any]:
        h = self._webhook_handle(req)
        msg = self._apply_edit(self._original_or_404(h), req.body, req.files)
        h.edits.append(copy.deepcopy(req.body or {}))
        h._notify()
        return 200, public(msg)

    async def _delete_original(self, req: Req) -> tuple[int, Any]:
        h = self._webhook_handle(req)
        msg = self._original_or_404(h)
        h.original_deleted = True
        self._forget_message(msg)
        h._notify()
        return 204, None

    def _followup_or_404(self, h: InteractionHandle, mid: str) -> dict:
        for m in [*h.followups, *([h.original] if h.original else [])]:
            if m["id"] == mid:
                return m
        raise ApiError(10008)

    async def _get_followup(self, req: Req) -> tuple[int, Any]:
        h = self._webhook_handle(req)
        return 200, public(self._followup_or_404(h, req.params["message_id"]))

    async def _patch_followup(self, req: Req) -> tuple[int, Any]:
        h = self._webhook_handle(req)
        msg = self._apply_edit(self._followup_or_404(h, req.params["message_id"]), req.body, req.files)
        h._notify()
        return 200, public(msg)

    async def _delete_followup(self, req: Req) -> tuple[int, Any]:
        h = self._webhook_handle(req)
        msg = self._followup_or_404(h, req.params["message_id"])
        if msg in h.followups:
            h.followups.remove(msg)
        self._forget_message(msg)
        h._notify()
        return 204, None

    # ================================================================== gateway
    def _intent_ok(self, event: str, data: dict, intents: int) -> str | None:
        """None when the event is delivered with these intents, else the missing intent's name."""
        if event.startswith(("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "GUILD_ROLE_", "CHANNEL_",
                             "THREAD_")):
            return None if intents & INTENT_GUILDS else "GUILDS"
        if event.startswith("GUILD_MEMBER_"):
            return None if intents & INTENT_GUILD_MEMBERS else "GUILD_MEMBERS"
        if event.startswith("MESSAGE_"):
            if data.get("guild_id"):
                return None if intents & INTENT_GUILD_MESSAGES else "GUILD_MESSAGES"
            return None if intents & INTENT_DIRECT_MESSAGES else "DIRECT_MESSAGES"
        return None

    def _redact(self, event: str, data: dict, intents: int) -> dict:
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and data.get("guild_id") and not (
            intents & INTENT_MESSAGE_CONTENT
        ):
            author = (data.get("author") or {}).get("id")
            mentioned = any(u["id"] == str(self.bot_user_id) for u in data.get("mentions") or [])
            if author != str(self.bot_user_id) and not mentioned:
                data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        return data

    def _emit(self, event: str, data: dict) -> None:
        """Dispatch to the session of the event's shard (a guild's shard; DMs and guild-less events: shard 0)."""
        for s in self._sessions_for(event_guild(event, data)):
            self._emit_to(s, event, data)

    def _emit_to(self, s: Session, event: str, data: dict) -> None:
        missing = self._intent_ok(event, data, s.intents)
        if missing is not None:
            self.dropped_events.append((event, f"intent {missing} not requested"))
            return
        self._send_dispatch(s, event, self._redact(event, data, s.intents))

    def _sessions_for(self, guild_id: int | None) -> list[Session]:
        return [s for s in self._live.values() if s.owns(guild_id)]

    def _send_dispatch(self, s: Session, event: str, data: dict) -> None:
        s.seq += 1
        payload = data if not isinstance(data, dict) else {k: v for k, v in data.items() if not k.startswith("_")}
        frame = {"op": 0, "t": event, "s": s.seq, "d": json.loads(json.dumps(payload))}
        s.log.append(frame)
        if s.conn is not None:
            s.conn.queue.put_nowait(frame)

    async def _writer(self, conn: Connection) -> None:
        while True:
            frame = await conn.queue.get()
            try:
                if frame is None:
                    return
                if not conn.ws.closed:
                    await conn.ws.send_str(json.dumps(frame))
            except Exception:  # connection went away; frames stay in the session log for RESUME
                pass
            finally:
                conn.queue.task_done()

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        await self._gateway_open.wait()  # hold_gateway(): the handshake hangs, as when Discord is unreachable
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(ws, request)
        self._conns.add(conn)
        self.connections += 1
        writer = asyncio.create_task(self._writer(conn))
        conn.queue.put_nowait({"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS,
                                                                     "_trace": ["fakediscord"]}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_gateway_frame(conn, json.loads(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
        finally:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            conn.queue.put_nowait(None)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(writer, 1.0)
            writer.cancel()
            for _, fut in conn.hb_waiters:
                if not fut.done():
                    fut.set_exception(ConnectionError("gateway connection closed"))
            self._conns.discard(conn)
            conn.closed.set()
        return ws

    async def _on_gateway_frame(self, conn: Connection, frame: dict) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:  # HEARTBEAT
            self.heartbeats += 1
            conn.queue.put_nowait({"op": 11, "s": None, "t": None, "d": None})
            seq = d if isinstance(d, int) else -1
            for item in list(conn.hb_waiters):
                target, fut = item
                if seq >= target and not fut.done():
                    fut.set_result(None)
                    conn.hb_waiters.remove(item)
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 8:
            self._request_members(conn, d or {})
        elif op in (3, 4):  # presence / voice state updates: accepted, ignored
            pass
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, conn: Connection, d: dict) -> None:
        self.identify_count += 1
        self.identify_payloads.append(d)
        token = d.get("token") or ""
        if not token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = d.get("intents")
        if intents is None:
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        raw_shard = d.get("shard")
        if raw_shard is None:
            shard = (0, 1)
        elif (isinstance(raw_shard, list) and len(raw_shard) == 2 and all(type(v) is int for v in raw_shard)
              and 0 <= raw_shard[0] < raw_shard[1]):
            shard = (raw_shard[0], raw_shard[1])
        else:
            self.gateway_closes.append((4010, raw_shard))
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        probe = Session(id="", intents=intents, token=token, shard=shard)
        my_guilds = [gid for gid, g in self.guilds.items() if self.bot_user_id in g.members and probe.owns(gid)]
        if len(my_guilds) > self.max_guilds_per_shard:
            self.gateway_closes.append((4011, raw_shard))
            await conn.ws.close(code=4011, message=b"Sharding required.")
            return
        self.intents = intents
        s = Session(id=uuid.uuid4().hex, intents=intents, token=token, shard=shard)
        self.sessions[s.id] = s
        old_session = self._live.get(shard)
        if old_session is not None and old_session.conn is not None and old_session.conn is not conn:
            old = old_session.conn
            old_session.conn = None
            with contextlib.suppress(Exception):
                await old.ws.close(code=4000)
        for key, other in list(self._live.items()):  # left over from a run with another shard count
            if key[1] != shard[1] and other.conn is None:
                del self._live[key]
        self._live[shard] = s
        s.conn = conn
        conn.session = s
        ready: dict[str, Any] = {
            "v": 10,
            "user": self._bot_user_full(),
            "user_settings": {},
            "session_id": s.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "guilds": [{"id": str(gid), "unavailable": True} for gid in my_guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "application": {"id": str(self.application_id), "flags": 0},
            "_trace": ["fakediscord"],
        }
        if raw_shard is not None:
            ready["shard"] = list(shard)
        self._send_dispatch(s, "READY", ready)
        for gid in my_guilds:
            self._send_dispatch(s, "GUILD_CREATE", self.guild_payload(gid, members=bool(intents & INTENT_GUILD_MEMBERS)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.queue.join(), 5.0)
        self.ready.set()

    async def _resume(self, conn: Connection, d: dict) -> None:
        s = self.sessions.get(str(d.get("session_id")))
        if s is None or self._live.get(s.shard) is not s:
            conn.queue.put_nowait({"op": 9, "s": None, "t": None, "d": False})
            return
        if s.conn is not None and s.conn is not conn:
            old = s.conn
            s.conn = None
            with contextlib.suppress(Exception):
                await old.ws.close(code=4000)
        s.conn = conn
        conn.session = s
        last = d.get("seq") or 0
        for frame in s.log:
            if frame["s"] > last:
                conn.queue.put_nowait(frame)
        self._send_dispatch(s, "RESUMED", {"_trace": ["fakediscord"]})
        self.resume_count += 1
        self._resumed.set()

    def _request_members(self, conn: Connection, d: dict) -> None:
        s = conn.session
        if s is None:
            return
        gids = d.get("guild_id")
        for gid in gids if isinstance(gids, list) else [gids]:
            gid = int(gid)
            if gid not in self.guilds:
                continue
            uids = list(self.guilds[gid].members)
            if d.get("user_ids"):
                wanted = {int(u) for u in (d["user_ids"] if isinstance(d["user_ids"], list) else [d["user_ids"]])}
                uids = [u for u in uids if u in wanted]
            query = d.get("query") or ""
            if query:
                uids = [u for u in uids if self.users[u]["username"].lower().startswith(query.lower())]
            limit = d.get("limit") or 0
            if limit:
                uids = uids[:limit]
            data: dict[str, Any] = {"guild_id": str(gid), "members": [self.member_payload(gid, u) for u in uids],
                                    "chunk_index": 0, "chunk_count": 1, "not_found": []}
            if d.get("nonce"):
                data["nonce"] = d["nonce"]
            self._send_dispatch(s, "GUILD_MEMBERS_CHUNK", data)

    # ---------------------------------------------------------------- gateway: test controls
    def _connected(self) -> list[Session]:
        return [s for s in self._live.values() if s.conn is not None]

    def _pick(self, shard: int | None) -> Session | None:
        """The connected session of `shard` (by shard id); None: the lowest connected shard (the only one, when
        the bot is not sharded)."""
        live = sorted(self._connected(), key=lambda s: s.shard)
        if shard is None:
            return live[0] if live else None
        return next((s for s in live if s.shard[0] == shard), None)

    @property
    def shards(self) -> list[tuple[int, int]]:
        """[shard_id, num_shards] of every connected session, sorted."""
        return sorted(s.shard for s in self._connected())

    def events(self, shard: int = 0) -> list[tuple[str, int | None]]:
        """(event name, guild id or None) of every dispatch sent on `shard`'s current session, in order."""
        s = next((s for s in self._live.values() if s.shard[0] == shard), None)
        return [] if s is None else [(f["t"], event_guild(f["t"], f["d"])) for f in s.log]

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every queued gateway frame was written to the sockets."""
        for s in self._connected():
            if s.conn is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.conn.queue.join(), timeout)

    async def sync(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Barrier: returns once the bot has *processed* every event sent so far, on every connected shard.

        Asks the client for a heartbeat (op 1); discord.py answers with its last sequence number after
        handling all earlier frames. Note discord.py allows itself ~110 gateway sends per minute per shard.
        """
        waits = [self._sync_session(s, timeout) for s in self._connected()]
        if waits:
            await asyncio.gather(*waits)

    async def _sync_session(self, s: Session, timeout: float) -> None:  # noqa: ASYNC109
        conn = s.conn
        if conn is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.hb_waiters.append((s.seq, fut))
        conn.queue.put_nowait({"op": 1, "s": None, "t": None, "d": None})
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(f"bot did not acknowledge events up to seq {s.seq} on shard {list(s.shard)} "
                                 f"within {timeout}s") from None

    async def dispatch(self, event: str, data: dict, *, shard: int | None = None) -> None:
        """Send a gateway event (subject to intents) and wait until the bot processed it. It goes to the shard
        of its guild, as on Discord; `shard` sends it on that shard's connection instead (a misrouted event)."""
        if shard is None:
            self._emit(event, data)
        else:
            s = self._pick(shard)
            if s is None:
                raise FakeDiscordError(f"no bot is connected on shard {shard}")
            self._emit_to(s, event, data)
        await self.sync()

    async def send_reconnect(self, *, wait: bool = True, timeout: float = 10.0,  # noqa: ASYNC109
                             shard: int | None = None) -> None:
        """Op 7 RECONNECT (to `shard`, default the lowest connected): discord.py closes and RESUMEs; waits for the
        RESUME by default."""
        s = self._pick(shard)
        if s is None or s.conn is None:
            raise FakeDiscordError("no connected bot")
        self._resumed = asyncio.Event()
        s.conn.queue.put_nowait({"op": 7, "s": None, "t": None, "d": None})
        if wait:
            await self.wait_resumed(timeout)

    async def drop_connection(self, *, wait: bool = True, timeout: float = 10.0,  # noqa: ASYNC109
                              code: int | None = None, shard: int | None = None) -> None:
        """Close the socket of `shard` (default the lowest connected) without a RECONNECT (abort the TCP
        connection, or close with `code`)."""
        s = self._pick(shard)
        if s is None or s.conn is None:
            raise FakeDiscordError("no connected bot")
        conn = s.conn
        self._resumed = asyncio.Event()
        s.conn = None
        if code is None:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            else:
                await conn.ws.close(code=4000)
        else:
            await conn.ws.close(code=code)
        if wait:
            await self.wait_resumed(timeout)

    def hold_gateway(self) -> None:
        """Gateway outage: new connections hang in their handshake until release_gateway() (combine with
        drop_connection(wait=False) to keep the bot disconnected for a while)."""
        self._gateway_open.clear()

    def release_gateway(self) -> None:
        self._gateway_open.set()

    async def wait_resumed(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        try:
            await asyncio.wait_for(self._resumed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"bot did not RESUME within {timeout}s") from None
        await self.flush()

    async def add_guild_live(self, name: str = "Studio", *, guild_id: int | None = None,
                             shard: tuple[int, int] | None = None) -> int:
        """The bot joins a server: GUILD_CREATE (add channels/members afterwards: they dispatch too)."""
        gid = self.add_guild(name, guild_id=guild_id, shard=shard)
        await self.sync()
        return gid

    def add_guild(self, name: str = "Studio", *, guild_id: int | None = None, owner_id: int | None = None,
                  shard: tuple[int, int] | None = None) -> int:
        """`shard=(shard_id, num_shards)` picks a fresh id whose events go to that shard."""
        if shard is not None and guild_id is None:
            guild_id = self.snowflake.on_shard(*shard)
        gid = super().add_guild(name, guild_id=guild_id, owner_id=owner_id)
        for s in self._sessions_for(gid):
            self._emit_to(s, "GUILD_CREATE", self.guild_payload(gid, members=bool(s.intents & INTENT_GUILD_MEMBERS)))
        return gid

    async def remove_guild_live(self, guild_id: int) -> None:
        """The bot is removed from a server: GUILD_DELETE (no `unavailable`)."""
        g = self.guilds.pop(guild_id)
        for cid in g.channels:
            self.channel_guild.pop(cid, None)
        self._emit("GUILD_DELETE", {"id": str(guild_id)})
        await self.sync()

    # ================================================================== interactions (user side)
    def _require_connected(self, guild_id: int | None = None) -> None:
        if not any(s.conn is not None for s in self._sessions_for(guild_id)):
            where = f"shard {self._shard_route(guild_id)}" if self._live else "the gateway"
            raise FakeDiscordError(f"no bot is connected to {where} (did run_client() finish?)")

    def _shard_route(self, guild_id: int | None) -> str:
        """Where Discord would send this guild's events, for messages: '[1, 2]' (per shard count in use)."""
        counts = sorted({count for _, count in self._live})
        return ", ".join(f"[{0 if guild_id is None else shard_of(guild_id, c)}, {c}]" for c in counts)

    def _resolve_command(self, guild_id: int | None, command: str, kind: int = 1
                         ) -> tuple[dict, list[tuple[str, int]], dict]:
        parts = command.strip().lstrip("/").split()
        if not parts:
            raise FakeDiscordError("empty command")
        scopes = ([guild_id] if guild_id is not None else []) + [None]
        cmd = None
        for scope in scopes:
            cmd = next((c for c in self.commands.get(scope, []) if c["name"] == parts[0] and c["type"] == kind),
                       None)
            if cmd is not None:
                break
        if cmd is None:
            known = {("global" if k is None else f"guild {k}"): [c["name"] for c in v]
                     for k, v in self.commands.items()}
            raise FakeDiscordError(f"/{parts[0]} is not registered with Discord (registered: {known}); "
                                   "did the bot sync its command tree?")
        node, path = cmd, []
        for part in parts[1:]:
            sub = next((o for o in node.get("options") or [] if o["name"] == part and o["type"] in (1, 2)), None)
            if sub is None:
                subs = [o["name"] for o in node.get("options") or [] if o["type"] in (1, 2)]
                raise FakeDiscordError(f"/{command}: no sub-command {part!r} (have {subs})")
            path.append((part, sub["type"]))
            node = sub
        subs = [o["name"] for o in node.get("options") or [] if o["type"] in (1, 2)]
        if subs:
            raise FakeDiscordError(f"/{command} is a group: name a sub-command ({subs})")
        return cmd, path, node

    def _check_can_use(self, cmd: dict, guild_id: int | None, channel_id: int | None, user_id: int) -> None:
        contexts = cmd.get("contexts")
        if guild_id is None:
            if cmd.get("guild_id") or (contexts is not None and 1 not in contexts) or (
                contexts is None and cmd.get("dm_permission") is False
            ):
                raise FakeDiscordError(f"/{cmd['name']} is not available in DMs")
            return
        if contexts is not None and 0 not in contexts:
            raise FakeDiscordError(f"/{cmd['name']} is not available in servers")
        g = self.guild(guild_id)
        if user_id not in g.members:
            raise FakeDiscordError(f"user {user_id} is not a member of guild {guild_id}")
        dmp = cmd.get("default_member_permissions")
        if dmp is not None:
            need = int(dmp)
            base = self.base_permissions(guild_id, user_id)
            if not base & ADMINISTRATOR and (need == 0 or base & need != need):
                raise FakeDiscordError(
                    f"user {user_id} cannot see /{cmd['name']}: it needs default_member_permissions={need}")
        if channel_id is not None:
            perms = self.channel_permissions(channel_id, user_id)
            if perms & (VIEW_CHANNEL | USE_APPLICATION_COMMANDS) != VIEW_CHANNEL | USE_APPLICATION_COMMANDS:
                raise FakeDiscordError(f"user {user_id} cannot use application commands in channel {channel_id}")

    @staticmethod
    def _snowflake_of(value: Any) -> int:
        if isinstance(value, dict):
            return int(value["id"])
        if hasattr(value, "id"):
            return int(value.id)
        return int(value)

    def _resolved_member(self, guild_id: int, uid: int, channel_id: int | None) -> dict:
        m = dict(self.guilds[guild_id].members[uid])
        perms = (self.channel_permissions(channel_id, uid) if channel_id in self.channel_guild
                 else self.base_permissions(guild_id, uid))
        m["permissions"] = str(perms)
        return m

    def _option_value(self, opt: dict, value: Any, resolved: dict, guild_id: int | None,
                      channel_id: int | None, user_id: int) -> Any:
        t, name = opt["type"], opt["name"]

        def fail(why: str) -> FakeDiscordError:
            return FakeDiscordError(f"option {name!r}: {why}")

        if t == 3:
            if not isinstance(value, str):
                raise fail(f"expects a string, got {value!r}")
            if len(value) < opt.get("min_length", 0) or len(value) > opt.get("max_length", 6000):
                raise fail(f"length {len(value)} outside {opt.get('min_length', 0)}..{opt.get('max_length', 6000)}")
        elif t in (4, 10):
            if isinstance(value, bool) or not isinstance(value, int | float) or (t == 4 and not isinstance(value, int)):
                raise fail(f"expects {'an integer' if t == 4 else 'a number'}, got {value!r}")
            if ("min_value" in opt and value < opt["min_value"]) or ("max_value" in opt and value > opt["max_value"]):
                raise fail(f"{value} outside {opt.get('min_value')}..{opt.get('max_value')}")
        elif t == 5:
            if not isinstance(value, bool):
                raise fail(f"expects a boolean, got {value!r}")
        if t in (3, 4, 10) and opt.get("choices"):
            values = [c["value"] for c in opt["choices"]]
            if value not in values:
                raise fail(f"{value!r} is not one of the choices {values}")
        if t in (3, 4, 5, 10):
            return value
        if t == 11:
            filename, data = value if isinstance(value, tuple) else (value["filename"], value.get("data", b""))
            aid = self.snowflake()
            url = f"{self.base_url}/attachments/{channel_id or 0}/{aid}/{filename}"
            self._blobs[aid] = (filename, data, "application/octet-stream")
            resolved.setdefault("attachments", {})[str(aid)] = {
                "id": str(aid), "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": "application/octet-stream", "ephemeral": True}
            return str(aid)
        sid = self._snowflake_of(value)
        is_user = sid in self.users
        is_role = guild_id is not None and sid in self.guild(guild_id).roles
        if t == 6 or (t == 9 and is_user):
            if not is_user:
                raise fail(f"unknown user {sid}")
            resolved.setdefault("users", {})[str(sid)] = self.users[sid]
            if guild_id is not None and sid in self.guild(guild_id).members:
                resolved.setdefault("members", {})[str(sid)] = self._resolved_member(guild_id, sid, channel_id)
        elif t == 8 or (t == 9 and is_role):
            if not is_role:
                raise fail(f"unknown role {sid} in guild {guild_id}")
            resolved.setdefault("roles", {})[str(sid)] = self.guild(guild_id).roles[sid]
        elif t == 7:
            ch = self.find_channel(sid)
            if ch is None or (guild_id is not None and self.channel_guild.get(sid) != guild_id):
                raise fail(f"unknown channel {sid} in guild {guild_id}")
            if opt.get("channel_types") and ch["type"] not in opt["channel_types"]:
                raise fail(f"channel type {ch['type']} not in {opt['channel_types']}")
            perms = self.channel_permissions(sid, user_id) if sid in self.channel_guild else DM_PERMISSIONS
            if not perms & VIEW_CHANNEL:
                raise fail(f"user {user_id} cannot see channel {sid}")
            keys = ("id", "name", "type", "parent_id", "nsfw", "position", "topic", "rate_limit_per_user",
                    "last_message_id", "flags", "guild_id", "last_pin_timestamp")
            resolved.setdefault("channels", {})[str(sid)] = {
                **{k: ch[k] for k in keys if k in ch}, "permissions": str(perms)}
        else:
            raise fail(f"unknown user/role {sid}")
        return str(sid)

    def _build_options(self, schema: list[dict], given: dict, guild_id: int | None, channel_id: int | None,
                       user_id: int, focused: str | None = None) -> tuple[list[dict], dict]:
        by_name = {o["name"]: o for o in schema}
        for name in given:
            if name not in by_name:
                raise FakeDiscordError(f"unknown option {name!r} (have {list(by_name)})")
        if focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in given]
            if missing:
                raise FakeDiscordError(f"missing required options {missing}")
        elif focused not in by_name:
            raise FakeDiscordError(f"focused option {focused!r} is not an option (have {list(by_name)})")
        elif not by_name[focused].get("autocomplete"):
            raise FakeDiscordError(f"option {focused!r} has no autocomplete registered")
        out, resolved = [], {}
        for name, value in given.items():
            opt = by_name[name]
            if name == focused:
                out.append({"name": name, "type": opt["type"], "value": "" if value is None else str(value),
                            "focused": True})
                continue
            v = self._option_value(opt, value, resolved, guild_id, channel_id, user_id)
            out.append({"name": name, "type": opt["type"], "value": v})
        if focused is not None and focused not in given:
            out.append({"name": focused, "type": by_name[focused]["type"], "value": "", "focused": True})
        return out, resolved

    def _interaction_payload(self, kind: int, data: dict, guild_id: int | None, channel_id: int | None,
                             user_id: int, *, locale: str = "en-US", message: dict | None = None) -> dict:
        if user_id not in self.users:
            raise FakeDiscordError(f"unknown user {user_id}")
        iid = self.snowflake()
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": "aW50ZXJhY3Rpb24." + secrets.token_urlsafe(48),
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if guild_id is not None:
            g = self.guild(guild_id)
            if channel_id is None or self.channel_guild.get(channel_id) != guild_id:
                raise FakeDiscordError(f"channel {channel_id} is not a channel of guild {guild_id}")
            if user_id not in g.members:
                raise FakeDiscordError(f"user {user_id} is not a member of guild {guild_id}")
            ch = self.channel(channel_id)
            member = self.member_payload(guild_id, user_id)
            member["permissions"] = str(self.channel_permissions(channel_id, user_id))
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": g.preferred_locale, "features": []},
                guild_locale=g.preferred_locale,
                channel_id=str(channel_id),
                channel={**ch, "permissions": member["permissions"]},
                member=member,
                app_permissions=str(self.channel_permissions(channel_id, self.bot_user_id)),
                authorizing_integration_owners={"0": str(guild_id)},
                context=0,
            )
        else:
            dm = self.dm_channel(user_id)
            if channel_id is not None and channel_id != int(dm["id"]):
                raise FakeDiscordError(f"channel {channel_id} is not user {user_id}'s DM channel with the bot")
            payload.update(
                channel_id=dm["id"],
                channel=dm,
                user=self.users[user_id],
                app_permissions=str(DM_PERMISSIONS),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        if message is not None:
            payload["message"] = public(message)
        return payload

    async def _interact(self, payload: dict, source: dict | None = None, *, shard: int | None = None
                        ) -> InteractionHandle:
        gid = event_guild("INTERACTION_CREATE", payload)
        target = None
        if shard is None:
            self._require_connected(gid)
        else:  # a misrouted interaction, for tests of a bot's own guard
            target = self._pick(shard)
            if target is None:
                raise FakeDiscordError(f"no bot is connected on shard {shard}")
        h = InteractionHandle(self, payload)
        if source is not None:
            h.source_message = source
        self._by_id[h.id] = h
        self._by_token[h.token] = h
        self.interactions.append(h)
        if target is None:
            self._emit("INTERACTION_CREATE", payload)
        else:
            self._emit_to(target, "INTERACTION_CREATE", payload)
        await self.flush()
        return h

    async def slash(self, guild_id: int | None, channel_id: int | None, user_id: int, command: str,
                    options: dict | None = None, *, locale: str = "en-US", shard: int | None = None
                    ) -> InteractionHandle:
        """A user runs a registered slash command ("coach setup", options by name). It arrives on the shard of
        its guild; `shard` delivers it on that shard's connection instead (a misrouted event)."""
        cmd, path, leaf = self._resolve_command(guild_id, command)
        self._check_can_use(cmd, guild_id, channel_id, user_id)
        opts, resolved = self._build_options(leaf.get("options") or [], options or {}, guild_id, channel_id, user_id)
        return await self._interact(self._command_payload(APPLICATION_COMMAND, cmd, path, opts, resolved,
                                                          guild_id, channel_id, user_id, locale), shard=shard)

    async def autocomplete(self, guild_id: int | None, channel_id: int | None, user_id: int, command: str,
                           options: dict, focused: str, *, locale: str = "en-US") -> InteractionHandle:
        """A user types into an autocomplete option; read the answer from `handle.choices`."""
        cmd, path, leaf = self._resolve_command(guild_id, command)
        self._check_can_use(cmd, guild_id, channel_id, user_id)
        opts, resolved = self._build_options(leaf.get("options") or [], options or {}, guild_id, channel_id,
                                             user_id, focused=focused)
        return await self._interact(self._command_payload(AUTOCOMPLETE, cmd, path, opts, resolved,
                                                          guild_id, channel_id, user_id, locale))

    def _command_payload(self, kind: int, cmd: dict, path: list[tuple[str, int]], opts: list[dict],
                         resolved: dict, guild_id: int | None, channel_id: int | None, user_id: int,
                         locale: str) -> dict:
        for name, t in reversed(path):
            opts = [{"name": name, "type": t, "options": opts}]
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": cmd["type"]}
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return self._interaction_payload(kind, data, guild_id, channel_id, user_id, locale=locale)

    @staticmethod
    def _find_component(components: Any, custom_id: str) -> dict | None:
        if isinstance(components, list):
            for c in components:
                found = FakeDiscord._find_component(c, custom_id)
                if found is not None:
                    return found
        elif isinstance(components, dict):
            if components.get("custom_id") == custom_id and components.get("type") not in (1, 18):
                return components
            for key in ("components", "component", "accessory"):
                if key in components:
                    found = FakeDiscord._find_component(components[key], custom_id)
                    if found is not None:
                        return found
        return None

    @staticmethod
    def _custom_ids(components: Any) -> list[str]:
        out: list[str] = []
        if isinstance(components, list):
            for c in components:
                out.extend(FakeDiscord._custom_ids(c))
        elif isinstance(components, dict):
            if components.get("custom_id"):
                out.append(components["custom_id"])
            for key in ("components", "component", "accessory"):
                if key in components:
                    out.extend(FakeDiscord._custom_ids(components[key]))
        return out

    async def click(self, message: dict, custom_id: str, user_id: int, *, guild_id: int | None = None,
                    channel_id: int | None = None, values: list[str] | None = None,
                    locale: str = "en-US") -> InteractionHandle:
        """A user clicks a button (or picks select `values`) on a message the bot sent. `guild_id` and
        `channel_id` place the click elsewhere than the message (what Discord never sends today: for tests of
        defence in depth)."""
        stored = self._msg_index.get(int(message["id"]), message)
        cid = channel_id or int(stored["channel_id"])
        if guild_id is None:
            guild_id = self.channel_guild.get(cid)
        comp = self._find_component(stored.get("components"), custom_id)
        if comp is None:
            raise FakeDiscordError(f"message {stored['id']} has no component {custom_id!r} "
                                   f"(has {self._custom_ids(stored.get('components'))})")
        if comp.get("disabled"):
            raise FakeDiscordError(f"component {custom_id!r} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"]}
        if comp.get("id") is not None:
            data["id"] = comp["id"]
        if comp["type"] in (3, 5, 6, 7, 8):
            vals = list(values or [])
            lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
            if not lo <= len(vals) <= hi:
                raise FakeDiscordError(f"select {custom_id!r} takes {lo}..{hi} values, got {vals}")
            if comp["type"] == 3:
                allowed = [o["value"] for o in comp.get("options") or []]
                bad = [v for v in vals if v not in allowed]
                if bad:
                    raise FakeDiscordError(f"select {custom_id!r}: {bad} not in options {allowed}")
            else:
                resolved: dict = {}
                kind = {5: 6, 6: 8, 7: 9, 8: 7}[comp["type"]]
                vals = [self._option_value({"type": kind, "name": custom_id}, v, resolved, guild_id, cid, user_id)
                        for v in vals]
                if resolved:
                    data["resolved"] = resolved
            data["values"] = [str(v) for v in vals]
        elif values is not None:
            raise FakeDiscordError(f"component {custom_id!r} is not a select")
        payload = self._interaction_payload(MESSAGE_COMPONENT, data, guild_id, cid, user_id, locale=locale,
                                            message=stored)
        return await self._interact(payload, source=stored)

    async def select(self, message: dict, custom_id: str, values: list, user_id: int, *,
                     guild_id: int | None = None, locale: str = "en-US") -> InteractionHandle:
        return await self.click(message, custom_id, user_id, guild_id=guild_id, values=list(values), locale=locale)

    def _shown_modal(self, custom_id: str) -> InteractionHandle | None:
        for h in reversed(self.interactions):
            if h.modal is not None and h.modal.get("custom_id") == custom_id:
                return h
        return None

    async def submit_modal(self, custom_id: str, fields: dict[str, Any], user_id: int, *,
                           guild_id: int | None = None, channel_id: int | None = None,
                           message: dict | None = None, locale: str = "en-US") -> InteractionHandle:
        """A user submits a modal. Mirrors the modal the bot showed (action rows or label components)."""
        shown = self._shown_modal(custom_id)
        if shown is not None:
            guild_id = guild_id if guild_id is not None else shown.guild_id
            channel_id = channel_id if channel_id is not None else shown.channel_id
            if message is None and shown.type == MESSAGE_COMPONENT:
                message = shown.source_message
        if channel_id is None and guild_id is not None:
            raise FakeDiscordError("submit_modal needs channel_id (no modal with this custom_id was shown)")
        remaining = dict(fields)

        def item(c: dict) -> dict:
            cid = c.get("custom_id")
            out: dict[str, Any] = {"type": c["type"], "custom_id": cid}
            if c.get("id") is not None:
                out["id"] = c["id"]
            if c["type"] == 4:
                value = remaining.pop(cid, c.get("value") or "")
                if not isinstance(value, str):
                    raise FakeDiscordError(f"text input {cid!r} takes a string, got {value!r}")
                if c.get("required", True) and not value:
                    raise FakeDiscordError(f"text input {cid!r} is required")
                if value and not c.get("min_length", 0) <= len(value) <= c.get("max_length", 4000):
                    raise FakeDiscordError(
                        f"text input {cid!r}: length {len(value)} outside {c.get('min_length', 0)}.."
                        f"{c.get('max_length', 4000)}")
                out["value"] = value
            else:
                value = remaining.pop(cid, [])
                out["values"] = [value] if isinstance(value, str) else [str(v) for v in value]
            return out

        components: list[dict] = []
        if shown is not None:
            for top in shown.modal.get("components") or []:
                if top.get("type") == 1:
                    components.append({"type": 1, "components": [item(c) for c in top.get("components") or []]})
                elif top.get("type") == 18:
                    row: dict[str, Any] = {"type": 18, "component": item(top["component"])}
                    if top.get("id") is not None:
                        row["id"] = top["id"]
                    components.append(row)
            if remaining:
                raise FakeDiscordError(f"modal {custom_id!r} has no fields {list(remaining)}")
        else:
            components = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                          for k, v in fields.items()]
        data = {"custom_id": custom_id, "components": components}
        stored = self._msg_index.get(int(message["id"]), message) if message is not None else None
        payload = self._interaction_payload(MODAL_SUBMIT, data, guild_id, channel_id, user_id, locale=locale,
                                            message=stored)
        return await self._interact(payload, source=stored)

    # ================================================================== users writing messages
    async def dm_message(self, user_id: int, content: str) -> dict:
        """The user writes to the bot in DMs (MESSAGE_CREATE; needs the DIRECT_MESSAGES intent)."""
        dm = self.dm_channel(user_id)
        msg = self._new_message(int(dm["id"]), {"content": content}, [], author_id=user_id)
        self._log_message(msg)
        await self.sync()
        return public(msg)

    async def user_message(self, channel_id: int, user_id: int, content: str) -> dict:
        """A member writes in a guild channel (MESSAGE_CREATE; GUILD_MESSAGES, content needs MESSAGE_CONTENT)."""
        gid = self.channel_guild[channel_id]
        msg = self._new_message(channel_id, {"content": content}, [], author_id=user_id)
        msg["member"] = {k: v for k, v in self.guild(gid).members[user_id].items()}
        self._log_message(msg)
        await self.sync()
        return public(msg)
