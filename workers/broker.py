"""The Dramatiq broker for this process, chosen by settings: Redis when
``BACKLINE_REDIS_URL`` is set (scaled out), else an in-process stub broker whose
messages worker threads started with the app consume (embedded default)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from backend.core.settings import Settings


def create_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:
        # The namespace keeps two deployments (or a test run) on one Redis apart.
        return RedisBroker(url=settings.redis_url, namespace=f"{settings.redis_prefix}-dramatiq")
    return StubBroker()


def install_broker(settings: Settings) -> dramatiq.Broker:
    """Make the settings' broker the global one that actors declared later bind to."""
    broker = create_broker(settings)
    dramatiq.set_broker(broker)
    return broker
