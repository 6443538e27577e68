"""Essentia, imported once and quietly: its INFO lines are noise in a worker's log."""

import essentia

essentia.log.infoActive = False

import essentia.standard as es  # noqa: E402

__all__ = ["es"]
