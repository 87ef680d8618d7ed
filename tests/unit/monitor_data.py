"""Data and runners for the drift-monitor tests: synthetic and real tables, our verdicts and Evidently's.

Both runners take the same pandas frames and the same pinned kinds, so any difference
between them is a difference in the drift computation, not in typing or cleaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kfp_mlops.components.monitor.current import ColumnSketch, sketch_table
from kfp_mlops.components.monitor.drift import column_drift, drift_columns
from kfp_mlops.components.monitor.profile import ColumnProfile, profile_column, profile_parquet
from kfp_mlops.components.monitor.results import CATEGORICAL, NUMERIC, ColumnDrift

# Evidently's display names of its default tests, as our method names.
EVIDENTLY_METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare_evidently",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}

SYNTHETIC_KINDS = {
    "wide": NUMERIC,  # continuous, with NaN and +-inf
    "ties": NUMERIC,  # about a dozen distinct whole numbers: K-S and Wasserstein with ties
    "nanoseconds": NUMERIC,  # epoch nanoseconds: magnitudes past 2**53
    "five": NUMERIC,  # 5 distinct values; the current may bring a sixth
    "signed_zero": NUMERIC,  # rounding gives both -0.0 and 0.0, which are one value
    "two": NUMERIC,  # 0/1 integers
    "code": CATEGORICAL,  # integer codes pinned categorical; the current may bring a new code
    "code_pair": CATEGORICAL,  # two integer codes
    "city": CATEGORICAL,  # strings with None; the current may bring a new city
    "flag": CATEGORICAL,  # booleans with None
    "grade": CATEGORICAL,  # whole floats with NaN and inf
}

CITIES = ["Lyon", "Porto", "Riga", "Bern", "Graz", "Cork"]


@dataclass(frozen=True)
class EvidentlyColumn:
    method: str
    score: float
    drifted: bool


def synthetic_frame(rng: np.random.Generator, rows: int, *, shift: float = 0.0, unseen: bool = False) -> pd.DataFrame:
    """One frame with every kind of column the monitor meets; ``shift`` moves each a little, ``unseen`` adds new values."""
    wide = rng.normal(shift, 1.0, rows)
    wide[rng.random(rows) < 0.03] = np.nan
    wide[rng.random(rows) < 0.005] = np.inf
    wide[rng.random(rows) < 0.005] = -np.inf
    five = rng.choice(5, rows, p=_tilted(5, shift)).astype(float)
    code = rng.choice(7, rows, p=_tilted(7, shift))
    city = rng.choice(np.array(CITIES, dtype=object), rows, p=_tilted(len(CITIES), shift))
    if unseen:
        new = rng.random(rows) < 0.02
        five[new] = 5.0
        code[new] = 7
        city[new] = "Oslo"
    city[rng.random(rows) < 0.05] = None
    flag = (rng.random(rows) < 0.3 + shift / 4).astype(object)
    flag[rng.random(rows) < 0.04] = None
    grade = rng.choice([1.0, 2.0, 3.0], rows, p=_tilted(3, shift))
    grade[rng.random(rows) < 0.04] = np.nan
    grade[rng.random(rows) < 0.01] = np.inf
    return pd.DataFrame(
        {
            "wide": wide,
            "ties": np.round(rng.normal(shift, 2.0, rows)),
            "nanoseconds": 1.6e18 + np.round(rng.normal(shift, 1.0, rows) * 1e12),
            "five": five,
            "signed_zero": np.round(rng.normal(-shift, 0.6, rows)),
            "two": (rng.random(rows) < 0.4 + shift / 4).astype(np.int64),
            "code": code,
            "code_pair": np.where(rng.random(rows) < 0.2 + shift / 4, 10, 20),
            "city": city,
            "flag": flag,
            "grade": grade,
        }
    )


def _tilted(levels: int, shift: float) -> np.ndarray:
    """Level probabilities that move towards the higher levels as ``shift`` grows."""
    weights = np.exp(shift * np.linspace(-1.0, 1.0, levels)) * np.linspace(1.0, 2.0, levels)
    return weights / weights.sum()


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> dict[str, EvidentlyColumn]:
    """Evidently's per-column method, score and verdict (test FAIL = drifted) on the full data."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    def dataset(frame: pd.DataFrame) -> Dataset:
        definition = DataDefinition(
            numerical_columns=[c for c, k in kinds.items() if k == NUMERIC],
            categorical_columns=[c for c, k in kinds.items() if k == CATEGORICAL],
        )
        return Dataset.from_pandas(frame[list(kinds)], data_definition=definition)

    result = Report([DataDriftPreset()], include_tests=True).run(dataset(current), dataset(reference)).dict()
    verdicts = {}
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if "column" in params:
            verdicts[params["column"]] = test["status"] == "FAIL"  # a str enum
    found = {}
    for metric in result["metrics"][1:]:
        column = metric["config"]["column"]
        found[column] = EvidentlyColumn(EVIDENTLY_METHODS[metric["config"]["method"]], float(metric["value"]), verdicts[column])
    return found


def arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def profiles_of(frame: pd.DataFrame, kinds: dict[str, str], *, batch_rows: int = 0) -> dict[str, ColumnProfile]:
    """Reference profiles, built from batches of ``batch_rows`` (one batch when 0)."""
    table = arrow(frame)
    size = batch_rows or max(len(frame), 1)
    return {name: profile_column(name, kind, [b.column(name) for b in table.to_batches(max_chunksize=size)]) for name, kind in kinds.items()}


def profiles_via_parquet(frame: pd.DataFrame, kinds: dict[str, str], path, *, batch_rows: int) -> dict[str, ColumnProfile]:
    pq.write_table(arrow(frame), path, row_group_size=max(batch_rows, 1))
    return profile_parquet(str(path), kinds, batch_rows=batch_rows)


def sketches_of(profiles: dict[str, ColumnProfile], frame: pd.DataFrame, *, batch_rows: int) -> dict[str, ColumnSketch]:
    return sketch_table(profiles, arrow(frame).to_batches(max_chunksize=batch_rows))


def our_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    *,
    batches: int = 3,
    profiles: dict[str, ColumnProfile] | None = None,
    evidently_parity: bool = True,
) -> dict[str, ColumnDrift]:
    """Our verdicts, the reference profiled in ``batches`` batches and the current sketched in as many (Evidently's chi-square unless told)."""
    profiles = profiles or profiles_of(reference, kinds, batch_rows=-(-len(reference) // batches))
    sketches = sketches_of(profiles, current, batch_rows=max(1, -(-len(current) // batches)))
    return {d.column: d for d in drift_columns(profiles, sketches, evidently_parity=evidently_parity)}


def known_drift_frames(rng: np.random.Generator, n_reference: int, n_current: int, new_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current where only "income" moves (by 0.5 sd) and "segment" gains category "d" (``new_share``)."""

    def frame(n: int, shift: float, new: float) -> pd.DataFrame:
        segment = rng.choice(np.array(["a", "b", "c"], dtype=object), n, p=[0.5, 0.3, 0.2])
        segment[rng.random(n) < new] = "d"
        return pd.DataFrame(
            {
                "income": rng.normal(50 + 10 * shift, 10, n),
                "age": rng.normal(40, 12, n),
                "items": rng.poisson(3, n).astype(float),
                "segment": segment,
                "channel": rng.choice(np.array(["web", "store"], dtype=object), n),
            }
        )

    return frame(n_reference, 0.0, 0.0), frame(n_current, 0.5, new_share)


KNOWN_KINDS = {"income": NUMERIC, "age": NUMERIC, "items": NUMERIC, "segment": CATEGORICAL, "channel": CATEGORICAL}

# One pool per column type; the false-alarm tests split it at random into reference and current halves.
POOLS = {
    "continuous": (NUMERIC, lambda rng, n: rng.lognormal(0, 0.7, n)),
    "four_numbers": (NUMERIC, lambda rng, n: rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.1, 0.2, 0.3, 0.4])),
    "binary_number": (NUMERIC, lambda rng, n: (rng.random(n) < 0.3).astype(float)),
    "categories": (CATEGORICAL, lambda rng, n: rng.choice(np.array(CITIES, dtype=object), n, p=[0.35, 0.25, 0.15, 0.1, 0.1, 0.05])),
    "booleans": (CATEGORICAL, lambda rng, n: rng.random(n) < 0.2),
}
TRIALS = 200


def halves(column_type: str, half: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """TRIALS random splits of one pool of 2 * half values into reference and current."""
    rng = np.random.default_rng(seed)
    pool = POOLS[column_type][1](rng, 2 * half)
    return [(pool[order[:half]], pool[order[half:]]) for order in (rng.permutation(2 * half) for _ in range(TRIALS))]


def halves_verdicts(column_type: str, splits: list[tuple[np.ndarray, np.ndarray]], *, evidently_parity: bool = False) -> list[ColumnDrift]:
    """Our verdict per split, each side fed in two batches."""
    kind = POOLS[column_type][0]
    found = []
    for reference, current in splits:
        profile = profile_column(column_type, kind, [pa.array(reference[:300]), pa.array(reference[300:])])
        sketch = ColumnSketch(profile)
        sketch.add(pa.array(current[: len(current) // 2]))
        sketch.add(pa.array(current[len(current) // 2 :]))
        found.append(column_drift(profile, sketch, evidently_parity=evidently_parity))
    return found


# Real tables that ship inside installed packages, each split by a real attribute so real drift shows.


def _sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(as_frame=True).frame


def penguins_by_island() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    kinds = {c: NUMERIC for c in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]}
    kinds.update(species=CATEGORICAL, sex=CATEGORICAL, year=CATEGORICAL)
    biscoe = frame["island"] == "Biscoe"
    return frame[biscoe], frame[~biscoe], kinds


def penguins_by_year() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    kinds = {c: NUMERIC for c in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]}
    kinds.update(species=CATEGORICAL, island=CATEGORICAL, sex=CATEGORICAL)
    early = frame["year"] < 2009
    return frame[early], frame[~early], kinds


def cars_by_origin() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    from vega_datasets import local_data

    frame = local_data.cars()
    frame["model_year"] = frame["Year"].dt.year
    kinds = {c: NUMERIC for c in ["Miles_per_Gallon", "Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration"]}
    kinds["model_year"] = CATEGORICAL
    usa = frame["Origin"] == "USA"
    return frame[usa], frame[~usa], kinds


def iris_by_species() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    from vega_datasets import local_data

    frame = local_data.iris()
    kinds = {c: NUMERIC for c in ["sepalLength", "sepalWidth", "petalLength", "petalWidth"]}
    virginica = frame["species"] == "virginica"
    return frame[~virginica], frame[virginica], kinds


def wine_by_class() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    frame = _sklearn("wine")
    kinds = {c: NUMERIC for c in frame.columns if c != "target"}
    return frame[frame["target"] != 1], frame[frame["target"] == 1], kinds


def breast_cancer_by_diagnosis() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    frame = _sklearn("breast_cancer")
    kinds = {c: NUMERIC for c in frame.columns[:10]}
    benign = frame["target"] == 1
    return frame[benign], frame[~benign], kinds


def diabetes_by_sex() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    frame = _sklearn("diabetes")
    kinds = {c: NUMERIC for c in frame.columns if c != "sex"}
    first = frame["sex"] == frame["sex"].min()
    return frame[first], frame[~first], kinds


def digits_by_label() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """1797 images: digits 0-5 (1083 rows, so distance tests) against 6-9; pixels are 0..16."""
    frame = _sklearn("digits")
    pixels = [f"pixel_{r}_{c}" for r in (0, 2, 4, 6, 7) for c in (1, 3, 5, 6)]
    kinds = {c: NUMERIC for c in pixels}
    kinds["pixel_3_4"] = CATEGORICAL  # the same kind of column, pinned categorical
    low = frame["target"] <= 5
    return frame[low], frame[~low], kinds


def seattle_weather_by_year() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Daily weather 2012-2015: three years (1096 days, so distance tests) against 2015."""
    from vega_datasets import local_data

    frame = local_data.seattle_weather()
    kinds = {c: NUMERIC for c in ["precipitation", "temp_max", "temp_min", "wind"]}
    kinds["weather"] = CATEGORICAL
    late = frame["date"].dt.year == 2015
    return frame[~late], frame[late], kinds


REAL_SPLITS = {
    "penguins_by_island": penguins_by_island,
    "penguins_by_year": penguins_by_year,
    "cars_by_origin": cars_by_origin,
    "iris_by_species": iris_by_species,
    "wine_by_class": wine_by_class,
    "breast_cancer_by_diagnosis": breast_cancer_by_diagnosis,
    "diabetes_by_sex": diabetes_by_sex,
    "digits_by_label": digits_by_label,
    "seattle_weather_by_year": seattle_weather_by_year,
}
