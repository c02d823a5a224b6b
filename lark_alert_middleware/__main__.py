"""`python -m lark_alert_middleware`: the `lark-alert` command line."""

from .cli import main

raise SystemExit(main())
