"""Enough of CSS Syntax Level 3 (https://www.w3.org/TR/css-syntax-3/) to read a stylesheet as a
browser does: tokens (§4), rules and declarations (§5), and the font families a ``font`` or
``font-family`` declaration names. Used to check the styles inside the report, where no browser
is at hand: text a browser could not read as CSS fails here too."""

from __future__ import annotations

import re
from typing import NamedTuple

TOKEN = re.compile(r"""
    (?P<comment>/\*.*?\*/)
  | (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<hash>\#[-\w]+)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:%|[a-zA-Z]+)?)
  | (?P<function>-{0,2}[a-zA-Z_][-\w]*\()
  | (?P<ident>--[-\w]*|-?[a-zA-Z_][-\w]*)
  | (?P<at>@[-\w]+)
  | (?P<punct>[{}()\[\]:;,])
  | (?P<delim>.)
""", re.X | re.S)


class Token(NamedTuple):
    kind: str
    text: str


class Declaration(NamedTuple):
    property: str
    value: list[Token]


def tokens(css: str) -> list[Token]:
    return [Token(m.lastgroup, m.group()) for m in TOKEN.finditer(css) if m.lastgroup not in ("comment", "ws")]


def declarations(css: str) -> tuple[list[Declaration], list[list[Token]]]:
    """Every declaration in the sheet (inside @media too), and the pieces a browser would drop as
    invalid (no property, no colon)."""
    found, invalid = [], []

    def block(toks: list[Token], i: int) -> int:
        """Read a {...} block's declarations from just after its '{'; returns the index after '}'."""
        current: list[Token] = []
        while i < len(toks):
            t = toks[i]
            if t.text == "{":  # a nested rule (inside @media): its prelude is what came before
                current = []
                i = block(toks, i + 1)
                continue
            if t.text in (";", "}"):
                if current:
                    if len(current) >= 2 and current[0].kind == "ident" and current[1].text == ":":
                        found.append(Declaration(current[0].text.lower(), current[2:]))
                    else:
                        invalid.append(current)
                current = []
                i += 1
                if t.text == "}":
                    return i
                continue
            current.append(t)
            i += 1
        return i

    toks, i = tokens(css), 0
    while i < len(toks):
        if toks[i].text == "{":
            i = block(toks, i + 1)
        else:
            i += 1
    return found, invalid


def font_families(d: Declaration) -> list[Token | tuple[Token, ...]]:
    """The families of a ``font-family`` declaration, or of a ``font`` shorthand (what follows its
    size and line height): each one string token, or a run of identifiers."""
    value = list(d.value)
    if d.property == "font":
        sizes = [n for n, t in enumerate(value) if t.kind == "number"]
        start = sizes[0] + 1 if sizes else 0
        if start < len(value) and value[start].text == "/":
            start += 2
        value = value[start:]
    families, current = [], []
    for t in [*value, Token("punct", ",")]:
        if t.text == ",":
            families.append(current[0] if len(current) == 1 and current[0].kind == "string" else tuple(current))
            current = []
        else:
            current.append(t)
    return families


def well_formed_family(family: Token | tuple[Token, ...]) -> bool:
    """A quoted name, or one or more identifiers (CSS Fonts 4 §2.1 <family-name>, <generic-family>)."""
    if isinstance(family, Token):
        return family.kind == "string"
    return bool(family) and all(t.kind == "ident" for t in family)
