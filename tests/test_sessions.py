"""Checkpoint folders a training session reads: nothing of them may stay behind in /tmp."""

import pyarrow.fs as pafs
from ray.train import Checkpoint

from chromtune.train.sessions import checkpoint_files


def test_a_downloaded_checkpoint_folder_is_removed_after_reading(tmp_path):
    saved = tmp_path / "storage" / "epoch_0003"
    saved.mkdir(parents=True)
    (saved / "state.pt").write_bytes(b"state")
    # a filesystem other than the local one: Ray downloads the checkpoint, as from cloud storage
    remote = pafs.SubTreeFileSystem(str(tmp_path / "storage"), pafs.LocalFileSystem())
    with checkpoint_files(Checkpoint("epoch_0003", filesystem=remote)) as folder:
        assert folder != saved and (folder / "state.pt").read_bytes() == b"state"
    assert not folder.exists()  # the download went with the block
    assert (saved / "state.pt").exists()


def test_a_local_checkpoint_is_read_in_place_and_none_gives_none(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"state")
    with checkpoint_files(Checkpoint.from_directory(str(tmp_path))) as folder:
        assert folder == tmp_path
    assert (tmp_path / "state.pt").exists()
    with checkpoint_files(None) as folder:
        assert folder is None
