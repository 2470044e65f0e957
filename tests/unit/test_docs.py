"""docs/reliability.md names tests: each one must exist (file, and function where named)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_named_in_reliability_md_exists():
    doc = (REPO / "docs/reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+(?:\[\w+\])?)?)`", doc)
    assert named
    missing = []
    for path, func in named:
        source = REPO / path
        if not source.is_file():
            missing.append(path)
        elif func and f"def {func[2:].split('[')[0]}(" not in source.read_text():
            missing.append(path + func)
    # "`::name`" after a file in the same cell refers to that file.
    for cell in re.findall(r"\| ([^|]*tests/[^|]*) \|\s*$", doc, re.M):
        current = None
        for token in re.findall(r"`([^`]+)`", cell):
            if token.startswith("tests/"):
                current = REPO / token.split("::")[0]
            elif (
                token.startswith("::")
                and current is not None
                and f"def {token[2:].split('[')[0]}(" not in current.read_text()
            ):
                missing.append(f"{current.name}{token}")
    assert missing == []
