"""pairdesign._jsonio.loads: the safe JSON parser every reader uses."""

import pytest

from pairdesign._jsonio import MAX_DEPTH, JSONError, loads


@pytest.mark.parametrize("text, expected", [
    ('{"a": [1, NaN]}', "line 1 column 11: NaN is not valid JSON"),
    ('{"a":\n [1, -Infinity]}', "line 2 column 6: -Infinity is not valid JSON"),
    ('{"w": 1e400}', "line 1 column 7: 1e400 is beyond the float range"),
    ('{"w": 1' + "0" * 400 + "}", "is beyond the float range"),
    ("[" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
    ("[" * 900 + "]" * 900, f"[0][0][0][0]...[0][0]: nested deeper than {MAX_DEPTH} levels"),
    ('{"x": ["ok", "\\ud800"]}', "x[1]: holds a lone surrogate"),
    (b'{"x": "\xff"}', "not UTF-8 (byte 7"),
    ("{", "line 1 column 2: not valid JSON"),
])
def test_refusals_say_what_and_where(text, expected):
    with pytest.raises(JSONError) as info:
        loads(text)
    assert expected in str(info.value)


def test_ordinary_json_and_strings_that_look_hostile():
    doc = '\ufeff{"a": "NaN [[[ \\\\ud800", "b": [1.5, -2e3, 12345678901234567890], "c": "\\ud83d\\ude00"}'
    assert loads(doc) == {"a": "NaN [[[ \\ud800", "b": [1.5, -2000.0, 12345678901234567890], "c": "\U0001F600"}
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(nested) is not None
