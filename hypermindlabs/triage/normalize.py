"""Message normalization: a failure message → its template (ids, numbers, paths, JSON values masked).

The template is what a cluster id fingerprints, so any change here changes cluster ids: bump
``ALGORITHM_VERSION`` (:mod:`hypermindlabs.triage.taxonomy`) when it does.
"""

from __future__ import annotations

import re

__all__ = ["normalize_message", "as_text"]

_MAX_SCAN_CHARS = 4000  # of the message, after dropping traceback frames
_TEMPLATE_LINES = 3
_TEMPLATE_MAX_CHARS = 240
_TEMPLATE_TOKENS = _TEMPLATE_MAX_CHARS // 2 + 1
_LABEL_TEMPLATE_MAX_CHARS = 80


def as_text(value: object) -> str:
    """Any value as text (``None`` → ""): classification never raises on what a client sent."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)

# --------------------------------------------------------------------------------------------------
# Normalization.

# fmt: off
_TRACEBACK_NOISE = frozenset({
    "traceback (most recent call last):",
    "during handling of the above exception, another exception occurred:",
    "the above exception was the direct cause of the following exception:",
})
# fmt: on
_FRAME_RE = re.compile(r'\s*File "[^"\n]*", line \d+')
_STACK_NOISE_RE = re.compile(r"\s+at [\w$.<(/\\]|\s*\.\.\. \d+ more|\s*\[Previous line repeated|[\s^~]+$")
# The first visible character of every line _TRACEBACK_NOISE or _STACK_NOISE_RE can match.
_STACK_NOISE_FIRST = frozenset("tTdDa.[^~")

# Patterns start with a literal character where possible: the regex engine then skips ahead to it
# instead of trying every position, which is most of the cost on long provider messages.
_JSON_OPEN_RE = re.compile(r"\{|\[(?<![\w\]).]\[)(?=\s*(?:[\[{\"'\d\]-]|true\b|false\b|null\b))")
_BRACKET_RE = re.compile(r"[\[\]{}]")
_CLOSER = {"{": "}", "[": "]"}
_KEY_COLON_RE = re.compile(r"""['"]\s*:\s*(['"])""")  # the end of a key and the opening quote of its value
_MESSAGE_KEYS = ("message", "detail", "error", "reason")  # where providers put the human text
_CODE_KEYS = ("code", "status", "type")  # the machine-readable reason, most specific first
# '...' only when the quote opens a value (not "model's"), "...", `...`, and typographic quotes.
_QUOTED_RE = re.compile(
    r"""'(?<!\w')[^'\n]*'(?!\w)|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|`[^`\n]*`|‘[^’\n]*’|“[^”\n]*”"""
)

# Applied to one whitespace-separated token at a time, and only to tokens that are neither plain
# words nor plain numbers. Which patterns run depends on the characters the token holds (a host
# needs a dot, a path a slash); alternatives are tried left to right at each position.
_URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>()\[\]{}]*[^\s'\"<>()\[\]{},.;:!?]", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.IGNORECASE)
_DIGIT_RE = re.compile(r"\d")
_HOST = (
    r"(?P<host>(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|io|ai|dev|cloud"
    r"|co|us|eu|uk|de|internal|local|localhost|svc)(?![\w-]|\.[a-z0-9])|\blocalhost\b)"
)
_PATH = r"(?P<path>(?<![\w<>/.:~-])(?:~|\.{1,2})?(?:/[\w.@%+=~-]+)+/?(?:\?\S*)?|\b[a-z]:\\\S*)"
_NUMERIC = (
    r"(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|(?P<ts>\d{4}-\d\d-\d\d(?:t\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:z|[+-]\d\d:?\d\d)?)?"
    r"|\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"|(?P<ip>(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d))",
    r"(?P<dur>(?<![\w.])\d+(?:\.\d+)?(?:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?"
    r"|ms|us|µs|ns|s|m|h)(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|s|m|h))*(?!\w))"
    r"|(?P<hex>\b0x[0-9a-f]+\b|(?<![a-z0-9])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![a-z0-9]))"
    r"|(?P<id>(?<![a-z0-9])(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{8,}(?![a-z0-9]))"
    r"|(?P<n>(?<!\w)-?\d++(?:[.,]\d++)*+(?:e[-+]?\d++)?(?!\w))",
)


def _token_re(digits: bool, dot: bool, slash: bool) -> re.Pattern[str] | None:
    parts = [_NUMERIC[0]] if digits else []
    parts += [_HOST] if dot else []
    parts += [_PATH] if slash else []
    parts += [_NUMERIC[1]] if digits else []
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


_TOKEN_RES = {
    (digits, dot, slash): _token_re(digits, dot, slash)
    for digits in (False, True)
    for dot in (False, True)
    for slash in (False, True)
}
# Numbers (one decimal point at most: more is a version or an IP) and durations, and the plain
# keys of key=value tokens.
# (Case is ignored only where letters are: a pattern-wide IGNORECASE slows every character test.)
_SIMPLE_VALUE_RE = re.compile(
    r"(-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"|(\d+(?:\.\d+)?(?i:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|ms|us|µs|ns|s|m|h)"
    r"(?:\d+(?:\.\d+)?(?i:ms|us|µs|ns|s|m|h))*)"
)
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_-]+")
_PREFIXED_ID_RE = re.compile(r"[A-Za-z]+[_-]([A-Za-z0-9]{8,})")
_HEX_RUN_RE = re.compile(r"[0-9a-fA-F]+")
_TOKEN_EDGES = "()[]{}<>,.;:!?\"'`|"
_SPACED_DURATION_RE = re.compile(  # a literal, case-sensitive start: the engine skips ahead to "<n> "
    r"<n> (?i:milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|ms)\b"
)
# Memo of normalized tokens: words and constant tokens ("gpt-4o", "host=<str>,") recur across
# messages. The output never depends on it; bounded, cleared when full.
_TOKEN_MEMO: dict[str, str] = {}
_TOKEN_MEMO_MAX = 16384
_CONNECTION_POOL_PREFIX_RE = re.compile(r"^\w*ConnectionPool\(host=<str>, port=<n>\): ")


def _placeholder(match: re.Match[str]) -> str:
    return f"<{match.lastgroup}>"


def _normalize_token(token: str) -> str:
    core = token.strip(_TOKEN_EDGES)
    if not core or core.isalpha():
        normalized = token
    elif core.isdigit() and core.isascii():
        start = token.index(core)
        normalized = f"{token[:start]}<n>{token[start + len(core) :]}"
    else:
        # A number or duration, alone or as the value of key=..., is the usual unseen token: settle
        # it without the token regexes (same result, a test holds the two paths equal).
        key, equals, value = core.rpartition("=")
        simple = _SIMPLE_VALUE_RE.fullmatch(value) if not key or _PLAIN_KEY_RE.fullmatch(key) else None
        start = token.index(core) + len(core) - len(value)
        # A number with an exponent ("000000E0") can also be a hex run, which the patterns mask as
        # <hex>: leave those to the patterns.
        if simple is not None and simple.lastindex == 1 and ("e" in value or "E" in value):
            simple = None
        if simple is not None and (simple.lastindex == 1 or token[start - 1 : start] != "."):
            placeholder = "<n>" if simple.lastindex == 1 else "<dur>"  # ".5s" is left to the patterns
            normalized = f"{token[:start]}{placeholder}{token[start + len(value) :]}"
        else:
            normalized = _normalize_prefixed_id(token, core) or _normalize_token_by_patterns(token)
    if len(_TOKEN_MEMO) >= _TOKEN_MEMO_MAX:
        _TOKEN_MEMO.clear()
    _TOKEN_MEMO[token] = normalized
    return normalized


def _normalize_prefixed_id(token: str, core: str) -> str | None:
    """req_0a1b2c3d4e5f, org-4Ft8xQbWbGvVzP9NkLm2sR7h, call_8Wq2x3Yb...: the prefix stays."""
    found = _PREFIXED_ID_RE.fullmatch(core)
    if found is None:
        return None
    tail = found.group(1)
    if tail.isalpha() or tail.isdigit() or _SIMPLE_VALUE_RE.fullmatch(tail) is not None:
        return None
    start = token.index(core) + len(core) - len(tail)
    placeholder = "<hex>" if _HEX_RUN_RE.fullmatch(tail) is not None else "<id>"
    return f"{token[:start]}{placeholder}{token[start + len(tail) :]}"


def _normalize_token_by_patterns(token: str) -> str:
    if "***" in token:
        return "<redacted>"
    if "://" in token:
        token = _URL_RE.sub("<url>", token)
    if "@" in token:
        token = _EMAIL_RE.sub("<email>", token)
    pattern = _TOKEN_RES[_DIGIT_RE.search(token) is not None, "." in token, "/" in token or "\\" in token]
    return token if pattern is None else pattern.sub(_placeholder, token)


def _meaningful_lines(message: str) -> list[str]:
    """Lines that say what went wrong: traceback frames, source excerpts and blank lines dropped."""
    if "\n" not in message and "\r" not in message:
        stripped = message.strip()
        return [stripped] if stripped else []
    lines: list[str] = []
    in_frame = False
    for line in message.splitlines():
        stripped = line.strip()
        if not stripped:
            in_frame = False
            continue
        # (Each regex below can only match a line whose first visible characters the str checks
        # test, so they run on few lines.)
        if stripped.startswith('File "') and _FRAME_RE.match(line):
            in_frame = True
            continue
        if in_frame and (line.startswith("    ") or line.startswith("\t")):
            continue  # the source line (and ^^^^ markers) under a frame
        in_frame = False
        if stripped[0] in _STACK_NOISE_FIRST and (
            stripped.lower() in _TRACEBACK_NOISE or _STACK_NOISE_RE.match(line)
        ):
            continue
        lines.append(stripped)
    return lines


def _unescape(text: str) -> str:
    return text.replace("\\'", "'").replace('\\"', '"').replace("\\n", " ")


def _json_value(fragment: str, key: str, *, word: bool) -> str | None:
    """The first quoted value of ``key`` in a JSON/dict fragment ('word': only identifier-like values)."""
    for quote in ("'", '"'):
        needle = quote + key
        at = fragment.find(needle)
        while at >= 0:
            found = _KEY_COLON_RE.match(fragment, at + len(needle))
            if found is not None:
                opening = found.group(1)
                begin = close = found.end()
                while True:  # str.find beats a regex scan over long provider messages
                    close = fragment.find(opening, close)
                    if close < 0 or fragment[close - 1] != "\\":
                        break
                    close += 1
                value = fragment[begin:] if close < 0 else fragment[begin:close]
                if not word:
                    return value
                if value.isidentifier() and value not in ("error", "None", "null"):
                    return value
            at = fragment.find(needle, at + 1)
    return None


def _fragment_end(text: str, start: int) -> int:
    """End of the bracketed literal opening at ``start``; an unbalanced one ends with its line.

    A literal that runs to the end of its line with balanced brackets (a provider's error body) is
    taken whole without walking it.
    """
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[start:line_end].rstrip()
    if (
        rest[-1] in "]}"
        and rest.count("{") == rest.count("}")
        and ("[" not in rest and "]" not in rest or rest.count("[") == rest.count("]"))
    ):
        return start + len(rest)
    closers: list[str] = []
    for bracket in _BRACKET_RE.finditer(text, start):
        char = bracket.group()
        if char in _CLOSER:
            closers.append(_CLOSER[char])
        elif closers and char == closers[-1]:
            closers.pop()
            if not closers:
                return bracket.end()
        else:
            break  # mismatched: not a literal after all, or a truncated one
    return line_end


def _replace_json(text: str) -> str:
    """Replace JSON/dict literals by <json>, or by the provider's error message and code inside them.

    Provider bodies ("Error code: 429 - {'error': {'message': ..., 'code': ...}}") carry the only
    useful words of the error inside the body: keep those, drop the rest.
    """
    out: list[str] = []
    pos = 0
    while True:
        opener = _JSON_OPEN_RE.search(text, pos)
        if opener is None:
            break
        start = opener.start()
        end = _fragment_end(text, start)
        fragment = text[start:end]
        out.append(text[pos:start])
        inner = None
        for key in _MESSAGE_KEYS:
            inner = _json_value(fragment, key, word=False)
            if inner is not None:
                break
        if inner is None:
            out.append("<json>")
        else:
            code = None
            for key in _CODE_KEYS:
                code = _json_value(fragment, key, word=True)
                if code:
                    break
            inner = _unescape(inner)
            out.append(f"{inner} [{code}]" if code else inner)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _normalize_lines(lines: list[str]) -> str:
    text = "\n".join(lines)
    if "{" in text or "[" in text:
        text = _replace_json(text)
    if "\n" in text:
        text = " | ".join([line for line in text.split("\n") if line.strip()][:_TEMPLATE_LINES])
    if "'" in text or '"' in text or "`" in text or "‘" in text or "“" in text:  # _QUOTED_RE openers
        text = _QUOTED_RE.sub("<str>", text)
    # Every output token takes at least two characters with its space, so tokens past this many
    # cannot reach the truncated template.
    tokens = text.split()[:_TEMPLATE_TOKENS]
    # Most tokens are memo hits: look them all up in one C-level pass, then settle the misses.
    looked_up: list[str | None] = list(map(_TOKEN_MEMO.get, tokens))
    if None in looked_up:
        index = looked_up.index(None)
        while True:  # visit the misses only (list.index scans in C)
            looked_up[index] = _normalize_token(tokens[index])
            try:
                index = looked_up.index(None, index + 1)
            except ValueError:
                break
    text = " ".join(looked_up)  # type: ignore[arg-type]  # no None is left
    if "<n> " in text:
        text = _SPACED_DURATION_RE.sub("<dur>", text)  # "2.5 seconds"
    return text if len(text) <= _TEMPLATE_MAX_CHARS else _truncate(text, _TEMPLATE_MAX_CHARS)


# Template memo keyed on the message with the ASCII digits 1-9 masked to "1" ("0" is kept: the
# "0x" of hex literals is the one place a digit's value matters). Every decision normalization
# makes depends on digits only through digit classes (\\d, [0-9], [0-9a-f], isdigit), counts and
# positions, all preserved by the mask, and the literal "0x"; so two messages with the same key
# take the same decisions and differ in the template only where digits are copied into it. A
# template is memoized only when it holds none of 1-9: it is then the template of every message
# with that key. A property test holds memoized == computed; bounded, cleared when full.
_DIGIT_MASK = bytes.maketrans(b"23456789", b"11111111")
_TEMPLATE_MEMO: dict[bytes, str] = {}
_TEMPLATE_MEMO_MAX = 8192
_KEPT_DIGITS = b"123456789"


def _template(lines: list[str], joined: str, key: bytes | None = None) -> str:
    """``_normalize_lines(lines)``, from the memo when a message of the same digit mask was seen.

    ``key``, when given, is ``joined`` masked as here (the caller computed it already).
    """
    if key is None:
        key = joined.encode("utf-8", "surrogatepass").translate(_DIGIT_MASK)
    hit = _TEMPLATE_MEMO.get(key)
    if hit is not None:
        return hit
    template = _normalize_lines(lines)
    encoded = template.encode("utf-8", "surrogatepass")
    if len(encoded.translate(None, _KEPT_DIGITS)) == len(encoded):  # none of 1-9 (bytes: a C loop)
        if len(_TEMPLATE_MEMO) >= _TEMPLATE_MEMO_MAX:
            _TEMPLATE_MEMO.clear()
        _TEMPLATE_MEMO[key] = template
    return template


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit)
    return text[: cut if cut > 0 else limit].rstrip(" |,;:") + "…"


def normalize_message(message: str) -> str:
    """The message template: variable parts replaced by placeholders, first meaningful lines only.

    >>> normalize_message("Expecting ',' delimiter: line 1 column 45 (char 44)")
    'Expecting <str> delimiter: line <n> column <n> (char <n>)'
    """
    return _normalize_lines(_meaningful_lines(as_text(message)[:_MAX_SCAN_CHARS]))


