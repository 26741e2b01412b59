"""The ``--queues FILE`` adapter: load Kueue's queue objects from a YAML file and reload on change.

The file is read at start (an invalid file then stops the server with the error) and polled for
changes while serving; a changed file that does not parse or validate is rejected with a log
line naming the object and field, and the last good configuration stays in force.  Whatever the
file holds, loading it raises ``kueue.ConfigError`` and nothing else, and a poll never raises:
a bad file must not stop the watches that run beside the poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from extender import metrics
from extender.core import kueue

try:  # libyaml: ten times faster than the pure-Python parser, same documents
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

log = logging.getLogger(__name__)

MAX_BYTES = 4 * 2**20
"""Larger files are refused: four times what a ConfigMap holds, parsed in about a second."""
MAX_DEPTH = 64
"""Kueue's objects nest about ten levels deep; deeper YAML is refused before it is built."""
MAX_NODES = 2_000_000
"""YAML aliases (``*name``) may repeat a subtree; the file with every alias expanded may have
at most this many nodes (about what ``MAX_BYTES`` of YAML can hold without aliases)."""

Stamp = tuple[int, int, int]


class _Loader(_SafeLoader):
    """The safe loader, with a scalar it cannot construct (``0x_``, ``!!timestamp 2001-13-45``,
    an integer past Python's digit limit) reported as a YAML error at its line."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value: {exc}", node.start_mark
            ) from exc


def _too_much(problem: str, event: yaml.Event) -> yaml.YAMLError:
    mark = cast("yaml.Mark | None", event.start_mark)  # libyaml's marks have the same fields
    return yaml.composer.ComposerError(None, None, problem, mark)


def _bound_nesting(data: bytes) -> None:
    """Refuse YAML nested deeper than ``MAX_DEPTH`` or expanding past ``MAX_NODES`` (from the
    event stream, which needs no recursion), so that building and reading the documents cannot
    exhaust the stack, the memory or the time."""
    depth = nodes = 0
    sizes: dict[str, int] = {}
    """Nodes under each anchor, which each alias of it repeats."""
    opened: list[tuple[str | None, int]] = []
    for event in yaml.parse(data, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_much(f"nested deeper than {MAX_DEPTH} levels", event)
            opened.append((event.anchor, nodes))
            nodes += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = opened.pop()
            if anchor:
                sizes[anchor] = nodes - start
        if nodes > MAX_NODES:
            raise _too_much(f"expands to more than {MAX_NODES} values", event)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: where, then what."""
    if isinstance(exc, yaml.reader.ReaderError):
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        shown = f" (#x{code:02x})" if isinstance(code, int) else ""
        return f"byte {exc.position}: {exc.reason}{shown}"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or ""
        if exc.problem and exc.context:
            what = f"{exc.problem} ({exc.context})"
        return " ".join(f"{where}{what}".split())
    return " ".join(str(exc).split())


def _stamp_of(info: os.stat_result) -> Stamp:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _stamp(path: Path) -> Stamp | None:
    try:
        return _stamp_of(os.stat(path))
    except OSError:
        return None


def _read(path: Path) -> bytes:
    """The file's bytes.  Refused: what is not a regular file (a directory; a FIFO, which would
    block), more than ``MAX_BYTES``, and a file that changed while it was read (a writer that
    truncates and rewrites it in place): the next poll reads it again."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise kueue.ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise kueue.ConfigError(f"{path}: cannot read: it is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise kueue.ConfigError(f"{path}: cannot read: it is not a regular file")
        if info.st_size > MAX_BYTES:
            raise kueue.ConfigError(
                f"{path}: is {info.st_size} bytes, more than the {MAX_BYTES} a queues file may have"
            )
        file = open(fd, "rb")  # owns fd from here on
    except BaseException:
        os.close(fd)
        raise
    try:
        with file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise kueue.ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) != info.st_size or _stamp(path) != _stamp_of(info):
        raise kueue.ConfigError(
            f"{path}: changed while it was read (write it elsewhere and rename it into place); "
            "it is read again at the next poll"
        )
    return data


def _load(path: Path) -> kueue.QueueConfig:
    data = _read(path)
    try:
        _bound_nesting(data)
        documents = list(yaml.load_all(data, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise kueue.ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    try:
        return kueue.parse(documents)
    except kueue.ConfigError as exc:
        raise kueue.ConfigError(f"{path}: {exc}") from None


def load(path: Path) -> kueue.QueueConfig:
    """Parse the file; raises ``kueue.ConfigError``, and nothing else whatever the file holds
    (also for unreadable or non-YAML files)."""
    try:
        return _load(path)
    except kueue.ConfigError:
        raise
    except Exception as exc:  # a case the checks missed: still one line naming the file
        raise kueue.ConfigError(
            f"{path}: cannot load ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from exc


@dataclass
class QueueFile:
    """Keeps a configuration from ``path`` in force through ``apply``."""

    path: Path
    apply: Callable[[kueue.QueueConfig], None]
    interval: float = 1.0
    rejected: Callable[[str], None] | None = None
    """Told the error of a rejected change, and "" once a change is accepted."""
    error: str = ""
    """The last rejected change's error (empty while the file in force is the file on disk)."""

    def __post_init__(self) -> None:
        self._stamp = _stamp(self.path)

    def load_now(self) -> None:
        """The first load: an invalid file raises ``kueue.ConfigError``."""
        self._stamp = _stamp(self.path)
        self.apply(load(self.path))
        metrics.queue_config_loads.labels("ok").inc()
        log.info("queue configuration loaded from %s", self.path)

    def check(self) -> bool:
        """Reload if the file changed; returns whether a new configuration went into force.
        Never raises: a change that cannot be loaded or put in force is rejected."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            config = load(self.path)
        except Exception as exc:  # ConfigError; anything else would be a bug in load()
            self._reject(exc, "change rejected, the last good one stays")
            return False
        try:
            self.apply(config)
        except Exception as exc:
            self._reject(exc, "change could not be put in force")
            return False
        self.error = ""
        if self.rejected is not None:
            self.rejected("")
        metrics.queue_config_loads.labels("ok").inc()
        log.info("queue configuration reloaded from %s", self.path)
        return True

    def _reject(self, exc: Exception, what: str) -> None:
        """Record, count and log a rejected change in one line; a change that failed for an
        unexpected exception names its type, and its traceback is logged at debug level."""
        message = " ".join(str(exc).split())
        if not isinstance(exc, kueue.ConfigError):
            message = f"{self.path}: {type(exc).__name__}: {message}"
        if not isinstance(exc, kueue.ConfigError) or exc.__cause__ is not None:
            log.debug("queue configuration %s", what, exc_info=exc)
        self.error = message
        metrics.queue_config_loads.labels("rejected").inc()
        log.error("queue configuration %s: %s", what, message)
        if self.rejected is not None:
            self.rejected(message)

    async def watch(self) -> None:
        """Poll for changes until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.check()
