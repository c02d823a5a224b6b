"""The transparency app as uvicorn serves it: bare or observed, as the environment says."""

import os
from pathlib import Path

from tests.transparency.app import build_app

app = build_app(
    os.environ["TRANSPARENCY_OBSERVED"] == "1",
    Path(os.environ["TRANSPARENCY_FILES"]),
    layout=os.environ.get("TRANSPARENCY_LAYOUT", "plain"),  # type: ignore[arg-type]
)
