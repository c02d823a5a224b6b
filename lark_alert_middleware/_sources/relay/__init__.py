"""The relay: a source whose errors are other tools' alerts (Alertmanager, Grafana, Seq, any webhook).

One module per tool turns its payload into a `Notification` (`alertmanager.py`, `grafana.py`,
`seq.py`, `generic.py`, with what they share in `alerts.py` and `payload.py`; `recent.py` parses
a re-sent body once); `app.py` serves them over HTTP (`auth.py`, `body.py`, `logs.py`);
`forward.py` keeps the alerts whose state changed (`state.py`) and hands them to the pipeline,
which deduplicates, budgets and posts them like any other error.
"""
