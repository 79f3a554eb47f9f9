"""The release as a package index receives it: sdist and wheel built, checked by twine, with
one version, the licence, the project URLs and a README whose links work off GitHub."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from oiradar import __version__
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # No isolation: the build backend comes from the test extra, nothing is downloaded.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return out


def test_twine_accepts_the_sdist_and_the_wheel(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    assert files == [f"oiradar-{__version__}-py3-none-any.whl", f"oiradar-{__version__}.tar.gz"]
    res = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("PASSED") == 2, res.stdout


def test_the_wheel_metadata_is_ready_for_an_index(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(f"oiradar-{__version__}.dist-info/METADATA").decode()
        names = zf.namelist()
    meta = Parser().parsestr(raw)
    assert meta["Version"] == __version__  # the one version source
    assert meta["License-Expression"] == "MIT"
    assert f"oiradar-{__version__}.dist-info/licenses/LICENSE" in names
    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source"]
    assert f"Source, {source}" in meta.get_all("Project-URL", [])
    readme = meta.get_payload()
    assert isinstance(readme, str) and "# oiradar" in readme
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [t for t in links if not t.startswith(("https://", "http://", "#"))]
    assert links and not relative, relative
    assert f"]({source}/raw/main/docs/img/dashboard-table.png)" in readme  # an image, the file
    assert f"]({source}/blob/main/docs/cli.md)" in readme


def test_links_are_rewritten_only_where_relative() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from hatch_build import absolute_links
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    src = "[a](docs/x.md#y) ![b](./img/p.png) [c](https://e.org/z) [d](#top) [e](mailto:q@e.org)"
    assert absolute_links(src, "https://g.com/o/r/") == (
        "[a](https://g.com/o/r/blob/main/docs/x.md#y) ![b](https://g.com/o/r/raw/main/img/p.png)"
        " [c](https://e.org/z) [d](#top) [e](mailto:q@e.org)"
    )
