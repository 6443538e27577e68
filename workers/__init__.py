"""Dramatiq workers. Importing this package installs the broker the settings name;
`backline worker` runs ``dramatiq workers`` on it. Actors (thin: each calls a backend
service) live in modules beside this one and are imported here."""

from backend.core.settings import get_settings
from workers.broker import install_broker

broker = install_broker(get_settings())
