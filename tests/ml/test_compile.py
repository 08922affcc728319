"""The compiled serving model reproduces the fitted pipeline exactly, and its file is safe."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.artefact import COMPILED_FILE, load_pipeline
from ml.compile import (
    CompileError,
    check_exact,
    compile_model,
    interaction_partition,
    random_rows,
)
from ml.compiled import CompiledModel, CompiledModelError
from ml.contract import FEATURE_NAMES, FEATURES
from ml.train import build_pipeline
from tests.ml.conftest import small_params


def test_tables_reproduce_the_pipeline_on_rows_across_every_bin(trained):
    # given the fitted pipeline and its compiled tables
    pipeline = load_pipeline(trained.model_dir / "model.skops")
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    # when both score rows drawn across all bins, unknowns included
    rows = random_rows(compiled, 5_000, seed=123)
    expected = pipeline[-1].predict_proba(rows)[:, 1]
    # then they agree to rounding error, one row at a time and in bulk
    np.testing.assert_allclose(compiled.predict_proba(rows), expected, rtol=0, atol=1e-12)
    for row, probability in zip(rows[:200], expected[:200], strict=True):
        assert compiled.predict_proba_one(row.tolist()) == pytest.approx(probability, abs=1e-12)


def test_the_check_reuses_probabilities_the_caller_already_has(trained):
    # given the fitted pipeline, its tables, rows, and the pipeline's probabilities of the first
    pipeline = load_pipeline(trained.model_dir / "model.skops")
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    rows = random_rows(compiled, 2_000, seed=5)
    known = pipeline[-1].predict_proba(rows[:500])[:, 1]
    # when the check is given them, right or wrong
    reused = check_exact(pipeline, compiled, rows, known)
    wrong = check_exact(pipeline, compiled, rows, known + 0.01)
    # then it measures what it measures without them, and a wrong one is seen
    assert reused == check_exact(pipeline, compiled, rows) < 1e-12
    assert wrong == pytest.approx(0.01, abs=1e-9), "given probabilities are what is compared"


def test_raw_records_get_the_same_cleaning_as_training(trained, shared_data):
    # given raw rows as clients and files write them (currency text, "69.0", blanks)
    raw = pd.read_csv(
        shared_data / "production_sample.csv", dtype=str, keep_default_na=False, na_values=[]
    )
    pipeline = load_pipeline(trained.model_dir / "model.skops")
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    # when the pipeline scores the frame and the serving path scores each record
    expected = pipeline.predict_proba(raw[list(FEATURE_NAMES)])[:, 1]
    served = [compiled.predict_proba_record(r) for r in raw.to_dict("records")]
    # then training-time cleaning and serving-time cleaning agree
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)


def test_a_model_whose_trees_cross_the_groups_is_refused_naming_the_tree():
    # given a model fitted without interaction constraints
    params = small_params().train
    params = params.model_copy(update={"hgb": params.hgb.model_copy(update={"max_iter": 30})})
    rng = np.random.default_rng(0)
    pipeline = build_pipeline(params)
    pipeline[-1].set_params(interaction_cst=None)
    matrix = random_rows_for_fit(rng, 3_000)
    labels = (matrix[:, 5] != 1) & (rng.random(3_000) < 0.5)
    labels |= (matrix[:, FEATURE_NAMES.index("AnnualPremium")] > 2_500) & (matrix[:, 5] == 1)
    pipeline[-1].fit(matrix, labels.astype(int))
    # when compiled as if it were group-constrained, then it is refused: no table could hold it
    with pytest.raises(CompileError, match=r"tree \d+ splits on .*more than one interaction group"):
        compile_model(pipeline[-1], interaction_partition(params.interaction_groups))


def test_the_tables_equal_the_model_on_every_cell_of_each_group(trained):
    # given the fitted pipeline and the tables compiled from it (trees evaluated set by set)
    pipeline = load_pipeline(trained.model_dir / "model.skops")
    model = pipeline[-1]
    compiled = compile_model(model, interaction_partition(small_params().train.interaction_groups))
    # when every cell of every group's table is scored by the model itself, the rest unknown
    reference = model.decision_function(np.full((1, len(FEATURES)), np.nan))[0]
    for group in compiled.groups:
        cells = np.array(list(np.ndindex(*(compiled.bins[f].n_bins for f in group.features))))
        rows = np.full((len(cells), len(FEATURES)), np.nan)
        for axis, feature in enumerate(group.features):
            rows[:, feature] = representative_values(compiled, model, feature)[cells[:, axis]]
        # then each cell holds the model's raw score there, less the all-unknown row's
        expected = model.decision_function(rows) - reference
        np.testing.assert_allclose(group.table, expected, rtol=0, atol=1e-12)


def representative_values(compiled: CompiledModel, model, feature: int) -> np.ndarray:
    """A value in each bin of the feature, unknown last: a category's code for a nominal
    feature (a bin holds the codes between its edges), else the bin's upper edge."""
    bins = compiled.bins[feature]
    edges = list(bins.edges)
    if model.is_categorical_[feature]:
        candidates = FEATURES[feature].domain()
    else:
        candidates = [*edges, (edges[-1] + 1.0) if edges else 0.0]
    first = {}
    for value in candidates:
        first.setdefault(bins.bin_of(value), value)
    assert sorted(first) == list(range(bins.n_bins - 1)), "a value for every known bin"
    return np.array([first[b] for b in range(bins.n_bins - 1)] + [math.nan])


def random_rows_for_fit(rng: np.random.Generator, n: int) -> np.ndarray:
    columns = []
    for feature in FEATURES:
        domain = feature.domain() or list(np.linspace(100, 5000, 50))
        columns.append(rng.choice(domain, size=n))
    return np.column_stack(columns)


def test_a_group_too_large_to_tabulate_is_refused(trained, monkeypatch):
    pipeline = load_pipeline(trained.model_dir / "model.skops")
    monkeypatch.setattr("ml.compile.MAX_TABLE_CELLS", 10)
    with pytest.raises(CompileError, match="needs [0-9,]+ cells; split it into smaller groups"):
        compile_model(pipeline[-1], interaction_partition(small_params().train.interaction_groups))


def test_saved_file_round_trips_and_holds_no_pickled_object(trained, tmp_path):
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    path = tmp_path / "copy.npz"
    compiled.save(path)
    again = CompiledModel.load(path)
    row = [math.nan] * len(FEATURES)
    assert again.predict_proba_one(row) == compiled.predict_proba_one(row)
    with np.load(path, allow_pickle=False) as data:  # raises if any array needs pickle
        assert all(data[name].dtype != object for name in data.files)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: a.update(feature_names=np.array(["x"] * len(FEATURES))), "do not match"),
        (lambda a: a.pop("group_0_table"), "missing array 'group_0_table'"),
        (lambda a: a.update(format_version=np.array(9)), "unsupported format"),
        (lambda a: a.update(group_0_table=np.zeros(3)), "table 0 has shape"),
    ],
)
def test_a_damaged_file_is_refused_with_the_reason(trained, tmp_path, damage, message):
    with np.load(trained.model_dir / COMPILED_FILE, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    damage(arrays)
    path = tmp_path / "damaged.npz"
    np.savez(path, **arrays)
    with pytest.raises(CompiledModelError, match=message):
        CompiledModel.load(path)


def test_a_file_that_is_not_npz_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(CompiledModelError, match="not a readable compiled model"):
        CompiledModel.load(path)


def test_one_row_and_many_rows_give_the_very_same_float(trained):
    # /predict scores one row, /predict/batch many: a row must get the same answer either way
    compiled = CompiledModel.load(trained.model_dir / COMPILED_FILE)
    rows = random_rows(compiled, 500, seed=5)
    one_by_one = [compiled.predict_proba_one(row) for row in rows.tolist()]
    assert compiled.predict_proba(rows).tolist() == one_by_one
