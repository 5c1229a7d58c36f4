"""Latencies counted in logarithmic buckets: quantiles within 1 % of the exact ones, in memory that stays flat.

The proxy times every request and every ACK of a session that may run for days; keeping each sample to sort at
exit would grow without bound. A bucket holds the samples between two bounds 2 % apart (``GAMMA``), and a
quantile is read as the middle of its bucket (``2 GAMMA**i / (GAMMA + 1)``), which is at most ``ERROR`` (1 %) from any
sample in it: the relative error of DDSketch. Only the buckets that hold a sample exist, and however widely the
samples spread, a double's range holds a few tens of thousands of them; seconds from a microsecond to a day take
about 1,300. The minimum and maximum are kept exactly.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["ERROR", "GAMMA", "Histogram"]

ERROR: Final = 0.01
"""The largest relative error of a quantile."""
GAMMA: Final = (1 + ERROR) / (1 - ERROR)
"""The ratio of a bucket's upper bound to its lower one."""
_PER_LOG: Final = 1 / math.log(GAMMA)
_TINY: Final = 1e-9
"""Samples at or below this (a nanosecond, zero, a clock that stepped back) share one bucket, shown as the min."""
_TINY_INDEX: Final = math.ceil(math.log(_TINY) * _PER_LOG) - 1


class Histogram:
    """Counts of non-negative samples (seconds) by logarithmic bucket; see the module's docstring."""

    __slots__ = ("_buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._buckets: dict[int, int] = {}

    def __len__(self) -> int:
        """How many buckets hold samples (what the memory grows with)."""
        return len(self._buckets)

    def add(self, value: float) -> None:
        """Count one sample; NaN is ignored, infinities are taken as the largest double."""
        if value != value:  # noqa: PLR0124 - NaN
            return
        if value > 1.7e308:  # noqa: PLR1730 - a test, cheaper than min() on the hot path
            value = 1.7e308
        self.count += 1
        self.total += value
        if value > self.max:  # noqa: PLR1730
            self.max = value
        if value < self.min:  # noqa: PLR1730
            self.min = value
        index = math.ceil(math.log(value) * _PER_LOG) if value > _TINY else _TINY_INDEX
        buckets = self._buckets
        buckets[index] = buckets.get(index, 0) + 1

    def quantile(self, q: float) -> float:
        """The nearest-rank quantile (``q`` from 0 to 1): the sample with ``q`` of them at or below it, within 1 %.

        NaN when there are no samples.
        """
        if not self.count:
            return math.nan
        rank = min(max(1, math.ceil(q * self.count)), self.count)
        if rank == self.count:
            return self.max
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                if index == _TINY_INDEX:
                    return self.min
                middle = 2 * GAMMA**index / (GAMMA + 1)
                return min(max(middle, self.min), self.max)
        return self.max  # pragma: no cover - the counts add up to count
