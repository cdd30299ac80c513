"""Lago, the billing system gpubill is compatible with: its shapes, in and out.

* `importer/`: Lago API objects (billable metrics, plans, customers,
  subscriptions as JSON) -> `.bill` files (`import_lago`), for
  `gpubill import lago` through `gpubill.service.lago_import`.
* `events_api.py`: the wire shapes of Lago's events API that `gpubill serve`
  answers with (event objects, error envelopes, ids, timestamps).

May import the language (`gpubill.dsl`) and the number form, nothing else of
gpubill (`tests/test_layers.py`). Nothing is imported here, so the importer
never loads the server's numpy and Starlette, nor the server the importer.
"""
