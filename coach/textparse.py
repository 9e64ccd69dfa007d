"""Understand a plain-text check-in answer sent to the bot in a DM.

``parse_reply("finished the bassline")`` gives ``finished`` with the note ``"the bassline"``;
``"didn't get to it"`` gives ``skipped``; ``"not done yet"`` gives ``unfinished``.
When the text is unclear (no keyword, keywords that disagree, only a bare "yes"/"no", a
question) the result is not ``confident`` and the caller asks the member to confirm.

The rules are a priority-ordered table of patterns. Patterns are tried in order and each match
masks its span, so a negation such as "didn't finish" is claimed as ``unfinished`` before the
bare word "finish" can be read as ``finished``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["finished", "unfinished", "skipped"]

MAX_NOTE_CHARS = 500

_NEUTRAL = "neutral"  # consumed, but says nothing about the status ("didn't skip", "to finish")


@dataclass(frozen=True)
class ParsedReply:
    status: Status | None
    confident: bool
    note: str


@dataclass(frozen=True)
class _Rule:
    status: str
    strong: bool
    pattern: re.Pattern[str]
    cut: bool  # cut the matched words out of the note


def _rule(status: str, strong: bool, pattern: str, *, cut: bool = True) -> _Rule:
    return _Rule(status, strong, re.compile(pattern, re.IGNORECASE), cut)


# Building blocks. Apostrophes are normalised to ' before matching, and may be left out.
_NEG_PAST = (
    r"(?:didn'?t|did\s+not|couldn'?t|could\s+not|haven'?t|have\s+not|hasn'?t|has\s+not|"
    r"wasn'?t\s+able\s+to|was\s+not\s+able\s+to|never|can'?t|cannot|won'?t|will\s+not|"
    r"don'?t|do\s+not|failed\s+to|not\s+able\s+to|unable\s+to)"
)
_DEGREE = r"(?:quite|fully|completely|totally|entirely|actually|really|yet|even)"
_DONE_WORDS = r"(?:done|finished|complete|completed|bounced|exported|wrapped(?:\s+up)?|there|over)"
_FINISH_VERBS = (
    r"(?:finish(?:ed)?|complete(?:d)?|get\s+(?:it\s+|that\s+|this\s+)?(?:done|finished)|"
    r"wrap(?:ped)?\s+(?:it\s+)?up|bounce(?:d)?|export(?:ed)?)"
)
_INTENT = (
    r"(?:going\s+to|gonna|will|i'?ll|plan(?:ning)?\s+to|hop(?:e|ing)\s+to|want\s+to|wanna|"
    r"need\s+to|have\s+to|got\s+to|gotta|should|try(?:ing)?\s+to|about\s+to|aim(?:ing)?\s+to)"
)
_OBJECT = r"(?:\s+(?:it|that|this|them|anything|a\s+thing|any\s+music|the\s+daw|my\s+daw))?"

# Priority order matters: earlier rules claim their words first.
_RULES: tuple[_Rule, ...] = (
    # --- "haven't done anything", "did nothing", "nothing finished": skipped, before "done".
    _rule(
        "skipped",
        True,
        rf"\b{_NEG_PAST}\s+(?:{_DEGREE}\s+)?(?:done|did|do|made|make|touched|touch|opened|open|"
        r"started|start|written|write|produced|produce)\s+(?:anything|a\s+thing|any\s+music|any\s+work)\b",
    ),
    _rule("skipped", True, r"\b(?:done|did|made|achieved|finished|got)\s+nothing\b"),
    _rule(
        "skipped",
        True,
        r"\bnothing\s+(?:done|finished|bounced|completed|today|at\s+all|yet|to\s+report|this\s+time)\b",
    ),
    # --- "didn't get to it", "didn't get around to it".
    _rule(
        "skipped",
        True,
        rf"\b{_NEG_PAST}\s+(?:{_DEGREE}\s+)?(?:get|got|make\s+it)\s+(?:a?round\s+)?to\b"
        r"(?:\s+(?:it|that|this|them|music|the\s+studio))?",
    ),
    # --- "didn't touch it", "didn't open the DAW", "didn't work on it", "didn't start".
    _rule(
        "skipped",
        True,
        rf"\b{_NEG_PAST}\s+(?:{_DEGREE}\s+)?(?:touch|open|start|work\s+on|do|make|produce|write|"
        rf"get\s+started|sit\s+down|have\s+time){_OBJECT}\b",
    ),
    # --- negated finishing: unfinished ("not done yet", "didn't finish", "not quite there").
    _rule(
        "unfinished",
        True,
        rf"\b(?:not|isn'?t|is\s+not|wasn'?t|was\s+not|ain'?t|it'?s\s+not)\s+(?:{_DEGREE}\s+)?"
        rf"{_DONE_WORDS}\b(?:\s+yet)?",
    ),
    _rule(
        "unfinished",
        True,
        rf"\b{_NEG_PAST}\s+(?:{_DEGREE}\s+)?{_FINISH_VERBS}\b(?:\s+(?:it|that|this))?(?:\s+yet)?",
    ),
    _rule(
        "unfinished",
        True,
        rf"\b(?:almost|nearly|mostly|partly|partially|half|kinda|kind\s+of|sort\s+of|not\s+quite)\s+"
        rf"{_DONE_WORDS}\b",
    ),
    # --- intentions: "going to finish it tomorrow" means it isn't finished (but may be a skip).
    _rule("unfinished", False, rf"\b{_INTENT}\s+(?:{_DEGREE}\s+)?{_FINISH_VERBS}\b"),
    # --- negated skipping says nothing by itself; "to finish" after "too busy" neither.
    _rule("neutral", False, rf"\b(?:{_NEG_PAST}|not)\s+skip(?:ped|ping)?\b"),
    _rule("neutral", False, rf"\bto\s+{_FINISH_VERBS}\b"),
    # --- skipped: the plain words.
    _rule("skipped", True, r"\bskip(?:ped|ping|s)?\b"),
    _rule(
        "skipped",
        True,
        r"\bno\s+(?:time|studio\s+time|session|music|progress|energy|chance|work|luck)\b",
    ),
    _rule("skipped", True, r"\b(?:not|n'?t)\s+today\b"),
    _rule(
        "skipped",
        True,
        r"\b(?:day\s+off|night\s+off|rest\s+day|off\s+day|took\s+(?:a|the)\s+(?:day|night|break)"
        r"(?:\s+off)?|took\s+a\s+break|took\s+time\s+off|missed\s+(?:it|today|the\s+session))\b",
    ),
    _rule("skipped", True, r"\btoo\s+(?:busy|tired|swamped|sick|exhausted)\b"),
    _rule("skipped", True, r"\b(?:nothing|nada|zilch|zero)\b"),
    # --- unfinished: work without a finish.
    _rule("unfinished", True, r"\bunfinished\b"),
    _rule("unfinished", True, r"\b(?:(?:still|been|was|i'?m|am)\s+)*(?:working|worked)\s+on\b"),
    _rule(
        "unfinished",
        True,
        r"\bstill\s+(?:on\s+it|at\s+it|going|in\s+progress|tweaking|mixing|writing|arranging|"
        r"recording|editing|chipping\s+away)\b",
    ),
    _rule(
        "unfinished",
        True,
        r"\b(?:half[\s-]?way|part[\s-]?way)(?:\s+(?:there|through|done))?\b",
    ),
    _rule("unfinished", True, r"\b(?:in\s+progress|work\s+in\s+progress|wip)\b"),
    _rule(
        "unfinished",
        True,
        r"\b(?:made\s+(?:some\s+)?progress|some\s+progress|getting\s+there|not\s+quite|not\s+yet|"
        r"chipp?ing\s+away|did\s+(?:a\s+bit|a\s+little|some\s+work|some))\b",
    ),
    # "finished the intro but not the drop": part done, part not; the words stay in the note.
    _rule("unfinished", True, r"\bbut\s+not\s+(?:yet|the|my|a|all|everything)\b", cut=False),
    _rule("unfinished", False, r"\bfinishing\b", cut=False),
    _rule("unfinished", False, r"\b(?:progress|started|tweaked|tweaking)\b"),
    # --- finished.
    _rule(
        "finished",
        True,
        r"\b(?:finished|done|complete|completed|bounced|exported|rendered|wrapped(?:\s+(?:it\s+)?up)?|"
        r"shipped|released|uploaded|submitted|printed|nailed\s+it|got\s+it\s+done|finito)\b",
    ),
    _rule("finished", True, r"(?:✅|✔️|✔)"),
    _rule("finished", False, r"\b(?:finish|yes|yep|yeah|yup|yas|y|did\s+it|i\s+did|sure\s+did)\b"),
    # --- bare refusals: probably skipped, but "no" could also mean "not finished".
    _rule("skipped", False, r"\b(?:no|nope|nah|n)\b|❌"),
)

# Words that carry no note on their own, stripped from either end of the note.
_EDGE_WORDS = frozenset(
    """
    i i've ive i'm im i'd we we've me my it it's its that that's this
    just finally so and but also though although then yet still already again
    today tonight now yes yeah yep yup ok okay well sure all everything anything
    is was are were am have has had been got get be
    for day with of on at to lol haha
    """.split()
)
# Words that are not a note by themselves but may start one ("the bassline", "my hook").
_FILLER = _EDGE_WORDS | frozenset({"the", "a", "an", "my", "tho", "thanks", "thx", "ty"})
_TRAILING = _EDGE_WORDS | frozenset({"the", "a", "an", "my"})
_PUNCT = " \t\n.,;:!?-—–…()[]\"'*_~`"
_SPACE = re.compile(r"\s+")
_TOKEN_CORE = re.compile(r"^\W+|\W+$")


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00b4", "'").replace("`", "'")
    return _SPACE.sub(" ", text).strip()


def _core(token: str) -> str:
    return _TOKEN_CORE.sub("", token).lower()


def _clean_note(text: str) -> str:
    tokens = [t for t in _SPACE.split(text.strip()) if t]
    while tokens and (_core(tokens[0]) in _EDGE_WORDS or not _core(tokens[0])):
        tokens.pop(0)
    while tokens and (_core(tokens[-1]) in _TRAILING or not _core(tokens[-1])):
        tokens.pop()
    if not any(_core(t) and _core(t) not in _FILLER for t in tokens):
        return ""
    note = " ".join(tokens).strip(_PUNCT)
    if len(note) > MAX_NOTE_CHARS:
        note = note[: MAX_NOTE_CHARS - 1].rstrip() + "…"
    return note


def _plain_note(text: str) -> str:
    """Text with no status words in it is kept whole (the caller may ask what it meant)."""
    note = text.strip(_PUNCT)
    if not any(ch.isalnum() for ch in note):
        return ""
    if len(note) > MAX_NOTE_CHARS:
        note = note[: MAX_NOTE_CHARS - 1].rstrip() + "…"
    return note


def parse_reply(text: str) -> ParsedReply:
    """Read a free-text check-in answer: status, whether we are sure, and the rest as a note."""
    clean = _normalise(text or "")
    if not clean:
        return ParsedReply(None, False, "")

    masked = clean
    spans: list[tuple[int, int]] = []
    strong: set[str] = set()
    weak: set[str] = set()
    for rule in _RULES:
        for match in rule.pattern.finditer(masked):
            start, end = match.span()
            if start == end:
                continue
            if rule.cut:
                spans.append((start, end))
            masked = masked[:start] + " " * (end - start) + masked[end:]
            if rule.status == _NEUTRAL:
                continue
            (strong if rule.strong else weak).add(rule.status)

    # The note: what's left once the status words are cut out.
    kept: list[str] = []
    position = 0
    for start, end in sorted(spans):
        if start > position:
            kept.append(clean[position:start])
        position = max(position, end)
    kept.append(clean[position:])
    note = _clean_note(" ".join(kept)) if spans else _plain_note(clean)

    if len(strong) > 1:
        return ParsedReply(None, False, note)
    if len(strong) == 1:
        status = next(iter(strong))
        confident = "?" not in clean
        return ParsedReply(status, confident, note)  # type: ignore[arg-type]
    if len(weak) == 1:
        return ParsedReply(next(iter(weak)), False, note)  # type: ignore[arg-type]
    return ParsedReply(None, False, note)
