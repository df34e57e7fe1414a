"""node-runner's own failure, kept apart from `store.py` so importing it does not import redis."""


class StoreUnavailable(Exception):
    """Redis could not be reached or refused the credentials, after retries."""
