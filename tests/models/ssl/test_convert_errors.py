"""A checkpoint file cut short (an interrupted download or copy) is named, with what to do about it."""

import shutil
from pathlib import Path

import pytest

from exvo_keras.models.ssl import CheckpointError, UnsafeCheckpointError, load_pretrained

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _truncated(tmp_path, case, name, keep=0.5):
    folder = tmp_path / case
    shutil.copytree(FIXTURES / case, folder)
    path = folder / name
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return folder, path


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.999])
def test_truncated_safetensors_names_the_file(tmp_path, keep):
    folder, path = _truncated(tmp_path, "wavlm_base", "model.safetensors", keep)
    with pytest.raises(CheckpointError, match=rf"(?s){path}.*truncated or corrupt.*download or copy it again"):
        load_pretrained(folder)


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.999])
def test_truncated_pytorch_bin_names_the_file_and_is_not_taken_for_the_legacy_format(tmp_path, keep):
    folder, path = _truncated(tmp_path, "wav2vec2_legacy_bin", "pytorch_model.bin", keep)
    with pytest.raises(CheckpointError, match=rf"(?s){path}.*truncated or corrupt.*download or copy it again") as err:
        load_pretrained(folder)
    assert not isinstance(err.value, UnsafeCheckpointError)
    assert "legacy format" not in str(err.value)


def test_bad_config_json_names_the_file(tmp_path):
    folder, path = _truncated(tmp_path, "hubert_base", "config.json")
    with pytest.raises(CheckpointError, match=rf"(?s){path}.*not valid JSON.*download or copy it again"):
        load_pretrained(folder)
    path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=rf"{path}.*not a JSON object"):
        load_pretrained(folder)


def test_bad_shard_index_names_the_file(tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(FIXTURES / "hubert_base", folder)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    index = folder / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "model-00001-of-0')
    with pytest.raises(CheckpointError, match=rf"(?s){index}.*not valid JSON"):
        load_pretrained(folder)
