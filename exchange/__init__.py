"""The file exchange every flow plugs into (ICD §2, §3, §6).

- :mod:`exchange.flows`: which flow takes which TYPE from which kind of counterparty;
- :mod:`exchange.pickup`: listing, landing, archiving, rejecting, per-file isolation;
- :mod:`exchange.requests`: the request-intake pipeline (stage, rules, store, answers);
- :mod:`exchange.answers`: the answer-intake pipeline;
- :mod:`exchange.outbox`: composing, naming and queueing hub-written files; delivery;
- :mod:`exchange.storage`: object storage for what one task leaves for another;
- :mod:`exchange.locks`: one run at a time per connection.

It imports no Airflow: DAG tasks call it through ``sscard.jobs``.
"""
