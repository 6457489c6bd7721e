"""Training and scoring the multi-task heads over several seeds, one run folder per seed.

A run folder (`RUN_DIR/seed_<k>/`) holds `model.keras`, `history.json` (per epoch: the total and each task's
loss, `emotion_loss`, `age_loss`, `country_loss`, and the scores `emo_ccc`, `age_mae`, `cou_uar`, `s_mtl` on the
training rows, each also with `val_` for the rows that pick the epoch), `tensorboard/` (the same curves),
`predictions_<Split>.csv` and `metrics.json`; `RUN_DIR/config.json` records what was trained and `RUN_DIR/summary.json` the mean and standard
deviation over seeds. A seed whose `metrics.json` exists is not trained again, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import shutil
from typing import Sequence

import keras
import numpy as np
import pandas as pd

from exvo_keras.data.corpus import Corpus
from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.metrics import score_all
from exvo_keras.runs import atomic_write_text, claim_run_dir, read_json
from exvo_keras.store import read_fused
from exvo_keras.training.recipes import HeadTraining
from exvo_keras.workspace import RunFolder


def _split_ids(corpus: Corpus, cfg: HeadTraining) -> dict[str, list[str]]:
    from exvo_keras.data.corpus import speaker_split

    ids = {s: corpus.file_ids(s) for s in ("Train", *cfg.eval_splits)}
    if cfg.early_stopping == "dev":
        ids["Train"], ids["dev"] = speaker_split(corpus, 0.1, seed=0)
    elif cfg.early_stopping in ("Val", "Train", "Test"):
        ids.setdefault(cfg.early_stopping, corpus.file_ids(cfg.early_stopping))
    else:
        raise ValueError(f"early_stopping must be 'Val' or 'dev', got {cfg.early_stopping!r}")
    return ids


class HeadTrainer:
    """Trains one head configuration on fixed data, once per seed, reusing one compiled model.

    Tracing the training and validation graphs costs about as much as 20 epochs of a small head (measured 4.2 s
    of 10 s per seed on ComParE); every seed has the same shapes, so seeds after the first only reset the
    weights (to those a fresh model with that seed would get) and the optimiser state, and reuse the graphs.
    A seed trained here gives the same weights as that seed trained alone.

    `strategy`: the ``tf.distribute`` strategy the model and its optimiser are built under (e.g. a
    MirroredStrategy from `exvo_keras.devices.strategy_for`); None takes the one in scope. `cfg.batch_size`
    stays the global batch, split across the strategy's devices.
    """

    def __init__(self, X_train, y_train, X_stop, y_stop, cfg: HeadTraining, strategy=None):
        import keras
        import tensorflow as tf

        from exvo_keras.models.mtl import MultiTaskHead

        self.cfg = cfg
        self.data = (X_train, y_train, X_stop, y_stop)
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        # Constant features (ComParE has some) would divide by ~0 and explode on other splits: leave them unscaled.
        std = np.where(std < 1e-8, 1.0, std)
        # `[rows, layers, dims]` (every layer of an SSL store, `cfg.layer == "weighted"`): a layer-weighting head
        self.head_args = dict(input_dim=X_train.shape[-1], input_layers=X_train.shape[1] if X_train.ndim == 3 else 0,
                              feature_mean=mean, feature_std=std,
                              age_mean=float(y_train["age"].mean()), age_std=float(y_train["age"].std()),
                              clip_z=cfg.clip_z, dropout=cfg.dropout, l2=cfg.l2)
        if cfg.head == "linear":
            self.head_args["l2"] = 0.0
        elif cfg.linear_skip:
            self.head_args.update(linear_skip=True, emotion_activation="linear")
        self.linear_start = None
        strategy = strategy or tf.distribute.get_strategy()
        # One graph call per epoch instead of one per batch: halves the epoch time of these small heads
        # (measured 0.41 -> 0.21 s per epoch for Sys-1 on ComParE, 320 rows, batch 8). Not on several devices:
        # Keras 3.15's multi-step loop fails there on TensorFlow 2.17 ("You must feed a value for placeholder
        # tensor 'while/cond/Placeholder'", even for a Dense layer).
        steps = max(1, -(-len(X_train) // cfg.batch_size)) if strategy.num_replicas_in_sync == 1 else 1
        # Weights and optimiser slots are made once per device under the scope; later seeds only assign them.
        with strategy.scope():
            self.model = MultiTaskHead.from_preset(cfg.head, **self.head_args, seed=0)
            opt = keras.optimizers.Adam(cfg.learning_rate, weight_decay=cfg.weight_decay or None)
            self.model.compile(optimizer=opt, steps_per_execution=steps)
            opt.build(self.model.trainable_variables)
        # The untouched optimiser state (step 0, zero moments, the configured learning rate) each seed starts from.
        self.initial_optimizer_state = [v.numpy() for v in opt.variables]

    def fit(self, seed: int, verbose: int = 0, log_dir=None):
        """Trains from the seed's initial weights; returns (model, history). The best epoch's weights are kept.

        `log_dir`: where TensorBoard logs go (the seed folder's `tensorboard/`), or None for none.
        """
        import tensorflow as tf

        from exvo_keras.devices import evaluation_batches
        from exvo_keras.models.mtl import MultiTaskHead

        if self.cfg.head == "linear":
            return self._fit_linear()
        keras.utils.set_random_seed(seed)
        fresh = MultiTaskHead.from_preset(self.cfg.head, **self.head_args, seed=seed)
        self.model.set_weights(fresh.get_weights())
        if self.cfg.linear_skip:
            self._load_linear(self.model, refit=False)
        self.model.seed = seed
        for var, value in zip(self.model.optimizer.variables, self.initial_optimizer_state):
            var.assign(value)
        X_train, y_train, X_stop, y_stop = self.data
        # Datasets, not numpy arrays: fit() would rebuild an input pipeline from arrays every epoch.
        train = tf.data.Dataset.from_tensor_slices((X_train, y_train)).shuffle(len(X_train), seed=seed)
        train = train.batch(self.cfg.batch_size).prefetch(2)
        stop_data = tf.data.Dataset.from_tensor_slices((X_stop, y_stop)).batch(512).cache()
        stop_data = evaluation_batches(stop_data, self.model.distribute_strategy.num_replicas_in_sync)
        # Scores first: the stopping rule and TensorBoard read them from the epoch's logs.
        scores = EpochScores({"": (X_train, y_train), "val_": (X_stop, y_stop)})
        if self.cfg.select_by == "loss":
            stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.cfg.patience,
                                                 restore_best_weights=True)
        elif self.cfg.select_by == "s_mtl":
            stop = ScoreStopping(self.cfg.patience, scores)
        else:
            raise ValueError(f"select_by must be 'loss' or 's_mtl', got {self.cfg.select_by!r}")
        callbacks = [scores, stop]
        if log_dir is not None:
            callbacks.append(keras.callbacks.TensorBoard(str(log_dir), write_graph=False, profile_batch=0))
        history = self.model.fit(train, validation_data=stop_data, epochs=self.cfg.epochs, callbacks=callbacks,
                                 shuffle=False, verbose=verbose)
        record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if self.cfg.linear_skip:
            # The epoch is chosen; now the skip takes the linear fit on all of Train, as the linear reference
            # does, so the head is that reference plus what its hidden layers learned (measured on a 300-clip
            # Train, Val CCC 0.296 -> 0.307 against the reference's 0.306; benchmarks/small_corpus.py).
            self._load_linear(self.model, refit=True)
        if isinstance(stop, ScoreStopping):
            record.update(start_scores=stop.start, best_epoch=stop.best_epoch)
        return self.model, record

    def _fit_linear(self):
        """The linear reference: scikit-learn's fit written into the linear head (the same for every seed)."""
        if self.cfg.early_stopping != "dev":
            raise ValueError("the linear head chooses its penalties on dev and refits on all of Train; "
                             f"early_stopping must be 'dev', got {self.cfg.early_stopping!r}")
        return self.model, self._load_linear(self.model, refit=True)

    def _load_linear(self, model, refit: bool) -> dict:
        """Writes the linear reference into `model`'s `<task>_out` layers; returns the penalty choice.

        The penalties are chosen once per trainer on the held-out rows. refit=False: the fit on the training
        rows alone (what a head with a linear skip trains on top of, while its epoch is chosen on the held-out
        rows); refit=True: the fit on training + held-out rows, i.e. all of Train (the linear reference, and the
        skip of a trained head once its epoch is chosen).
        """
        from exvo_keras.training.linear import choose_penalties, linear_weights

        if self.linear_start is None:
            X_fit, y_fit, X_dev, y_dev = self.data
            # The head's own front end (standardise, clip): the fit sees exactly what the saved model computes.
            front = keras.Model(model.input, model.get_layer(model.linear_input).output)
            Z_fit, Z_dev = (np.asarray(front.predict(x, batch_size=1024, verbose=0), np.float64)
                            for x in (X_fit, X_dev))
            age = self.head_args["age_mean"], self.head_args["age_std"]
            penalties = choose_penalties(Z_fit, y_fit, Z_dev, y_dev, *age)
            Z_all = np.concatenate([Z_fit, Z_dev])
            y_all = {k: np.concatenate([y_fit[k], y_dev[k]]) for k in y_fit}
            self.linear_start = {False: linear_weights(Z_fit, y_fit, penalties, *age),
                                 True: linear_weights(Z_all, y_all, penalties, *age), "penalties": penalties}
        for name, values in self.linear_start[refit].items():
            model.get_layer(name).set_weights([np.asarray(v, np.float32) for v in values])
        return self.linear_start["penalties"]


class EpochScores(keras.callbacks.Callback):
    """Adds each epoch's challenge scores to its logs: for every {prefix: (X, y)}, `<prefix>emo_ccc`,
    `<prefix>age_mae`, `<prefix>cou_uar` and `<prefix>s_mtl` (so the history and TensorBoard hold per-task
    curves, and `ScoreStopping` reads `val_s_mtl`)."""

    def __init__(self, rows: dict):
        super().__init__()
        self.rows = rows

    def scores(self, prefixes=None) -> dict[str, float]:
        logs = {}
        for prefix, (X, y) in self.rows.items():
            if prefixes is not None and prefix not in prefixes:
                continue
            scores = score_predictions(predictions_frame(range(len(X)), predict(self.model, X)), y)
            logs.update({f"{prefix}{k}": scores[k] for k in ("emo_ccc", "age_mae", "cou_uar", "s_mtl")})
        return logs

    def on_epoch_end(self, epoch, logs=None):
        logs.update(self.scores())


class ScoreStopping(keras.callbacks.Callback):
    """Keeps the epoch with the best S_MTL on the held-out rows (`val_s_mtl` in the epoch's logs, from
    `EpochScores`, which must come first); stops after `patience` epochs without one.

    The loss is the wrong yardstick on small corpora: its age and country terms start rising within a few
    epochs while emotion CCC, which rewards predictions that spread as widely as the labels, still climbs
    (measured on a 120-clip Train: the loss-chosen epoch 12-16, CCC 0.11; see benchmarks/small_corpus.py).
    """

    def __init__(self, patience: int, scores: EpochScores):
        super().__init__()
        self.patience, self.scorer = patience, scores

    def on_train_begin(self, logs=None):
        self.best, self.best_weights, self.wait, self.best_epoch = -np.inf, None, 0, -1
        # The untrained head competes too (epoch -1): with a linear skip it is the linear fit itself.
        self.start = self.scorer.scores(prefixes=("val_",))
        self.on_epoch_end(-1, dict(self.start))
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        score = logs["val_s_mtl"]
        if score > self.best:
            self.best, self.best_weights, self.wait = score, self.model.get_weights(), 0
            self.best_epoch = epoch
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)



def predict(model, X: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    out = model.predict(X, batch_size=batch_size, verbose=0)
    return {"emotion": np.asarray(out["emotion"]), "age": np.asarray(out["age"]).reshape(-1),
            "country_prob": np.asarray(out["country"])}


def predictions_frame(ids: Sequence[str], pred: dict[str, np.ndarray]) -> pd.DataFrame:
    """Predictions in the challenge's submission columns, plus the country probabilities.

    Values are float64 so that the CSV holds exactly what was scored: a hybrid that reads them back scores
    its borrowed tasks exactly as their source did (float32 values would not round-trip through the text).
    """
    pred = {k: np.asarray(v, np.float64) for k, v in pred.items()}
    frame = pd.DataFrame({"File_ID": list(ids), "Country": pred["country_prob"].argmax(axis=1),
                          "Age": pred["age"]})
    for i, name in enumerate(EMOTIONS):
        frame[name] = pred["emotion"][:, i]
    for i, name in enumerate(COUNTRIES):
        frame[f"p_{name}"] = pred["country_prob"][:, i]
    return frame


def score_predictions(frame: pd.DataFrame, labels: dict[str, np.ndarray]) -> dict[str, float]:
    return score_all(labels["emotion"], frame[list(EMOTIONS)].to_numpy(), labels["age"], frame["Age"].to_numpy(),
                     labels["country"], frame["Country"].to_numpy())


def summarise(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {metric: {mean, std, n}}} over seeds (population std, as a spread, with n given)."""
    summary = {}
    for split in per_seed[0]:
        summary[split] = {}
        for metric in per_seed[0][split]:
            values = np.array([m[split][metric] for m in per_seed])
            summary[split][metric] = {"mean": float(values.mean()), "std": float(values.std()), "n": len(values)}
    return summary


def run_head(run_dir, corpus: Corpus, cfg: HeadTraining, seeds: Sequence[int], *, progress: bool = True,
             verbose: int = 0) -> dict:
    """Trains and scores `cfg` once per seed under `run_dir` (a path or a `RunFolder`); returns the summary.

    Seeds already finished (their metrics.json exists) are reused; a run_dir made with another config is refused.
    `cfg.eval_splits` is not part of that config: asking a finished run for another split loads each seed's
    model and predicts it, without training again. A split without labels (ExVo's Test) is predicted, not scored.
    """
    from exvo_keras.progress import progress_bar

    from exvo_keras.store import store_identity

    # The stores by identity, not path, so the run is found again from any directory or after a move.
    config = {**{k: v for k, v in cfg.to_json().items() if k != "eval_splits"},
              "stores": [store_identity(s) for s in cfg.stores]}
    run = claim_run_dir(RunFolder(run_dir), {**config, "corpus": corpus.fingerprint})

    ids = _split_ids(corpus, cfg)
    scored = [s for s in cfg.eval_splits if corpus.has_labels(s)]
    needed = {"Train", cfg.early_stopping, *cfg.eval_splits}
    X = {s: read_fused(cfg.stores, ids[s], corpus=corpus, layer=_store_layer(cfg.layer)) for s in needed}
    labelled = needed - (set(cfg.eval_splits) - set(scored))
    y = {s: corpus.labels_of(ids[s]) for s in labelled}
    for s in labelled:
        if np.isnan(y[s]["age"]).any() or np.isnan(y[s]["emotion"]).any():
            raise ValueError(f"{corpus.root}: split {s} has missing labels; it cannot be used for training or scoring")

    if cfg.head == "linear":
        seeds = list(seeds)[:1]  # deterministic: one fit stands for every seed
    per_seed = []
    trainer = None
    for seed in progress_bar(list(seeds), desc=f"{run.name}", unit="seed", enabled=progress):
        seed_dir = run.seed(seed)
        model = None
        if seed_dir.metrics.exists():
            metrics = read_json(seed_dir.metrics)
        else:
            seed_dir.path.mkdir(exist_ok=True)
            if trainer is None:
                trainer = HeadTrainer(X["Train"], y["Train"], X[cfg.early_stopping], y[cfg.early_stopping], cfg)
            # an interrupted earlier training of this seed left curves of another model
            shutil.rmtree(seed_dir.tensorboard, ignore_errors=True)
            model, history = trainer.fit(seed, verbose, log_dir=seed_dir.tensorboard)
            model.save(seed_dir.model)
            atomic_write_text(seed_dir.history, json.dumps(history))
            metrics = {}
        # A seed trained just now predicts every split afresh: files left by an earlier, interrupted training of
        # this seed came from another model.
        missing = list(cfg.eval_splits) if model is not None else [
            s for s in cfg.eval_splits
            if not seed_dir.predictions(s).exists() or (s in scored and s not in metrics)]
        for split in missing:
            if model is None:
                model = load_head(seed_dir.model)
            frame = predictions_frame(ids[split], predict(model, X[split]))
            atomic_write_text(seed_dir.predictions(split), frame.to_csv(index=False))
            if split in scored:
                metrics[split] = score_predictions(frame, y[split])
        if missing or not seed_dir.metrics.exists():
            # Written last: its presence marks the seed as trained.
            atomic_write_text(seed_dir.metrics, json.dumps(metrics, indent=2))
        # only the splits asked for now: seeds trained earlier may hold others
        per_seed.append({split: metrics[split] for split in scored})
    summary = summarise(per_seed) if per_seed and per_seed[0] else {}
    atomic_write_text(run.summary, json.dumps(summary, indent=2))
    return summary


def kept_epoch(history: dict) -> int | None:
    """The epoch whose weights a head kept, from its history.json: 0-based, -1 for the untrained start (which
    ScoreStopping lets compete), or None when the history has no epochs (the linear head)."""
    best = history.get("best_epoch")
    if isinstance(best, int) and not isinstance(best, bool):
        return best
    losses = history.get("val_loss")
    if isinstance(losses, list) and losses:
        return int(np.argmin(losses))  # EarlyStopping on val_loss restored its lowest epoch
    return None


def held_out_score(history: dict) -> float:
    """The S_MTL on the rows that made a head's choice (the dev split, for the default recipe): at the epoch kept,
    or, for the linear head, at the penalties it chose; NaN when the history holds neither."""
    from exvo_keras.metrics import s_mtl

    if "alpha_emotion" in history:  # the linear head: each task's dev score at its chosen penalty
        return float(s_mtl(history["dev_emo_ccc"][str(history["alpha_emotion"])],
                           history["dev_age_mae"][str(history["alpha_age"])],
                           history["dev_cou_uar"][str(history["C_country"])]))
    epoch, scores = kept_epoch(history), history.get("val_s_mtl")
    if epoch is None or not isinstance(scores, list) or not scores:
        return float("nan")
    return float(history["start_scores"]["val_s_mtl"]) if epoch == -1 else float(scores[epoch])


def _store_layer(layer):
    """`HeadTraining.layer` as `read_fused` takes it."""
    from exvo_keras.store import ALL_LAYERS
    from exvo_keras.training.recipes import WEIGHTED_LAYERS

    return ALL_LAYERS if layer == WEIGHTED_LAYERS else layer


def load_head(path):
    import keras

    import exvo_keras.models.mtl  # noqa: F401  registers the head's layers for load_model

    return keras.saving.load_model(path)


def seed_metrics(run: RunFolder) -> dict[int, dict]:
    """{seed: metrics.json} of every finished seed of a run folder, by seed."""
    return {s.seed: read_json(s.metrics) for s in RunFolder(run).seeds() if s.metrics.exists()}


def best_seed(run: RunFolder, split: str = "Val", metric: str = "s_mtl") -> int:
    """The finished seed with the best `metric` on `split` (lowest for age MAE, highest otherwise)."""
    scores = {seed: m[split][metric] for seed, m in seed_metrics(run).items() if split in m}
    if not scores:
        raise FileNotFoundError(f"{RunFolder(run).path}: no finished seed scored on {split}; train it first")
    pick = min if metric == "age_mae" else max
    return pick(scores, key=scores.get)


def reference_scores(corpus: Corpus, split: str = "Val") -> dict[str, float]:
    """Scores of a head that ignores the audio: Train mean emotions and age, Train's majority country.

    A system has learned something only if it clearly beats this.
    """
    train = corpus.labels("Train")
    target = corpus.labels(split)
    n = len(target["age"])
    frame = pd.DataFrame({"Country": np.full(n, np.bincount(train["country"]).argmax()),
                          "Age": np.full(n, train["age"].mean())})
    for i, name in enumerate(EMOTIONS):
        frame[name] = train["emotion"][:, i].mean()
    return score_predictions(frame, target)
