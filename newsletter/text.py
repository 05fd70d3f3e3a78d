"""Pure text helpers: HTML sanitising, XML-safe text, summaries, slugs. No I/O."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import nh3

# XML 1.0 forbids C0 controls other than tab, LF and CR, the surrogates and U+FFFE/U+FFFF.
# C1 controls (U+0080-U+009F) are allowed but are always mojibake in an article, and feed
# validators flag them, so they go too.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_URL_ATTRIBUTES = {"href", "src", "cite", "poster"}
_SAFE_SCHEMES = {"http", "https", "mailto", "tel"}
_WHITESPACE = re.compile(r"\s+")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry."""
    return _XML_FORBIDDEN.sub("", text)


def has_forbidden_chars(text: str) -> bool:
    return _XML_FORBIDDEN.search(text) is not None


def sanitize_html(fragment: str, base_url: str | None) -> str:
    """Safe, well-formed HTML: scripts, styles, event handlers and non-web URL schemes removed,
    unclosed tags closed, relative URLs made absolute against `base_url`.
    """

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        value = value.strip()
        try:
            parts = urlsplit(value)
            if parts.scheme.lower() in ("http", "https") and not parts.netloc:
                # "https:x" means a relative path to browsers: resolve it as one
                value = value.split(":", 1)[1]
            if base_url:
                value = urljoin(base_url, value)
            scheme = urlsplit(value).scheme.lower()
        except ValueError:  # not a URL at all ("//[/x"): drop the attribute
            return None
        if scheme and scheme not in _SAFE_SCHEMES:
            return None
        return value

    cleaned: str = nh3.clean(
        xml_safe(fragment),
        attribute_filter=resolve,
        url_schemes=_SAFE_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )
    return cleaned


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "tr",
            "figure",
            "figcaption",
            "section",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """Readable plain text of an HTML fragment: tags dropped, entities decoded, one space
    between words and blank lines only between blocks."""
    parser = _TextExtractor()
    parser.feed(fragment)
    parser.close()
    raw = "".join(parser.parts).replace("\xa0", " ")
    lines = (_WHITESPACE.sub(" ", line).strip() for line in raw.split("\n"))
    return xml_safe("\n".join(line for line in lines if line))


_HTML_TAG = re.compile(
    r"</?(a|abbr|b|big|blockquote|br|cite|code|del|div|em|font|h[1-6]|hr|i|img|ins|kbd|li|"
    r"mark|ol|p|pre|q|s|script|small|span|strike|strong|style|sub|sup|table|td|th|tr|tt|u|"
    r"ul|iframe|object|embed|svg|math|noscript|template)\b[^>]*>",
    re.IGNORECASE,
)


def plain_text(value: str) -> str:
    """A one-line plain-text version of what may be HTML (titles, names, summaries).
    Only real HTML tags count as markup: "<angle> brackets" in a headline stay as written."""
    if _HTML_TAG.search(value):
        value = html_to_text(value)
    elif "&" in value:
        value = html.unescape(value)
    return _WHITESPACE.sub(" ", xml_safe(value).replace("\xa0", " ")).strip()


def derive_summary(body_html: str, limit: int = 280) -> str:
    """The opening of the body as plain text, cut at a word boundary near `limit` chars."""
    text = _WHITESPACE.sub(" ", html_to_text(body_html)).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def _fold(char: str) -> str:
    """Latin letters lose their accents (é -> e); other scripts are kept as they are."""
    base = unicodedata.normalize("NFKD", char)[0]
    return base if base.isascii() else char


def slugify(value: str, max_bytes: int = 200) -> str:
    """A URL slug: lowercase, accents folded for Latin letters, letters of other scripts
    kept, everything else collapsed to single hyphens. May be '' for punctuation-only input.

    At most `max_bytes` bytes of UTF-8, cut at a character boundary and without a trailing
    hyphen: a slug is a file name in the static export (255 bytes at most on common file
    systems). ASCII slugs are cut where they always were (200 characters), so slugs stored
    before and the guids derived from them stay the same."""
    text = unicodedata.normalize("NFKC", plain_text(value)).lower()
    folded = "".join(_fold(c) for c in text)
    words = re.findall(r"[^\W_]+", folded)
    # a multi-byte character cut in two at the end is dropped by errors="ignore"
    slug = "-".join(words).encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return slug.strip("-")


_URI_SAFE = "%/:@!$&'()*+,;=~?#[]"


def iri_to_uri(url: str) -> str:
    """An ASCII URI for an IRI or a URL as people write it: the host in IDNA, spaces,
    non-ASCII and the other characters browsers encode percent-encoded (feeds must carry
    URIs); existing %XX escapes are kept. Raises UnicodeError for a host IDNA cannot encode."""
    # what a browser percent-encodes (WHATWG URL): anything but printable ASCII, and
    # quotes, angle brackets, backslash, caret, backtick, braces and bar
    if not re.search(r"""[^\x21-\x7e]|["<>\\^`{|}]""", url):
        return url
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, colon, port = hostport.partition(":")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    netloc = quote(userinfo, safe=_URI_SAFE) + at + host + colon + port
    rest = (quote(p, safe=_URI_SAFE) for p in (parts.path, parts.query, parts.fragment))
    return urlunsplit((parts.scheme, netloc, *rest))


# ------------------------------------------------------ scripts, languages and word counts

# Hangul syllables and jamo; Hiragana and Katakana (with their half-width and phonetic
# extension forms); Han ideographs (unified, extension A, compatibility, the supplementary
# planes of extensions B and beyond).
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff]")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# Scripts written without spaces between words: each character is read as about one word.
_UNSPACED = re.compile(f"{_KANA.pattern}|{_HAN.pattern}")
LANGUAGE_SAMPLE = 4000  # characters read to tell a text's script: the opening decides


def script_language(text: str) -> str | None:
    """The language code ("ko", "ja" or "zh") of `text` when it is mostly written in
    Korean, Japanese or Chinese script, else None. Hangul means Korean (which may quote Han
    characters), Hiragana or Katakana Japanese (written with Han characters too), Han
    characters alone Chinese. "Mostly": a CJK character counts as two letters of another
    script (an alphabet's word takes several) and they must outweigh the rest, so an
    English headline quoting a Korean phrase stays English. Only the first
    LANGUAGE_SAMPLE characters are read."""
    sample = text[:LANGUAGE_SAMPLE]
    hangul = len(_HANGUL.findall(sample))
    kana = len(_KANA.findall(sample))
    han = len(_HAN.findall(sample))
    cjk = hangul + kana + han
    if cjk == 0:
        return None
    others = sum(1 for char in sample if char.isalpha()) - cjk
    if cjk * 2 <= others:
        return None
    if hangul > kana:
        return "ko"
    return "ja" if kana else "zh"


def foreign_language(text: str, site_language: str) -> str | None:
    """The language `script_language` finds in `text` when it is not the site's own (by
    primary subtag: a "zh-TW" site writes Chinese already), else None: what a `lang`
    attribute on the element holding `text` should say."""
    found = script_language(text)
    if found is None or found == site_language.split("-")[0].lower():
        return None
    return found


def count_words(text: str) -> int:
    """Words of plain text as reading time counts them: runs of letters or digits between
    spaces, and each character of Chinese or Japanese (written without spaces) as one."""
    unspaced = len(_UNSPACED.findall(text))
    spaced = _UNSPACED.sub(" ", text).split()
    return unspaced + sum(1 for token in spaced if any(char.isalnum() for char in token))
