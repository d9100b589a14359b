"""A small element list of an HTML page (stdlib html.parser), for the HTML report's tests:
the page kdumptool wrote, or the DOM headless Chromium produced from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Dict, List, Optional

_VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "wbr", "source", "track", "embed", "param"}


@dataclass
class Element:
    tag: str
    attrs: Dict[str, str]
    parent: Optional[Element] = None
    children: List[Element] = field(default_factory=list)
    content: List[object] = field(default_factory=list)  # text and child elements, in order

    @property
    def classes(self) -> List[str]:
        return self.attrs.get("class", "").split()

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.content)  # type: ignore[attr-defined]

    def iter(self):  # type: ignore[no-untyped-def]
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: Optional[str] = None, cls: Optional[str] = None, **attrs: str) -> List[Element]:
        out = []
        for e in self.iter():
            if tag is not None and e.tag != tag:
                continue
            if cls is not None and cls not in e.classes:
                continue
            if any(e.attrs.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append(e)
        return out


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        e = Element(tag, {k: (v or "") for k, v in attrs}, self.cur)
        self.cur.children.append(e)
        self.cur.content.append(e)
        if tag not in _VOID:
            self.cur = e

    def handle_startendtag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        e = Element(tag, {k: (v or "") for k, v in attrs}, self.cur)
        self.cur.children.append(e)
        self.cur.content.append(e)

    def handle_endtag(self, tag: str) -> None:
        e: Optional[Element] = self.cur
        while e is not None and e.tag != tag:
            e = e.parent
        if e is not None and e.parent is not None:
            self.cur = e.parent

    def handle_data(self, data: str) -> None:
        self.cur.content.append(data)


def parse(page: str) -> Element:
    b = _Builder()
    b.feed(page)
    b.close()
    return b.root
