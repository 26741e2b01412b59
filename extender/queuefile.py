"""The ``--queues FILE`` adapter: load Kueue's queue objects from a YAML file and reload on change.

The file is read at start (an invalid file then stops the server with the error) and polled for
changes while serving; a changed file that does not parse or validate is rejected with a log
line naming the object and field, and the last good configuration stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from extender import metrics
from extender.core import queues

log = logging.getLogger(__name__)


def load(path: Path) -> queues.QueueConfig:
    """Parse the file; raises ``queues.ConfigError`` (also for unreadable or non-YAML files)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise queues.ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise queues.ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return queues.parse(documents)
    except queues.ConfigError as exc:
        raise queues.ConfigError(f"{path}: {exc}") from None


def _stamp(path: Path) -> tuple[float, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size, stat.st_ino)


@dataclass
class QueueFile:
    """Keeps a configuration from ``path`` in force through ``apply``."""

    path: Path
    apply: Callable[[queues.QueueConfig], None]
    interval: float = 1.0
    rejected: Callable[[str], None] | None = None
    """Told the error of a rejected change, and "" once a change is accepted."""
    error: str = ""
    """The last rejected change's error (empty while the file in force is the file on disk)."""

    def __post_init__(self) -> None:
        self._stamp = _stamp(self.path)

    def load_now(self) -> None:
        """The first load: an invalid file raises."""
        self.apply(load(self.path))
        metrics.queue_config_loads.labels("ok").inc()
        log.info("queue configuration loaded from %s", self.path)

    def check(self) -> bool:
        """Reload if the file changed; returns whether a new configuration went into force."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            config = load(self.path)
        except queues.ConfigError as exc:
            self.error = str(exc)
            if self.rejected is not None:
                self.rejected(self.error)
            metrics.queue_config_loads.labels("rejected").inc()
            log.error("queue configuration change rejected, the last good one stays: %s", exc)
            return False
        self.error = ""
        if self.rejected is not None:
            self.rejected("")
        self.apply(config)
        metrics.queue_config_loads.labels("ok").inc()
        log.info("queue configuration reloaded from %s", self.path)
        return True

    async def watch(self) -> None:
        """Poll for changes until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.check()
