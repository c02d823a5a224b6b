"""What LarkAlertHandler adds to a logging call, against a handler that does nothing, in one run.

    python benchmarks/log_handler.py [--trials 5] [--rounds 60] [--calls 1000]

Three loggers, each with one handler at ERROR: a handler whose `emit` does nothing, a second
one (the A/A control: the difference between two identical loggers is the noise), and
LarkAlertHandler on a real pipeline posting to a Lark-compatible receiver on loopback. Cases:

- a repeat record: `logger.error("... order %s left unpaid", n)`, a new order each call, after
  the first has been alerted: the handler fingerprints it and counts a repeat;
- the same with an exception (a new one each call, as code that catches and logs makes);
- a record below the handler's level (`logger.warning`): logging's own level check skips it.

In each trial every logger takes turns (in a shuffled order) for `--rounds` rounds of
`--calls` calls, and its fastest round counts: interference only ever slows a round down. The
table shows the median trial; every trial's ratios are printed.
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import statistics
import time
from collections.abc import Callable

from lark_alert_middleware import LarkAlertHandler
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._pipeline.build import build_pipeline
from lark_alert_middleware.testing import LarkReceiver

TEMPLATE = "payment provider timed out, order %s left unpaid"


class DoNothing(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
    # Outside the logging tree: no parent, so the record reaches this handler only.
    logger = logging.Logger(name)
    logger.addHandler(handler)
    return logger


def repeat(logger: logging.Logger, calls: int) -> None:
    for order in range(calls):
        logger.error(TEMPLATE, order)


def repeat_with_exception(logger: logging.Logger, calls: int) -> None:
    for order in range(calls):
        logger.error(TEMPLATE, order, exc_info=TimeoutError(f"order {order}"))


def below_level(logger: logging.Logger, calls: int) -> None:
    for order in range(calls):
        logger.warning(TEMPLATE, order)


CASES: dict[str, Callable[[logging.Logger, int], None]] = {
    "repeat record": repeat,
    "repeat record with an exception": repeat_with_exception,
    "record below the level": below_level,
}


def fastest_round(
    case: Callable[[logging.Logger, int], None], loggers: dict[str, logging.Logger], rounds: int, calls: int
) -> dict[str, float]:
    """Seconds per call of each logger's fastest round."""
    best = dict.fromkeys(loggers, float("inf"))
    names = list(loggers)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            started = time.perf_counter()
            case(loggers[name], calls)
            best[name] = min(best[name], (time.perf_counter() - started) / calls)
        gc.collect()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--calls", type=int, default=1000)
    options = parser.parse_args()

    with LarkReceiver() as lark:
        # A window longer than the run: every record after the first is a repeat.
        pipeline = build_pipeline(load_settings(webhook_url=lark.url, service="bench", rate_limit=3600))
        loggers = {
            "do nothing": logger_with(DoNothing(logging.ERROR), "shop.a"),
            "A/A control": logger_with(DoNothing(logging.ERROR), "shop.b"),
            "LarkAlertHandler": logger_with(LarkAlertHandler(pipeline=pipeline), "shop.payments"),
        }
        for case in CASES.values():
            case(loggers["LarkAlertHandler"], 1)  # the first of each is alerted
        assert pipeline.flush(10) and len(lark.wait_for_cards(2)) == 2

        results: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
        for trial in range(options.trials):
            for case_name, case in CASES.items():
                best = fastest_round(case, loggers, options.rounds, options.calls)
                results[case_name].append(best)
                base = best["do nothing"]
                print(
                    f"trial {trial + 1}, {case_name}: A/A {best['A/A control'] / base:.3f}, "
                    f"LarkAlertHandler {best['LarkAlertHandler'] / base:.3f} "
                    f"(+{(best['LarkAlertHandler'] - base) * 1e6:.2f} µs)",
                    flush=True,
                )
        stats = pipeline.stats()

    print()
    print("| record | do-nothing handler | A/A control | LarkAlertHandler | added per record |")
    print("|---|---|---|---|---|")
    for case_name, trials in results.items():
        median = sorted(trials, key=lambda best: best["LarkAlertHandler"] / best["do nothing"])[
            len(trials) // 2
        ]
        base = median["do nothing"]
        control, ours = median["A/A control"], median["LarkAlertHandler"]
        added = [(best["LarkAlertHandler"] - best["do nothing"]) * 1e6 for best in trials]
        print(
            f"| {case_name} | {base * 1e6:.2f} µs | {control * 1e6:.2f} µs ({control / base:.3f}) "
            f"| {ours * 1e6:.2f} µs ({ours / base:.3f}) "
            f"| {statistics.median(added):.2f} µs (trials {min(added):.2f} to {max(added):.2f}) |"
        )
    print()
    print(f"Alerted {stats.sent} records; counted {stats.deduplicated:,} repeats.")


if __name__ == "__main__":
    main()
