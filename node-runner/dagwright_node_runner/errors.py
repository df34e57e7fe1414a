"""node-runner's own failures, kept apart from `store.py` so importing them does not import redis."""


class StoreUnavailable(Exception):
    """Redis could not be reached or refused the credentials, after retries."""


class Failure(Exception):
    """node-runner cannot run the command: reported in the termination message, then it exits with `code`."""

    def __init__(self, reason: str, message: str, code: int) -> None:
        super().__init__(message)
        self.reason, self.message, self.code = reason, message, code
