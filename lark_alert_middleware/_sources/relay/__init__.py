"""The relay: a source whose errors are other tools' alerts (Alertmanager, Grafana, Seq, any webhook).

One module per tool turns its payload into a `Notification` (`alertmanager.py`, `grafana.py`,
`seq.py`, `generic.py`, with what they share in `alerts.py` and `payload.py`); `app.py` serves
them over HTTP (`auth.py`, `body.py`); `forward.py` keeps what changed (`state.py`) and hands
those alerts to the pipeline, which deduplicates, budgets and posts them like any other error.
"""
