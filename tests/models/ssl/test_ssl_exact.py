"""The Keras SSL encoders against Hugging Face's PyTorch models, the strict checkpoint loader, unequal lengths,
input normalisation in the graph.

The fixtures (tests/models/ssl/fixtures/, made by make_fixtures.py) are tiny random checkpoints of every family
in both layouts plus a legacy one, with HF's hidden states for a fixed input, so the exactness tests run
without PyTorch. `test_live_*` repeat the comparison against the installed transformers when it is importable.
"""

import builtins
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import exvo_keras.models.ssl as ssl_package
from exvo_keras.models.ssl import (
    CheckpointError,
    SSLEncoder,
    UnsafeCheckpointError,
    checkpoint_digest,
    load_pretrained,
    read_checkpoint,
    small_config,
)
from exvo_keras.models.ssl.layers import relative_position_bucket_table

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = ["wav2vec2_base", "wav2vec2_large", "hubert_base", "hubert_large", "wavlm_base", "wavlm_large"]
LEGACY = "wav2vec2_legacy_bin"
TOL = 1e-4

_loaded = {}


def fixture_model(case):
    """Loaded once per session; tests must not change its weights. The fixtures are HF's models without their
    feature extractor: no input normalisation."""
    if case not in _loaded:
        _loaded[case] = load_pretrained(FIXTURES / case, do_normalize=False)
    return _loaded[case]


def unpadded(model, x):
    """The encoder on a batch of equal-length clips (a padding mask of ones)."""
    x = np.asarray(x, "float32")
    return model({"waveform": x, "padding_mask": np.ones(x.shape, "int32")})


def deviations(model, expected):
    out = unpadded(model, expected["input_values"])
    hidden, last = np.asarray(out["hidden_states"]), np.asarray(out["last_hidden_state"])
    assert hidden.shape == expected["hidden_states"].shape
    assert last.shape == expected["last_hidden_state"].shape
    return np.abs(hidden - expected["hidden_states"]).max(), np.abs(last - expected["last_hidden_state"]).max()


@pytest.mark.parametrize("case", CASES + [LEGACY])
def test_fixture_matches_hugging_face(case):
    expected = np.load(FIXTURES / case / "expected.npz")
    model = fixture_model(case)
    hidden_dev, last_dev = deviations(model, expected)
    assert hidden_dev < TOL and last_dev < TOL, (case, hidden_dev, last_dev)
    layers, _, frames, _ = expected["hidden_states"].shape
    assert layers == model.num_hidden_layers + 1 and frames == model.frame_count(expected["input_values"].shape[1])


def test_legacy_fixture_is_an_old_style_checkpoint():
    tensors = read_checkpoint(FIXTURES / LEGACY)
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_g" in tensors
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_v" in tensors
    assert any(k.startswith("quantizer.") for k in tensors) and "project_q.weight" in tensors
    assert not (FIXTURES / LEGACY / "model.safetensors").exists()


def test_loading_needs_no_torch(monkeypatch):
    """No module of the package imports PyTorch, and loading the legacy .bin imports nothing of it either."""
    package = Path(ssl_package.__file__).parent
    for source in package.glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(torch|transformers)\b", source.read_text(), re.M), source
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} imported while loading")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    expected = np.load(FIXTURES / LEGACY / "expected.npz")
    assert max(deviations(load_pretrained(FIXTURES / LEGACY, do_normalize=False), expected)) < TOL


def test_final_norm_in_hidden_states_gives_the_transformers4_convention():
    expected = np.load(FIXTURES / "wavlm_large" / "expected.npz")
    model = load_pretrained(FIXTURES / "wavlm_large", final_norm_in_hidden_states=True, do_normalize=False)
    out = unpadded(model, expected["input_values"])
    hidden, last = np.asarray(out["hidden_states"]), np.asarray(out["last_hidden_state"])
    np.testing.assert_array_equal(hidden[-1], last)
    assert np.abs(hidden[:-1] - expected["hidden_states"][:-1]).max() < TOL
    # transformers 5 (the fixtures): the last entry is the last layer's output before the final LayerNorm.
    assert np.abs(expected["hidden_states"][-1] - expected["last_hidden_state"]).max() > 0.1


# Unequal lengths -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_batched_clips_equal_one_at_a_time(case):
    model = fixture_model(case)
    rng = np.random.default_rng(1)
    clips = [0.5 * rng.standard_normal(n).astype("float32") for n in (1600, 1203, 917, 1600, 455)]
    batched = model.encode(clips, batch_size=3)
    for clip, got in zip(clips, batched):
        alone = unpadded(model, clip[None])
        frames = model.frame_count(clip.size)
        assert got["hidden_states"].shape == (model.num_hidden_layers + 1, frames, model.hidden_size)
        assert np.abs(got["hidden_states"] - np.asarray(alone["hidden_states"])[:, 0]).max() < 1e-5
        assert np.abs(got["last_hidden_state"] - np.asarray(alone["last_hidden_state"])[0]).max() < 1e-5


def test_padding_is_zero_in_the_outputs_and_what_it_holds_does_not_matter():
    model = fixture_model("wav2vec2_base")
    waveform = 0.5 * np.random.default_rng(4).standard_normal((2, 1600)).astype("float32")
    mask = np.ones((2, 1600), "int32")
    mask[1, 1000:] = 0
    out = model({"waveform": waveform, "padding_mask": mask})
    frame_mask = np.asarray(out["frame_mask"])
    assert frame_mask.sum(axis=1).tolist() == [model.frame_count(1600), model.frame_count(1000)]
    assert not np.asarray(out["hidden_states"])[:, 1, model.frame_count(1000):].any()
    waveform[1, 1000:] = 1e6
    again = model({"waveform": waveform, "padding_mask": mask})
    np.testing.assert_array_equal(np.asarray(again["hidden_states"]), np.asarray(out["hidden_states"]))


@pytest.mark.parametrize("case", ["wav2vec2_base", "wavlm_large"])
def test_do_normalize_normalises_each_clip_under_its_padding_mask(case):
    """The encoder with do_normalize on raw clips equals the encoder without it on clips normalised by HF's
    formula, clip by clip in one padded batch."""
    plain = fixture_model(case)
    normalising = load_pretrained(FIXTURES / case, do_normalize=True)
    rng = np.random.default_rng(5)
    clips = [(0.3 + k) * rng.standard_normal(n).astype("float32") + 0.2 for k, n in enumerate((1600, 1100))]
    normed = [(c - c.astype(np.float64).mean()) / np.sqrt(c.astype(np.float64).var() + 1e-7) for c in clips]
    for got, want in zip(normalising.encode(clips), plain.encode(normed)):
        assert np.abs(got["hidden_states"] - want["hidden_states"]).max() < 1e-5
    assert normalising.get_config()["do_normalize"] and not plain.get_config()["do_normalize"]


def test_encode_guards_lengths():
    model = fixture_model("wavlm_base")
    with pytest.raises(ValueError, match="max_samples"):
        model.encode([np.zeros(2000)], max_samples=1999)
    with pytest.raises(ValueError, match="at least"):
        model.encode([np.zeros(model.receptive_field - 1)])
    assert model.encode([np.zeros(2000)], max_samples=None)[0]["last_hidden_state"].shape[0] == 99
    assert model.receptive_field == 40 and model.frame_count(39) == 0 and model.frame_count(40) == 1


# Strict loading ------------------------------------------------------------------------------------------

def edited_checkpoint(tmp_path, edit, case="wavlm_base"):
    folder = tmp_path / case
    shutil.copytree(FIXTURES / case, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file(edit(dict(tensors)), str(folder / "model.safetensors"))
    return folder


def test_missing_tensor_is_named(tmp_path):
    name = "encoder.layers.1.attention.gru_rel_pos_const"
    folder = edited_checkpoint(tmp_path, lambda t: {k: v for k, v in t.items() if k != name})
    with pytest.raises(CheckpointError, match=r"missing tensors \(1\):\n  " + name.replace(".", r"\.")):
        load_pretrained(folder, do_normalize=False)


def test_unexpected_tensor_is_named(tmp_path):
    folder = edited_checkpoint(tmp_path, lambda t: {**t, "encoder.layers.1.attention.rel_attn_embed.weight":
                                                   t["encoder.layers.0.attention.rel_attn_embed.weight"]})
    with pytest.raises(CheckpointError, match=r"unexpected tensors \(1\):\n  encoder\.layers\.1\.attention"):
        load_pretrained(folder, do_normalize=False)


def test_misshapen_tensor_is_named(tmp_path):
    name = "encoder.layers.0.feed_forward.intermediate_dense.weight"
    folder = edited_checkpoint(tmp_path, lambda t: {**t, name: np.ascontiguousarray(t[name].T)})
    with pytest.raises(CheckpointError, match=r"wrong shape \(1\):\n  encoder\.layers\.0\.feed_forward\."
                                              r"intermediate_dense\.weight: checkpoint \(32, 64\), model expects "
                                              r"\(64, 32\)"):
        load_pretrained(folder, do_normalize=False)


def test_prefixed_keys_and_listed_heads_are_accepted(tmp_path):
    def edit(tensors):
        prefixed = {f"wavlm.{k}": v for k, v in tensors.items()}
        return {**prefixed, "lm_head.weight": np.zeros((5, 32), "float32"), "quantizer.codevectors": np.zeros(3)}

    folder = edited_checkpoint(tmp_path, edit)
    expected = np.load(folder / "expected.npz")
    assert max(deviations(load_pretrained(folder, do_normalize=False), expected)) < TOL


def test_sharded_checkpoint_loads_the_same_and_its_digest_covers_every_shard(tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(FIXTURES / "hubert_base", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(folder / shard))
    index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    model = load_pretrained(folder, do_normalize=False)
    assert max(deviations(model, np.load(folder / "expected.npz"))) < TOL
    assert model.provenance.digest == checkpoint_digest(folder)
    save_file({k: tensors[k] + (k == names[1]) for k in shards["model-00002-of-00002.safetensors"]},
              str(folder / "model-00002-of-00002.safetensors"))
    assert checkpoint_digest(folder) != model.provenance.digest


def test_unknown_head_is_unexpected(tmp_path):
    folder = edited_checkpoint(tmp_path, lambda t: {**{f"wavlm.{k}": v for k, v in t.items()},
                                                   "speaker_head.weight": np.zeros(3, "float32")})
    with pytest.raises(CheckpointError, match="speaker_head.weight"):
        load_pretrained(folder, do_normalize=False)


def test_clear_errors_for_missing_files_and_unsupported_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json and model.safetensors"):
        load_pretrained(tmp_path / "nowhere")
    folder = tmp_path / "no_weights"
    folder.mkdir()
    shutil.copy(FIXTURES / "hubert_base" / "config.json", folder)
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(ValueError, match="model_type 'whisper'"):
        load_pretrained(folder)


def test_unsafe_or_legacy_bin_is_refused_with_conversion_advice(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    folder = tmp_path / "evil"
    shutil.copytree(FIXTURES / LEGACY, folder)
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": Exploit()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"(?s)system.*refusing.*save_file\("):
        load_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UnsafeCheckpointError, match=r"(?s)not a PyTorch zip archive.*model\.safetensors"):
        load_pretrained(folder)


def test_half_precision_safetensors_are_widened(tmp_path):
    """bfloat16 (which numpy lacks) read from the raw safetensors layout, float16 widened too."""
    values = np.random.default_rng(0).standard_normal(6).astype("float32")
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
                         "b": {"dtype": "F16", "shape": [6], "data_offsets": [12, 24]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bf16.tobytes()
                                                  + values.astype("<f2").tobytes())
    tensors = read_checkpoint(tmp_path)
    assert tensors["a"].dtype == np.float32 and tensors["b"].dtype == np.float32
    np.testing.assert_array_equal(tensors["a"].ravel(), (bf16.astype(np.uint32) << 16).view(np.float32))
    np.testing.assert_array_equal(tensors["b"], values.astype(np.float16).astype(np.float32))


def test_unsupported_configs_are_refused():
    with pytest.raises(ValueError, match="add_adapter"):
        SSLEncoder.from_hf_config(small_config("wav2vec2", add_adapter=True))
    with pytest.raises(ValueError, match="feat_extract_norm"):
        SSLEncoder.from_hf_config(small_config("wavlm", feat_extract_norm="batch"))


# Keras round trips ---------------------------------------------------------------------------------------

def test_save_and_load_keras_model(tmp_path):
    model = fixture_model("wavlm_large")
    path = tmp_path / "encoder.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, SSLEncoder) and restored.get_config() == model.get_config()
    x = np.load(FIXTURES / "wavlm_large" / "expected.npz")["input_values"]
    np.testing.assert_allclose(np.asarray(unpadded(restored, x)["hidden_states"]),
                               np.asarray(unpadded(model, x)["hidden_states"]), rtol=0, atol=1e-6)


def test_random_encoder_from_config():
    a = SSLEncoder.from_hf_config(small_config("wavlm", large=True), seed=3)
    b = SSLEncoder.from_config(json.loads(json.dumps(a.get_config())))
    x = np.random.default_rng(0).standard_normal((1, 1600)).astype("float32")
    out_a = np.asarray(unpadded(a, x)["last_hidden_state"])
    assert out_a.shape == (1, 79, 32) and np.isfinite(out_a).all()
    np.testing.assert_array_equal(out_a, np.asarray(unpadded(b, x)["last_hidden_state"]))  # same seed, same weights


# Live comparison with transformers (skipped where it is not installed) -----------------------------------

LIVE = {
    **{case: (case.split("_")[0], case.endswith("large"), {}) for case in CASES},
    "hubert_no_proj_norm_batch_norm_pos": ("hubert", False, {"feat_proj_layer_norm": False,
                                                             "conv_pos_batch_norm": True}),
    "wav2vec2_gelu_new_odd_kernel": ("wav2vec2", True, {"hidden_act": "gelu_new", "num_conv_pos_embeddings": 7,
                                                        "conv_bias": False}),
}


def hf_model(family, large, overrides, seed):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from make_fixtures import randomise

    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(
        transformers.AutoConfig.for_model(**small_config(family, large=large, **overrides))).eval()
    randomise(model, seed)
    if overrides.get("conv_pos_batch_norm"):
        bn = model.encoder.pos_conv_embed.batch_norm
        bn.running_mean.normal_(0, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("name", list(LIVE))
def test_live_matches_transformers(name, tmp_path):
    family, large, overrides = LIVE[name]
    model = hf_model(family, large, overrides, seed=len(name))
    import torch

    model.save_pretrained(tmp_path)
    x = (0.5 * np.random.default_rng(2).standard_normal((2, 1500))).astype("float32")
    with torch.no_grad():
        out = model(torch.from_numpy(x), output_hidden_states=True)
    expected = {"input_values": x, "hidden_states": np.stack([h.numpy() for h in out.hidden_states]),
                "last_hidden_state": out.last_hidden_state.numpy()}
    hidden_dev, last_dev = deviations(load_pretrained(tmp_path, do_normalize=False), expected)
    assert hidden_dev < TOL and last_dev < TOL, (name, hidden_dev, last_dev)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_live_padding_equals_transformers_attention_mask(family, tmp_path):
    """For "layer" models our padded batches agree with HF's attention_mask on the valid frames."""
    model = hf_model(family, True, {}, seed=7)
    import torch

    model.save_pretrained(tmp_path)
    lengths = (1500, 1100)
    x = (0.5 * np.random.default_rng(3).standard_normal((2, 1500))).astype("float32")
    mask = np.zeros((2, 1500), "int64")
    for row, n in enumerate(lengths):
        x[row, n:] = 0
        mask[row, :n] = 1
    with torch.no_grad():
        out = model(torch.from_numpy(x), attention_mask=torch.from_numpy(mask), output_hidden_states=True)
    hf_hidden = np.stack([h.numpy() for h in out.hidden_states])
    ours = load_pretrained(tmp_path, do_normalize=False).encode([x[row, :n] for row, n in enumerate(lengths)])
    for row, n in enumerate(lengths):
        frames = ours[row]["hidden_states"].shape[1]
        assert np.abs(ours[row]["hidden_states"] - hf_hidden[:, row, :frames]).max() < TOL


def test_live_relative_position_buckets_match_transformers():
    pytest.importorskip("torch")
    wavlm = pytest.importorskip("transformers.models.wavlm.modeling_wavlm")
    import torch

    for num_buckets, max_distance in ((320, 800), (32, 64)):
        attention = wavlm.WavLMAttention(8, 2, num_buckets=num_buckets, max_distance=max_distance)
        relative = torch.arange(-3000, 3001)
        theirs = attention._relative_positions_bucket(relative).numpy()
        table = relative_position_bucket_table(num_buckets, max_distance)
        r = relative.numpy()
        ours = table[np.minimum(np.abs(r), max_distance)] + (r > 0) * (num_buckets // 2)
        np.testing.assert_array_equal(ours, theirs)
