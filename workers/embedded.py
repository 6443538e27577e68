"""The embedded default: actors run in worker threads inside the api process, fed by
an in-process stub broker. Nothing to install, nothing else to start."""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq
from dramatiq.brokers.stub import StubBroker

from backend.core.settings import Settings
from workers import runtime
from workers.actors import register_actors

_running: EmbeddedWorkers | None = None


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class EmbeddedWorkers:
    broker: StubBroker
    worker: dramatiq.Worker

    def stop(self) -> None:
        global _running
        self.worker.stop(timeout=10_000)
        self.broker.close()
        _running = None


def start(
    settings: Settings, publish: runtime.Publish, *, send_media_jobs: bool = True
) -> EmbeddedWorkers:
    """Start the actors in this process. Only one set per process: Dramatiq's asyncio
    middleware keeps one event-loop thread per process, so a second set would take it
    from the first. ``send_media_jobs=False`` (a short-lived process: `backline scan`)
    leaves the media jobs a scan queues unsent, for the server's sweeper to send to its
    own workers, rather than to threads that stop when the command does."""
    global _running
    if _running is not None:
        raise AlreadyRunning(
            "Embedded workers already run in this process; give other apps worker_threads=0."
        )
    broker = StubBroker()
    register_actors(broker)
    broker.emit_after("process_boot")
    runtime.configure(
        runtime.WorkerRuntime(
            settings=settings, publish=publish, broker=broker, send_media_jobs=send_media_jobs
        )
    )
    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads, worker_timeout=100)
    worker.start()
    _running = EmbeddedWorkers(broker=broker, worker=worker)
    return _running
