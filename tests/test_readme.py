"""The README's Python example runs as written."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    (tmp_path / "instances").symlink_to(ROOT / "instances")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "design.json").exists()


def test_readme_commands_are_the_ci_commands():
    text = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ('python3 -m pip install -e ".[test]"', "python3 -m pytest"):
        assert command in text and command in ci
