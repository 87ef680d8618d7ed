"""The drift monitor on sketches against Evidently's DataDriftPreset on the full data, and how it scales.

Three benchmarks, every measured step in a fresh process (wall time of the work, imports
excluded; peak RSS = VmHWM of that process):

1. ``--rows`` x 20 columns (12 floats of different shapes, 4 integer counts, 4 string
   categoricals of 3..50 levels; 4 columns truly shifted in current, 2 with nulls).
   Ours: the reference profile (``profile_parquet``, once per model version) and the
   monitor pass (``core.monitor`` over the current Parquet). Baseline: pandas load of both
   files + ``Report([DataDriftPreset()], include_tests=True)`` with the same pinned types.
   Prints both, the speed ratio and the share of columns whose verdict agrees.
2. ``--current-rows`` x 50 columns: our monitor only, profile from ``--reference-rows``;
   one Parquet file per size (1/4, 1/2 and all of it, row groups of ``--row-group``,
   written a row group at a time), and all of it as 4 files. Seconds per million rows at
   each size show whether time grows linearly.
3. ``--models`` models (10 of the 50 columns each) over one ``--model-rows`` current
   Parquet in one process, against 1 model: per-model overhead. ``core.monitor`` is called
   once per model; the registry (profile download, hash check) is not benchmarked.

    python benchmarks/bench_monitor.py            # full run, about 5 minutes on 2 cores
    python benchmarks/bench_monitor.py --quick    # a tenth of the sizes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA = Path("/tmp/bench_monitor")
Maker = Callable[[np.random.Generator, int, bool], pa.Array]


def _nulls(values: np.ndarray, rng: np.random.Generator, share: float) -> pa.Array:
    return pa.array(values, mask=rng.random(len(values)) < share)


def _categories(levels: int, *, null_share: float = 0.0) -> Maker:
    """Zipf-like level shares; shifted: 30% of the mass re-dealt in reverse order (JS distance about 0.2)."""
    names = pa.array([f"level_{i:02d}" for i in range(levels)])
    share = 1 / np.arange(1, levels + 1) ** 1.1
    share /= share.sum()

    def make(rng: np.random.Generator, n: int, shifted: bool) -> pa.Array:
        p = 0.7 * share + 0.3 * share[::-1] if shifted else share
        codes = np.minimum(np.searchsorted(np.cumsum(p), rng.random(n)), levels - 1)
        return names.take(pa.array(codes, mask=rng.random(n) < null_share if null_share else None))

    return make


# (name, numeric?, maker). Shifted makers move by 0.2..0.3 reference std (Wasserstein normed), far above the 0.1 threshold.
FLOATS: list[tuple[str, Maker]] = [
    ("normal", lambda r, n, s: pa.array(r.normal(52 if s else 50, 10, n))),
    ("lognormal", lambda r, n, s: _nulls(r.lognormal(3, 0.8, n), r, 0.02)),
    ("exponential", lambda r, n, s: pa.array(r.exponential(2, n))),
    ("uniform", lambda r, n, s: pa.array(r.uniform(0, 100, n))),
    ("beta", lambda r, n, s: pa.array(r.beta(2, 5, n))),
    ("gamma", lambda r, n, s: pa.array(r.gamma(2, 3.6 if s else 3, n))),
    ("student_t", lambda r, n, s: pa.array(r.standard_t(3, n))),
    ("bimodal", lambda r, n, s: pa.array(np.where(r.random(n) < 0.3, r.normal(-2, 0.5, n), r.normal(3, 1, n)))),
    ("pareto", lambda r, n, s: pa.array(r.pareto(3, n) + 1)),
    ("weibull", lambda r, n, s: pa.array(10 * r.weibull(1.5, n))),
    ("price", lambda r, n, s: pa.array(np.round(r.lognormal(2.5, 0.6, n), 2))),
    ("arcsine", lambda r, n, s: pa.array(r.beta(0.5, 0.5, n))),
]
INTS: list[tuple[str, Maker]] = [
    ("poisson3", lambda r, n, s: pa.array(r.poisson(3, n))),
    ("poisson25", lambda r, n, s: pa.array(r.poisson(26.5 if s else 25, n))),
    ("negbinom", lambda r, n, s: pa.array(r.negative_binomial(5, 0.3, n))),
    ("geometric", lambda r, n, s: pa.array(r.geometric(0.2, n))),
]
CATS: list[tuple[str, Maker]] = [("cat3", _categories(3)), ("cat8", _categories(8, null_share=0.01)), ("cat20", _categories(20)), ("cat50", _categories(50))]
SHIFTED = {"f_normal", "f_gamma", "i_poisson25", "c_cat20"}


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool
    make: Maker


def columns_of(floats: int, ints: int, cats: int) -> list[Column]:
    """The mix cycled to the asked counts; repeats get a suffix (and are never shifted)."""
    found = []
    for prefix, pool, count in (("f", FLOATS, floats), ("i", INTS, ints), ("c", CATS, cats)):
        for i in range(count):
            base, make = pool[i % len(pool)]
            cycle = i // len(pool)
            found.append(Column(f"{prefix}_{base}" + (f"_{cycle}" if cycle else ""), prefix != "c", make))
    return found


def kinds_of(columns: list[Column]) -> dict[str, str]:
    return {c.name: "numeric" if c.numeric else "categorical" for c in columns}


def write_parquet(path: Path, columns: list[Column], rows: int, *, shifted: bool, seed: int, row_group: int) -> None:
    """``rows`` rows written one row group at a time, so the writer's memory is one row group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    for index, start in enumerate(range(0, rows, row_group)):
        rng = np.random.default_rng([seed, index])
        n = min(row_group, rows - start)
        table = pa.table({c.name: c.make(rng, n, shifted and c.name in SHIFTED) for c in columns})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=n)
    if writer:
        writer.close()


def data_file(name: str, columns: list[Column], rows: int, *, shifted: bool, seed: int, row_group: int) -> Path:
    path = DATA / name
    if not path.exists():
        started = time.perf_counter()
        write_parquet(path, columns, rows, shifted=shifted, seed=seed, row_group=row_group)
        print(f"  wrote {path} ({rows:,} x {len(columns)}, {path.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - started:.0f} s", flush=True)
    return path


# ---- the measured steps, each run by ``child`` in a fresh interpreter ----


def step_profile(reference: str, kinds: dict[str, str], out: str) -> dict[str, Any]:
    """The model's reference profile from the reference Parquet, written as its JSON."""
    from kfp_mlops.components.monitor.profile import profile_column, profile_parquet
    from kfp_mlops.components.monitor.reference import ModelProfile

    started = time.perf_counter()
    columns = profile_parquet(reference, kinds)
    score = profile_column("score", "numeric", [pa.array(np.random.default_rng(1).random(100_000))])
    profile = ModelProfile(task="binary", label="label", classes=["0", "1"], columns=columns, score=score, performance=None)
    Path(out).write_bytes(profile.to_json())
    return {"seconds": time.perf_counter() - started, "profile_bytes": Path(out).stat().st_size}


def step_monitor(profiles: list[str], current: str) -> dict[str, Any]:
    """``core.monitor`` once per profile over ``current``, read as the monitor reads it; the first model's verdicts come back."""
    from kfp_mlops.components.monitor.core import monitor
    from kfp_mlops.components.monitor.reference import ModelProfile
    from kfp_mlops.components.monitor.sources import dataset

    per_model, verdicts, inner = [], {}, {}
    for index, path in enumerate(profiles):
        started = time.perf_counter()
        profile = ModelProfile.from_json(Path(path).read_bytes(), path)
        data = dataset(current, columns=list(dict.fromkeys([*profile.columns, profile.label])))
        result = monitor(profile, data, model_name=f"model-{index}", model_version="1")
        per_model.append(time.perf_counter() - started)
        if index == 0:
            verdicts = {c.column: [c.method, c.score, c.drifted] for c in result.columns}
            inner = dict(result.seconds, rows=result.n_rows)
    return {"seconds": sum(per_model), "per_model": per_model, "verdicts": verdicts, "inner": inner}


def step_evidently(reference: str, current: str, kinds: dict[str, str]) -> dict[str, Any]:
    """The pandas load of both files, then Evidently's DataDriftPreset with its tests, types pinned."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    methods = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z", "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon"}
    started = time.perf_counter()
    frames = [pd.read_parquet(current, columns=list(kinds)), pd.read_parquet(reference, columns=list(kinds))]
    loaded = time.perf_counter()
    definition = DataDefinition(numerical_columns=[n for n, k in kinds.items() if k == "numeric"], categorical_columns=[n for n, k in kinds.items() if k == "categorical"])
    current_ds, reference_ds = (Dataset.from_pandas(f, data_definition=definition) for f in frames)
    report = Report([DataDriftPreset()], include_tests=True).run(current_ds, reference_ds).dict()
    seconds = time.perf_counter() - started
    failed = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in report["tests"] if "column" in t["metric_config"]["params"]}
    verdicts = {m["config"]["column"]: [methods[m["config"]["method"]], float(m["value"]), failed[m["config"]["column"]]] for m in report["metrics"][1:]}
    return {"seconds": seconds, "load_seconds": loaded - started, "verdicts": verdicts}


STEPS = {"profile": step_profile, "monitor": step_monitor, "evidently": step_evidently}


def child(step: str, arguments: str, cprofile: bool) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "true")
    run = STEPS[step]
    if step == "evidently":  # imports are setup, as in the other benchmarks: not timed
        import evidently.presets  # noqa: F401
    else:
        import kfp_mlops.components.monitor.core  # noqa: F401
    if cprofile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(run, **json.loads(arguments))
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        result = run(**json.loads(arguments))
    status = Path("/proc/self/status").read_text()
    result["peak_rss_mib"] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    print("RESULT " + json.dumps(result))


def measure(step: str, cprofile: bool = False, **arguments: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", step, json.dumps(arguments)] + (["--cprofile"] if cprofile else [])
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    if cprofile:
        print(proc.stderr, flush=True)
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])


# ---- the three benchmarks ----

TABLE: list[tuple[str, str, float, float, str]] = []  # benchmark, variant, seconds, peak RSS MiB, note


def record(bench: str, variant: str, result: dict[str, Any], note: str = "") -> None:
    TABLE.append((bench, variant, result["seconds"], result["peak_rss_mib"], note))
    print(f"  {variant:<44} {result['seconds']:>8.2f} s {result['peak_rss_mib']:>8.0f} MiB  {note}", flush=True)


def bench_against_evidently(args: argparse.Namespace) -> None:
    columns = columns_of(12, 4, 4)
    kinds = kinds_of(columns)
    rows = args.rows
    print(f"\n[1] {rows:,} rows x {len(columns)} columns, shifted: {sorted(SHIFTED)}", flush=True)
    reference = data_file(f"ref20_{rows}.parquet", columns, rows, shifted=False, seed=1, row_group=args.row_group)
    current = data_file(f"cur20_{rows}.parquet", columns, rows, shifted=True, seed=2, row_group=args.row_group)
    profile_json = str(DATA / f"profile20_{rows}.json")
    built = measure("profile", reference=str(reference), kinds=kinds, out=profile_json)
    record("1", "ours: reference profile (once per version)", built, f"{built['profile_bytes'] / 1024:.0f} KiB JSON")
    ours = measure("monitor", args.cprofile, profiles=[profile_json], current=str(current))
    inner = ours["inner"]
    record("1", "ours: monitor pass", ours, f"read+sketch {inner['read_and_sketch']:.2f} s, tests {inner['tests']:.2f} s")
    if args.skip_evidently:
        return
    theirs = measure("evidently", reference=str(reference), current=str(current), kinds=kinds)
    record("1", "Evidently DataDriftPreset (pandas load + run)", theirs, f"of which pandas load {theirs['load_seconds']:.1f} s")
    both = built["seconds"] + ours["seconds"]
    print(f"  speed ratio Evidently/ours: {theirs['seconds'] / both:.1f}x against profile + monitor, {theirs['seconds'] / ours['seconds']:.1f}x against the monitor pass alone (target >= 10x)")
    print(f"  peak RSS ratio Evidently/ours: {theirs['peak_rss_mib'] / max(built['peak_rss_mib'], ours['peak_rss_mib']):.1f}x")
    print(f"  {'column':<16} {'method':<13} {'ours':>11} {'Evidently':>11}  verdicts (ours / Evidently)")
    agree, worst = 0, {}
    for name in kinds:
        (method, score, drifted), (their_method, their_score, their_drifted) = ours["verdicts"][name], theirs["verdicts"][name]
        same = drifted == their_drifted and method == their_method
        agree += same
        worst[method] = max(worst.get(method, 0.0), abs(score - their_score))
        flag = "" if same else f"   DISAGREE (Evidently used {their_method})"
        print(f"  {name:<16} {method:<13} {score:>11.5g} {their_score:>11.5g}  {'drift' if drifted else 'ok':>5} / {'drift' if their_drifted else 'ok':<5}{flag}")
    share = agree / len(kinds)
    print(f"  verdicts agree on {agree}/{len(kinds)} columns ({share:.0%}, target >= 95%); largest score difference per method: " + ", ".join(f"{m} {d:.2g}" for m, d in worst.items()))
    TABLE.append(
        (
            "1",
            "Evidently / ours",
            float("nan"),
            float("nan"),
            f"time {theirs['seconds'] / both:.1f}x (profile + monitor), {theirs['seconds'] / ours['seconds']:.0f}x (monitor pass); {agree}/{len(kinds)} verdicts agree",
        )
    )


def bench_scaling(args: argparse.Namespace) -> str:
    columns = columns_of(30, 10, 10)
    kinds = kinds_of(columns)
    print(f"\n[2] current up to {args.current_rows:,} rows x {len(columns)} columns, profile from {args.reference_rows:,} rows", flush=True)
    reference = data_file(f"ref50_{args.reference_rows}.parquet", columns, args.reference_rows, shifted=False, seed=3, row_group=args.row_group)
    profile_json = str(DATA / f"profile50_{args.reference_rows}.json")
    record("2", f"ours: reference profile, {args.reference_rows:,} rows", measure("profile", reference=str(reference), kinds=kinds, out=profile_json))
    # One file per size (row groups of --row-group); the quarter file is also part 0 of the same rows as 4 files.
    quarter = args.current_rows // 4
    parts = [data_file(f"cur50_4files/part-{i}.parquet", columns, quarter, shifted=True, seed=10 + i, row_group=args.row_group) for i in range(4)]
    half = data_file("cur50_half.parquet", columns, args.current_rows // 2, shifted=True, seed=30, row_group=args.row_group)
    full = data_file("cur50_full.parquet", columns, args.current_rows, shifted=True, seed=40, row_group=args.row_group)
    per_million = []
    for path in (parts[0], half, full):
        result = measure("monitor", args.cprofile and path == full, profiles=[profile_json], current=str(path))
        rows = result["inner"]["rows"]
        per_million.append(result["seconds"] / rows * 1e6)
        record("2", f"ours: monitor pass, {rows:,} rows (1 file)", result, f"{per_million[-1]:.2f} s per million rows")
    print(f"  seconds per million rows at 1/4, 1/2, 1: {', '.join(f'{s:.2f}' for s in per_million)} (linear in rows if they stay level)")
    folder = measure("monitor", profiles=[profile_json], current=str(parts[0].parent))
    record("2", f"ours: monitor pass, {rows:,} rows (4 files)", folder, f"{folder['seconds'] / rows * 1e6:.2f} s per million rows")
    shutil.rmtree(parts[0].parent)
    half.unlink()
    full.unlink()
    return profile_json


def bench_many_models(args: argparse.Namespace, profile50: str) -> None:
    from kfp_mlops.components.monitor.reference import ModelProfile

    columns = columns_of(30, 10, 10)
    print(f"\n[3] {args.models} models of 10 columns each over one current of {args.model_rows:,} rows x {len(columns)} columns (registry not benchmarked)", flush=True)
    current = data_file(f"cur50_{args.model_rows}.parquet", columns, args.model_rows, shifted=True, seed=20, row_group=args.row_group)
    whole = ModelProfile.from_json(Path(profile50).read_bytes(), profile50)
    rng = np.random.default_rng(7)
    profiles = []
    for index in range(args.models):
        picked = sorted(rng.choice(len(columns), 10, replace=False))
        subset = {columns[i].name: whole.columns[columns[i].name] for i in picked}
        path = DATA / f"model{index}.json"
        path.write_bytes(ModelProfile(whole.task, whole.label, whole.classes, subset, whole.score, None).to_json())
        profiles.append(str(path))
    one = measure("monitor", profiles=profiles[:1], current=str(current))
    record("3", "ours: 1 model", one)
    many = measure("monitor", profiles=profiles, current=str(current))
    mean = many["seconds"] / args.models
    record("3", f"ours: {args.models} models in one process", many, f"{mean:.2f} s per model (first {many['per_model'][0]:.2f}, slowest {max(many['per_model']):.2f})")
    print(
        f"  a single model takes {one['seconds']:.2f} s; each extra model in the same run adds {(many['seconds'] - one['seconds']) / max(args.models - 1, 1):.2f} s (every monitor() call reads the current again)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of every size (a smoke run of a minute or two)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="[1] rows of reference and of current")
    parser.add_argument("--reference-rows", type=int, default=1_000_000, help="[2] rows of the 50-column reference")
    parser.add_argument("--current-rows", type=int, default=10_000_000, help="[2] rows of the largest current (also 1/4 and 1/2 of it)")
    parser.add_argument("--model-rows", type=int, default=200_000, help="[3] rows of the current all models read")
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--row-group", type=int, default=500_000, help="rows per Parquet row group (and per write)")
    parser.add_argument("--only", type=int, choices=(1, 2, 3), action="append", help="run only these benchmarks (3 needs 2's profile)")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--cprofile", action="store_true", help="print cProfile's top functions of the monitor passes of [1] and the largest [2]")
    parser.add_argument("--keep", action="store_true", help="keep the generated data under /tmp/bench_monitor")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.cprofile)
        return
    if args.quick:
        for name in ("rows", "reference_rows", "current_rows", "model_rows", "row_group"):
            setattr(args, name, getattr(args, name) // 10)
    DATA.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    only = set(args.only or (1, 2, 3))
    try:
        if 1 in only:
            bench_against_evidently(args)
        profile50 = bench_scaling(args) if 2 in only else str(DATA / f"profile50_{args.reference_rows}.json")
        if 3 in only:
            bench_many_models(args, profile50)
    finally:
        if not args.keep:
            shutil.rmtree(DATA, ignore_errors=True)
    print(f"\n{'bench':<6}{'variant':<46}{'seconds':>9}{'peak RSS MiB':>14}  note")
    for bench, variant, seconds, rss, note in TABLE:
        shown = f"{'-':>9}{'-':>14}" if math.isnan(seconds) else f"{seconds:>9.2f}{rss:>14.0f}"  # NaN: a ratio row
        print(f"{bench:<6}{variant:<46}{shown}  {note}")
    print(f"total wall time {time.perf_counter() - started:.0f} s (data generation included)")


if __name__ == "__main__":
    main()
