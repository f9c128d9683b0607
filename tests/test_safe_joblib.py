"""The reference's joblib files are read through an unpickler that admits only arrays and plain containers."""

import os
import shlex

import joblib
import numpy as np
import pytest

from chromtune.cli import main as cli_main
from chromtune.errors import UserError
from chromtune.io.chromdragonn import load_joblib
from conftest import assert_one_line_error, run_command


class RunsACommand:
    """A pickle payload: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def payloads(marker):
    return {
        "a value": {"rna_quants": RunsACommand(marker)},
        "inside an object array": {"rna_quants": np.array([RunsACommand(marker)], dtype=object)},
        "the whole file": RunsACommand(marker),
    }


@pytest.mark.parametrize("compress", [0, 3])
@pytest.mark.parametrize("case", ["a value", "inside an object array", "the whole file"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, case, compress):
    marker = tmp_path / "ran"
    path = tmp_path / "rna.joblib"
    joblib.dump(payloads(marker)[case], path, compress=compress)
    with pytest.raises(UserError) as err:
        load_joblib(path, "--rna")
    assert "refused" in str(err.value) and ".system" in str(err.value)
    assert not marker.exists()


def test_import_command_refuses_a_payload_in_one_line(tmp_path, capsys):
    marker = tmp_path / "ran"
    (tmp_path / "dnase").mkdir()
    joblib.dump({"features": np.zeros((2, 8, 1), np.uint8), "labels": RunsACommand(marker)},
                tmp_path / "dnase" / "dnase.chr1.packbit.joblib")
    joblib.dump({"rna_quants": RunsACommand(marker)}, tmp_path / "rna.joblib")
    code, _, err = run_command(cli_main, ["import-chromdragonn", "--dnase", tmp_path / "dnase",
                                          "--rna", tmp_path / "rna.joblib", "--out", tmp_path / "out.h5"], capsys)
    assert_one_line_error(code, err, "refused")
    assert not marker.exists() and not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("compress", [0, 3])
def test_arrays_and_plain_containers_load(tmp_path, compress):
    content = {"rna_quants": np.arange(6, dtype=np.float32).reshape(2, 3), "genes": np.array(["A", "B", "C"]),
               "tasks": ["t1", "t2"], "meta": {"n": 2, "names": np.array(["x", "y"], dtype=object)},
               "scalar": np.float64(1.5)}
    joblib.dump(content, tmp_path / "ok.joblib", compress=compress)
    loaded = load_joblib(tmp_path / "ok.joblib", "--rna")
    assert np.array_equal(loaded["rna_quants"], content["rna_quants"]) and loaded["tasks"] == ["t1", "t2"]
    assert list(loaded["meta"]["names"]) == ["x", "y"] and loaded["scalar"] == 1.5
