"""A reader for the subset of the nats-server configuration format that deploy/nats uses.

Maps `{}` (also the top level), arrays `[]`, keys followed by `:`, `=` or blanks, values that are
quoted strings, bare words or variables (`$NAME`, kept as `Var`), `#` and `//` comments, and
`include` lines (kept as `Include`). Items of maps and arrays are separated by newlines or commas.
Enough to compare the users and permissions of auth.conf with what the services need; the real
server parses the same files in test_nats_live.py, so a file this reader misreads fails there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r]+)
  | (?P<comment>(\#|//)[^\n]*)
  | (?P<newline>\n)
  | (?P<punct>[{}\[\],:=])
  | (?P<string>"(?:[^"\\]|\\.)*"|'[^']*')
  | (?P<word>[^\s{}\[\],:="'#]+)
    """,
    re.VERBOSE,
)


class NatsConfError(ValueError):
    """The text is not in the subset this reader understands."""


@dataclass(frozen=True, slots=True)
class Var:
    """An unquoted `$NAME`: the server substitutes a config variable or environment variable."""

    name: str


@dataclass(frozen=True, slots=True)
class Include:
    path: str


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise NatsConfError(f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            out.append((kind, match.group()))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise NatsConfError("unexpected end of input")
        self.pos += 1
        return token

    def skip_separators(self) -> None:
        while (token := self.peek()) is not None and (
            token[0] == "newline" or token == ("punct", ",")
        ):
            self.pos += 1

    def members(self, closing: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        includes: list[Include] = []
        while True:
            self.skip_separators()
            token = self.peek()
            if token is None:
                if closing is not None:
                    raise NatsConfError(f"missing {closing!r}")
                break
            if token == ("punct", closing):
                self.pos += 1
                break
            kind, key = self.take()
            if kind == "string":
                key = key[1:-1]
            elif kind != "word":
                raise NatsConfError(f"expected a key, got {key!r}")
            if key == "include":
                includes.append(Include(str(self.value())))
                continue
            nxt = self.peek()
            if nxt is not None and nxt[0] == "punct" and nxt[1] in ":=":
                self.pos += 1
            if key in result:
                raise NatsConfError(f"key {key!r} appears twice")
            result[key] = self.value()
        if includes:
            result["include"] = includes
        return result

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "punct" and text == "{":
            return self.members("}")
        if kind == "punct" and text == "[":
            items: list[Any] = []
            while True:
                self.skip_separators()
                token = self.peek()
                if token == ("punct", "]"):
                    self.pos += 1
                    return items
                items.append(self.value())
        if kind == "string":
            return text[1:-1]
        if kind == "word":
            if text.startswith("$"):
                return Var(text[1:])
            if text in ("true", "false"):
                return text == "true"
            return int(text) if text.isdigit() else text
        raise NatsConfError(f"unexpected {text!r}")


def parse(text: str) -> dict[str, Any]:
    """The top-level map of a configuration file."""
    parser = _Parser(text)
    parser.skip_separators()
    if parser.peek() == ("punct", "{"):
        parser.pos += 1
        return parser.members("}")
    return parser.members(None)
