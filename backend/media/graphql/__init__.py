"""GraphQL of the media domain: types.py (waveform, streams), uploads.py (mutations)."""
