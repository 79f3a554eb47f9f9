"""The README as a package index shows it: its relative links and images made absolute.

On GitHub `docs/scan.md` and `docs/img/x.png` resolve beside the README; on a package index
they break. This hatchling metadata hook rewrites them at build time against the one place
the repository's address is written, `[project.urls] Source` in pyproject.toml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

# `[text](target)` and `![alt](target)` whose target is relative: no scheme, no anchor-only.
_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")


def absolute_links(markdown: str, source: str, branch: str = "main") -> str:
    """Relative targets -> `{source}/blob/{branch}/...`; images -> `.../raw/...` (the file)."""

    def repl(m: re.Match[str]) -> str:
        bang, text, target = m.groups()
        kind = "raw" if bang else "blob"
        return f"{bang}[{text}]({source.rstrip('/')}/{kind}/{branch}/{target.lstrip('./')})"

    return _LINK.sub(repl, markdown)


class ReadmeHook(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        source = metadata["urls"]["Source"]
        text = (Path(self.root) / "README.md").read_text(encoding="utf-8")
        metadata["readme"] = {
            "content-type": "text/markdown",
            "text": absolute_links(text, source),
        }
