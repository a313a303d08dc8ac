"""The README's two commands stay true: the demo command and the test command CI runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _code_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_blocks = text.split("```sh\n")[1:3]
    assert len(first_blocks) == 2
    assert text.index("```sh") < text.index("\n\n", text.index("# msgbus")) + 3
    demo, tests = (b.strip() for b in _code_blocks()[:2])
    assert demo.endswith("msgbus demo") and "\n" not in demo
    assert "pytest" in tests and "\n" not in tests


def test_ci_runs_the_readme_test_command() -> None:
    tests = _code_blocks()[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines


def test_readme_python_examples_run() -> None:
    import msgbus.fake
    text = (ROOT / "README.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", text, re.S)
    runnable = [code for code in examples if 'url="fake://"' in code]
    assert len(runnable) >= 2
    for code in runnable:
        exec(compile(code, "README.md", "exec"), {})
        msgbus.fake.reset()
