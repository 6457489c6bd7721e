"""Self-supervised speech encoders (Wav2Vec2, HuBERT, WavLM) in Keras 3, loaded from Hugging Face checkpoints.

- :func:`load_pretrained` reads a local checkpoint folder (``config.json``, ``preprocessor_config.json``,
  ``model.safetensors`` or ``pytorch_model.bin``) without PyTorch and returns an :class:`SSLEncoder` that
  normalises its input as the checkpoint's feature extractor says.
- :class:`SSLEncoder` is one implementation for the three families, configured with HF's config fields;
  :meth:`SSLEncoder.from_hf_config`, :func:`small_config` and :func:`demo_encoder` build randomly initialised
  ones.
- Called on ``{"waveform", "padding_mask"}`` an encoder returns ``last_hidden_state`` and ``hidden_states`` as
  HF does with ``output_hidden_states=True`` (plus the frame mask), each clip what it gets alone;
  :meth:`SSLEncoder.encode` takes a list of clips of any lengths.
- Every loader attaches a :class:`Provenance` (``encoder.provenance``): what stores record of the weights.

Modules: :mod:`.checkpoint` (the checkpoint's files), :mod:`.convert` (tensor names onto the model),
:mod:`.encoder` and :mod:`.layers` (the model), :mod:`.provenance`, :mod:`.presets` (the feature sets' encoders).
"""

from exvo_keras.models.ssl.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    checkpoint_digest,
    read_checkpoint,
    read_config,
    read_do_normalize,
)
from exvo_keras.models.ssl.convert import (
    IGNORED_BASE_TENSORS,
    IGNORED_HEAD_PREFIXES,
    assign_checkpoint,
    load_pretrained,
)
from exvo_keras.models.ssl.encoder import (
    DEFAULT_MAX_SAMPLES,
    FAMILY_DEFAULTS,
    HF_DEFAULTS,
    MODEL_TYPES,
    SSLEncoder,
    hf_config_fields,
    small_config,
)
from exvo_keras.models.ssl.presets import checkpoint_for, demo_encoder
from exvo_keras.models.ssl.provenance import Provenance, provenance_of

__all__ = [
    "CheckpointError",
    "DEFAULT_MAX_SAMPLES",
    "FAMILY_DEFAULTS",
    "HF_DEFAULTS",
    "IGNORED_BASE_TENSORS",
    "IGNORED_HEAD_PREFIXES",
    "MODEL_TYPES",
    "Provenance",
    "SSLEncoder",
    "UnsafeCheckpointError",
    "assign_checkpoint",
    "checkpoint_digest",
    "checkpoint_for",
    "demo_encoder",
    "hf_config_fields",
    "load_pretrained",
    "provenance_of",
    "read_checkpoint",
    "read_config",
    "read_do_normalize",
    "small_config",
]
