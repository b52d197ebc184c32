"""The one JSON reader (avood_core/util/json_read.py): each bad file is one AvoodError line naming it."""

from __future__ import annotations

import json

import pytest

from avood_core.errors import AvoodError, CheckpointError
from avood_core.util.json_read import MAX_DEPTH, depth, field, read_json

BAD = [
    ("empty", b"", {}, "is empty"),
    ("blank", b" \n\t", {}, "is empty"),
    ("utf16", json.dumps({"a": 1}).encode("utf-16"), {}, "is not UTF-8 text (byte 0xff at offset 0"),
    ("latin1", '{"name": "caf\u00e9"}'.encode("latin-1"), {}, "is not UTF-8 text"),
    ("deep-100000", b"[" * 100_000 + b"]" * 100_000, {}, "nests 100000 levels deep"),
    ("deep-objects", b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), {}, f"nests {MAX_DEPTH + 1} levels deep"),
    ("truncated", b'{"a": [1, 2', {}, "is not valid JSON"),
    ("list-for-object", b"[1, 2]", {}, "holds a list where an object belongs"),
    ("number-for-object", b"5", {}, "holds an integer where an object belongs"),
    ("object-for-list", b"{}", {"expect": list}, "holds an object where a list belongs"),
    ("nan-literal-ok-but-string-expected", b"NaN", {"expect": str}, "holds a number where a string belongs"),
]


@pytest.mark.parametrize("raw, kwargs, expected", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_json_is_one_line_naming_the_file(tmp_path, raw, kwargs, expected):
    path = tmp_path / "x.json"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as exc:
        read_json(path, error=CheckpointError, fix="rewrite it", **kwargs)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"'{path}'") and expected in msg and msg.endswith("; rewrite it"), msg


def test_missing_file_and_a_folder(tmp_path):
    with pytest.raises(AvoodError, match="not found"):
        read_json(tmp_path / "absent.json")
    with pytest.raises(AvoodError, match="cannot be read"):
        read_json(tmp_path)


def test_brackets_inside_strings_do_not_count_and_depth_is_exact(tmp_path):
    text = json.dumps({"s": "[[[[{{{{" * 1000, "t": 'a "quoted" \\ [ ]', "l": [[[1]]]})
    assert depth(text) == 4
    path = tmp_path / "ok.json"
    path.write_text(text)
    assert read_json(path)["l"] == [[[1]]]


FIELDS = [
    ({"fit_hashes": "zzz"}, "fit_hashes", dict, "field 'fit_hashes' must be an object, not a string 'zzz'"),
    ({"n": True}, "n", int, "field 'n' must be an integer, not true/false"),
    ({"n": "5"}, "n", int, "field 'n' must be an integer, not a string '5'"),
    ({"x": float("nan")}, "x", float, "field 'x' is nan, not a finite number"),
    ({}, "avood_format", int, "field 'avood_format' is missing (an integer expected)"),
]


@pytest.mark.parametrize("obj, key, types, expected", FIELDS, ids=[f[1] + "-" + str(i) for i, f in enumerate(FIELDS)])
def test_typed_field_names_the_field(obj, key, types, expected):
    with pytest.raises(AvoodError) as exc:
        field(obj, key, types, "'f.json'")
    assert str(exc.value).startswith("'f.json': ") and expected in str(exc.value), str(exc.value)


def test_typed_field_accepts_what_it_should():
    assert field({"x": 3}, "x", float, "'f'") == 3  # an integer is a number
    assert field({"h": None}, "h", (str, type(None)), "'f'") is None
    assert field({}, "h", str, "'f'", required=False) is None
