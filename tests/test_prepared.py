"""Prebuilt messages (`mail.prepared`, `mail.qp`, `mail.dkim`) read back the way mail clients
and verifiers read them: Python's email parser for the bodies and headers, dkimpy for the
signatures.

1. Any text and HTML bodies, with the digest markers anywhere in them and filled with any
   values, parse back to the bodies with the values substituted (HTML-escaped in the HTML);
   To and Subject decode to what went in; the bytes keep the wire rules (CRLF only, lines of
   at most 76 characters in the bodies and 998 in the headers, no line starting with "." or
   "From ", 7-bit), so they go into SMTP DATA as they are.
2. RSA-2048, Ed25519 alone and both together sign messages that dkimpy verifies, signed by a
   `Signer` of keys and by `Composer.compose` with the keys in settings; a changed body or To
   header fails every signature.
3. Filling one `Prepared` for many recipients reuses its static pieces (the same objects) and
   no recipient's values reach another's message.

The budget follows tests/test_fuzz.py: derandomized, a fixed number of examples
(FUZZ_EXAMPLES overrides it, FUZZ_RANDOM=1 draws new ones), no deadline, no example database
(Hypothesis's own caches go to .hypothesis/, or HYPOTHESIS_STORAGE_DIRECTORY).
"""

from __future__ import annotations

import base64
import email.policy
import functools
import html
import os
import re
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast

import dkim
import hypothesis
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from newsletter.config import MailSettings, Settings, SiteSettings
from newsletter.digests.compose import EMAIL, GREETING, MARKERS, PREFERENCES, greeting
from newsletter.errors import InvalidInputError
from newsletter.mail import Composer, Letter
from newsletter.mail.dkim import SIGNED_HEADERS, Key, Signer
from newsletter.mail.prepared import Filled, Prepared, Slot
from newsletter.subscribers.addresses import clean_name, normalize_email
from newsletter.text import xml_safe

# Huge values are generated on purpose; Hypothesis warns when it prints one.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)

# ----------------------------------------------------------------------------- the budget

_EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "").strip()
_RANDOM = os.environ.get("FUZZ_RANDOM", "") == "1"


def budget(examples: int) -> hypothesis.settings:
    """test_fuzz.py's profile with `examples` examples (FUZZ_EXAMPLES overrides it)."""
    return hypothesis.settings(
        derandomize=not _RANDOM,
        database=None,
        deadline=None,
        print_blob=_RANDOM,
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each `weight` times as likely."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DATE = "Fri, 20 Nov 2026 08:00:00 +0000"
SELECTOR = "s2026"
DOMAIN = "news.test"
FROM = "The Asia Ledger <newsletter@news.test>"


def headers_for(subject: str) -> list[tuple[str, str]]:
    """The static headers, as Composer.static_headers gives them."""
    return [("From", FROM), ("Subject", subject), ("List-Id", "The Asia Ledger <digest.news.test>")]


# ----------------------------------------------------------------------------- strategies

# Pieces of text that are special on the wire or to the encoder: a leading dot (SMTP's end of
# data), "From " (mbox), "=" (the quoted-printable escape), white space at a line end (dropped
# by decoders), every kind of line end, non-ASCII of 2, 3 and 4 bytes, controls, markup.
SPECIALS = [
    *[".", "..", ".\n", "\n.", "\n.\n", "From ", "\nFrom ", "From", "F", ">From "],
    *["=", "==", "=\n", "=3D", "=2E", "=20", "=\r\n", "?=", "=?"],
    *[" ", "\t", "  ", " \n", "\t\n", " \r\n", " .", "\n "],
    *["\r", "\n", "\r\n", "\n\r", "\r\r\n", "\n\n", "\r\n\r\n"],
    *["é", "ü", "山田太郎", "😀", "👩\u200d💻", "\u0301", "\ufeff"],
    *["\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028"],
    *["&", "&amp;", "<b>", "</p>", '"', "'", "\\", "--", "--=_nl_", "@", "@@"],
]
# Lines of every length around 76 of one kind of character (each of which takes 1, 3, 6, 9 or
# 12 characters encoded), ending in something the fold could put at a line start.
UNITS = ["x", "é", "山", "😀", "=", " ", "\t", ".", "F", "\x00"]
TAILS = ["", ".", "..", "From ", "From", "=", " ", "\t", "é", "😀", "\n", ".\n", "From x\n", " \n"]
lines_around_76 = st.builds(
    lambda unit, count, tail: unit * count + tail,
    st.sampled_from(UNITS),
    st.one_of(st.integers(68, 80), st.integers(0, 160)),
    st.sampled_from(TAILS),
)
URL_CHARS = string.ascii_letters + string.digits + "-._~/?&=%+#;:@!$'()*,"
long_urls = st.text(alphabet=URL_CHARS, min_size=150, max_size=320).map(
    lambda tail: "https://news.test/unsubscribe/" + tail
)
# Text without surrogates (the default alphabet), which no body or value can hold.
any_text = st.text(max_size=40)
chunks = weighted(
    (3, st.sampled_from(MARKERS)),
    (4, st.sampled_from(SPECIALS)),
    (3, lines_around_76),
    (2, st.text(alphabet=string.ascii_letters + " ", max_size=20)),
    (1, long_urls),
    (2, any_text),
)
bodies = st.lists(chunks, max_size=25).map("".join)

# Names as the service keeps them (clean_name: no controls, no encoded words, at most 100).
NAME_CHARS = string.ascii_letters + " .,'-\"\\()<>@;:=?éü山田😀"
names = st.one_of(
    st.just(""),
    any_text,
    st.text(alphabet=NAME_CHARS, max_size=120),
    st.sampled_from(
        [
            'Siti "Sunny" Rahma',
            "Back\\slash \\ \\\\",
            "O'Brien, Jr. (Ops)",
            "山田 太郎",
            "Zoë 😀 Ünïcödé",
            "x" * 59,
            "x" * 60,
            "a" * 100,
            "山" * 100,
            "<script>alert(1)</script> & co",
        ]
    ),
).map(clean_name)

LOCAL_CHARS = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"


def address_or_none(local: str, labels: list[str]) -> str | None:
    try:
        return normalize_email(f"{local}@{'.'.join([*labels, 'test'])}")
    except InvalidInputError:
        return None


addresses = st.builds(
    address_or_none,
    st.lists(st.text(alphabet=LOCAL_CHARS, min_size=1, max_size=24), min_size=1, max_size=3).map(
        ".".join
    ),
    st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True), max_size=3),
).filter(lambda address: address is not None)

# A value takes the place of its marker. Values are never empty and hold no CR, and none starts
# with a line break: the greeting, the address and the links never do (a marker between the
# CR and the LF of one line end, filled with nothing, would leave two line ends).
HOSTILE_VALUES = ["&<>\"'", "a & b < c > d", "&amp;", "=3D", "=", ".", "From me", "x\ny", "\\"]
values = st.one_of(
    names.map(greeting),
    addresses,
    long_urls,
    st.sampled_from(HOSTILE_VALUES),
    any_text.map(lambda text: text.replace("\r", "").lstrip("\n")).filter(bool),
)
value_maps = st.fixed_dictionaries({marker: values for marker in MARKERS})


def one_line(text: str) -> str:
    """A subject as digests.compose.subject_of makes it from titles (which are XML-safe): one
    line, single spaces, 900 characters at most."""
    return " ".join(xml_safe(text).split())[:900]


subjects = st.lists(
    st.one_of(
        any_text,
        st.sampled_from(
            [
                *["Ünïcödé", "山田の週報", "😀", "x" * 90, "Re:", '"q"', "a\\b", "=", "?="],
                *["=?utf-8?q?hi?=", "=?utf-8?b?aGk=?=", "=?", "=?x?q?y?="],  # spelt out
            ]
        ),
    ),
    max_size=12,
).map(lambda parts: one_line(" ".join(parts)))

# ----------------------------------------------------------------------------- reading


def parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(data)


def lf(text: str) -> str:
    """`text` with every line end (CRLF, CR, LF) as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


_MARKER = re.compile("|".join(re.escape(m) for m in MARKERS))


def substituted(body: str, values: Mapping[str, str], escape: bool) -> str:
    """What a reader should see: the markers replaced by their values (HTML-escaped in HTML)."""
    return lf(
        _MARKER.sub(lambda m: html.escape(values[m.group()]) if escape else values[m.group()], body)
    )


def assert_wire_rules(data: bytes) -> None:
    """Bytes that go into DATA unchanged and through every server unchanged."""
    assert data.isascii(), [line for line in data.split(b"\r\n") if not line.isascii()][:3]
    assert b"\x00" not in data
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    assert not [line for line in lines if b"\r" in line or b"\n" in line], "bare CR or LF"
    end_of_head = lines.index(b"")
    for n, line in enumerate(lines):
        assert len(line) <= (998 if n < end_of_head else 76), line
        assert not line.startswith(b"."), line  # would need dot-stuffing
        assert not line.startswith(b"From "), line  # mbox guards rewrite it to ">From "


# CPython's address parser keeps the white space between two adjacent encoded words of a
# display name (RFC 2047 section 6.2 says to ignore it; Subject, unstructured, does): a long
# non-ASCII name reads with a space where the service broke it into words. Detected, so the
# test holds on a Python that follows the RFC.
_PYTHON_SPACES_ENCODED_WORDS = (
    parse(b"To: =?utf-8?b?YQ==?=\r\n =?utf-8?b?Yg==?= <a@b.test>\r\n\r\n")["To"]
    .addresses[0]
    .display_name
    == "a b"
)
_ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")


def assert_to(message: EmailMessage, name: str, address: str) -> None:
    [mailbox] = message["To"].addresses
    assert mailbox.addr_spec == address
    raw = dict(message.raw_items())["To"]
    if not name:
        assert raw == address
        assert mailbox.display_name == ""
        return
    assert raw.endswith(f"<{address}>")
    words = [base64.b64decode(word).decode() for word in _ENCODED_WORD.findall(raw)]
    if not words:  # a quoted string
        assert mailbox.display_name == name
        return
    assert "".join(words) == name  # as RFC 2047 says to read them
    spaced = " ".join(words) if _PYTHON_SPACES_ENCODED_WORDS else name
    assert mailbox.display_name == spaced


def assert_reads(
    data: bytes, *, subject: str, name: str, address: str, text: str, html_body: str
) -> EmailMessage:
    """`data` keeps the wire rules and reads as a message with these parts and headers."""
    assert_wire_rules(data)
    message = parse(data)
    assert not message.defects
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert not [part.defects for part in parts if part.defects]
    got_text, got_html = (lf(cast(EmailMessage, part).get_content()) for part in parts)
    assert got_text == text
    assert got_html == html_body
    assert message["Subject"] == subject
    assert message["From"] == FROM
    assert_to(message, name, address)
    return message


# ----------------------------------------------------------------------------- 1. bodies


@budget(250)
@given(
    text=bodies,
    html_body=bodies,
    values=value_maps,
    subject=subjects,
    name=names,
    address=addresses,
)
@example(  # markers at the start, end, side by side, mid-word; no final newline
    text=f"{GREETING}{EMAIL}x{PREFERENCES}\n.{GREETING}From {EMAIL}",
    html_body=f"<a href='{PREFERENCES}'>a{EMAIL}b</a>{GREETING}",
    values={m: f"&<>{m}\"'" for m in MARKERS},
    subject="Ünïcödé 山田の週報 😀 " + "x" * 120,
    name='Zoë "Q" \\ 😀' * 5,
    address="o'brien+tag@mail.news.test",
)
@example(  # a line that folds right before a dot, and one before "From "
    text="x" * 75 + ".y\n" + "x" * 75 + "From z\n" + "=" * 30 + "\n",
    html_body="é" * 13 + "." + "\n " * 3,
    values=dict.fromkeys(MARKERS, "."),
    subject="",
    name="",
    address="a@b.test",
)
def test_filled_messages_read_back_as_written(
    text: str,
    html_body: str,
    values: dict[str, str],
    subject: str,
    name: str,
    address: str,
) -> None:
    prepared = Prepared(headers_for(subject), text, html_body, MARKERS)
    filled = prepared.fill(address, name, [("Date", DATE), ("Message-ID", "<1@news.test>")], values)
    message = assert_reads(
        filled.data(None),
        subject=subject,
        name=name,
        address=address,
        text=substituted(text, values, escape=False),
        html_body=substituted(html_body, values, escape=True),
    )
    assert message["Date"] == DATE
    assert message["Message-ID"] == "<1@news.test>"


def test_a_body_without_a_final_newline_reads_without_one() -> None:
    """A piece whose last line has no newline ends in a soft line break ("=" CRLF): a slot's
    value goes on the same line for the reader, and the CRLF before the next boundary belongs
    to the boundary, so the part decodes without a newline at its end."""
    prepared = Prepared(headers_for("s"), f"Bye {GREETING}", f"<p>{GREETING}</p>", MARKERS)
    values = dict.fromkeys(MARKERS, "Hello Siti & co,")
    data = prepared.fill("a@b.test", "", [], values).data(None)
    assert b"\r\n\r\nBye=20=\r\nHello Siti & co,=\r\n\r\n--" in data
    message = parse(data)
    text, markup = (cast(EmailMessage, part).get_content() for part in message.iter_parts())
    assert text == "Bye Hello Siti & co,"
    assert markup == "<p>Hello Siti &amp; co,</p>"

    prepared = Prepared(headers_for("s"), "Bye\n", "", MARKERS)
    data = prepared.fill("a@b.test", "", [], values).data(None)
    text, markup = (cast(EmailMessage, part).get_content() for part in parse(data).iter_parts())
    assert text == "Bye\r\n"  # one line end, as the wire has it
    assert markup == ""


@pytest.mark.parametrize(
    ("line", "wire"),
    [
        (".hidden", b"=2Ehidden=\r\n"),
        ("From here", b"=46rom here=\r\n"),
        ("Fromage", b"Fromage=\r\n"),
        ("x" * 75 + ".y", b"x" * 75 + b"=\r\n=2Ey=\r\n"),
        ("x" * 75 + "From y", b"x" * 75 + b"=\r\n=46rom y=\r\n"),
        ("trailing \n", b"trailing=20\r\n"),
        ("a=b\tc\t\n", b"a=3Db\tc=09\r\n"),
    ],
    ids=["dot", "From", "Fromage", "fold before dot", "fold before From", "space", "tab"],
)
def test_the_wire_form_of_special_lines(line: str, wire: bytes) -> None:
    data = Prepared(headers_for("s"), line, "", MARKERS).fill("a@b.test", "", [], {}).data(None)
    assert b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + wire + b"\r\n--" in data
    [text, _] = parse(data).iter_parts()
    assert lf(cast(EmailMessage, text).get_content()) == line


@pytest.mark.parametrize(
    "subject",
    [
        "Decoding =?utf-8?q?hi?= there",  # the title of a post about MIME
        "Café",  # short: CPython's folder would write it as it is, 8-bit
        "Ça va digest digest digest " + "x" * 90 + " é",  # CPython's folder lost a space
        "Weekly digest: " + "x" * 70 + " é",  # and doubled one here
    ],
    ids=["spelt-out encoded word", "short non-ASCII", "long, space lost", "long, space doubled"],
)
def test_subjects_round_trip_in_7_bits(subject: str) -> None:
    data = Prepared(headers_for(subject), "", "").fill("a@b.test", "", [], {}).data(None)
    assert_wire_rules(data)
    assert parse(data)["Subject"] == subject


# ----------------------------------------------------------------------------- 2. DKIM

ED_SELECTOR = f"{SELECTOR}-ed25519"  # the default of [mail] dkim_ed25519_selector


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def txt_record(algorithm: str) -> bytes:
    """The DNS TXT record that publishes the public key of `algorithm`."""
    if algorithm == "rsa-sha256":
        der = (
            rsa_key()
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    raw = (
        ed25519_key()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)


# The signatures of each way of signing, in order (algorithm, selector): the key of
# dkim_key_file under dkim_selector, the additional Ed25519 key under its own selector.
SIGNATURES = {
    "rsa": [("rsa-sha256", SELECTOR)],
    "ed25519": [("ed25519-sha256", SELECTOR)],
    "rsa+ed25519": [("rsa-sha256", SELECTOR), ("ed25519-sha256", ED_SELECTOR)],
}


def zone(signatures: Sequence[tuple[str, str]]) -> dict[bytes, bytes]:
    """The DNS as the operator sets it up: one TXT record at each selector's name."""
    return {
        f"{selector}._domainkey.{DOMAIN}.".encode(): txt_record(algorithm)
        for algorithm, selector in signatures
    }


def signature_tags(message: EmailMessage) -> list[dict[str, str]]:
    tags = []
    for value in message.get_all("DKIM-Signature", []):
        pairs = (tag.split("=", 1) for tag in re.sub(r"\s+", "", str(value)).split(";") if tag)
        tags.append({name: tag for name, tag in pairs})
    return tags


def verify_all(data: bytes, records: Mapping[bytes, bytes]) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of `data`, in order, with `records` for DNS."""

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    results = []
    for idx in range(len(signature_tags(parse(data)))):
        try:
            results.append(bool(dkim.DKIM(data).verify(idx=idx, dnsfunc=dns)))
        except dkim.DKIMException:  # dkimpy raises on a body hash mismatch
            results.append(False)
    return results


def tamper_body(data: bytes) -> bytes:
    start = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    assert start in data
    return data.replace(start, start + b"Send your password to evil.test=\r\n", 1)


def tamper_to(data: bytes, address: str) -> bytes:
    start = data.index(b"\r\nTo:") + 2
    match = re.compile(rb"\r\n(?![ \t])").search(data, start)
    assert match is not None
    end = match.start()
    field = data[start:end]
    assert address.encode() in field
    return data[:start] + field.replace(address.encode(), b"x" + address.encode()) + data[end:]


def signer_of(kind: str) -> Signer:
    private: dict[str, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey] = {
        "rsa-sha256": rsa_key(),
        "ed25519-sha256": ed25519_key(),
    }
    keys = (Key(a, private[a], selector=s) for a, s in SIGNATURES[kind])
    return Signer(SELECTOR, DOMAIN, tuple(keys))


def assert_signed(data: bytes, signatures: Sequence[tuple[str, str]], address: str) -> None:
    """`data` carries these signatures (algorithm, selector), covering the RFC 8058 headers;
    dkimpy verifies each, and none once the body or the To header is changed."""
    message = parse(data)
    tags = signature_tags(message)
    assert [(t["a"], t["s"]) for t in tags] == list(signatures)
    present = {name.lower() for name, _ in message.raw_items()}
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= present
    for t in tags:
        assert (t["d"], t["c"]) == (DOMAIN, "relaxed/relaxed")
        assert t["h"].split(":") == [h for h in SIGNED_HEADERS if h in present]
    records = zone(signatures)
    assert verify_all(data, records) == [True] * len(tags)
    assert verify_all(tamper_body(data), records) == [False] * len(tags)
    assert verify_all(tamper_to(data, address), records) == [False] * len(tags)


@pytest.mark.parametrize("kind", list(SIGNATURES))
def test_signed_filled_messages_verify(kind: str) -> None:
    signer = signer_of(kind)

    @budget(30)
    @given(
        text=bodies,
        html_body=bodies,
        values=value_maps,
        subject=subjects,
        name=names,
        address=addresses,
        unsubscribe=long_urls,
    )
    def check(
        text: str,
        html_body: str,
        values: dict[str, str],
        subject: str,
        name: str,
        address: str,
        unsubscribe: str,
    ) -> None:
        prepared = Prepared(headers_for(subject), text, html_body, MARKERS)
        headers = [
            ("Date", DATE),
            ("Message-ID", "<1@news.test>"),
            ("List-Unsubscribe", f"<{unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        data = prepared.fill(address, name, headers, values).data(signer)
        assert_reads(
            data,
            subject=subject,
            name=name,
            address=address,
            text=substituted(text, values, escape=False),
            html_body=substituted(html_body, values, escape=True),
        )
        assert_signed(data, SIGNATURES[kind], address)

    check()


def key_files(root: Path) -> None:
    """The keys as an operator writes them: RSA in PEM, Ed25519 as base64 of its seed."""
    (root / "rsa.pem").write_bytes(
        rsa_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    seed = ed25519_key().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    (root / "ed25519.key").write_bytes(base64.b64encode(seed) + b"\n")


def composer_for(root: Path, title: str = "The Asia Ledger", **mail: str) -> Composer:
    return Composer(
        Settings(
            root=root,
            site=SiteSettings(base_url="https://news.test", title=title),
            mail=MailSettings(from_address="newsletter@news.test", dkim_selector=SELECTOR, **mail),
        )
    )


KEY_FILES = {
    "rsa": {"dkim_key_file": "rsa.pem"},
    "ed25519": {"dkim_key_file": "ed25519.key"},
    "rsa+ed25519": {"dkim_key_file": "rsa.pem", "dkim_ed25519_key_file": "ed25519.key"},
}


@pytest.fixture(scope="module")
def composers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Composer]:
    """A Composer for each way of signing, the keys in files named by the settings."""
    root = tmp_path_factory.mktemp("keys")
    key_files(root)
    return {kind: composer_for(root, **files) for kind, files in KEY_FILES.items()}


@pytest.mark.parametrize("kind", list(SIGNATURES))
def test_composed_messages_are_signed_with_the_configured_keys(
    composers: dict[str, Composer], kind: str
) -> None:
    composer = composers[kind]

    @budget(30)
    @given(
        text=bodies,
        html_body=bodies,
        subject=subjects,
        name=names,
        address=addresses,
        unsubscribe=long_urls,
    )
    def check(
        text: str, html_body: str, subject: str, name: str, address: str, unsubscribe: str
    ) -> None:
        letter = Letter(
            to=address,
            to_name=name,
            subject=subject,
            text=text,
            html=html_body,
            headers={
                "List-Unsubscribe": f"<{unsubscribe}>, <mailto:newsletter@news.test?subject=u>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            inlined=True,
        )
        envelope = composer.compose(letter, NOW)
        assert envelope.recipient == address
        message = assert_reads(
            envelope.data,
            subject=subject,
            name=name,
            address=address,
            text=lf(text),  # compose fills no markers: they stay as written
            html_body=lf(html_body),
        )
        assert message["Message-ID"] == envelope.message_id
        assert message["List-Unsubscribe"] == letter.headers["List-Unsubscribe"]
        assert_signed(envelope.data, SIGNATURES[kind], address)

    check()


def letter_to(address: str = "reader@example.org") -> Letter:
    return Letter(
        to=address,
        to_name="Zoë 😀",
        subject="Café",
        text="t\n",
        html="<p>h</p>\n",
        headers={"List-Unsubscribe": "<https://news.test/u/t>", "List-Unsubscribe-Post": "x"},
        inlined=True,
    )


def test_the_ed25519_selector_can_be_set(tmp_path: Path) -> None:
    key_files(tmp_path)
    composer = composer_for(tmp_path, dkim_ed25519_selector="ed2026", **KEY_FILES["rsa+ed25519"])
    data = composer.compose(letter_to(), NOW).data
    assert_signed(
        data, [("rsa-sha256", SELECTOR), ("ed25519-sha256", "ed2026")], "reader@example.org"
    )


def test_a_signature_fails_with_the_wrong_key_published() -> None:
    """The look-up matters: the RSA key at the Ed25519 selector fails that signature alone."""
    data = (
        Prepared(headers_for("s"), "t", "h")
        .fill("a@b.test", "", [], {})
        .data(signer_of("rsa+ed25519"))
    )
    records = zone(SIGNATURES["rsa+ed25519"])
    records[f"{ED_SELECTOR}._domainkey.{DOMAIN}.".encode()] = txt_record("rsa-sha256")
    assert verify_all(data, records) == [True, False]
    assert verify_all(data, {}) == [False, False]


def test_a_non_ascii_sender_name_goes_out_encoded(tmp_path: Path) -> None:
    data = composer_for(tmp_path, from_name="Zoë 😀 Ledger").compose(letter_to(), NOW).data
    assert_wire_rules(data)
    message = parse(data)
    assert message["From"].addresses[0].display_name == "Zoë 😀 Ledger"
    assert message["To"].addresses[0].display_name == "Zoë 😀"


def test_a_non_ascii_site_title_goes_out_encoded_in_list_id(tmp_path: Path) -> None:
    data = composer_for(tmp_path, title="Café Ledger").compose(letter_to(), NOW).data
    assert parse(data)["List-Id"] == "Café Ledger <digest.news.test>"
    assert_wire_rules(data)


# ----------------------------------------------------------------------------- 3. sharing

ALICE = "\u2603alice-7f3a"  # in every value of one recipient and nowhere else
BOB = "\u2604bob-91c2"


@budget(60)
@given(text=bodies, html_body=bodies, first=value_maps, second=value_maps)
@example(
    text=GREETING * 3,
    html_body=EMAIL,
    first=dict.fromkeys(MARKERS, "a"),
    second=dict.fromkeys(MARKERS, "b"),
)
def test_recipients_share_the_static_pieces_and_nothing_else(
    text: str, html_body: str, first: dict[str, str], second: dict[str, str]
) -> None:
    prepared = Prepared(headers_for("Issue 7"), text, html_body, MARKERS)
    alice_values = {m: ALICE + v for m, v in first.items()}
    bob_values = {m: v + BOB for m, v in second.items()}

    def fill(address: str, name: str, values: Mapping[str, str]) -> Filled:
        return prepared.fill(address, name, [("Date", DATE), ("Message-ID", f"<{name}@x>")], values)

    alice = fill("alice@a.test", "Alice", alice_values)
    bob = fill("bob@b.test", "Bob", bob_values)
    slots = 0
    for n, piece in enumerate(prepared.pieces):
        if isinstance(piece, Slot):
            slots += 1
            continue
        raw, canonical = piece
        assert alice.body[n] is raw and bob.body[n] is raw
        assert alice.canonical[n] is canonical and bob.canonical[n] is canonical
    assert slots == len(_MARKER.findall(text)) + len(_MARKER.findall(html_body))
    for field in prepared.fields:  # From, Subject, List-Id, MIME-Version, Content-Type
        assert any(field is f for f in alice.fields) and any(field is f for f in bob.fields)

    def read(data: bytes) -> str:
        message = parse(data)
        parts = [cast(EmailMessage, part).get_content() for part in message.iter_parts()]
        return "\n".join([str(message["To"]), *parts])

    alice_reads, bob_reads = read(alice.data(None)), read(bob.data(None))
    assert ALICE not in bob_reads and BOB not in alice_reads
    assert "bob@b.test" not in alice_reads and "alice@a.test" not in bob_reads
    # filling for Bob changed nothing Alice gets
    assert fill("alice@a.test", "Alice", alice_values).data(None) == alice.data(None)
