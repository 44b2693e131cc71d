"""HTML to plain text in linear time with bounded output."""

import contextlib
import re
from html.parser import HTMLParser

from lapakd.mail.parse.limits import _HTML_MIN_INPUT
from lapakd.mail.parse.model import _cap_with_marker

_HTML_PARA_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote",
     "pre", "hr", "address", "figure", "form", "fieldset"}
)  # fmt: skip
_HTML_LINE_TAGS = frozenset(
    {"div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "nav", "aside",
     "main", "center", "caption", "figcaption", "body", "html"}
)  # fmt: skip
_HTML_KEEP_TAGS = _HTML_PARA_TAGS | _HTML_LINE_TAGS | {"br", "td", "th", "a", "head", "template"}
_HTML_STATEFUL_TAGS = frozenset({"pre", "li", "a", "br", "td", "th", "head", "template"})
_HTML_VOID_TAGS = frozenset({"br", "hr"})
# Elements dropped together with their content by the pre-pass (raw text in HTML5).
_HTML_DROP_TAGS = frozenset({"script", "style", "title", "xmp", "iframe", "noembed", "noframes"})
_HTML_TAG_RE = re.compile(r"(/?)([A-Za-z][A-Za-z0-9:_-]{0,39})")
_HTML_HREF_RE = re.compile(r"(?i)(?<![\w-])href\s*=\s*")
_HTML_BARE_VALUE_RE = re.compile(r"[^\s>]*")
_HTML_DROP_END_RE = {tag: re.compile(rf"(?i)</{tag}(?![A-Za-z0-9])") for tag in _HTML_DROP_TAGS}
_ZERO_WIDTH = {ord(c): None for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f"}
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")


class _StopParsing(Exception):
    """Raised from the HTML handler once enough text was produced."""


def _href_value(html: str, start: int, end: int) -> str | None:
    """The raw href attribute of a tag token html[start:end], scanned once."""
    match = _HTML_HREF_RE.search(html, start, end)
    if not match:
        return None
    pos = match.end()
    quote = html[pos : pos + 1]
    if quote in ("'", '"'):
        close = html.find(quote, pos + 1, end)
        return html[pos + 1 : close if close >= 0 else end]
    bare = _HTML_BARE_VALUE_RE.match(html, pos, end)
    return bare.group(0) if bare else None


def _sanitize_html(html: str) -> str:
    """Linear pre-pass: rewrite HTML into canonical tags html.parser handles in one pass.

    html.parser (3.11) rescans unterminated constructs quadratically and raises on some
    ``<![`` forms.  Here comments, declarations and processing instructions are removed,
    script/style/title are dropped with their content, stray '<' is escaped and every tag
    that matters becomes ``<name>`` (links keep only href); other tags are dropped.
    Unterminated constructs swallow the rest of the input, as in HTML5.
    """
    out: list[str] = []
    pos = pre_depth = 0
    size = len(html)
    while pos < size:
        lt = html.find("<", pos)
        if lt < 0:
            out.append(html[pos:])
            break
        if lt > pos:
            out.append(html[pos:lt])
        if html.startswith("<!--", lt):
            end = html.find("-->", lt + 4)
            if end < 0:
                break
            pos = end + 3
            continue
        nxt = html[lt + 1 : lt + 2]
        tag = _HTML_TAG_RE.match(html, lt + 1)
        if nxt in ("!", "?") or (nxt == "/" and tag is None):
            end = html.find(">", lt + 2)
            if end < 0:
                break
            pos = end + 1
            continue
        if tag is None:
            out.append("&lt;")
            pos = lt + 1
            continue
        end = html.find(">", tag.end())
        if end < 0:
            break
        closing, name = tag.group(1) == "/", tag.group(2).lower()
        pos = end + 1
        if not closing and name in _HTML_DROP_TAGS:
            close = _HTML_DROP_END_RE[name].search(html, pos)
            if close is None:
                break
            end = html.find(">", close.end())
            if end < 0:
                break
            pos = end + 1
            continue
        if name not in _HTML_KEEP_TAGS:
            continue
        if name not in _HTML_STATEFUL_TAGS:
            # Plain block boundaries only mean line breaks: a run of them (and whitespace in
            # between) collapses into one tag, so 100k nested <div>s cost nothing later.
            block = "<p>" if name in _HTML_PARA_TAGS else "<div>"
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] in ("<p>", "<div>"):
                if block == "<p>":
                    out[-1] = block
            else:
                out.append(block)
        elif name == "pre":
            # only the outermost <pre> matters; nested ones would just cost parser work
            pre_depth = max(0, pre_depth - 1) if closing else pre_depth + 1
            if pre_depth == (0 if closing else 1):
                out.append("</pre>" if closing else "<pre>")
        elif name in ("td", "th"):
            if not closing and (not out or out[-1] not in ("<td>", "<p>", "<div>")):
                out.append("<td>")  # a cell only owes a space; runs of cells need one tag
        elif closing:
            out.append(f"</{name}>")
        elif name == "a":
            href = _href_value(html, tag.end(), end)
            if href:
                out.append('<a href="' + href.replace('"', "&quot;") + '">')
            else:
                out.append("<a>")
        else:
            out.append(f"<{name}>")
    return "".join(out)


def _clean_href(value: str | None) -> str | None:
    if not value:
        return None
    href = "".join(value.split())[:2048]
    if href.lower().startswith(("http://", "https://", "mailto:", "ftp://")):
        return href
    return None


def _link_key(text: str) -> str:
    text = text.strip().lower()
    for prefix in ("mailto:", "https://", "http://", "ftp://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return text.removeprefix("www.").rstrip("/")


class _TextBuilder(HTMLParser):
    """Event handler that writes readable text; keeps counters only, never a tag stack."""

    def __init__(self, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self._max = max_chars
        self._out: list[str] = []
        self._len = 0
        self._newlines = 0  # line breaks owed before the next text
        self._space = False  # a space is owed before the next text
        self._in_head = False
        self._template = 0
        self._pre = 0
        self._anchor: tuple[str | None, int] | None = None
        self.cut = False

    def _write(self, text: str) -> None:
        if self._out:
            sep = ""
            if self._newlines:
                sep = "\n" * self._newlines
            elif self._space and not self._out[-1][-1:].isspace() and not text[:1].isspace():
                sep = " "
            if sep:
                self._out.append(sep)
                self._len += len(sep)
        self._newlines = 0
        self._space = False
        self._out.append(text)
        self._len += len(text)
        if self._len > self._max:
            self.cut = True
            raise _StopParsing

    def _break(self, lines: int) -> None:
        if self._out:
            self._newlines = max(self._newlines, lines)

    def _end_anchor(self) -> None:
        if self._anchor is None:
            return
        href, start = self._anchor
        self._anchor = None
        if not href:
            return
        label = "".join(self._out[start:]).strip()
        if not label:
            return
        key = _link_key(href)
        if key and key in _link_key(label):
            return
        self._space = True
        self._write(f"({href})")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self._in_head = True
            return
        if tag == "template":
            self._template += 1
            return
        if self._in_head:
            self._in_head = False  # any content tag implicitly ends <head>, as in browsers
        if self._template:
            return
        if tag == "br":
            if self._out:
                self._newlines = min(self._newlines + 1, 2)
        elif tag in ("td", "th"):
            self._space = True
        elif tag == "a":
            self._end_anchor()
            href = next((value for name, value in attrs if name == "href"), None)
            self._anchor = (_clean_href(href), len(self._out))
        elif tag in _HTML_PARA_TAGS:
            self._break(2)
            if tag == "pre":
                self._pre += 1
        elif tag in _HTML_LINE_TAGS:
            self._break(1)
            if tag == "li":
                self._write("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
            return
        if tag == "template":
            self._template = max(0, self._template - 1)
            return
        if self._in_head or self._template:
            return
        if tag == "a":
            self._end_anchor()
        elif tag in _HTML_PARA_TAGS:
            self._break(2)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
        elif tag in _HTML_LINE_TAGS:
            self._break(1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _HTML_VOID_TAGS:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._in_head or self._template:
            return
        data = data.translate(_ZERO_WIDTH)
        if self._pre:
            text = data.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                self._write(text)
            return
        words = data.split()
        if not words:
            if data:
                self._space = True
            return
        if data[0].isspace():
            self._space = True
        self._write(" ".join(words))
        if data[-1].isspace():
            self._space = True

    def finish(self) -> str:
        with contextlib.suppress(_StopParsing):
            self._end_anchor()
        text = "\n".join(line.rstrip() for line in "".join(self._out).split("\n"))
        return _MANY_NEWLINES_RE.sub("\n\n", text).strip("\n")


def _html_input_limit(max_chars: int) -> int:
    return max(_HTML_MIN_INPUT, 4 * max_chars)


def _html_to_text(html: str, max_chars: int) -> tuple[str, bool, bool]:
    """(text, input was cut, output was cut)."""
    limit = _html_input_limit(max_chars)
    cut_input = len(html) > limit
    builder = _TextBuilder(max_chars)
    try:
        builder.feed(_sanitize_html(html[:limit]))
        builder.close()
    except _StopParsing:
        pass
    except Exception:  # noqa: BLE001 - keep what was converted; the parser must not crash us
        builder.cut = True
    text = builder.finish()
    cut_output = builder.cut or len(text) > max_chars
    return text[:max_chars], cut_input, cut_output


def html_to_text(html: str, *, max_chars: int = 200_000) -> str:
    """Readable plain text from HTML, in linear time and bounded output.

    Script/style/head content is dropped; block elements become line breaks (paragraphs a
    blank line), list items get "- ", table cells a space; links keep their text plus the
    URL in parentheses when it differs; entities are decoded and whitespace collapsed.
    Input beyond ``max(1_000_000, 4 * max_chars)`` characters is ignored; whenever input or
    output was cut the result ends with :data:`CUT_MARKER` and stays within ``max_chars``.
    """
    text, cut_input, cut_output = _html_to_text(html, max_chars)
    if cut_input or cut_output:
        return _cap_with_marker(text, max_chars)
    return text
