"""Fault injection for the crash tests, in one scheme: an environment variable names where the process
dies abruptly (like a kill -9: no cleanup, no message but one line on stderr).

- MIRROR_CRASH_AT=<stage>: die at that named stage of a writer (load, update, compaction, catalog).
- MIRROR_PAUSE_AT=<stage>: sleep there instead, 60 s or MIRROR_PAUSE_SECONDS (interrupt tests send a
  signal meanwhile), or until the file MIRROR_RESUME_FILE exists (concurrency tests run another writer
  meanwhile, then create it).
- MIRROR_EXPORT_CRASH_AFTER=<n>: an export or batch dies once n rows are written (0: just before the
  final rename).

Nothing here runs unless the variable is set.
"""

from __future__ import annotations

import os
import sys
import time

CRASH_ENV = "MIRROR_CRASH_AT"
PAUSE_ENV = "MIRROR_PAUSE_AT"
PAUSE_SECONDS_ENV = "MIRROR_PAUSE_SECONDS"
RESUME_FILE_ENV = "MIRROR_RESUME_FILE"
EXPORT_CRASH_ENV = "MIRROR_EXPORT_CRASH_AFTER"


def crash_point(stage: str) -> None:
    """Exit abruptly when $MIRROR_CRASH_AT names this stage; pause when $MIRROR_PAUSE_AT names it."""
    if os.environ.get(PAUSE_ENV) == stage:
        sys.stderr.write(f"[paused at {stage}]\n")
        sys.stderr.flush()
        until = time.monotonic() + float(os.environ.get(PAUSE_SECONDS_ENV) or 60)
        resume = os.environ.get(RESUME_FILE_ENV)
        while time.monotonic() < until and not (resume and os.path.exists(resume)):
            time.sleep(0.05 if resume else max(0.0, until - time.monotonic()))
    if os.environ.get(CRASH_ENV) == stage:
        sys.stdout.flush()
        sys.stderr.write(f"[crash injected at {stage}]\n")
        sys.stderr.flush()
        os._exit(86)


def crash_after_rows(rows_written: int, final: bool = False) -> None:
    """Exit abruptly once $MIRROR_EXPORT_CRASH_AFTER rows are written (0: at the final rename)."""
    raw = os.environ.get(EXPORT_CRASH_ENV)
    if raw is None:
        return
    n = int(raw)
    if (n == 0 and final) or (n > 0 and rows_written >= n):
        sys.stderr.write(f"{EXPORT_CRASH_ENV}: simulated crash after {rows_written} rows\n")
        sys.stderr.flush()
        os._exit(70)
