"""The deployment files in deploy/: every process restarts, the shards are covered exactly once, and every
variable the files set is a real setting. Read as text (PyYAML is no dependency): compose.yaml with a small
parser for the block YAML it is written in, the systemd unit and the env file line by line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from coach.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Being built beside this (issue 10): allowed before coach/settings.py has them.
COMING = {"SHARD_COUNT", "SHARD_IDS", "DATABASE_URL"}
SETTINGS = {name.upper() for name in Settings.model_fields} | COMING
PER_PROCESS = {"SHARD_IDS", "INSTANCE_ID"}  # set by each compose service / systemd instance, never shared


def parse_yaml(text: str) -> dict:
    """Block mappings, block lists of scalars, quoted scalars and JSON-style flow lists: what compose.yaml uses."""
    lines = [(len(raw) - len(raw.lstrip(" ")), raw.strip()) for raw in text.splitlines()
             if raw.strip() and not raw.strip().startswith("#")]
    value, end = _block(lines, 0)
    assert end == len(lines), f"unexpected indentation at: {lines[end][1]!r}"
    return value


def _block(lines: list[tuple[int, str]], i: int) -> tuple[dict | list, int]:
    indent = lines[i][0]
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    mapping: dict = {}
    while i < len(lines) and lines[i][0] == indent:
        key, colon, raw = lines[i][1].partition(":")
        assert colon and key.strip() not in mapping, f"not a new key: {lines[i][1]!r}"
        i += 1
        if raw.strip():
            mapping[key.strip()] = _scalar(raw.strip())
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key.strip()], i = _block(lines, i)
        else:
            mapping[key.strip()] = None
    return mapping, i


def _scalar(raw: str) -> object:
    if raw.startswith("["):
        return json.loads(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> every value given (Environment= may come several times)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"a setting outside any section: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def shard_ids(spec: str) -> list[int]:
    """SHARD_IDS as the settings read it: "0", "0,1", "0-3", "0-1,3"."""
    ids: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


def env_file_keys(text: str) -> tuple[set[str], set[str]]:
    """(keys set, keys only mentioned in a commented-out line) of an env file."""
    set_keys, commented = set(), set()
    for line in text.splitlines():
        match = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=", line.strip())
        if match:
            (commented if match[1] else set_keys).add(match[2])
    return set_keys, commented


def compose() -> dict:
    return parse_yaml((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def bounce_services(doc: dict) -> dict[str, dict]:
    return {name: svc for name, svc in doc["services"].items() if svc.get("command") == ["python", "bot.py"]}


def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit((DEPLOY / "bounce@.service").read_text(encoding="utf-8"))


def test_the_yaml_reader_reads_what_compose_files_use() -> None:
    doc = parse_yaml("a:\n  b: 'x: y'\n  c:\n    - one\n    - two\n  d: [\"CMD\", \"ok\"]\n# note\ne:\n")
    assert doc == {"a": {"b": "x: y", "c": ["one", "two"], "d": ["CMD", "ok"]}, "e": None}
    assert shard_ids("0-2,5") == [0, 1, 2, 5] and shard_ids("1") == [1]


def test_compose_runs_postgres_and_two_bounce_processes_that_restart() -> None:
    doc = compose()
    services = doc["services"]
    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", f"{name} has no restart policy"
    db = services["db"]
    assert db["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in doc["volumes"], "the database lives in a named volume"
    bots = bounce_services(doc)
    assert len(bots) == 2
    for name, svc in bots.items():
        assert svc["depends_on"]["db"]["condition"] == "service_healthy", name
        assert svc["env_file"] == "bounce.env" and svc["build"]["dockerfile"] == "deploy/Dockerfile", name
        env = svc["environment"]
        assert env["DATABASE_URL"] == "postgresql://bounce:${POSTGRES_PASSWORD}@db:5432/bounce", name
    assert len({svc["environment"]["INSTANCE_ID"] for svc in bots.values()}) == len(bots), "instance ids differ"


def test_compose_covers_every_shard_exactly_once() -> None:
    bots = bounce_services(compose())
    counts = {int(svc["environment"]["SHARD_COUNT"]) for svc in bots.values()}
    assert len(counts) == 1, "every process agrees on SHARD_COUNT"
    ids = [i for svc in bots.values() for i in shard_ids(svc["environment"]["SHARD_IDS"])]
    assert sorted(ids) == list(range(counts.pop()))


def test_deploy_files_set_only_real_settings() -> None:
    for name, svc in bounce_services(compose()).items():
        assert set(svc["environment"]) <= SETTINGS, f"{name}: {set(svc['environment']) - SETTINGS}"
    set_keys, commented = env_file_keys((DEPLOY / "bounce.env.example").read_text(encoding="utf-8"))
    assert set_keys | commented <= SETTINGS, (set_keys | commented) - SETTINGS
    assert "DISCORD_TOKEN" in set_keys and "SHARD_COUNT" in set_keys
    # systemd lets EnvironmentFile= override Environment=: a shared value would put every instance on one shard.
    assert not set_keys & PER_PROCESS
    unit_env = {value.partition("=")[0] for value in unit()["Service"]["Environment"]}
    assert unit_env <= SETTINGS, unit_env - SETTINGS


def test_the_systemd_template_runs_one_shard_per_instance_and_restarts() -> None:
    service = unit()["Service"]
    assert service["Restart"] == ["always"]
    assert "SHARD_IDS=%i" in service["Environment"]
    assert any(v.startswith("INSTANCE_ID=") and "%i" in v for v in service["Environment"]), "instance ids differ"
    assert service["EnvironmentFile"] == ["/etc/bounce/bounce.env"]
    assert service["User"][0] not in {"root", "0"}
    assert service["ExecStart"][0].endswith(" bot.py")
    assert service["NoNewPrivileges"] == ["yes"] and service["PrivateTmp"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert f"{service['WorkingDirectory'][0]}/data" in service["ReadWritePaths"][0].split()
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_readme_enables_one_instance_per_shard() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"systemctl enable --now ((?:bounce@\d+ ?)+)", readme)
    assert match, "README shows how to enable the instances"
    instances = [int(word.removeprefix("bounce@")) for word in match[1].split()]
    env = (DEPLOY / "bounce.env.example").read_text(encoding="utf-8")
    count = int(re.search(r"^SHARD_COUNT=(\d+)$", env, re.M)[1])
    assert sorted(instances) == list(range(count))


def test_the_image_installs_bounce_and_runs_it_as_a_plain_user() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert "RUN pip install ." in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert [line for line in lines if line.startswith("CMD ")][-1] == 'CMD ["python", "bot.py"]'
