"""World state of the loopback Discord: users, guilds, roles, channels, members, DM channels.

Everything is stored as plain dicts in Discord's JSON shapes (ids as strings inside the JSON, int keys
in the indexes). Permission maths follows Discord's documented algorithm
(https://discord.com/developers/docs/topics/permissions#permission-overwrites).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000

# permission bits (https://discord.com/developers/docs/topics/permissions)
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
CHANGE_NICKNAME = 1 << 26
MANAGE_ROLES = 1 << 28
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 53) - 1

EVERYONE_DEFAULT = (
    CREATE_INSTANT_INVITE | ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES
    | READ_MESSAGE_HISTORY | MENTION_EVERYONE | USE_EXTERNAL_EMOJIS | CONNECT | SPEAK | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS
)
BOT_ROLE_DEFAULT = (
    VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
)

# gateway intents
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

TEXT_CHANNEL, DM_CHANNEL, VOICE_CHANNEL, CATEGORY_CHANNEL, NEWS_CHANNEL, FORUM_CHANNEL = 0, 1, 2, 4, 5, 15


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Snowflakes:
    """Realistic, strictly increasing snowflakes (their timestamp part is 'now')."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value

    def spread(self) -> int:
        """A fresh snowflake at least one millisecond after the last one. Guilds made in a burst get consecutive
        timestamps, so they fall evenly on every shard count ((id >> 22) % count), as real servers created over
        years do; a burst of n guilds runs their timestamps up to n ms ahead of the clock."""
        value = max(self(), ((self._last >> 22) + 1) << 22)
        self._last = value
        return value

    def on_shard(self, shard_id: int, count: int) -> int:
        """A fresh snowflake whose guild events go to shard `shard_id` of `count` ((id >> 22) % count): its
        timestamp part is moved forward by under `count` milliseconds."""
        value = self()
        stamp = value >> 22
        stamp += (shard_id - stamp) % count
        value = max(value, stamp << 22)
        self._last = value
        return value


def overwrite(target_id: int, *, allow: int = 0, deny: int = 0, member: bool = False) -> dict:
    """A permission overwrite in Discord's shape (type 0 = role, 1 = member)."""
    return {"id": str(target_id), "type": 1 if member else 0, "allow": str(allow), "deny": str(deny)}


def _norm_overwrite(ow: dict) -> dict:
    return {
        "id": str(ow["id"]),
        "type": int(ow.get("type", 0)),
        "allow": str(int(ow.get("allow", 0))),
        "deny": str(int(ow.get("deny", 0))),
    }


class FakeDiscordError(AssertionError):
    """The test asked for something a real Discord user could not do (or the fake cannot)."""


@dataclass
class GuildState:
    id: int
    name: str
    owner_id: int
    joined_at: str
    roles: dict[int, dict] = field(default_factory=dict)
    channels: dict[int, dict] = field(default_factory=dict)
    members: dict[int, dict] = field(default_factory=dict)  # member JSON without "user"
    bot_role_id: int | None = None
    admin_role_id: int | None = None
    preferred_locale: str = "en-US"


class World:
    """State only; FakeDiscord adds the server and overrides `_emit` to dispatch gateway events."""

    def __init__(self) -> None:
        self.snowflake = Snowflakes()
        self.application_id: int = self.snowflake()
        self.bot_user_id: int = self.application_id  # modern bots: user id == application id
        self.users: dict[int, dict] = {}
        self.guilds: dict[int, GuildState] = {}
        self.channel_guild: dict[int, int] = {}  # channel id -> guild id
        self.deleted_channels: set[int] = set()
        self.dm_channels: dict[int, dict] = {}  # user id -> DM channel
        self.dm_channel_user: dict[int, int] = {}  # DM channel id -> user id
        self.dms_closed: set[int] = set()
        self.app_owner_id = self.snowflake()
        self._add_user(self.bot_user_id, "Bounce", bot=True)
        self._add_user(self.app_owner_id, "bounce-dev")

    # ------------------------------------------------------------------ hooks
    def _emit(self, event: str, data: dict) -> None:  # overridden by FakeDiscord
        pass

    # ------------------------------------------------------------------ users
    def _add_user(self, user_id: int, name: str, *, bot: bool = False) -> dict:
        user = {
            "id": str(user_id),
            "username": name,
            "global_name": None if bot else name.title(),
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if bot:
            user["bot"] = True
        self.users[user_id] = user
        return user

    def add_user(self, name: str = "producer", *, user_id: int | None = None) -> int:
        """A user that shares no server with the bot (DMs to them fail with 50007)."""
        uid = user_id or self.snowflake()
        if uid not in self.users:
            self._add_user(uid, name)
        return uid

    def user(self, user_id: int) -> dict:
        return self.users[user_id]

    def close_dms(self, user_id: int) -> None:
        self.dms_closed.add(user_id)

    def open_dms(self, user_id: int) -> None:
        self.dms_closed.discard(user_id)

    # ------------------------------------------------------------------ guilds
    def add_guild(self, name: str = "Studio", *, guild_id: int | None = None, owner_id: int | None = None) -> int:
        gid = guild_id or self.snowflake.spread()
        if owner_id is None:
            owner_id = self.snowflake()
            self._add_user(owner_id, f"owner-{name.lower().replace(' ', '-')}")
        g = GuildState(id=gid, name=name, owner_id=owner_id, joined_at=iso_now())
        self.guilds[gid] = g
        g.roles[gid] = self._role_json(gid, "@everyone", EVERYONE_DEFAULT, position=0)
        bot_role = self.snowflake()
        g.roles[bot_role] = self._role_json(bot_role, "Bounce", BOT_ROLE_DEFAULT, position=1, managed=True)
        g.roles[bot_role]["tags"] = {"bot_id": str(self.bot_user_id)}
        g.bot_role_id = bot_role
        g.members[self.bot_user_id] = self._member_json(self.bot_user_id, [bot_role])
        g.members[owner_id] = self._member_json(owner_id, [])
        return gid

    def guild(self, guild_id: int) -> GuildState:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise FakeDiscordError(f"unknown guild {guild_id}") from None

    def bot_role_id(self, guild_id: int) -> int:
        rid = self.guild(guild_id).bot_role_id
        assert rid is not None
        return rid

    def owner_id(self, guild_id: int) -> int:
        return self.guild(guild_id).owner_id

    @staticmethod
    def _role_json(role_id: int, name: str, permissions: int, *, position: int, managed: bool = False) -> dict:
        return {
            "id": str(role_id),
            "name": name,
            "description": None,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }

    def _member_json(self, user_id: int, roles: list[int], nick: str | None = None) -> dict:
        return {
            "nick": nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in roles],
            "joined_at": iso_now(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def add_role(self, guild_id: int, name: str, permissions: int = 0, *, mentionable: bool = False) -> int:
        g = self.guild(guild_id)
        rid = self.snowflake()
        g.roles[rid] = self._role_json(rid, name, permissions, position=len(g.roles))
        g.roles[rid]["mentionable"] = mentionable
        self._emit("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": g.roles[rid]})
        return rid

    def set_role_permissions(self, guild_id: int, role_id: int, permissions: int) -> None:
        g = self.guild(guild_id)
        g.roles[role_id]["permissions"] = str(permissions)
        self._emit("GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": g.roles[role_id]})

    def set_role_position(self, guild_id: int, role_id: int, position: int) -> None:
        """Move a role in the hierarchy (positions of the others are left as they are, as a test needs)."""
        g = self.guild(guild_id)
        g.roles[role_id]["position"] = position
        self._emit("GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": g.roles[role_id]})

    def delete_role(self, guild_id: int, role_id: int) -> None:
        g = self.guild(guild_id)
        del g.roles[role_id]
        for member in g.members.values():
            member["roles"] = [r for r in member["roles"] if int(r) != role_id]
        self._emit("GUILD_ROLE_DELETE", {"guild_id": str(guild_id), "role_id": str(role_id)})

    def member_role_ids(self, guild_id: int, user_id: int) -> set[int]:
        return {int(r) for r in self.guild(guild_id).members[user_id]["roles"]}

    def top_role_position(self, guild_id: int, user_id: int) -> int:
        """The position of a member's highest role (@everyone's 0 when they have none)."""
        g = self.guild(guild_id)
        return max([g.roles[int(r)]["position"] for r in g.members[user_id]["roles"] if int(r) in g.roles] or [0])

    def add_member(
        self,
        guild_id: int,
        name: str = "producer",
        *,
        user_id: int | None = None,
        roles: tuple[int, ...] | list[int] = (),
        admin: bool = False,
    ) -> int:
        """Add a member; `admin=True` gives them a 'Server Manager' role with MANAGE_GUILD."""
        g = self.guild(guild_id)
        uid = user_id or self.snowflake()
        if uid not in self.users:
            self._add_user(uid, name)
        role_ids = list(roles)
        if admin:
            if g.admin_role_id is None:
                rid = self.snowflake()
                g.roles[rid] = self._role_json(rid, "Server Manager", MANAGE_GUILD | MANAGE_CHANNELS,
                                               position=len(g.roles))
                g.admin_role_id = rid
                self._emit("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": g.roles[rid]})
            role_ids.append(g.admin_role_id)
        g.members[uid] = self._member_json(uid, role_ids)
        self._emit("GUILD_MEMBER_ADD", {"guild_id": str(guild_id), **self.member_payload(guild_id, uid)})
        return uid

    def remove_member(self, guild_id: int, user_id: int) -> None:
        g = self.guild(guild_id)
        g.members.pop(user_id, None)
        self._emit("GUILD_MEMBER_REMOVE", {"guild_id": str(guild_id), "user": self.users[user_id]})

    def member_payload(self, guild_id: int, user_id: int) -> dict:
        m = self.guild(guild_id).members[user_id]
        return {**m, "user": self.users[user_id]}

    # ------------------------------------------------------------------ channels
    def add_channel(
        self,
        guild_id: int,
        name: str = "check-ins",
        *,
        type: int = TEXT_CHANNEL,  # noqa: A002 - Discord's field name
        overwrites: list[dict] | tuple = (),
        parent_id: int | None = None,
    ) -> int:
        g = self.guild(guild_id)
        cid = self.snowflake()
        ch = {
            "id": str(cid),
            "type": type,
            "guild_id": str(guild_id),
            "name": name,
            "position": len(g.channels),
            "permission_overwrites": [_norm_overwrite(o) for o in overwrites],
            "parent_id": str(parent_id) if parent_id else None,
            "nsfw": False,
            "flags": 0,
        }
        if type in (TEXT_CHANNEL, NEWS_CHANNEL):
            ch.update({"topic": None, "rate_limit_per_user": 0, "last_message_id": None,
                       "default_auto_archive_duration": 1440, "last_pin_timestamp": None})
        if type == VOICE_CHANNEL:
            ch.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None, "rate_limit_per_user": 0,
                       "last_message_id": None})
        g.channels[cid] = ch
        self.channel_guild[cid] = guild_id
        self._emit("CHANNEL_CREATE", ch)
        return cid

    def channel(self, channel_id: int) -> dict:
        gid = self.channel_guild.get(channel_id)
        if gid is not None and gid in self.guilds and channel_id in self.guilds[gid].channels:
            return self.guilds[gid].channels[channel_id]
        if channel_id in self.dm_channel_user:
            return self.dm_channels[self.dm_channel_user[channel_id]]
        raise FakeDiscordError(f"unknown channel {channel_id}")

    def find_channel(self, channel_id: int) -> dict | None:
        try:
            return self.channel(channel_id)
        except FakeDiscordError:
            return None

    def set_overwrites(self, channel_id: int, overwrites: list[dict]) -> None:
        ch = self.channel(channel_id)
        ch["permission_overwrites"] = [_norm_overwrite(o) for o in overwrites]
        self._emit("CHANNEL_UPDATE", ch)

    def delete_channel(self, channel_id: int) -> None:
        ch = self.channel(channel_id)
        gid = self.channel_guild[channel_id]
        del self.guilds[gid].channels[channel_id]
        self.deleted_channels.add(channel_id)
        self._emit("CHANNEL_DELETE", ch)

    def dm_channel(self, user_id: int) -> dict:
        """The user's DM channel with the bot (created on first use, same id afterwards)."""
        if user_id not in self.users:
            raise FakeDiscordError(f"unknown user {user_id}")
        if user_id not in self.dm_channels:
            cid = self.snowflake()
            self.dm_channels[user_id] = {
                "id": str(cid),
                "type": DM_CHANNEL,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self.users[user_id]],
            }
            self.dm_channel_user[cid] = user_id
        return self.dm_channels[user_id]

    def shares_guild_with_bot(self, user_id: int) -> bool:
        return any(user_id in g.members and self.bot_user_id in g.members for g in self.guilds.values())

    # ------------------------------------------------------------------ permissions
    def base_permissions(self, guild_id: int, user_id: int) -> int:
        g = self.guild(guild_id)
        if user_id == g.owner_id:
            return ALL_PERMISSIONS
        member = g.members.get(user_id)
        if member is None:
            return 0
        perms = int(g.roles[guild_id]["permissions"])
        for rid in member["roles"]:
            role = g.roles.get(int(rid))
            if role is not None:
                perms |= int(role["permissions"])
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        """Effective permissions of a member in a guild channel (Discord's overwrite algorithm)."""
        gid = self.channel_guild[channel_id]
        g = self.guild(gid)
        base = self.base_permissions(gid, user_id)
        if base == ALL_PERMISSIONS:
            return base
        ch = g.channels[channel_id]
        ows = {(int(o["id"]), o["type"]): o for o in ch["permission_overwrites"]}
        perms = base
        everyone = ows.get((gid, 0))
        if everyone:
            perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
        member = g.members.get(user_id, {"roles": []})
        allow = deny = 0
        for rid in member["roles"]:
            o = ows.get((int(rid), 0))
            if o:
                allow |= int(o["allow"])
                deny |= int(o["deny"])
        perms = (perms & ~deny) | allow
        o = ows.get((user_id, 1))
        if o:
            perms = (perms & ~int(o["deny"])) | int(o["allow"])
        if not perms & VIEW_CHANNEL:
            return 0
        if not perms & SEND_MESSAGES:
            perms &= ~(MENTION_EVERYONE | EMBED_LINKS | ATTACH_FILES | SEND_MESSAGES_IN_THREADS)
        return perms

    # ------------------------------------------------------------------ JSON views
    def guild_payload(self, guild_id: int, *, full: bool = True, members: bool = True) -> dict:
        g = self.guild(guild_id)
        data: dict[str, Any] = {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(g.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": list(g.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": g.preferred_locale,
            "nsfw_level": 0,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "premium_progress_bar_enabled": False,
        }
        if full:
            if members:
                member_list = [self.member_payload(guild_id, uid) for uid in g.members]
            else:
                member_list = [self.member_payload(guild_id, self.bot_user_id)] if self.bot_user_id in g.members else []
            data.update(
                {
                    "joined_at": g.joined_at,
                    "large": False,
                    "unavailable": False,
                    "member_count": len(g.members),
                    "voice_states": [],
                    "members": member_list,
                    "channels": list(g.channels.values()),
                    "threads": [],
                    "presences": [],
                    "stage_instances": [],
                    "guild_scheduled_events": [],
                    "soundboard_sounds": [],
                    "lazy": True,
                }
            )
        return data
