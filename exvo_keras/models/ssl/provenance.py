"""Where an encoder's weights come from: the one record the loaders attach and the stores write and read back.

Every loader (:func:`exvo_keras.models.ssl.load_pretrained`, :func:`exvo_keras.models.ssl.presets.demo_encoder`)
attaches a :class:`Provenance` to the encoder it returns (`SSLEncoder.provenance`). A store records it as two
settings, written by :meth:`Provenance.to_attrs` and read back by :meth:`Provenance.from_attrs`, nowhere else:

    "weights": "sha1 <16 hex>"            a checkpoint (digest of its weight files)
               "random-init seed <N>"     a demo encoder (rebuilt from its seed)
               "variables sha1 <16 hex>"  any other encoder object (digest of its variables)
    "do_normalize": true / false          whether the encoder normalises each clip first
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["checkpoint", "demo", "variables"]
_PREFIXES = {"checkpoint": "sha1 ", "demo": "random-init seed ", "variables": "variables sha1 "}


@dataclass(frozen=True)
class Provenance:
    """The source of an encoder's weights.

    Args:
        kind: "checkpoint" (a Hugging Face folder, `digest` of its weight files), "demo" (a random-init demo
            encoder, rebuilt from `seed`) or "variables" (any other encoder object, `digest` of its variables).
        do_normalize: whether the encoder normalises each clip to zero mean and unit variance first.
        seed: the demo encoder's seed.
        digest: 16 hex digits of SHA-1.
        label: where it came from, for messages (a folder, a model name); see :attr:`where`.
        variables: digest of the encoder's variables when it was attached: a record is the encoder's only while
            they are unchanged (see :func:`provenance_of`). Not part of what stores record.

    Example:
        >>> p = Provenance.from_attrs({"weights": "random-init seed 0", "do_normalize": False})
        >>> p.kind, p.seed, p.to_attrs()
        ('demo', 0, {'weights': 'random-init seed 0', 'do_normalize': False})
    """

    kind: Kind
    do_normalize: bool
    seed: int | None = None
    digest: str | None = None
    label: str = ""
    variables: str | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def weights(self) -> str:
        """The store's "weights" string."""
        value = self.seed if self.kind == "demo" else self.digest
        return f"{_PREFIXES[self.kind]}{value}"

    @property
    def where(self) -> str:
        """The label, else a description from the record ("demo encoder (random-init seed 0)")."""
        if self.label:
            return self.label
        return f"demo encoder ({self.weights})" if self.kind == "demo" else self.weights

    @property
    def random_init(self) -> bool:
        """A randomly initialised stand-in (the demo's) rather than trained weights."""
        return self.kind == "demo"

    def to_attrs(self) -> dict:
        """The store settings this record stands for."""
        return {"weights": self.weights, "do_normalize": bool(self.do_normalize)}

    @classmethod
    def from_attrs(cls, settings: dict) -> "Provenance":
        """The record a store's settings hold (ValueError for a "weights" string of no known form)."""
        weights = str(settings.get("weights", ""))
        do_normalize = bool(settings.get("do_normalize", False))
        # Longest prefix first: "sha1 " is the tail of "variables sha1 ".
        for kind, prefix in sorted(_PREFIXES.items(), key=lambda item: -len(item[1])):
            if weights.startswith(prefix):
                value = weights[len(prefix):]
                if kind == "demo":
                    return cls("demo", do_normalize, seed=int(value))
                return cls(kind, do_normalize, digest=value)
        raise ValueError(f"weights {weights!r}: not a checkpoint digest, a demo seed or a variables digest")


def variables_digest(encoder) -> str:
    """SHA-1 (16 hex digits) of an encoder's variables (paths and float32 values)."""
    h = hashlib.sha1()
    # In graph order (its layers'), not in the order the encoder's attributes were set: the digest of the same
    # weights stays what it was when the layers were not attributes.
    for variable in (v for layer in encoder.layers for v in layer.weights):
        h.update(variable.path.encode())
        h.update(np.ascontiguousarray(np.asarray(variable), dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def attach(encoder, provenance: Provenance):
    """Records `provenance` on `encoder` (with the digest of its variables now) and returns the encoder."""
    encoder.provenance = dataclasses.replace(provenance, variables=variables_digest(encoder))
    return encoder


def provenance_of(encoder) -> Provenance:
    """The encoder's attached record while its variables and do_normalize are those it was attached with;
    otherwise (none attached, or weights changed since) a "variables" record of what it holds now."""
    attached = encoder.provenance
    digest = variables_digest(encoder)
    if attached is not None and attached.variables == digest and attached.do_normalize == encoder.do_normalize:
        return attached
    return Provenance("variables", encoder.do_normalize, digest=digest, label=encoder.name, variables=digest)
