"""Dramatiq workers: broker set-up, the runtime actors use, and the actors (thin: each
calls a backend service). `backline worker` runs ``dramatiq workers.main``; the embedded
default starts the same actors in threads of the api process (workers.embedded)."""
