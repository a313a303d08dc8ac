"""Runs one ported oslo.messaging test in this process and writes its outcome as JSON.

``python worker.py CLASS METHOD OUTCOME_FILE``, with the driver's variables in the environment
(set by :mod:`.subprocess_runs`). Used for tests that spend most of their time waiting (oslo's
logging-handler scenarios wait 15 s for stray events each): they run side by side, each in its
own process, because they set options on the process-wide ``cfg.CONF``.
"""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path


def run(class_name: str, method: str) -> dict[str, str]:
    """Outcome (``passed``, ``failed`` or ``skipped``) and detail text of one oslo test."""
    from oslo_functional.ported import test_classes

    test = test_classes("oslo_functional_worker", proxies=False)[class_name](method)
    result = unittest.TestResult()
    test.run(result)
    for _, text in result.errors + result.failures:
        return {"outcome": "failed", "detail": text}
    for _, reason in result.skipped:
        return {"outcome": "skipped", "detail": reason}
    if result.testsRun != 1:
        return {"outcome": "failed", "detail": f"{class_name}.{method} did not run"}
    return {"outcome": "passed", "detail": ""}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    outcome = run(sys.argv[1], sys.argv[2])
    Path(sys.argv[3]).write_text(json.dumps(outcome))
