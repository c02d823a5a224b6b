"""The process's pipeline, for sources that are not a middleware: logs, `capture_exception`, jobs.

Inside an app with the middleware it is the middleware's (the last one built in this process and
still alive), so that they share its dedup windows, Lark budget and Redis. Outside any app (a
script, a queue worker) it is built from the same environment variables on first use, or by
`configure(**options)`; its pending alerts are delivered at interpreter exit, within
`LARK_ALERT_SHUTDOWN_TIMEOUT`.
"""

from __future__ import annotations

import logging
import threading
import weakref

from typing_extensions import Unpack

from .._card.redact import ScrubHook
from .._config import AlertOptions, ConfigurationError, load_settings
from .build import build_pipeline
from .fingerprint import FingerprintFunction
from .pipeline import Pipeline

logger = logging.getLogger("lark_alert_middleware")


class CurrentPipeline:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configured: Pipeline | None = None
        self._from_environment: Pipeline | None = None
        self._environment_tried = False
        self._of_app: weakref.ref[Pipeline] | None = None

    def configure(
        self,
        *,
        fingerprint: FingerprintFunction | None = None,
        scrub: ScrubHook | None = None,
        **options: Unpack[AlertOptions],
    ) -> Pipeline | None:
        """Build the process's pipeline from the environment and `options`; None when disabled.

        Raises ConfigurationError naming what is wrong. It replaces any earlier one, including
        an app's, for every source that is not a middleware.
        """
        settings = load_settings(**options)
        pipeline = None
        if settings.enabled:
            pipeline = build_pipeline(settings, scrub=scrub, fingerprint=fingerprint)
        with self._lock:
            self._configured, self._environment_tried = pipeline, True
        return pipeline

    def register_app(self, pipeline: Pipeline) -> None:
        """A middleware's pipeline: the current one until another is built (held weakly)."""
        with self._lock:
            self._of_app = weakref.ref(pipeline)

    def get(self) -> Pipeline | None:
        """The pipeline errors outside a request go to; None when alerting is off or misconfigured."""
        if self._configured is not None:
            return self._configured
        app_pipeline = self._of_app() if self._of_app is not None else None
        if app_pipeline is not None:
            return app_pipeline
        with self._lock:
            if not self._environment_tried:
                self._environment_tried = True
                self._from_environment = self._built_from_environment()
            return self._from_environment

    def reset(self) -> None:
        """Forget every pipeline (for tests): the next `get()` reads the environment again."""
        with self._lock:
            self._configured = self._from_environment = None
            self._of_app = None
            self._environment_tried = False

    @staticmethod
    def _built_from_environment() -> Pipeline | None:
        try:
            settings = load_settings()
        except ConfigurationError as error:
            logger.error("%s", error)
            return None
        return build_pipeline(settings) if settings.enabled else None


current_pipeline = CurrentPipeline()
