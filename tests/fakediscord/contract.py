"""Contract check of request bodies against Discord's OpenAPI description.

The spec (1.2 MB) is loaded once per process (module-level cache); one validator is compiled per
(method, path template) and cached. On top of the spec, Discord's documented limits that the spec
misses are checked by :func:`check_limits` (message content 2000, embeds 6000, command names...).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = Path(
    os.environ.get("DISCORD_OPENAPI_SPEC") or REPO_ROOT.parent / "shared" / "discord-api-spec" / "openapi.json"
)
SPEC_URI = "urn:discord-openapi"

# Discord's documented limits (https://discord.com/developers/docs) that the spec misses or states wrongly.
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
EMBED_LIMITS = {"title": 256, "description": 4096, "fields": 25, "field.name": 256, "field.value": 1024,
                "footer.text": 2048, "author.name": 256}
MAX_CUSTOM_ID = 100
MAX_CHOICES = 25
MAX_CHOICE_NAME = 100
MAX_CHOICE_STRING_VALUE = 100
MAX_MODAL_TITLE = 45

Problem = tuple[str, str]  # (dotted path, message)


def _pointer_escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _patch_snowflakes(node: Any) -> None:
    """discord.py sends some ids as integers: let snowflake strings also be integers."""
    if isinstance(node, dict):
        if node.get("format") == "snowflake" or (
            node.get("type") == "string" and node.get("pattern") == "^(0|[1-9][0-9]*)$"
        ):
            t = node.get("type")
            if t == "string":
                node["type"] = ["string", "integer"]
            elif isinstance(t, list) and "string" in t and "integer" not in t:
                node["type"] = [*t, "integer"]
        for v in node.values():
            _patch_snowflakes(v)
    elif isinstance(node, list):
        for v in node:
            _patch_snowflakes(v)


def _template_key(template: str) -> str:
    """'/channels/{channel_id}/messages' and '/channels/{x}/messages' compare equal."""
    return "/".join("{}" if p.startswith("{") and p.endswith("}") else p for p in template.split("/"))


@dataclass
class Contract:
    path: Path
    spec: dict
    registry: Registry
    templates: dict[str, str]  # template key -> spec path template
    _validators: dict[tuple[str, str], Draft202012Validator | None] = field(default_factory=dict)

    def spec_template(self, template: str) -> str | None:
        return self.templates.get(_template_key(template))

    def validator(self, method: str, template: str) -> Draft202012Validator | None:
        key = (method.lower(), _template_key(template))
        if key in self._validators:
            return self._validators[key]
        validator = None
        spec_path = self.spec_template(template)
        if spec_path is not None:
            op = self.spec["paths"][spec_path].get(method.lower())
            content = (op or {}).get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ptr = "/".join(
                    ["", "paths", _pointer_escape(spec_path), method.lower(), "requestBody", "content",
                     _pointer_escape("application/json"), "schema"]
                )
                ref = SPEC_URI + "#" + quote(ptr, safe="/~")
                validator = Draft202012Validator({"$ref": ref}, registry=self.registry)
        self._validators[key] = validator
        return validator

    def has_operation(self, method: str, template: str) -> bool:
        spec_path = self.spec_template(template)
        return spec_path is not None and method.lower() in self.spec["paths"][spec_path]

    # ----------------------------------------------------------------- validation
    def validate(self, method: str, template: str, body: Any) -> list[Problem]:
        validator = self.validator(method, template)
        if validator is None:
            return []
        problems: list[Problem] = []
        for err in validator.iter_errors(body):
            for leaf in self._explain(err):
                problems.append((_dotted(leaf.absolute_path), _describe(leaf)))
        # de-duplicate, keep order
        return list(dict.fromkeys(problems))

    def _resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                break
            node: Any = self.spec
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
            seen += 1
        return schema

    def _type_values(self, branch: Any) -> set | None:
        """Values of a union branch's `type` property pinned by const/enum (through $ref/allOf)."""
        branch = self._resolve(branch)
        if not isinstance(branch, dict):
            return None
        props = dict(branch.get("properties") or {})
        for part in branch.get("allOf") or []:
            part = self._resolve(part)
            if isinstance(part, dict):
                props.update(part.get("properties") or {})
        prop = self._resolve(props.get("type"))
        if not isinstance(prop, dict):
            return None
        if "const" in prop:
            return {prop["const"]}
        if "enum" in prop:
            return set(prop["enum"])
        return None

    def _json_type_ok(self, branch: Any, instance: Any) -> bool:
        branch = self._resolve(branch)
        if not isinstance(branch, dict) or "type" not in branch:
            return True
        types = branch["type"] if isinstance(branch["type"], list) else [branch["type"]]
        checker = Draft202012Validator.TYPE_CHECKER
        return any(checker.is_type(instance, t) for t in types)

    def _pick_branches(self, instance: Any, branches: list) -> list[int]:
        candidates = [i for i, b in enumerate(branches) if self._json_type_ok(b, instance)]
        if isinstance(instance, dict) and "type" in instance:
            pinned = []
            for i in candidates:
                values = self._type_values(branches[i])
                if values is not None and instance["type"] in values:
                    pinned.append(i)
            if pinned:
                return pinned
        return candidates

    def _explain(self, err: ValidationError) -> list[ValidationError]:
        if err.validator in ("oneOf", "anyOf") and err.context:
            chosen = self._pick_branches(err.instance, err.validator_value)
            sub = [e for e in err.context if e.relative_schema_path and e.relative_schema_path[0] in chosen]
            if len(chosen) == 1 and sub:
                out: list[ValidationError] = []
                for e in sub:
                    out.extend(self._explain(e))
                return out
            pool = sub or list(err.context)
            if isinstance(err.instance, dict) and "type" in err.instance and not any(
                self._type_values(b) and err.instance["type"] in self._type_values(b) for b in err.validator_value
            ) and any(self._type_values(b) for b in err.validator_value):
                allowed = sorted({v for b in err.validator_value for v in (self._type_values(b) or ())}, key=str)
                err.message = f"type {err.instance['type']!r} is not one of the allowed component/value types {allowed}"
                return [err]
            best = best_match(pool)
            return self._explain(best) if best is not None else [err]
        return [err]


def _dotted(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(body)"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: ValidationError) -> str:
    v, inst, val = err.validator, err.instance, err.validator_value
    if v == "type":
        return f"{_short(inst)} is not of type {val}"
    if v in ("maxLength", "minLength"):
        bound = "at most" if v == "maxLength" else "at least"
        return f"must be {bound} {val} characters long (got {len(inst)})"
    if v in ("maxItems", "minItems"):
        bound = "at most" if v == "maxItems" else "at least"
        return f"must have {bound} {val} items (got {len(inst)})"
    if v in ("maximum", "minimum"):
        return f"{_short(inst)} is {'greater' if v == 'maximum' else 'less'} than the {v} of {val}"
    if v in ("enum", "const"):
        return f"{_short(inst)} is not one of {_short(val, 120)}"
    msg = err.message
    return msg if len(msg) <= 240 else msg[:237] + "..."


_CACHE: dict[Path, Contract | None] = {}
_WARNED: set[Path] = set()


def load_contract(path: Path | None) -> Contract | None:
    """Load (once per process) and return the contract, or None when the spec is absent/disabled."""
    if path is None:
        return None
    path = Path(path)
    if path in _CACHE:
        return _CACHE[path]
    if not path.is_file():
        if path not in _WARNED:
            _WARNED.add(path)
            line = f"fakediscord: OpenAPI spec not found at {path}; request bodies are NOT contract-checked"
            print(line, file=sys.stderr, flush=True)
            warnings.warn(line, UserWarning, stacklevel=2)  # shows in pytest's warnings summary
        _CACHE[path] = None
        return None
    spec = json.loads(path.read_text(encoding="utf-8"))
    spec = copy.deepcopy(spec)
    _patch_snowflakes(spec)
    registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec))
    templates = {_template_key(p): p for p in spec.get("paths", {})}
    contract = Contract(path=path, spec=spec, registry=registry, templates=templates)
    _CACHE[path] = contract
    return contract


# --------------------------------------------------------------------------- documented limits
def _embed_problems(embeds: Any, prefix: str) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(embeds, list):
        return out
    if len(embeds) > MAX_EMBEDS:
        out.append((prefix, f"must have at most {MAX_EMBEDS} embeds (got {len(embeds)})"))
    total = 0
    for i, e in enumerate(embeds):
        if not isinstance(e, dict):
            continue
        p = f"{prefix}.{i}"

        def s(x: Any) -> str:
            return x if isinstance(x, str) else ""

        title, desc = s(e.get("title")), s(e.get("description"))
        footer = s((e.get("footer") or {}).get("text"))
        author = s((e.get("author") or {}).get("name"))
        for name, text in (("title", title), ("description", desc), ("footer.text", footer), ("author.name", author)):
            if len(text) > EMBED_LIMITS[name]:
                out.append((f"{p}.{name}", f"must be at most {EMBED_LIMITS[name]} characters long (got {len(text)})"))
        total += len(title) + len(desc) + len(footer) + len(author)
        fields = e.get("fields") or []
        if len(fields) > EMBED_LIMITS["fields"]:
            out.append((f"{p}.fields", f"must have at most 25 fields (got {len(fields)})"))
        for j, f in enumerate(fields):
            if not isinstance(f, dict):
                continue
            fname, fvalue = s(f.get("name")), s(f.get("value"))
            if len(fname) > EMBED_LIMITS["field.name"]:
                out.append((f"{p}.fields.{j}.name", f"must be at most 256 characters long (got {len(fname)})"))
            if len(fvalue) > EMBED_LIMITS["field.value"]:
                out.append((f"{p}.fields.{j}.value", f"must be at most 1024 characters long (got {len(fvalue)})"))
            total += len(fname) + len(fvalue)
    if total > MAX_EMBED_TOTAL:
        out.append((prefix, f"embeds total must be at most {MAX_EMBED_TOTAL} characters (got {total})"))
    return out


def _component_problems(components: Any, prefix: str) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(components, dict):
        cid = components.get("custom_id")
        if isinstance(cid, str) and len(cid) > MAX_CUSTOM_ID:
            out.append((f"{prefix}.custom_id", f"must be at most {MAX_CUSTOM_ID} characters long (got {len(cid)})"))
        for key in ("components", "component", "accessory"):
            if key in components:
                out.extend(_component_problems(components[key], f"{prefix}.{key}"))
    elif isinstance(components, list):
        for i, c in enumerate(components):
            out.extend(_component_problems(c, f"{prefix}.{i}" if prefix else str(i)))
    return out


def message_problems(body: Any, prefix: str = "") -> list[Problem]:
    if not isinstance(body, dict):
        return []
    pre = f"{prefix}." if prefix else ""
    out: list[Problem] = []
    content = body.get("content")
    if content is not None and not isinstance(content, str):  # also caught by the spec, if present
        out.append((f"{pre}content", f"{_short(content)} is not of type ['string', 'null']"))
    if not isinstance(body.get("embeds") or [], list) or not isinstance(body.get("components") or [], list):
        out.append((f"{pre}(embeds|components)", "must be arrays"))
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        out.append((f"{pre}content", f"must be at most {MAX_CONTENT} characters long (got {len(content)})"))
    out.extend(_embed_problems(body.get("embeds"), f"{pre}embeds"))
    out.extend(_component_problems(body.get("components"), f"{pre}components"))
    return out


def _is_valid_command_name(name: str) -> bool:
    return 1 <= len(name) <= 32 and name == name.lower() and all(c.isalnum() or c in "-_" for c in name)


def _option_problems(options: Any, prefix: str) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(options, list):
        return out
    for i, opt in enumerate(options):
        if not isinstance(opt, dict):
            continue
        p = f"{prefix}.{i}"
        name = opt.get("name")
        if isinstance(name, str) and not _is_valid_command_name(name):
            out.append((f"{p}.name", f"{name!r} must match ^[-_\\p{{L}}\\p{{N}}]{{1,32}}$ and be lowercase"))
        desc = opt.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            out.append((f"{p}.description", "must be 1-100 characters long"))
        choices = opt.get("choices") or []
        if len(choices) > MAX_CHOICES:
            out.append((f"{p}.choices", f"must have at most {MAX_CHOICES} choices (got {len(choices)})"))
        if choices and opt.get("autocomplete"):
            out.append((f"{p}.autocomplete", "cannot be set together with choices"))
        out.extend(_option_problems(opt.get("options"), f"{p}.options"))
    return out


def command_problems(cmd: Any, prefix: str = "") -> list[Problem]:
    if not isinstance(cmd, dict):
        return []
    pre = f"{prefix}." if prefix else ""
    out: list[Problem] = []
    if cmd.get("type") in (None, 1):
        name = cmd.get("name")
        if isinstance(name, str) and not _is_valid_command_name(name):
            out.append((f"{pre}name", f"{name!r} must match ^[-_\\p{{L}}\\p{{N}}]{{1,32}}$ and be lowercase"))
        desc = cmd.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            out.append((f"{pre}description", "chat input commands need a 1-100 character description"))
        out.extend(_option_problems(cmd.get("options"), f"{pre}options"))
    return out


def choices_problems(choices: Any, prefix: str) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(choices, list):
        return out
    if len(choices) > MAX_CHOICES:
        out.append((prefix, f"must have at most {MAX_CHOICES} choices (got {len(choices)})"))
    for i, c in enumerate(choices):
        if not isinstance(c, dict):
            continue
        name, value = c.get("name"), c.get("value")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_CHOICE_NAME:
            out.append((f"{prefix}.{i}.name", f"must be 1-{MAX_CHOICE_NAME} characters long"))
        if isinstance(value, str) and len(value) > MAX_CHOICE_STRING_VALUE:
            out.append((f"{prefix}.{i}.value", f"must be at most {MAX_CHOICE_STRING_VALUE} characters long"))
    return out


def check_limits(method: str, template: str, body: Any) -> list[Problem]:
    """Discord's documented limits the spec misses, for the routes a bot uses."""
    key = _template_key(template)
    m = method.upper()
    if key in ("/channels/{}/messages", "/channels/{}/messages/{}", "/webhooks/{}/{}",
               "/webhooks/{}/{}/messages/@original", "/webhooks/{}/{}/messages/{}") and m in ("POST", "PATCH"):
        return message_problems(body)
    if key == "/interactions/{}/{}/callback" and isinstance(body, dict):
        t, data = body.get("type"), body.get("data")
        if t in (4, 7) and isinstance(data, dict):
            return message_problems(data, "data")
        if t == 8 and isinstance(data, dict):
            return choices_problems(data.get("choices"), "data.choices")
        if t == 9 and isinstance(data, dict):
            out = _component_problems(data.get("components"), "data.components")
            cid, title = data.get("custom_id"), data.get("title")
            if isinstance(cid, str) and len(cid) > MAX_CUSTOM_ID:
                out.append(("data.custom_id", f"must be at most {MAX_CUSTOM_ID} characters long (got {len(cid)})"))
            if isinstance(title, str) and len(title) > MAX_MODAL_TITLE:
                out.append(("data.title", f"must be at most {MAX_MODAL_TITLE} characters long (got {len(title)})"))
            return out
        return []
    if key in ("/applications/{}/commands", "/applications/{}/guilds/{}/commands"):
        if m == "PUT" and isinstance(body, list):
            return [p for i, c in enumerate(body) for p in command_problems(c, str(i))]
        if m == "POST":
            return command_problems(body)
    if key in ("/applications/{}/commands/{}", "/applications/{}/guilds/{}/commands/{}") and m == "PATCH":
        return command_problems({"type": 1, "description": "x", **body} if isinstance(body, dict) else body)
    return []


def errors_tree(problems: list[Problem]) -> dict:
    """Discord's nested 50035 `errors` object: {"content": {"_errors": [{"code", "message"}]}}."""
    tree: dict = {}
    for path, message in problems:
        node = tree
        if path != "(body)":
            for part in path.split("."):
                node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": "BASE_TYPE_INVALID", "message": message})
    return tree
