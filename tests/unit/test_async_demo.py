"""``msgbus demo --async`` runs on fake:// and shows what it says."""

import subprocess
import sys


def test_cli_async_demo_runs_on_fake() -> None:
    out = subprocess.run([sys.executable, "-m", "msgbus", "demo", "--async"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "(asyncio)" in out.stdout
    assert "add(2, 3)          -> 5" in out.stdout
    assert "1000 results, sum 999000" in out.stdout
    assert "blocking_square(7) -> 49" in out.stdout
    assert "ZeroDivisionError" in out.stdout
    assert sum(line.startswith("fanout") for line in out.stdout.splitlines()) == 2
