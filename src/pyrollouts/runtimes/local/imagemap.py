"""The local image map: which command runs a container image as a local process.

A YAML file maps image reference patterns (``*`` matches any run of characters) to a command. The
package ships one (images.yaml beside this module) that maps the seed's demo image to the bundled
demo app; a user file (``--image-map`` or ``<state-dir>/images.yaml``) is read first, so its
entries win. Format::

    images:
      "registry.example.com/shop/api:*": ["/opt/shop/bin/api", "--serve"]
      "ghcr.io/me/worker:*": {command: ["{python}", "-m", "worker"], args: ["--queue", "default"]}

A list is the image's entrypoint; a mapping gives ``command`` (entrypoint) and ``args`` (the image's
default arguments). ``{python}`` stands for the interpreter running pyrollouts.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PACKAGED_IMAGE_MAP = Path(__file__).with_name("images.yaml")
USER_IMAGE_MAP_NAME = "images.yaml"


class ImageMapError(ValueError):
    """An image map file that cannot be used (the message names the file and the entry)."""


@dataclass(frozen=True)
class ImageEntry:
    """One mapping: an image pattern, the entrypoint and default args it stands for, and its file."""

    pattern: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    source: str


def _expand(word: str) -> str:
    return word.replace("{python}", sys.executable)


def _words(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str | int | float) for w in value):
        raise ImageMapError(f"{where}: expected a list of strings (an argument list, no shell)")
    return tuple(_expand(str(w)) for w in value)


def parse_image_map(text: str, source: str) -> list[ImageEntry]:
    """The entries of one image map file's text; ImageMapError names the file and entry."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ImageMapError(f"{source}: not valid YAML: {e}") from e
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("images", {}), dict):
        raise ImageMapError(f"{source}: expected a mapping `images:` of image pattern -> command")
    entries: list[ImageEntry] = []
    for pattern, value in (doc.get("images") or {}).items():
        where = f"{source}: images[{pattern!r}]"
        if not isinstance(pattern, str) or not pattern:
            raise ImageMapError(f"{where}: the key must be an image reference pattern")
        if isinstance(value, dict):
            unknown = set(value) - {"command", "args"}
            if unknown:
                raise ImageMapError(f"{where}: unknown keys {sorted(unknown)}; use `command` and `args`")
            command = _words(value.get("command"), f"{where}.command")
            args = _words(value.get("args") or [], f"{where}.args")
        else:
            command, args = _words(value, where), ()
        if not command:
            raise ImageMapError(f"{where}: the command is empty")
        entries.append(ImageEntry(pattern, command, args, source))
    return entries


class ImageMap:
    """Image patterns to commands: user entries first, then the packaged ones."""

    def __init__(self, entries: list[ImageEntry], user_path: Path | None = None) -> None:
        self.entries = list(entries)
        #: Where a user should add a mapping (named in error messages).
        self.user_path = user_path

    @classmethod
    def load(cls, user_path: str | Path | None = None, *, state_dir: str | Path | None = None) -> ImageMap:
        """The packaged map under a user file: ``user_path`` if given (it must exist), else
        ``<state_dir>/images.yaml`` when that exists."""
        entries: list[ImageEntry] = []
        target: Path | None = None
        if user_path is not None:
            target = Path(user_path)
            if not target.is_file():
                raise ImageMapError(f"{target}: image map file not found (--image-map)")
        elif state_dir is not None:
            target = Path(state_dir) / USER_IMAGE_MAP_NAME
        if target is not None and target.is_file():
            entries += parse_image_map(target.read_text(encoding="utf-8"), str(target))
        entries += parse_image_map(PACKAGED_IMAGE_MAP.read_text(encoding="utf-8"), str(PACKAGED_IMAGE_MAP))
        return cls(entries, target)

    def lookup(self, image: str) -> ImageEntry | None:
        """The first entry whose pattern matches the image reference, or None."""
        for entry in self.entries:
            if fnmatch.fnmatchcase(image, entry.pattern):
                return entry
        return None

    def argv(self, container: Mapping[str, Any]) -> list[str] | None:
        """The argument list that runs this container, with Kubernetes' rules: ``command`` replaces
        the image's entrypoint (and drops its default args), ``args`` replace the default args.
        None when there is no command at all (no ``command`` and no mapping for the image)."""
        command = container.get("command") or []
        args = container.get("args")
        if command:
            return [str(w) for w in command] + [str(w) for w in (args or [])]
        entry = self.lookup(str(container.get("image") or ""))
        if entry is None:
            return None
        tail = [str(w) for w in args] if args is not None else list(entry.args)
        return list(entry.command) + tail

    def where_to_map(self) -> str:
        """The file a user should add a mapping to (for messages)."""
        return str(self.user_path) if self.user_path else "<state-dir>/images.yaml"
