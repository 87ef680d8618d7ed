"""The splitter's routing: which arm a request goes to, by weight, sticky by a key.

How an arm is chosen. The 10 000 buckets are laid out along a line in the arms' fixed
order (the order they were given; weight changes never reorder them), each arm owning
``weight * 100`` consecutive buckets. A request with a key (``X-Kfp-Mlops-Key``) lands in
bucket ``blake2b(key) mod 10000``: the same key reaches the same arm for the same weights,
in any process, after any restart. Without a key the bucket is drawn at random.

Why a fixed order on a line: with two arms (the A/B case), a weight shift only moves the
single boundary between them, so a key moves only from the arm that shrinks to the arm
that grows, in both directions (10 -> 25 -> 50 -> 100 % and back). With more arms the
same holds for a shift between neighbours in the order; put the arm being ramped next to
the arm it takes traffic from. No function of the weights alone can guarantee it for every
shift among three arms: (50,50,0) -> (0,50,50) -> (50,0,50) -> (50,50,0) would force the
first and third arms to own the same half of the keys at once.

Plain code with no I/O: the asyncio server (splitter.py) and the local deploy target
(local_target.py) both check weights here.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from kfp_mlops.components._shared.errors import KfpMlopsError

BUCKETS = 10_000
WEIGHTS_FIX = 'send every arm with a whole percent from 0 to 100, summing to 100, e.g. {"champion": 75, "challenger": 25}'


class SplitterConfigError(KfpMlopsError):
    """The splitter's arms or weights are not usable (unknown arm, bad weight, sum not 100)."""


@dataclass(frozen=True)
class Route:
    """One arm as the splitter sees it: its name, base URL and share of traffic in percent."""

    name: str
    url: str
    weight: int


def key_bucket(key: str | bytes) -> int:
    """The bucket (0..9999) of a request key (a str is hashed as UTF-8, as clients send it): a stable
    hash, the same in every process and release."""
    raw = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
    digest = hashlib.blake2b(raw, digest_size=8, person=b"kfp-split").digest()
    return int.from_bytes(digest, "big") % BUCKETS


class RoutingTable:
    """Arms in their fixed order, each owning ``weight * 100`` consecutive buckets."""

    def __init__(self, routes: Sequence[Route]) -> None:
        check_routes(routes)
        self.routes = tuple(routes)
        bounds, upper = [], 0
        for route in self.routes:
            upper += route.weight * (BUCKETS // 100)
            bounds.append(upper)
        self._upper_bounds = bounds

    def route_for_bucket(self, bucket: int) -> Route:
        # bisect_right skips zero-weight arms: their upper bound equals the previous one.
        return self.routes[bisect.bisect_right(self._upper_bounds, bucket)]

    def with_weights(self, weights: Mapping[str, Any]) -> "RoutingTable":
        checked = check_weights(weights, [r.name for r in self.routes])
        return RoutingTable([Route(r.name, r.url, checked[r.name]) for r in self.routes])

    def weights(self) -> dict[str, int]:
        return {r.name: r.weight for r in self.routes}


def check_weights(weights: Any, arm_names: Sequence[str]) -> dict[str, int]:
    """``weights`` as {arm: percent}, or SplitterConfigError naming what is wrong."""
    if not isinstance(weights, Mapping):
        raise SplitterConfigError(f"weights must be an object of arm name to percent, got {type(weights).__name__}", fix=WEIGHTS_FIX)
    unknown = sorted(set(weights) - set(arm_names))
    if unknown:
        raise SplitterConfigError(f"unknown arm(s) {unknown}; the arms are {list(arm_names)}", fix=WEIGHTS_FIX)
    missing = [name for name in arm_names if name not in weights]
    if missing:
        raise SplitterConfigError(f"no weight for arm(s) {missing}", fix=WEIGHTS_FIX)
    for name, weight in weights.items():
        # bool is an int in Python; true/false is never a percent.
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise SplitterConfigError(f"the weight of arm {name!r} is {weight!r}, not a whole percent from 0 to 100", fix=WEIGHTS_FIX)
    total = sum(weights.values())
    if total != 100:
        raise SplitterConfigError(f"the weights sum to {total}, not 100 ({dict(weights)})", fix=WEIGHTS_FIX)
    return {name: int(weights[name]) for name in arm_names}


def check_routes(routes: Sequence[Route]) -> None:
    if not routes:
        raise SplitterConfigError("no arms given", fix="give at least one arm as NAME=URL")
    names = [r.name for r in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SplitterConfigError(f"arm(s) {duplicates} given twice", fix="give each arm once")
    for route in routes:
        if not route.name or not route.url.startswith("http://") or urlsplit(route.url).path:
            raise SplitterConfigError(f"arm {route.name!r} has URL {route.url!r}, not http://HOST:PORT", fix="give each arm as NAME=http://HOST:PORT")
    check_weights({r.name: r.weight for r in routes}, names)


def routes_from_json(payload: Any) -> list[Route]:
    """The body of ``PUT /-/splitter/arms``: {"arms": [{"name", "url", "weight"}, ...]} in routing order."""
    arms = payload.get("arms") if isinstance(payload, dict) else None
    if not isinstance(arms, list) or not all(isinstance(a, dict) and {"name", "url", "weight"} <= set(a) for a in arms):
        raise SplitterConfigError('the arms table must be {"arms": [{"name": ..., "url": ..., "weight": ...}, ...]}', fix="send every arm, in routing order")
    return [Route(str(a["name"]), str(a["url"]).rstrip("/"), a["weight"]) for a in arms]
