"""A plain script that reports errors and exits at once, as a cron job does.

`python tests/integration/capture_script.py`: configured by the environment alone.
"""

import contextlib

from lark_alert_middleware import capture_message, report_errors


@report_errors(job="nightly-invoices")
def split_total(total: int, parts: int) -> int:
    return total // parts


with contextlib.suppress(ZeroDivisionError):
    split_total(10, 0)  # reported by the decorator, then raised
capture_message("nightly invoices: some skipped", level="warning", skipped=3)
print("script done", flush=True)
