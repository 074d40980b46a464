"""Key -> line locator for TOML text (tomllib gives no positions)."""

from __future__ import annotations

import tomllib

from engine.campaign.toml_lines import locate_keys

TEXT = '''# comment [not.a.table]
title = "a # not a comment"  # a comment
multi = """
fake = 1
[fake.table]
"""
array = [
  "x]",  # ] inside a string and a comment
  'y',
]
"quoted key" = 1
dotted.key = 2

[defaults.params]
learning_rate = { log_uniform = [1e-4, 1e-3] }
'lit' = 'a\\'

[[experiments]]
budget = "2M"

[experiments.params]
dropout = 0.1

[[experiments]]
budget = "20M"
[[experiments.sub]]
x = 1
[[experiments.sub]]
x = 2
'''


def test_lines_of_keys_tables_and_array_elements() -> None:
    tomllib.loads(TEXT)  # valid TOML
    lines = locate_keys(TEXT)
    assert lines.line(("title",)) == 2
    assert lines.line(("multi",)) == 3
    assert lines.line(("array",)) == 7
    assert lines.line(("quoted key",)) == 11
    assert lines.line(("dotted", "key")) == 12
    assert lines.line(("defaults", "params")) == 14
    assert lines.line(("defaults", "params", "learning_rate")) == 15
    assert lines.line(("defaults", "params", "lit")) == 16
    assert lines.line(("experiments", 0)) == 18
    assert lines.line(("experiments", 0, "budget")) == 19
    assert lines.line(("experiments", 0, "params", "dropout")) == 22
    assert lines.line(("experiments", 1, "budget")) == 25
    assert lines.line(("experiments", 1, "sub", 1, "x")) == 29
    assert ("fake",) not in lines.lines and ("fake", "table") not in lines.lines


def test_inline_keys_fall_back_to_their_parent_line() -> None:
    lines = locate_keys(TEXT)
    assert lines.line(("defaults", "params", "learning_rate", "log_uniform")) == 15
    assert lines.line(("array", 1)) == 7
    assert lines.line(("nowhere",)) == 1
