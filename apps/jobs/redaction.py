"""Finding the secrets a job holds in its output, whatever encoding they were printed in.

A job's tooling may print a secret raw, JSON-escaped, base64-encoded (standard or URL-safe, as one
line or wrapped at any width, with LF or CRLF), hex-encoded (either case, `xxd -p`'s 60-column
lines, bytes separated by spaces or colons), or cut into pieces on consecutive lines. Rather than
list every spelling, text and secrets are compared in one *normalized* alphabet:

- whitespace, `:` and the JSON escapes `\\n`, `\\r`, `\\t` are dropped (line wraps, CRLF,
  separators, an escaped PEM all disappear);
- ASCII letters are lowercased (hex and percent-escapes in either case) and `-`/`_` read as
  `+`/`/` (URL-safe base64). The fold maps one character to one, so every normalized character
  keeps its place in the original (`str.lower()` does not: "İ" lowers to two characters).

Each secret is registered in a few *forms* — the text, its JSON-escaped text, its percent-encoded
text (`%20` or `+` for a space, as in a URL or a form body), and of both the hex
and the base64 at each of the three byte alignments (a secret inside a larger file that is
base64-encoded starts at any offset); each form is normalized the same way. Every
`SAMPLE`-th run of `GRAM` characters of each form is indexed. Scanning the normalized text, a
hit is extended left and right for as long as it agrees with its form, so a whole encoded
secret, a half of one, or one spread over many lines is found as one stretch, and the original
characters under that stretch are replaced by a single `[REDACTED]`. Any piece of at least
`GRAM + SAMPLE - 1` normalized characters of any form is found on its own; shorter pieces are
found when they continue a longer one, across line breaks and (with the previous chunk's tail
as context, see `redact`) across flushed chunks. A streaming writer also holds back, once, a
batch's last line when it ends like the start of a secret (`may_continue`), so a secret's first
short piece is stored together with the rest.

Memory is bounded by the secrets, not the output: one index entry per `SAMPLE` characters of each
form (a few forms per secret), and `CONTEXT` characters per stream. Some boilerplate of a
structured secret (PEM armour, kubeconfig keys) is redacted wherever it appears; that is the
price of finding the rest.
"""

from __future__ import annotations

import base64
import json
import re
import string
import urllib.parse

REDACTED = "[REDACTED]"
GRAM = 16
SAMPLE = 4
# What a streaming caller keeps of a chunk (normalized) to find a secret continuing in the next.
CONTEXT = GRAM + SAMPLE - 1
# A flushed batch whose last line ends in this many characters found inside a secret's form is
# held back until more output (or the next flush): that may be the first piece of a secret.
HOLD_MIN = 8
# Shorter secrets (and leftover fragments) are not worth hiding and would redact ordinary text.
MIN_SECRET = 12
# A k-gram that recurs in a form (runs of "AAAA" in key blobs) keeps only a few of its places.
_MAX_PLACES = 8

_DROPPED = re.compile(r"\\[nrt]|[\s:]")
# One character for one, so `normalize`'s index map stays aligned with the text it folds.
_FOLD = str.maketrans(string.ascii_uppercase + "-_", string.ascii_lowercase + "+/")
# base64 characters at the start of an encoding that also depend on bytes before the secret.
_ALIGN_SKIP = {0: 0, 1: 2, 2: 3}


def normalize(text: str) -> tuple[str, list[int]]:
    """The normalized text and, for each of its characters, its index in `text`."""
    chars: list[str] = []
    where: list[int] = []
    last = 0
    for dropped in _DROPPED.finditer(text):
        start = dropped.start()
        if start > last:
            chars.append(text[last:start])
            where.extend(range(last, start))
        last = dropped.end()
    if last < len(text):
        chars.append(text[last:])
        where.extend(range(last, len(text)))
    return "".join(chars).translate(_FOLD), where


def _base64_cores(data: bytes) -> set[str]:
    """The base64 of `data` as it reads standalone and inside a larger encoded blob."""
    forms = {base64.b64encode(data).decode()}
    for align, skip in _ALIGN_SKIP.items():
        encoded = base64.b64encode(b"\0" * align + data).decode()
        # Characters fully determined by the secret's bytes (not by what precedes or follows).
        whole = (align + len(data)) * 8 // 6
        forms.add(encoded[skip:whole])
    return forms


def secret_forms(value: str) -> set[str]:
    """Every normalized form of a secret that is looked for."""
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    texts = {
        value,
        escaped,
        json.dumps(value)[1:-1],  # Python's default: non-ASCII as \uXXXX
        # Go's encoding/json (the tooling's language): HTML characters escaped too.
        escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
    }
    forms: set[str] = set()
    for text in texts:
        data = text.encode()
        forms.add(text)
        forms.add(data.hex())
        forms.update(_base64_cores(data))
    # Percent-encoded as in a URL or a form body; only the raw text, and not hex/base64 again:
    # nobody base64-encodes a URL-quoted secret, and each form costs index memory.
    forms.add(urllib.parse.quote(value, safe=""))
    forms.add(urllib.parse.quote_plus(value, safe=""))
    normalized = {normalize(form)[0] for form in forms}
    return {form for form in normalized if len(form) >= MIN_SECRET}


class Redactor:
    """Replaces every registered secret, in any of its forms, in a text."""

    def __init__(self) -> None:
        self._forms: list[str] = []
        self._known: set[str] = set()
        # hash of a k-gram -> its place(s), each `form number << 32 | offset`: compact, since a
        # worker runs many jobs at once and each holds its own index.
        self._index: dict[int, int | list[int]] = {}
        self._short: list[str] = []
        self.longest = 0

    def add(self, value: str | bytes | None) -> None:
        if not value:
            return
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        for form in secret_forms(text):
            if form in self._known:
                continue
            self._known.add(form)
            self.longest = max(self.longest, len(form))
            if len(form) < GRAM:
                self._short.append(form)
                continue
            number = len(self._forms)
            self._forms.append(form)
            starts = list(range(0, len(form) - GRAM + 1, SAMPLE))
            if starts[-1] != len(form) - GRAM:
                starts.append(len(form) - GRAM)
            for start in starts:
                key, place = hash(form[start : start + GRAM]), number << 32 | start
                known = self._index.get(key)
                if known is None:
                    self._index[key] = place
                elif isinstance(known, int):
                    self._index[key] = [known, place]
                elif len(known) < _MAX_PLACES:
                    known.append(place)

    def __call__(self, text: str) -> str:
        return self.redact(text)[0]

    def redact(self, text: str, *, context: str = "") -> tuple[str, str]:
        """`text` with every secret replaced, and the context to pass with the next chunk of the
        same stream (its last `CONTEXT` normalized characters, kept in memory only).

        `context` is the previous chunk's: a secret that began there and continues here is
        found, and its part here replaced."""
        if not text or not (self._forms or self._short):
            return text, ""
        folded, where = normalize(text)
        tail = (context + folded)[-CONTEXT:]
        view = context + folded
        spans = [
            (max(start - len(context), 0), end - len(context))
            for start, end in self._matches(view)
            if end > len(context)
        ]
        if not spans:
            return text, tail
        out: list[str] = []
        cursor = 0
        for start, end in _merged(spans):
            first, last = where[start], where[end - 1] + 1
            out.append(text[cursor:first])
            out.append(REDACTED)
            cursor = last
        out.append(text[cursor:])
        return "".join(out), tail

    def may_continue(self, line: str) -> bool:
        """Whether `line` ends in what could be the first piece of a secret printed over several
        lines: its last `HOLD_MIN` normalized characters occur in one of the forms."""
        tail = normalize(line[-4 * CONTEXT :])[0][-HOLD_MIN:]
        if len(tail) < HOLD_MIN:
            return False
        return any(tail in form for form in self._forms) or any(
            tail in form for form in self._short
        )

    def safe_cut(self, text: str, cut: int) -> int:
        """A place at or before `cut` to split `text` that falls inside no secret found in it."""
        folded, where = normalize(text)
        for start, end in _merged(self._matches(folded)):
            first, last = where[start], where[end - 1] + 1
            if first < cut < last:
                return first
        return cut

    def _matches(self, view: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        covered = 0
        index, forms = self._index, self._forms
        for position in range(len(view) - GRAM + 1):
            gram = view[position : position + GRAM]
            places = index.get(hash(gram))
            if places is None or position + GRAM <= covered:
                continue
            for place in [places] if isinstance(places, int) else places:
                form, offset = forms[place >> 32], place & 0xFFFFFFFF
                if form[offset : offset + GRAM] != gram:
                    continue  # another k-gram with the same hash
                left = 0
                while (
                    left < position
                    and left < offset
                    and view[position - left - 1] == form[offset - left - 1]
                ):
                    left += 1
                right = position + GRAM
                end = offset + GRAM
                while right < len(view) and end < len(form) and view[right] == form[end]:
                    right += 1
                    end += 1
                spans.append((position - left, right))
                covered = max(covered, right)
        for form in self._short:
            start = view.find(form)
            while start != -1:
                spans.append((start, start + len(form)))
                start = view.find(form, start + 1)
        return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
