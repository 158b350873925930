"""Job-log redaction against every encoding a job's tooling may print a secret in.

The property test feeds each kind of secret a job holds (SSH private keys, a join token, a
certificate key, a kubeconfig, an org secret, a cloud credential, and arbitrary text) through each
encoding, writes the result through the real `LogWriter` in pieces of arbitrary size with
flushes at arbitrary places, and checks that nothing stored lets a reader rebuild it: no run of
`WINDOW` characters of the printed form survives, whitespace, separators and case aside.
"""

from __future__ import annotations

import base64
import json
import logging
import string
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from apps.infrastructure.keygen import generate_key_pair
from apps.jobs.logs import REDACTED, LogWriter
from apps.jobs.models import JobLog
from apps.jobs.redaction import CONTEXT, Redactor, normalize
from apps.jobs.tests.support import bootstrap_job

pytestmark = pytest.mark.django_db

# Longer than the redactor's guaranteed piece, so a failure here is a real leak.
WINDOW = CONTEXT + 5

ED25519 = generate_key_pair(key_type="ed25519").private_key
RSA = generate_key_pair(key_type="rsa", bits=2048).private_key
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
    "    certificate-authority-data: "
    + base64.b64encode(b"CANARY-CA-" + bytes(range(256)) * 2).decode()
    + "\n    server: https://10.0.0.10:6443\n  name: default\nusers:\n- name: default\n  user:\n"
    "    client-key-data: "
    + base64.b64encode(b"CANARY-CLIENT-KEY-" + bytes(range(255, -1, -1)) * 2).decode()
    + "\n"
)
SECRETS = {
    "ed25519 key": ED25519,
    "rsa key": RSA,
    "join token": "K10" + "c0ffee" * 10 + "ab::server:" + "5e" * 16,
    "certificate key": "9f" * 32,
    "kubeconfig": KUBECONFIG,
    "org secret": "CANARY_ORG_SECRET_q8Jx-3vT0pLm7ZwA1bC9dE2fG",
    "cloud credential": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY",
}


def _wrap(text: str, width: int, newline: str) -> str:
    return newline.join(text[i : i + width] for i in range(0, len(text), width)) + newline


def _hex_separated(data: bytes, separator: str, upper: bool) -> str:
    pairs = [f"{byte:02X}" if upper else f"{byte:02x}" for byte in data]
    return "\n".join(separator.join(pairs[i : i + 16]) for i in range(0, len(pairs), 16)) + "\n"


def _split_lines(text: str, pieces: int) -> str:
    size = max(1, -(-len(text) // pieces))
    return "\n".join(text[i : i + size] for i in range(0, len(text), size)) + "\n"


# Each encoding: the parameters it varies (drawn by hypothesis), and how it prints a secret.
Encoding = tuple[st.SearchStrategy, Callable[[str, Any], str]]

ENCODINGS: dict[str, Encoding] = {
    "raw": (st.none(), lambda secret, _: secret + "\n"),
    "raw with CRLF": (st.none(), lambda secret, _: secret.replace("\n", "\r\n") + "\r\n"),
    "base64 wrapped": (
        st.tuples(st.integers(4, 120), st.sampled_from(["\n", "\r\n"])),
        lambda secret, p: _wrap(base64.b64encode(secret.encode()).decode(), p[0], p[1]),
    ),
    "base64 -w0": (st.none(), lambda secret, _: base64.b64encode(secret.encode()).decode() + "\n"),
    "url-safe base64": (
        st.none(),
        lambda secret, _: base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=") + "\n",
    ),
    "xxd -p": (st.none(), lambda secret, _: _wrap(secret.encode().hex(), 60, "\n")),
    "hex with separators": (
        st.tuples(st.sampled_from(["", " ", ":"]), st.booleans()),
        lambda secret, p: _hex_separated(secret.encode(), p[0], p[1]),
    ),
    "json-escaped": (st.none(), lambda secret, _: json.dumps({"value": secret}) + "\n"),
    "split over lines": (st.integers(2, 6), lambda secret, p: _split_lines(secret, p)),
    "percent-encoded": (
        st.booleans(),
        lambda secret, plus: (
            (urllib.parse.quote_plus if plus else urllib.parse.quote)(secret, safe="") + "\n"
        ),
    ),
    "base64 of a json file": (
        st.integers(0, 2),
        lambda secret, p: _wrap(
            base64.b64encode(json.dumps({"pad": "x" * p, "secret": secret}).encode()).decode(),
            76,
            "\n",
        ),
    ),
}

_ROTATE = str.maketrans(
    string.ascii_lowercase + string.ascii_uppercase + string.digits,
    string.ascii_lowercase[1:] + "a" + string.ascii_uppercase[1:] + "A" + string.digits[1:] + "0",
)


def _secret_part(encoding: str, secret: str, params: Any) -> str:
    """The normalized stretch of the printed text that depends on the secret: where it differs
    from the same encoding of a look-alike (every letter and digit shifted by one)."""
    print_it = ENCODINGS[encoding][1]
    printed = normalize(print_it(secret, params))[0]
    baseline = normalize(print_it(secret.translate(_ROTATE), params))[0]
    if len(printed) != len(baseline):
        return printed
    differs = [i for i, (a, b) in enumerate(zip(printed, baseline, strict=True)) if a != b]
    return printed[differs[0] : differs[-1] + 1] if differs else ""


@pytest.fixture
def token_writer(org, settings):
    """A bootstrap run's writer that holds the join token, flushed only when a test says so."""
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = bootstrap_job(org)
    writer = LogWriter(job)
    writer.add_secret(SECRETS["join token"])
    return job, writer, SECRETS["join token"]


def _leaked(printed_view: str, stored: str) -> str:
    """A run of WINDOW characters of the secret's printed form still in the stored log."""
    stored_view = normalize(stored)[0]
    for start in range(0, max(len(printed_view) - WINDOW + 1, 0)):
        window = printed_view[start : start + WINDOW]
        if window in stored_view:
            return window
    return ""


def _write_in_pieces(writer: LogWriter, text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8), label="cuts"))
    flush_after = data.draw(st.sets(st.integers(0, 8)), label="flushes")
    previous = 0
    for number, cut in enumerate([*cuts, len(text)]):
        writer.write("stdout", text[previous:cut])
        previous = cut
        if number in flush_after:
            writer.flush()


# Every secret through every encoding; hypothesis varies the encoding's parameters, where the
# output is cut into writes and where flushes fall.
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("secret_name", sorted(SECRETS))
@hsettings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(flush_bytes=st.sampled_from([64, 512, 4096]), data=st.data())
def test_no_secret_a_job_holds_can_be_read_back_from_its_log_in_any_encoding(
    org, settings, secret_name, encoding, flush_bytes, data
):
    settings.JOB_LOG_FLUSH_BYTES = flush_bytes
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = bootstrap_job(org)
    writer = LogWriter(job)
    for value in SECRETS.values():
        writer.add_secret(value)
    secret = SECRETS[secret_name]
    params = data.draw(ENCODINGS[encoding][0], label="params")
    printed = ENCODINGS[encoding][1](secret, params)

    writer.write("stdout", "## output begins ##\n")
    _write_in_pieces(writer, printed, data)
    writer.write("stdout", "## output ends ##\n")
    writer.flush(final=True)

    stored = "".join(JobLog.objects.filter(job=job).order_by("id").values_list("chunk", flat=True))
    assert _leaked(_secret_part(encoding, secret, params), stored) == "", (
        f"{secret_name} as {encoding} leaked"
    )
    assert REDACTED in stored
    assert "## output begins ##\n" in stored and "## output ends ##\n" in stored


# Characters whose case mapping changes length or crosses into ASCII ("İ" lowers to two
# characters, the Kelvin sign to "k", "ß" uppers to "SS", "ﬁ" to "FI"), printed around a secret.
TRICKY = "İ\u212aßﬁΣςǅ\u0345ŉ"
SURROUNDING = st.text(st.sampled_from(TRICKY + "aZ- _:\n"), max_size=60)


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=24, max_size=300
    ),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    before=SURROUNDING,
    after=SURROUNDING,
    data=st.data(),
)
def test_any_text_registered_as_a_secret_is_redacted_in_every_encoding(
    secret, encoding, before, after, data
):
    # The redactor alone (no database), for secrets of any alphabet and length, with text whose
    # case mapping is not one character for one before and after it.
    redactor = Redactor()
    redactor.add(secret)
    params = data.draw(ENCODINGS[encoding][0], label="params")
    printed = ENCODINGS[encoding][1](secret, params)
    assert _leaked(_secret_part(encoding, secret, params), redactor(before + printed + after)) == ""


@pytest.mark.parametrize("tricky", ["İ", "\u212a", "ß", "ﬁ", "ß".upper()])
@pytest.mark.parametrize("count", [3, 30, 300])
def test_a_secret_after_characters_whose_case_changes_length_is_redacted_and_no_line_is_lost(
    org, settings, tricky, count
):
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = bootstrap_job(org)
    writer = LogWriter(job)
    token = "sk_live_Zq8Xr2Lm9Pt4Vw7Ys1Bc"
    writer.add_secret(token)

    writer.write("stdout", "before\n")
    writer.write("stdout", f"name={tricky * count} token={token} xx{tricky}xx\n")
    writer.write("stdout", "after\n")
    writer.flush(final=True)

    stored = "".join(JobLog.objects.filter(job=job).order_by("id").values_list("chunk", flat=True))
    assert stored == f"before\nname={tricky * count} token={REDACTED} xx{tricky}xx\nafter\n"


def test_a_flush_whose_redaction_fails_stores_redacted_instead_of_losing_the_lines(
    token_writer, caplog
):
    job, writer, token = token_writer

    def broken(text: str, *, context: str = "") -> tuple[str, str]:
        raise IndexError(f"boom near {token}")

    writer.write("stdout", f"one\ntoken={token}\n")
    writer.system("next step")
    with caplog.at_level(logging.ERROR, logger="apps.jobs.logs"):
        writer.redact.redact = broken  # type: ignore[method-assign]
        assert writer.flush() == 2
        del writer.redact.redact
    writer.write("stdout", "later\n")
    writer.flush(final=True)

    rows = list(JobLog.objects.filter(job=job).order_by("id").values_list("stream", "chunk"))
    assert rows == [
        ("stdout", REDACTED + "\n"),
        ("system", REDACTED + "\n"),
        ("stdout", "later\n"),
    ]
    assert "IndexError" in caplog.text
    assert token not in caplog.text


def test_a_percent_encoded_secret_in_a_url_is_redacted(token_writer):
    job, writer, _ = token_writer
    password = "p@ss w0rd/with+sp&ce!!"
    writer.add_secret(password)

    writer.write("stdout", "url=https://u:p%40ss%20w0rd%2Fwith%2Bsp%26ce%21%21@h\n")
    writer.write("stdout", "form=pw=p%40ss+w0rd%2fwith%2bsp%26ce%21%21&x=1\n")
    writer.flush(final=True)

    stored = "".join(JobLog.objects.filter(job=job).order_by("id").values_list("chunk", flat=True))
    assert stored == f"url=https://u:{REDACTED}@h\nform=pw={REDACTED}&x=1\n"


def test_a_secret_split_across_two_flushed_batches_is_redacted_in_both(token_writer):
    job, writer, token = token_writer

    writer.write("stdout", f"first half {token[:30]}\n")
    writer.flush()
    writer.flush()  # held back once, then stored: the second half comes in another batch
    writer.write("stdout", f"{token[30:]} second half\n")
    writer.flush(final=True)

    chunks = list(JobLog.objects.filter(job=job).order_by("id").values_list("chunk", flat=True))
    assert chunks == [f"first half {REDACTED}\n", f"{REDACTED} second half\n"]


def test_a_base64_wrapped_private_key_does_not_leave_its_header_in_the_log(org, settings):
    # `base64 key.pem`: 76-column lines; the first decodes to "-----BEGIN OPENSSH PRIVATE KEY".
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = bootstrap_job(org)
    writer = LogWriter(job)
    writer.add_secret(ED25519)

    writer.write("stdout", _wrap(base64.b64encode(ED25519.encode()).decode(), 76, "\n"))
    writer.flush(final=True)

    stored = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert stored == REDACTED + "\n"


def test_ordinary_output_around_secrets_is_left_alone(org, settings):
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = bootstrap_job(org)
    writer = LogWriter(job)
    for value in SECRETS.values():
        writer.add_secret(value)
    output = (
        "Reading package lists... Done\n"
        "Setting up docker-ce (5:27.3.1-1~ubuntu.24.04~noble) ...\n"
        "ssh-ed25519 fingerprint SHA256:4k1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u\n"
        "0123456789abcdef0123456789abcdef done\n"
    )
    writer.write("stdout", output)
    writer.flush(final=True)

    assert "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True)) == output


def test_the_first_short_piece_of_a_secret_is_held_back_from_a_flush_until_the_rest_arrives(
    token_writer,
):
    job, writer, token = token_writer

    writer.write("stdout", f"step one\n{token[:10]}\n")
    writer.flush()  # the heartbeat's timed flush, between the two pieces
    writer.write("stdout", f"{token[10:]}\nstep two\n")
    writer.flush(final=True)

    chunks = list(JobLog.objects.filter(job=job).order_by("id").values_list("chunk", flat=True))
    assert chunks == ["step one\n", f"{REDACTED}\nstep two\n"]


def test_a_held_back_line_is_stored_at_the_next_flush_even_if_nothing_follows(token_writer):
    job, writer, token = token_writer

    writer.write("stdout", f"{token[:10]}\n")
    assert writer.flush() == 0
    assert writer.flush() == 1  # held once only: a quiet job's line is late by one flush


def test_a_held_back_line_keeps_its_place_before_lines_of_other_streams_written_after_it(
    token_writer,
):
    job, writer, token = token_writer

    writer.write("stdout", f"one\n{token[:10]}\n")
    writer.flush()
    writer.system("next step")
    writer.flush()
    writer.flush(final=True)

    rows = list(JobLog.objects.filter(job=job).order_by("id").values_list("stream", "chunk"))
    # Nothing followed the piece: it goes out alone (the documented residue), but in its place.
    assert rows == [("stdout", "one\n"), ("stdout", token[:10] + "\n"), ("system", "next step\n")]
