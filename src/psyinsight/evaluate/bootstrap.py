"""Seeded paired bootstrap over examples: a 95% interval for a score, and for a difference of two systems.

With 24-60 test examples a difference of 0.01 is noise; this says how much. The convention is
sacrebleu's paired bootstrap (``sacrebleu/significance.py``: ``_paired_bs_test``,
``_bootstrap_resample`` and ``estimate_ci``; after Koehn 2004 and Moses'
``bootstrap-hypothesis-difference-significance.pl``), so our sacreBLEU intervals are sacrebleu's:

- the resample indices are drawn once, ``numpy.random.default_rng(seed).choice(n, size=(n_samples, n),
  replace=True)`` (seed 12345, 1000 resamples by default, as sacrebleu), and the same indices serve
  both systems of a comparison (paired);
- a column that is a mean over examples is the mean of the resampled values; a corpus-level column
  is recomputed from the summed per-example statistics of each resample (sacreBLEU: sacrebleu's
  segment statistics, as float32, and its ``_compute_score_from_stats``; Distinct-n: unique/total
  n-grams of the resampled responses);
- the 95% interval: sort the resampled scores and take those at ``n_samples // 40`` and
  ``n_samples - n_samples // 40 - 1``; sacrebleu reports their mean and half the interval's width.

sacrebleu tests a difference with a p-value; here the same interval is taken over the resampled
differences (system - baseline), and a difference counts when that interval excludes 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 12345

Scorer = Callable[[np.ndarray], np.ndarray]
"""(k, m) matrix of example indices -> the k scores of those resamples."""


@dataclass(frozen=True)
class Interval:
    """A score (or difference) on all examples, the mean of its resamples and its 95% interval."""

    score: float
    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        """sacrebleu's ``ci``: half the width of the 95% interval."""
        return 0.5 * (self.hi - self.lo)

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "score": self.score,
            "mean": self.mean,
            "lo": self.lo,
            "hi": self.hi,
            "half_width": self.half_width,
            "n": self.n,
            "excludes_zero": self.excludes_zero,
        }


def resample_indices(n: int, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """All resamples at once, drawn as sacrebleu draws them."""
    return np.random.default_rng(seed).choice(n, size=(n_samples, n), replace=True)


def bounds(scores: np.ndarray) -> tuple[float, float]:
    """The 95% interval of resampled scores (sacrebleu's ``estimate_ci``: 1/40 from each end)."""
    ordered = np.sort(np.asarray(scores, dtype=float))
    low = len(ordered) // 40
    return float(ordered[low]), float(ordered[len(ordered) - low - 1])


def _interval(scores: np.ndarray, point: float, n: int, recentre: bool) -> Interval:
    lo, hi = bounds(scores)
    mean = float(np.mean(scores))
    if recentre:
        # A statistic that resampling itself shifts (corpus Distinct: a response drawn twice adds
        # n-grams but no new ones, so every resample reads lower): the interval is moved by that
        # shift, the bootstrap's bias correction, so that it stands around the score it qualifies.
        lo, hi = lo + point - mean, hi + point - mean
    return Interval(point, mean, lo, hi, n)


def confidence_interval(scorer: Scorer, n: int, *, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED, recentre: bool = False) -> Interval:
    """One system's score on its ``n`` examples with its 95% interval (``recentre``: bias-corrected, see ``_interval``)."""
    point = float(scorer(np.arange(n)[None, :])[0])
    return _interval(scorer(resample_indices(n, n_samples, seed)), point, n, recentre)


def paired_difference(
    system: Scorer, baseline: Scorer, n: int, *, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED, recentre: bool = False
) -> Interval:
    """system - baseline on the same ``n`` paired examples, resampled with the same indices."""
    everything = np.arange(n)[None, :]
    point = float(system(everything)[0] - baseline(everything)[0])
    indices = resample_indices(n, n_samples, seed)
    return _interval(system(indices) - baseline(indices), point, n, recentre)


def mean_scorer(values: Sequence[float | None]) -> Scorer:
    """A column that is a mean over examples; None/NaN values are left out of each mean."""
    array = np.array([np.nan if v is None else v for v in values], dtype=float)

    def score(indices: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no value at all gives NaN
            return np.nanmean(array[indices], axis=1)

    return score


def sacrebleu_scorer(stats: Sequence[Sequence[float]], order: int) -> Scorer:
    """Corpus sacreBLEU-``order`` from per-sentence statistics ``[hyp_len, ref_len, correct_1..n, total_1..n]``."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(max_ngram_order=order)  # the recipe of psyinsight's SacreBLEU (exp smoothing, no effective order)
    array = np.array(stats, dtype="float32").reshape(len(stats), 2 + 2 * order)

    def score(indices: np.ndarray) -> np.ndarray:
        return np.array([bleu._compute_score_from_stats(array[row].sum(0)).score for row in indices])

    return score


def distinct_scorer(tokens: Sequence[Sequence[str]], order: int) -> Scorer:
    """Corpus Distinct-``order`` (unique n-grams / all n-grams of the resampled responses; 0 without any)."""
    vocabulary: dict[tuple[str, ...], int] = {}
    grams = [[vocabulary.setdefault(tuple(t[i : i + order]), len(vocabulary)) for i in range(len(t) - order + 1)] for t in tokens]
    counts = np.array([len(g) for g in grams], dtype=float)
    owners = np.array([i for i, g in enumerate(grams) for _ in set(g)], dtype=int)
    distinct = np.array([gram for g in grams for gram in set(g)], dtype=int)

    def score(indices: np.ndarray) -> np.ndarray:
        out = np.zeros(len(indices))
        for k, row in enumerate(indices):
            total = counts[row].sum()
            if total:
                present = np.zeros(len(tokens), dtype=bool)
                present[row] = True
                out[k] = np.unique(distinct[present[owners]]).size / total
        return out

    return score
