"""Reading a report back: its HTML parsed into a small tree (standard library only), so tests can find the
elements by their data- attributes and compare the numbers with the run's files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list["Node | str"] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str | bool) -> list["Node"]:
        """Descendants with this tag and attributes (data_x="v" means data-x="v"; True: present at all)."""
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and all(
                        (k in c.attrs) if v is True else c.attrs.get(k) == v for k, v in want.items()):
                    found.append(c)
                found.extend(c.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str | bool) -> "Node":
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}> found"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):  # <line …/> in the SVG charts
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


URL_ATTRIBUTES = ("src", "href", "action", "poster", "srcset", "xlink:href", "data")


def _elements(node: Node):
    for c in node.children:
        if isinstance(c, Node):
            yield c
            yield from _elements(c)


def network_references(html: str) -> list[str]:
    """Everything in the page that would make a browser use the network: an element's src/href (…) that is
    not a data: URI or an #anchor, CSS url(…) other than data: and @import, and any http(s) URL at all."""
    found = [v for e in _elements(parse(html)) for k, v in e.attrs.items()
             if k in URL_ATTRIBUTES and not v.startswith(("data:", "#"))]
    found += re.findall(r"url\(\s*['\"]?(?!data:)[^)]*\)", html, re.I)
    found += re.findall(r"@import[^;]*;", html, re.I)
    found += re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I)
    return found
