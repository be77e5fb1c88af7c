"""What people type that others will read: titles and canvas links. Pure.

A title is stored NFC-normalised and stripped; one holding a control or bidirectional-override
character (which reorders or hides the text around it, "Trojan Source"), or nothing visible at
all, is refused. A canvas link is an http(s) address without credentials, quotes, angle brackets,
backslashes or blanks, whose host has no label mixing scripts (a homograph such as a Cyrillic
"а" among Latin letters); its host is lowercased. Checked where people's text comes in, so rows
stored before these rules still load."""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit, urlunsplit

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKS = frozenset("\u2028\u2029\u0085")
# Letters that render as nothing (Hangul fillers, the Braille blank, Mongolian vowel separator).
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
URL_FORBIDDEN = frozenset('"\'<>\\`')
# Scripts that legitimately share one label.
SCRIPT_FAMILIES = (frozenset({"CJK", "HIRAGANA", "KATAKANA"}), frozenset({"CJK", "HANGUL"}))


class TextRefused(ValueError):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _visible(ch: str) -> bool:
    return unicodedata.category(ch)[0] not in "ZC" and unicodedata.category(ch) not in ("Mn", "Me") \
        and ch not in BLANK_LETTERS


def clean_title(value: str) -> str:
    """The title as stored, or TextRefused saying why not."""
    text = unicodedata.normalize("NFC", value).strip()
    for ch in text:
        if ch in BIDI_CONTROLS:
            raise TextRefused("Bidirectional control characters (which reorder the text around them) are not "
                              "allowed.")
        if unicodedata.category(ch) == "Cc" or ch in LINE_BREAKS:
            raise TextRefused("Control characters and line breaks are not allowed in a title.")
    if not any(_visible(ch) for ch in text):
        raise TextRefused("A title needs at least one visible character.")
    return text


def _script(ch: str) -> str | None:
    if not unicodedata.category(ch).startswith("L"):
        return None
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else None


def mixed_script(label: str) -> bool:
    scripts = {s for s in map(_script, label) if s}
    return len(scripts) > 1 and not any(scripts <= family for family in SCRIPT_FAMILIES)


def clean_canvas_url(value: str) -> str:
    """The canvas link as stored, or TextRefused saying why not."""
    if any(ch in URL_FORBIDDEN or ch.isspace() or unicodedata.category(ch)[0] == "C" or ch in BIDI_CONTROLS
           for ch in value):
        raise TextRefused("A canvas URL cannot hold quotes, angle brackets, backslashes, blanks or control "
                          "characters (percent-encode them).")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise TextRefused("A canvas URL must be an http(s) address.")
    if parts.username is not None or parts.password is not None:
        raise TextRefused("A canvas URL cannot carry a user name or password.")
    host = parts.hostname  # lowercased by urlsplit
    for label in host.split("."):
        try:
            shown = label.encode("ascii").decode("idna") if label.startswith("xn--") else label
        except (UnicodeError, ValueError):
            raise TextRefused("The canvas URL's host is not a valid internationalised name.") from None
        if mixed_script(shown):
            raise TextRefused(f"The canvas URL's host mixes scripts in {shown!r} (a look-alike address).")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise TextRefused("The canvas URL's host is not a valid name.") from None
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host:  # an IPv6 literal keeps its brackets
        netloc = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))
