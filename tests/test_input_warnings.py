"""Inputs that build a data set, but probably not the one meant, are named in a warning."""

import numpy as np

from test_prepare import CELLS, make_inputs, prepare, write_expression


def warnings_of(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("chromtune: warning: ")]


def test_plain_tpm_gives_no_warning(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    write_expression(inputs["expression"], inputs["tpm"] * 1000 + 1)
    capsys.readouterr()
    assert prepare(inputs, tmp_path / "d.h5") == 0
    assert warnings_of(capsys) == []


def test_already_logged_expression_is_named_with_transform_none(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    write_expression(inputs["expression"], np.log1p(inputs["tpm"] * 1000 + 1))
    capsys.readouterr()
    assert prepare(inputs, tmp_path / "d.h5") == 0
    (line,) = warnings_of(capsys)
    assert "log-scaled" in line and "--transform none" in line and str(inputs["expression"]) in line
    assert prepare(inputs, tmp_path / "d2.h5", "--transform", "none") == 0
    assert warnings_of(capsys) == []


def test_all_zero_expression_and_empty_peak_file_are_named(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    tpm = inputs["tpm"] * 1000 + 1
    tpm[2] = 0  # (cell types, genes)
    write_expression(inputs["expression"], tpm)
    (tmp_path / "in" / "peaks" / f"{CELLS[0]}.narrowPeak").write_text("")
    capsys.readouterr()
    assert prepare(inputs, tmp_path / "d.h5") == 0
    found = warnings_of(capsys)
    assert any("all-zero expression" in line and CELLS[2] in line for line in found), found
    assert any("holds no peaks" in line and CELLS[0] in line for line in found), found
