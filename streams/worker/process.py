"""The Faust worker that runs a ReadinessWorker, with autodeploy's own log lines at a level of their own.

`autodeploy up` runs the worker at --loglevel warning: Faust, mode and aiokafka say a lot at info (each fetch
session, each table flush) that a person reading the log does not need. autodeploy's own lines (start-up,
partitions, recovery, decisions) are what they do need, so the `streams` loggers get `app_loglevel` (info by
default) whatever the library level is.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.worker import Worker

from streams.worker.app import ReadinessWorker

log = logging.getLogger(__name__)
OWN_LOGGERS = "streams"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class WorkerProcess(Worker):
    def __init__(self, worker: ReadinessWorker, *, loglevel: str, app_loglevel: str, **kwargs: Any) -> None:
        super().__init__(worker.app, loglevel=loglevel, quiet=True, **kwargs)
        self.readiness = worker
        self.app_loglevel = logging.getLevelName(app_loglevel.upper())
        if not isinstance(self.app_loglevel, int):
            raise ValueError(f"unknown log level {app_loglevel!r}")
        # Faust's terminal spinner lowers the root logger to DEBUG at --loglevel warning and above, so every debug
        # call of aiokafka and faust.topics builds a record (measured: ~4% of the worker's CPU) only to drop it.
        self.spinner = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Faust has set the root logger and its handler to --loglevel: the handler is lowered to autodeploy's level
        too, so its loggers' records pass; the libraries' loggers still inherit the root's level."""
        super().on_setup_root_logger(logger, level)
        logging.getLogger(OWN_LOGGERS).setLevel(self.app_loglevel)
        for handler in logger.handlers:
            handler.setLevel(min(handler.level or logging.NOTSET, self.app_loglevel))
            # The other processes' format (streams/cli.py): Faust's leaves out the logger's name, which is what tells
            # autodeploy's lines from the libraries' in a shared file.
            handler.setFormatter(logging.Formatter(LOG_FORMAT))

    async def on_execute(self) -> None:
        """Runs once logging is set up, before the app starts."""
        await super().on_execute()
        worker = self.readiness
        settings = worker.settings
        log.info(
            "worker starting app_id=%s brokers=%s inputs=%s partitions=%d store=%s web=%s",
            settings.app_id,
            worker.bootstrap_servers,
            ",".join(sorted(worker.inputs)),
            worker.partitions,
            settings.store,
            f"{settings.web_host}:{settings.web_port}" if settings.web_enabled else "off",
        )

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        log.info("worker ready app_id=%s", self.readiness.settings.app_id)
