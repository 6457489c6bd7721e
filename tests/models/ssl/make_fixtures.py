"""Regenerates the SSL exactness fixtures with PyTorch and transformers (requirements-dev.txt).

    python tests/models/ssl/make_fixtures.py

Writes one folder per case under tests/models/ssl/fixtures/: a tiny Hugging Face checkpoint (config.json plus
model.safetensors, or pytorch_model.bin for the legacy case) and expected.npz with the input batch and HF's
outputs (`hidden_states` stacked as [layers + 1, batch, frames, hidden], `last_hidden_state`). versions.json
records the torch and transformers versions that produced them.

Every parameter is redrawn at a scale where it matters (HF's initialisation leaves LayerNorm scales at one,
WavLM's gate constants at one and its position bias near zero, so a wrong mapping of those could hide).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModel, Wav2Vec2Config, Wav2Vec2ForPreTraining

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(ROOT.parents[2]))

from exvo_keras.models.ssl import small_config  # noqa: E402

SAMPLES = 1200
BATCH = 2

# name -> (family, large layout, config overrides). Odd positional-conv kernels in two cases exercise the
# branch without HF's padding removal.
CASES = {
    "wav2vec2_base": ("wav2vec2", False, {}),
    "wav2vec2_large": ("wav2vec2", True, {}),
    "hubert_base": ("hubert", False, {}),
    "hubert_large": ("hubert", True, {"num_conv_pos_embeddings": 15}),
    "wavlm_base": ("wavlm", False, {}),
    "wavlm_large": ("wavlm", True, {"num_conv_pos_embeddings": 15}),
}
LEGACY = "wav2vec2_legacy_bin"


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Draws every parameter anew: scales near one, shifts and biases of 0.2, weights of 1/sqrt(fan-in)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            scale_like = name.endswith(("original0", "weight_g")) or (
                "norm" in name and name.endswith("weight"))
            if scale_like:
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                param.copy_(0.2 * noise)
            elif param.ndim >= 2 and not name.endswith("gru_rel_pos_const"):
                param.copy_(noise / param[0].numel() ** 0.5)
            else:
                param.copy_(noise)


def outputs(model, x: np.ndarray) -> dict:
    with torch.no_grad():
        out = model(torch.from_numpy(x), output_hidden_states=True)
    return {
        "input_values": x,
        "hidden_states": np.stack([h.numpy() for h in out.hidden_states]),
        "last_hidden_state": out.last_hidden_state.numpy(),
    }


def fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def main() -> None:
    torch.manual_seed(0)
    x = (0.5 * np.random.default_rng(0).standard_normal((BATCH, SAMPLES))).astype(np.float32)
    for seed, (name, (family, large, overrides)) in enumerate(CASES.items()):
        config = AutoConfig.for_model(**small_config(family, large=large, **overrides))
        model = AutoModel.from_config(config).eval()
        randomise(model, seed)
        folder = fresh(FIXTURES / name)
        model.save_pretrained(folder)
        np.savez_compressed(folder / "expected.npz", **outputs(model, x))

    # An old-style checkpoint: a *ForPreTraining model (keys prefixed "wav2vec2.", quantizer and projection
    # heads alongside), weight norm named weight_g / weight_v, saved as a torch zip pickle.
    config = Wav2Vec2Config(**small_config("wav2vec2"), num_codevector_groups=2, num_codevectors_per_group=4,
                            codevector_dim=8, proj_codevector_dim=8)
    model = Wav2Vec2ForPreTraining(config).eval()
    randomise(model, 100)
    folder = fresh(FIXTURES / LEGACY)
    config.save_pretrained(folder)
    renames = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
    state = OrderedDict()
    for key, value in model.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value.detach().clone()
    torch.save(state, folder / "pytorch_model.bin")
    np.savez_compressed(folder / "expected.npz", **outputs(model.wav2vec2, x))

    (FIXTURES / "versions.json").write_text(json.dumps(
        {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        indent=2) + "\n")
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    print(f"wrote {len(CASES) + 1} cases to {FIXTURES} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
