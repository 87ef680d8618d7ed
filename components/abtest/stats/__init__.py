"""Statistics core of the A/B analysis, vectorized over leading batch dimensions.

- ``moments``: per-arm sufficient statistics, added up from streaming partial aggregates.
- ``estimate``: absolute or relative effects (two-proportion, Welch, delta-method ratio, CUPED)
  and fixed-horizon intervals.
- ``sequential``: the always-valid normal-mixture confidence sequence and its p-value.
- ``group_sequential``: Lan-DeMets O'Brien-Fleming-type boundaries.
- ``srm``: sample-ratio mismatch, fixed (chi-square) and sequential (Dirichlet-multinomial).
- ``multiple``: Holm and Benjamini-Hochberg adjusted p-values.
- ``power``: sample sizes for the fixed and the sequential analysis, and time still needed.
- ``simulation``: simulated experiments from per-look sufficient statistics, to measure the
  procedures' error rates (tests and benchmarks/bench_ab_simulation.py).
"""
