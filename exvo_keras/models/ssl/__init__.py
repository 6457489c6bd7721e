"""Self-supervised speech encoders (Wav2Vec2, HuBERT, WavLM) in Keras 3, loaded from Hugging Face checkpoints.

- :func:`load_pretrained` reads a local checkpoint folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``) without PyTorch and returns an :class:`SSLEncoder`.
- :class:`SSLEncoder` is one implementation for the three families, configured with HF's config fields;
  :meth:`SSLEncoder.from_hf_config` and :func:`small_config` build randomly initialised ones.
- Called on ``[batch, samples]`` an encoder returns ``last_hidden_state`` and ``hidden_states`` as HF does with
  ``output_hidden_states=True``; :meth:`SSLEncoder.encode` takes clips of different lengths and gives each
  the result it gets alone.
"""

from exvo_keras.models.ssl.convert import (
    IGNORED_BASE_TENSORS,
    IGNORED_HEAD_PREFIXES,
    CheckpointError,
    UnsafeCheckpointError,
    assign_checkpoint,
    load_pretrained,
    read_checkpoint,
    read_config,
)
from exvo_keras.models.ssl.encoder import (
    DEFAULT_MAX_SAMPLES,
    HF_DEFAULTS,
    MODEL_TYPES,
    SSLEncoder,
    hf_config_fields,
    small_config,
)

__all__ = [
    "CheckpointError",
    "DEFAULT_MAX_SAMPLES",
    "HF_DEFAULTS",
    "IGNORED_BASE_TENSORS",
    "IGNORED_HEAD_PREFIXES",
    "MODEL_TYPES",
    "SSLEncoder",
    "UnsafeCheckpointError",
    "assign_checkpoint",
    "hf_config_fields",
    "load_pretrained",
    "read_checkpoint",
    "read_config",
    "small_config",
]
