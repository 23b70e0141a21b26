"""Pool-based active learning (Area Disagreement §IV.C): the bookkeeping of select → retrain → test.

The loop is pure: it knows image ids, and gets training, testing and scoring as callables, so the
workflow decides where images come from and where models go. Every random draw comes from a
generator derived from (``PoolConfig.seed``, iteration, purpose), never from a stream carried
across iterations: a run resumed from its finished rows draws exactly what an uninterrupted run
draws, and the strategies of one seed share the initial set, each iteration's training seed, and
the split wherever their labelled sets agree (common random numbers: a fairer comparison).

One iteration ``i``: split the labelled set into train / validation, train a model from scratch,
test it, then let it choose the next batch (unless the budget is reached). Its row records

- ``added``: the ids that joined the labelled set at ``i`` (``i = 0``: the random initial set;
  otherwise the batch row ``i - 1`` selected);
- ``selected``: the batch this iteration's model chose for ``i + 1`` (AD Fig. 4 "the batch chosen
  in that iteration"; empty at the last iteration).

So a row is complete once written: the rows alone (no model) let a killed run continue.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dial_core.active.acquisition import acquisition
from dial_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Where the loop's settings sit in the params (named in error messages).
PARAMS_KEY = "active_learning"

# Bookkeeping columns of a row; metrics and selection descriptions may not reuse them.
ROW_KEYS = ("seed", "iteration", "pool_size", "labelled", "labelled_fraction", "n_train", "n_val", "added", "selected")

# Purposes of the derived random streams.
_STREAMS = {"initial": 0, "split": 1, "select": 2, "train": 3, "full": 4}  # full: the full-pool reference's hold-out

ScoreFn = Callable[[Any, list[str]], Mapping[str, float]]
TrainFn = Callable[[list[str], list[str], int], Any]
EvaluateFn = Callable[[Any, list[str]], Mapping[str, Any]]
DescribeFn = Callable[[list[str]], Mapping[str, float]]
IterationCallback = Callable[[dict[str, Any], Any], None]


@dataclass(frozen=True)
class PoolConfig:
    """AD's loop: 10 % initial labelled set, 20 % of it held out for validation each iteration,
    batches of 50, until half the pool is labelled."""

    initial_fraction: float = 0.1
    validation_fraction: float = 0.2
    batch_size: int = 50
    stop_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("initial_fraction", "stop_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"{PARAMS_KEY}.{name} = {value}: must be in (0, 1]")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(
                f"{PARAMS_KEY}.validation_fraction = {self.validation_fraction}: must be in (0, 1) "
                "(early stopping needs validation images; AD holds out 0.2)"
            )
        if self.initial_fraction > self.stop_fraction:
            raise ConfigError(
                f"{PARAMS_KEY}.initial_fraction = {self.initial_fraction} is above stop_fraction = "
                f"{self.stop_fraction}: the loop would stop before its first acquisition; lower initial_fraction"
            )
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ConfigError(f"{PARAMS_KEY}.batch_size = {self.batch_size}: must be an integer >= 1 (AD: 50)")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"{PARAMS_KEY}.seed = {self.seed}: must be an integer >= 0")

    def initial_size(self, n_pool: int) -> int:
        """Images in the initial labelled set: ``initial_fraction`` of the pool, at least 1."""
        return min(n_pool, max(1, round(self.initial_fraction * n_pool)))

    def budget(self, n_pool: int) -> int:
        """Labelled images at which the loop stops: ``stop_fraction`` of the pool (rounded up)."""
        return min(n_pool, max(self.initial_size(n_pool), math.ceil(self.stop_fraction * n_pool - 1e-9)))


def derived_rng(seed: int, iteration: int, purpose: str) -> np.random.Generator:
    """The generator of one draw of one iteration (see the module docstring)."""
    return np.random.default_rng([int(seed), int(iteration), _STREAMS[purpose]])


def iteration_seed(seed: int, iteration: int) -> int:
    """The training seed of an iteration (an int, for torch.manual_seed and friends)."""
    return int(np.random.SeedSequence([int(seed), int(iteration), _STREAMS["train"]]).generate_state(1)[0])


def _unique_ids(ids: Iterable[str], what: str) -> list[str]:
    out = [str(i) for i in ids]
    twice = _repeated(out)
    if twice:
        raise DataError(f"{what}: ids occur twice ({_listing(twice)}); every image may appear once")
    return out


def _repeated(ids: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    twice: set[str] = set()
    for i in ids:
        (twice if i in seen else seen).add(i)
    return twice


def _listing(ids: Iterable[str], limit: int = 5) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def initial_labelled(pool_ids: Sequence[str], cfg: PoolConfig, rng: np.random.Generator) -> list[str]:
    """The random initial labelled set (AD: 10 % of the pool). Drawn from the sorted ids, so the
    order the pool is listed in does not matter."""
    pool = sorted(_unique_ids(pool_ids, "pool"))
    if not pool:
        raise DataError("the pool is empty: the active-learning loop needs unlabelled images")
    chosen = rng.choice(len(pool), size=cfg.initial_size(len(pool)), replace=False)
    return [pool[i] for i in chosen]


def split_labelled(labelled: Sequence[str], cfg: PoolConfig, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(train, validation): ``validation_fraction`` of the labelled set held out, at least one image
    on each side when there are two or more (a single image trains, with no validation)."""
    ids = sorted(_unique_ids(labelled, "labelled set"))
    n = len(ids)
    if n < 2:
        return ids, []
    n_val = min(max(1, round(cfg.validation_fraction * n)), n - 1)
    order = rng.permutation(n)
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return train, val


def select_top(scores: Mapping[str, float], k: int) -> list[str]:
    """The ``k`` ids with the highest scores, highest first; equal scores in ascending id order,
    so a selection never depends on dict order. NaN scores are an error (a broken score function)."""
    bad = [str(i) for i, s in scores.items() if not np.isfinite(float(s))]
    if bad:
        raise ValueError(f"scores are not finite for {_listing(bad)}; the strategy's score function must return numbers")
    ranked = sorted(scores.items(), key=lambda item: (-float(item[1]), str(item[0])))
    return [str(i) for i, _ in ranked[: max(0, int(k))]]


def random_selection(unlabelled: Iterable[str], k: int, rng: np.random.Generator) -> list[str]:
    """The random strategy: the first ``k`` of a seeded permutation of the (sorted) unlabelled ids."""
    ids = sorted(unlabelled)
    return [ids[i] for i in rng.permutation(len(ids))[: max(0, int(k))]]


@dataclass
class PoolState:
    """The labelled ids in order of acquisition, each with the iteration it joined at."""

    pool: tuple[str, ...]
    budget: int
    acquired: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def new(cls, pool_ids: Sequence[str], cfg: PoolConfig) -> PoolState:
        pool = tuple(sorted(_unique_ids(pool_ids, "pool")))
        if not pool:
            raise DataError("the pool is empty: the active-learning loop needs unlabelled images")
        return cls(pool, cfg.budget(len(pool)))

    @property
    def labelled(self) -> list[str]:
        return [i for i, _ in self.acquired]

    @property
    def unlabelled(self) -> list[str]:
        taken = set(self.labelled)
        return [i for i in self.pool if i not in taken]

    def add(self, ids: Sequence[str], iteration: int) -> None:
        """Label a batch; an id labelled twice or outside the pool is a bug of the caller: raise."""
        batch = [str(i) for i in ids]
        outside = set(batch) - set(self.pool)
        if outside:
            raise ValueError(f"iteration {iteration}: ids not in the pool: {_listing(outside)}")
        twice = (set(batch) & set(self.labelled)) | _repeated(batch)
        if twice:
            raise ValueError(f"iteration {iteration}: ids already labelled: {_listing(twice)}")
        self.acquired.extend((i, iteration) for i in batch)

    def next_batch_size(self, k: int) -> int:
        """``k``, or fewer so the labelled set lands on the budget ("no more than 50 %", AD)."""
        return max(0, min(k, self.budget - len(self.acquired)))

    def done(self) -> bool:
        return len(self.acquired) >= self.budget


def _as_ids(value: Any) -> list[str]:
    """Ids of a row cell: a list, or a space-separated string (CSV); empty / NaN / None: none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def ids_to_cell(ids: Sequence[str]) -> str:
    """A row's id list as one CSV cell (canonical ids have no spaces)."""
    return " ".join(ids)


def _flatten(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One level of nesting flattened (``{"iou": {"road": .5}}`` -> ``iou_road``): tidy columns."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _restore(previous: Sequence[Mapping[str, Any]], state: PoolState, cfg: PoolConfig) -> list[dict[str, Any]]:
    """Check that ``previous`` rows continue this run, add their ids to ``state``; returns them as dicts."""
    rows = [dict(r) for r in previous]
    stale = "delete the partial results to start the run over"
    for i, row in enumerate(rows):
        if int(row["iteration"]) != i:
            raise DataError(f"previous rows: row {i} is iteration {row['iteration']}; rows must be iterations 0, 1, ... in order; {stale}")
        if int(row.get("seed", cfg.seed)) != cfg.seed or int(row.get("pool_size", len(state.pool))) != len(state.pool):
            raise DataError(
                f"previous rows were made with seed {row.get('seed')} on a pool of {row.get('pool_size')} images, "
                f"this run has seed {cfg.seed} and {len(state.pool)} images; {stale}"
            )
        added = _as_ids(row["added"])
        expected = (initial_labelled(state.pool, cfg, derived_rng(cfg.seed, 0, "initial")) if i == 0
                    else _as_ids(rows[i - 1]["selected"]))
        if added != expected:
            raise DataError(f"previous rows: iteration {i} added other images than this run would; {stale}")
        try:
            state.add(added, i)
        except ValueError as err:
            raise DataError(f"previous rows: {err}; {stale}") from None
        if int(row["labelled"]) != len(state.acquired):
            raise DataError(f"previous rows: iteration {i} records {row['labelled']} labelled images, its ids make {len(state.acquired)}; {stale}")
        row["added"], row["selected"] = added, _as_ids(row["selected"])
    if rows and not rows[-1]["selected"] and not state.done():
        raise DataError(f"previous rows: iteration {len(rows) - 1} selected no batch before the budget was reached; {stale}")
    return rows


def run_pool_loop(
    pool_ids: Sequence[str],
    test_ids: Sequence[str],
    cfg: PoolConfig,
    strategy_score: ScoreFn | None,
    train: TrainFn,
    evaluate: EvaluateFn,
    *,
    max_iterations: int | None = None,
    previous: Sequence[Mapping[str, Any]] = (),
    on_iteration: IterationCallback | None = None,
    describe_selection: DescribeFn | None = None,
) -> list[dict[str, Any]]:
    """Select → retrain from scratch → test until ``stop_fraction`` of the pool is labelled.

    ``strategy_score(model, unlabelled_ids) -> {id: score}`` (higher = label first; None = random),
    ``train(train_ids, val_ids, seed) -> model``, ``evaluate(model, test_ids) -> metrics`` (one level
    of nested dicts is flattened into ``key_subkey`` columns), ``describe_selection(ids) -> columns``
    adds e.g. the batch's diversity (:func:`dial_core.active.diversity.batch_diversity`).
    ``max_iterations`` caps the number of iterations (rows, previous included); ``previous`` are
    finished rows of this run (lists or space-separated ids), which are returned first and not
    re-run; ``on_iteration(row, model)`` is called after each new row (save rows, checkpoints there).
    Returns one row per iteration (see the module docstring).
    """
    state = PoolState.new(pool_ids, cfg)
    tests = _unique_ids(test_ids, "test set")
    overlap = set(tests) & set(state.pool)
    if overlap:
        raise ValueError(
            f"{len(overlap)} test images are also in the pool ({_listing(overlap)}); the test set must be "
            "held out of the pool (AD holds out 1500 images for testing)"
        )
    if max_iterations is not None and max_iterations < 1:
        raise ConfigError(f"{PARAMS_KEY}.max_iterations = {max_iterations}: must be >= 1 or null (until the budget)")
    rows = _restore(previous, state, cfg)
    if rows:
        log.info("resuming after %d finished iterations (%d images labelled)", len(rows), len(state.acquired))
    else:
        state.add(initial_labelled(state.pool, cfg, derived_rng(cfg.seed, 0, "initial")), 0)
    n_pool = len(state.pool)
    iteration = len(rows)
    if iteration:
        if not rows[-1]["selected"]:
            return rows  # the run had finished
        state.add(rows[-1]["selected"], iteration)
    while max_iterations is None or iteration < max_iterations:
        train_ids, val_ids = split_labelled(state.labelled, cfg, derived_rng(cfg.seed, iteration, "split"))
        model = train(train_ids, val_ids, iteration_seed(cfg.seed, iteration))
        metrics = _flatten(evaluate(model, list(tests)))
        k = state.next_batch_size(cfg.batch_size)
        if k == 0:
            selected = []
        elif strategy_score is None:
            selected = random_selection(state.unlabelled, k, derived_rng(cfg.seed, iteration, "select"))
        else:
            unlabelled = state.unlabelled
            scores = {str(i): float(v) for i, v in strategy_score(model, list(unlabelled)).items()}
            missing = set(unlabelled) - set(scores)
            if missing:
                raise ValueError(f"iteration {iteration}: the strategy scored no value for {_listing(missing)}")
            selected = select_top({i: scores[i] for i in unlabelled}, k)
        row: dict[str, Any] = {
            "seed": cfg.seed, "iteration": iteration, "pool_size": n_pool, "labelled": len(state.acquired),
            "labelled_fraction": len(state.acquired) / n_pool, "n_train": len(train_ids), "n_val": len(val_ids),
            "added": [i for i, it in state.acquired if it == iteration], "selected": selected,
        }
        extra = {**metrics, **(_flatten(describe_selection(selected)) if describe_selection and selected else {})}
        clash = set(extra) & set(ROW_KEYS)
        if clash:
            raise ValueError(f"metric names {sorted(clash)} clash with the loop's own columns; rename them")
        row.update(extra)
        rows.append(row)
        log.info("iteration %d: %d labelled (%.1f %%), %s", iteration, row["labelled"], 100 * row["labelled_fraction"],
                 ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        if on_iteration is not None:
            on_iteration(row, model)
        if not selected:
            break
        iteration += 1
        state.add(selected, iteration)
    return rows


def pool_strategies(params: dict) -> list[str]:
    """``active_learning.strategies``, checked: acquisitions of the registry the loop can score with
    the network it trains (ConfidNet would need a head trained at every iteration)."""
    strategies = list(params["strategies"])
    for name in strategies:
        if acquisition(name).needs == "confidnet":
            raise ConfigError("active_learning.strategies: confidnet needs a ConfidNet head trained at every iteration, "
                              "which the pool loop does not train; use entropy, margin, mc_dropout, bald, area_disagreement, odin or random")
    return strategies
