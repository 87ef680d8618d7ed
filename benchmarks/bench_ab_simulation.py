"""A/B statistics by simulation: error rates under continuous monitoring, coverage, power.

Every run simulates per-look sufficient statistics (normal sums with a chi-square spread,
binomial counts, multinomial assignment counts), 10,000 runs per cell by default. Looks are
canary-sized: 10 looks of 1,000 units per arm, or 100 looks of 200 units per arm; effects are
relative lifts (what the analysis reports by default) and no decision is taken before
MIN_UNITS_PER_ARM units per arm. Tables:

1. A/A type-I error per procedure x look count x outcome (normal; Bernoulli 0.05), and the
   SRM checks on 50/50 assignment with 20,000 users over the same looks. Target: <= alpha +
   2.58 Monte-Carlo se for every always-valid or alpha-spending procedure.
2. Coverage of a true +10% lift by the confidence sequence at every look (target >= 95% - margin).
3. Why MIN_UNITS_PER_ARM: Bernoulli(0.05), looks from the first 100 units per arm on.
4. Power and mean stopping sample at 10 looks (normal metric, sd 1, up to 10,000 units per
   arm) for three effect sizes: fixed horizon, group-sequential, always-valid mixture.

    python benchmarks/bench_ab_simulation.py [--sims 10000] [--alpha 0.05]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kfp_mlops.components.abtest.stats import simulation as sim  # noqa: E402
from kfp_mlops.components.abtest.stats.estimate import difference  # noqa: E402
from kfp_mlops.components.abtest.stats.sequential import (  # noqa: E402
    MIN_UNITS_PER_ARM,
    mixture_interval,
)
from kfp_mlops.components.abtest.stats.srm import srm_chi_square, srm_sequential  # noqa: E402

SCHEDULES = {10: 1000, 100: 200}
OUTCOMES = ("normal", "bernoulli")
MODES = {
    "mixture": "mixture CS, two-sided",
    "mixture_less": "mixture CS, one-sided less",
    "mixture_greater": "mixture CS, one-sided greater",
    "group_sequential": "group-sequential OBF",
    "naive": "naive z/t test, peeked",
}


def arms(rng: np.random.Generator, sims: int, outcome: str, units: np.ndarray, lift: float):
    if outcome == "normal":
        return sim.normal_looks(rng, sims, units, 10.0, 3.0), sim.normal_looks(rng, sims, units, 10.0 * (1 + lift), 3.0), "mean"
    return sim.bernoulli_looks(rng, sims, units, 0.05), sim.bernoulli_looks(rng, sims, units, 0.05 * (1 + lift)), "proportion"


def row(label: str, cells: list[str]) -> str:
    return f"{label:<40}" + "".join(f"{cell:>16}" for cell in cells)


def type_one_table(sims: int, alpha: float) -> None:
    columns = [(outcome, looks) for outcome in OUTCOMES for looks in SCHEDULES]
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    rates["srm_sequential"], rates["srm_chi_square"] = [], []
    for index, (outcome, looks) in enumerate(columns):
        rng = np.random.default_rng(100 + index)
        units = np.full(looks, SCHEDULES[looks])
        control, treatment, kind = arms(rng, sims, outcome, units, 0.0)
        for mode in MODES:
            gate = 0 if mode == "naive" else MIN_UNITS_PER_ARM  # peeking as people do it: from the start
            rejected = sim.rejections(control, treatment, mode=mode, kind=kind, relative=True, alpha=alpha, min_units_per_arm=gate)
            rates[mode].append(rejected.any(-1).mean())
        counts = sim.assignment_counts(rng, sims, 2 * units, [0.5, 0.5])
        rates["srm_sequential"].append((srm_sequential(counts, [1, 1])[:, -1] <= alpha).mean())
        rates["srm_chi_square"].append((srm_chi_square(counts, [1, 1])[1] <= alpha).any(-1).mean())
    margin = alpha + 2.58 * np.sqrt(alpha * (1 - alpha) / sims)
    print(f"\n1. A/A type-I error, alpha {alpha}, {sims} runs per cell (limit {margin:.4f}); relative lift, decisions from {MIN_UNITS_PER_ARM} units/arm")
    print(row("procedure", [f"{o[:4]}/{k} looks" for o, k in columns]))
    labels = {**MODES, "srm_sequential": "SRM sequential (Dirichlet-mult.)", "srm_chi_square": "SRM chi-square, re-checked"}
    for mode, values in rates.items():
        print(row(labels[mode], [f"{v:.4f}" for v in values]))
    print("   SRM rows: 50/50 assignment of 2 x units-per-look users per look (outcome does not matter).")


def coverage_table(sims: int, alpha: float, lift: float = 0.1) -> None:
    print(f"\n2. Coverage of a true lift of {lift:+.0%} by the two-sided sequence at every look (target >= {1 - alpha:.2f} - margin)")
    cells = []
    for index, (outcome, looks) in enumerate((o, k) for o in OUTCOMES for k in SCHEDULES):
        rng = np.random.default_rng(200 + index)
        control, treatment, kind = arms(rng, sims, outcome, np.full(looks, SCHEDULES[looks]), lift)
        est = difference(control, treatment, kind=kind, relative=True)
        lower, upper = mixture_interval(est, alpha)
        gated = (control.n >= MIN_UNITS_PER_ARM) & np.isfinite(lower)
        cells.append(f"{1 - (gated & ((lower > lift) | (upper < lift))).any(-1).mean():.4f}")
    print(row("procedure", [f"{o[:4]}/{k} looks" for o in OUTCOMES for k in SCHEDULES]))
    print(row("mixture CS, two-sided", cells))


def gate_table(sims: int, alpha: float) -> None:
    gates = (0, 500, 1000, 1500, 2000, 3000)
    rng = np.random.default_rng(300)
    units = np.full(100, 100)
    control, treatment = sim.bernoulli_looks(rng, sims, units, 0.05), sim.bernoulli_looks(rng, sims, units, 0.05)
    print(f"\n3. Minimum units per arm before deciding: A/A Bernoulli(0.05), 100 looks of 100 units/arm, {sims} runs")
    print(row("procedure (decide from n/arm)", [str(g) for g in gates]))
    for relative in (True, False):
        for mode in ("mixture", "mixture_less", "group_sequential"):
            cells = []
            for gate in gates:
                rejected = sim.rejections(control, treatment, mode=mode, kind="proportion", relative=relative, alpha=alpha, min_units_per_arm=gate)
                cells.append(f"{rejected.any(-1).mean():.4f}")
            print(row(f"{MODES[mode]}, {'lift' if relative else 'difference'}", cells))


def power_table(sims: int, alpha: float) -> None:
    units = np.full(10, 1000)
    total = 2 * np.cumsum(units)
    design = 2.8016 * np.sqrt(2 / units.sum())  # 80% power for one look at the last look
    print(f"\n4. Power and mean stopping sample (total units, max {total[-1]}), 10 looks, normal sd 1, {sims} runs, mixture tuning {total[-1]}")
    print(row("effect (abs) / procedure", ["power", "mean stop", "stop / max"]))
    for scale in (1.0, 1.5, 2.0):
        rng = np.random.default_rng(int(400 + 10 * scale))
        control, treatment = sim.normal_looks(rng, sims, units, 0.0, 1.0), sim.normal_looks(rng, sims, units, scale * design, 1.0)
        fixed = sim.rejections(control, treatment, mode="naive", kind="mean", alpha=alpha)[:, -1]
        print(row(f"{scale * design:.4f}  fixed horizon", [f"{fixed.mean():.4f}", f"{total[-1]:.0f}", "1.000"]))
        for mode in ("group_sequential", "mixture"):
            rejected = sim.rejections(control, treatment, mode=mode, kind="mean", alpha=alpha, tuning=float(total[-1]))
            stop = sim.stopping_units(rejected, total).mean()
            print(row(f"{scale * design:.4f}  {MODES[mode]}", [f"{rejected.any(-1).mean():.4f}", f"{stop:.0f}", f"{stop / total[-1]:.3f}"]))


def srm_detection(alpha: float) -> None:
    _, p_chi = srm_chi_square([10_400, 9_600], [1, 1])
    p_seq = srm_sequential(np.array([[10_400, 9_600]]), [1, 1])[-1]
    print(f"\n5. SRM, 50/50 design receiving 52/48 at 20,000 users: chi-square p = {p_chi:.2e}, sequential p = {p_seq:.2e} (alpha {alpha})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=10_000)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    started = time.perf_counter()
    type_one_table(args.sims, args.alpha)
    coverage_table(args.sims, args.alpha)
    gate_table(4 * args.sims, args.alpha)
    power_table(args.sims, args.alpha)
    srm_detection(args.alpha)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
