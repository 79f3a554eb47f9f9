"""Readers and writers for history files: Binance's public archive and our interchange layout.

Pure: bytes in, validated columnar frames (in `kinds.LAYOUTS` order) out. The import
service decides what to store.
"""

from oiradar.datafiles.detect import FileKind, detect
from oiradar.datafiles.parse import Parsed, parse_file

__all__ = ["FileKind", "Parsed", "detect", "parse_file"]
