"""Notebook 03's exercises: correct alternative answers pass, plausible wrong ones fail with a hint."""

import numpy as np
import pytest

from kerasgan import course


def _latent_and_label_one_hot(latent, labels, embeddings):
    # A correct answer without indexing: a one-hot row times the table picks the class's row.
    one_hot = np.eye(len(embeddings), dtype="float32")[labels]
    return np.concatenate([latent, one_hot @ embeddings], axis=1)


def _projection_einsum(features, labels, kernel, bias, class_embeddings):
    # A correct answer written as two contractions.
    chosen = class_embeddings[labels]
    return features @ kernel + bias + np.einsum("bf,bf->b", chosen, features)[:, None]


@pytest.mark.parametrize(
    "exercise_id, answer",
    [
        ("03.latent_and_label", _latent_and_label_one_hot),
        ("03.projection_logits", _projection_einsum),
        ("03.class_grid_labels",
         lambda n, k: np.resize(np.repeat(np.arange(k, dtype="int32"), k), n)),
    ],
)
def test_notebook_03_alternative_answers_pass(exercise_id, answer, capsys):
    assert course.check(exercise_id, answer)


@pytest.mark.parametrize(
    "exercise_id, wrong, hint",
    [
        # the embedding first: the same numbers, in the other order
        ("03.latent_and_label", lambda z, y, e: np.concatenate([e[y], z], axis=1), "values"),
        # the one-hot label itself instead of its learned vector
        ("03.latent_and_label",
         lambda z, y, e: np.concatenate([z, np.eye(len(e), dtype="float32")[y]], axis=1), "shape"),
        ("03.latent_and_label", lambda z, y, e: e[y], "shape"),  # the latent forgotten
        ("03.latent_and_label", lambda z, y, e: z + e[y][:, :1], "shape"),  # added, not appended
        ("03.latent_and_label",  # one-based classes: every label looks up its neighbour's row
         lambda z, y, e: np.concatenate([z, e[np.asarray(y) - 1]], axis=1), "values"),
        # no projection term: a plain unconditional discriminator
        ("03.projection_logits", lambda f, y, w, b, e: f @ w + b, "values"),
        ("03.projection_logits",  # the bias forgotten
         lambda f, y, w, b, e: f @ w + np.sum(e[y] * f, axis=-1, keepdims=True), "values"),
        ("03.projection_logits",  # one logit per class instead of the chosen class's
         lambda f, y, w, b, e: f @ w + b + f @ e.T, "shape"),
        ("03.projection_logits",  # [batch] instead of [batch, 1]
         lambda f, y, w, b, e: (f @ w + b)[:, 0] + np.sum(e[y] * f, axis=-1), "shape"),
        ("03.class_grid_labels",  # a column per class
         lambda n, k: (np.arange(n) % k).astype("int32"), "values"),
        ("03.class_grid_labels",  # never starts over after the last class
         lambda n, k: (np.arange(n) // k).astype("int32"), "values"),
        ("03.class_grid_labels",  # floats
         lambda n, k: ((np.arange(n) // k) % k).astype("float32"), "dtype"),
    ],
)
def test_notebook_03_wrong_answers_fail_with_a_hint(exercise_id, wrong, hint, capsys):
    assert course.check(exercise_id, wrong) is False
    out = capsys.readouterr().out
    assert f"hint for {exercise_id}" in out and hint in out
