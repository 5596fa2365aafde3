"""Domain errors of operations; the API maps each to one HTTP status in one handler.

OpsError
 ├── NotFoundError          404: no such incident/device/command
 ├── ConflictError          409: the change does not fit the current state
 │    └── InvalidTransitionError  e.g. acknowledging a resolved incident
 ├── InvalidQueryError      422: a read asked for something no listing has (a forged cursor)
 └── UnavailableError       503: the broker or store cannot take the request now
"""


class OpsError(Exception):
    status = 400

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFoundError(OpsError):
    status = 404


class ConflictError(OpsError):
    status = 409


class InvalidTransitionError(ConflictError):
    pass


class InvalidQueryError(OpsError):
    status = 422


class UnavailableError(OpsError):
    status = 503
