"""The load bench's account of a run's slowest calls (bench/precheck_load.py): bursts of the
slowest 1 %, which is what tells a pause of the machine from a check slow for some claims."""

from __future__ import annotations

from bench.precheck_load import SlowCalls, slow_calls


def _run(latencies: list[float], spacing: float = 0.0005) -> list[float]:
    return [i * spacing for i in range(len(latencies))]


def test_a_pause_is_one_burst_of_every_call_it_delayed() -> None:
    latencies = [0.001] * 1000
    latencies[400:410] = [0.009, 0.0085, 0.008, 0.0075, 0.007, 0.0065, 0.006, 0.0055, 0.005, 0.0045]
    found = slow_calls(_run(latencies), latencies, [False] * 1000)
    assert found == SlowCalls(calls=10, bursts=1, largest=10, flagged=0)
    assert found.text() == "10 in 1 bursts, max 10; 0% flagged"


def test_slow_claims_spread_over_the_run_are_bursts_of_one() -> None:
    latencies = [0.001] * 1000
    flagged: list[bool | None] = [False] * 1000
    for i in range(0, 1000, 100):  # every 50 ms a claim whose reasons cost more
        latencies[i], flagged[i] = 0.003, True
    found = slow_calls(_run(latencies), latencies, flagged)
    assert found == SlowCalls(calls=10, bursts=10, largest=1, flagged=10)


def test_calls_closer_than_the_gap_join_one_burst_and_farther_ones_do_not() -> None:
    latencies = [0.001] * 1000
    latencies[100] = latencies[119] = 0.004  # 9.5 ms apart: one burst
    latencies[500] = latencies[520] = 0.004  # 10 ms apart: two
    for i in range(990, 1000):
        latencies[i] = 0.002  # slower than the rest, faster than the four
    found = slow_calls(_run(latencies), latencies, [None] * 1000)
    # the slowest 10: the four, then the first six of the ten equal ones (in order)
    assert (found.bursts, found.largest, found.flagged) == (4, 6, None)
    assert found.text() == "10 in 4 bursts, max 6"


def test_unanswered_calls_are_the_slowest_and_an_empty_run_has_none() -> None:
    latencies = [0.001] * 200 + [float("inf")] * 2
    found = slow_calls(_run(latencies), latencies, [None] * 202)
    assert (found.calls, found.bursts) == (2, 1)
    assert slow_calls([], [], []) == SlowCalls(0, 0, 0, None)
