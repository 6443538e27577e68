"""Scanning a source into the library; see README.md for the phases."""

from backend.library.scanner.scan import ScanContext, run_scan

__all__ = ["ScanContext", "run_scan"]
