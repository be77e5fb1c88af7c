"""People by name in the services' JSON answers: every `owner_id` gets an `owner_name` beside it,
every `author_id` an `author_name`. The gateway owns the people directory, so it adds them to
what the check-in and snapshot services answer. Pure: finding the ids, and writing the names.

Two forms: on a parsed answer (`references`, `apply`: for callers that hold one anyway, like the
web pages), and on the raw bytes the gateway forwards (`ids_in_json`, `name_json`), which skips
parsing and re-serialising: on the week view of a 10,000 Key Result Session (about 7 MB) the
regular expression takes ~90 ms where json.loads + walk + json.dumps took ~600 ms, and the
service's bytes stay as they were, each name right after its id."""
from __future__ import annotations

import json
import re

NAMED = (("owner_id", "owner_name"), ("author_id", "author_name"))

# An id key with its value. Inside a JSON string every quote is escaped, so an unescaped
# `"owner_id"` followed by `:` is always a key; the services' keys are their schemas' field names
# (never user text), so no string value can pose as one.
_ID = re.compile(rb'"(owner|author)_id"\s*:\s*(?:null|"([^"\\]{0,64})")')
_WORKSPACE = re.compile(rb'"workspace_id"\s*:\s*"([^"\\]{0,64})"')


def references(answer) -> tuple[list[tuple[dict, str, str]], set[str]]:
    """Every object in a parsed JSON answer that names someone by id, as (object, id key, name
    key), and the distinct ids. Walks iteratively: a deep tree cannot exhaust the stack."""
    holders: list[tuple[dict, str, str]] = []
    ids: set[str] = set()
    stack = [answer]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            for id_key, name_key in NAMED:
                if id_key in node:
                    holders.append((node, id_key, name_key))
                    value = node[id_key]
                    if type(value) is str:
                        ids.add(value)
            for value in node.values():
                if type(value) is dict or type(value) is list:
                    push(value)
        elif type(node) is list:
            for value in node:
                if type(value) is dict or type(value) is list:
                    push(value)
    return holders, ids


def apply(holders: list[tuple[dict, str, str]], names: dict[str, str]) -> None:
    """Writes each name beside its id: null for no id, or someone the directory does not name."""
    get = names.get
    for node, id_key, name_key in holders:
        value = node[id_key]
        node[name_key] = get(value) if type(value) is str else None


def answer_workspace(answer) -> str | None:
    """The Workspace an answer belongs to, where it says so: a Session (`workspace_id`) or an
    answer about one (`session.workspace_id`)."""
    if type(answer) is not dict:
        return None
    workspace_id = answer.get("workspace_id")
    session = answer.get("session")
    if workspace_id is None and type(session) is dict:
        workspace_id = session.get("workspace_id")
    return workspace_id if type(workspace_id) is str else None


def ids_in_json(raw: bytes) -> set[str]:
    """The distinct owner and author ids in a JSON body."""
    # findall: no match object per id (a 5 MB week view holds some 30,000 of them)
    return {value.decode("ascii", "replace") for value in {value for _, value in _ID.findall(raw)} if value}


def workspace_in_json(raw: bytes) -> str | None:
    """The one Workspace a JSON body names (a Session, or an answer about one); None when it
    names none, or several."""
    found = {m.group(1) for m in _WORKSPACE.finditer(raw)}
    return found.pop().decode("ascii", "replace") if len(found) == 1 else None


def name_json(raw: bytes, names: dict[str, str]) -> bytes:
    """The JSON body with `"owner_name": ...` right after every owner_id (and author_name after
    author_id): the name, or null for no id or someone the directory does not name."""
    encoded = {key.encode("ascii", "replace"): json.dumps(name, ensure_ascii=False).encode("utf-8")
               for key, name in names.items()}

    named: dict[bytes, bytes] = {}  # per distinct id text: a week view repeats a few ids thousands of times

    def _named(match: re.Match) -> bytes:
        whole = match[0]
        replacement = named.get(whole)
        if replacement is None:
            value = encoded.get(match[2], b"null") if match[2] else b"null"
            replacement = named[whole] = whole + b',"' + match[1] + b'_name":' + value
        return replacement

    return _ID.sub(_named, raw)
