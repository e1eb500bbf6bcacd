"""Tasks as Temporal sees them: the API keeps no state; every answer is read from Temporal.

One module per idea (`api/store.py` is the thin facade the routers use):

- `ids`: the task ID format.
- `rpc`: Temporal RPC failures as API errors, and finding a task's workflow (404 otherwise).
- `recorded_state`: a task's status and counters from its search attributes and memo alone.
- `start`: the one function that starts the prewarm workflow.
- `idempotency`: the Idempotency-Key scheme (a reservation workflow per key).
- `guards`: the running-task cap (429) and task ownership (403).
- `create`: POST; `views`: GET (live query, close event or last recorded state);
  `listing`: the list, from visibility alone; `cancel`: DELETE.
- `history`: reading single events of a run's history (its input, its close event).
"""
