"""The documentation stays true to the code."""

import re
from pathlib import Path

from partners.macros import MACROS

ROOT = Path(__file__).resolve().parents[1]


def test_macro_table_lists_exactly_the_macros_in_code():
    text = (ROOT / "docs" / "macros.md").read_text()
    documented = re.findall(r"^\| `\{([a-z_]+)\}` \|", text, flags=re.MULTILINE)
    assert documented == [macro.name for macro in MACROS]
    for macro in MACROS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{{{macro.name}}}`"))
        assert row.rstrip().endswith("| yes |") == macro.attribution, macro.name


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_every_setting_read_from_the_environment_is_in_the_readme():
    settings_source = (ROOT / "project" / "settings.py").read_text()
    names = set(re.findall(r'env_[a-z]+\("([A-Z_]+)"', settings_source))
    assert names, "the pattern no longer finds the settings"
    readme = (ROOT / "README.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in readme) == []
