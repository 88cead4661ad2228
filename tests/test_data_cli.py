"""`msdetr data synth` and `msdetr data check` from the command line."""

from __future__ import annotations

import argparse

import pytest

from msdetr.commands import data as data_command
from msdetr.errors import MsdetrError
from support.data import annotation, make_dataset


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="msdetr")
    data_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_synth_then_check_passes(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert _run(["data", "synth", "--out", str(out), "--train", "6", "--val", "3", "--size", "64",
                 "--seed", "4"]) == 0
    assert "wrote 6 train + 3 val images" in capsys.readouterr().out
    assert len(list((out / "train").glob("*.png"))) == 6
    assert _run(["data", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "OK: 0 error(s)" in text and "== train" in text and "== val" in text


def test_check_fails_on_errors_and_names_them(tmp_path, capsys):
    images = [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}]
    path = make_dataset(tmp_path, images, [annotation(77, 1, 1, [1, 1, -4, 5])], [{"id": 1, "name": "x"}])
    assert _run(["data", "check", str(path), "--images", str(tmp_path / "train")]) == 1
    text = capsys.readouterr().out
    assert "a.png: annotation 77" in text and text.rstrip().splitlines()[-1].startswith("FAILED: 1 error(s)")


def test_user_errors_are_one_line_msdetr_errors(tmp_path):
    with pytest.raises(MsdetrError, match="dataset folder not found|not found"):
        _run(["data", "check", str(tmp_path / "nothing")])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(MsdetrError, match="not a synthetic dataset"):
        _run(["data", "synth", "--out", str(tmp_path / "busy"), "--train", "1", "--val", "0"])


def test_data_without_action_prints_help(capsys):
    assert _run(["data"]) == 0
    assert "synth" in capsys.readouterr().out
