"""Errors a technician can act on; each says what failed and what to do next.

ProvisioningError
├── ApiError                  the operations API answered with a problem
│   ├── ApiKeyRefusedError    401/403: wrong key, or a role that may not provision
│   └── ApiNotFoundError      404: no such device
├── ApiUnreachableError       no answer from the operations API
├── BalenaError               the balena API answered with an error
│   ├── BalenaUnreachableError
│   ├── BalenaAuthError       token missing or refused
│   └── FleetNotFoundError
└── InputError                a file or option the technician gave is not usable
"""


class ProvisioningError(Exception):
    """Base class; ``hint`` tells the technician what to try."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ApiError(ProvisioningError):
    def __init__(
        self, message: str, *, status: int, field: str | None = None, hint: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.field = field


class ApiKeyRefusedError(ApiError):
    hint = "Check CITYOPS_API_KEY / --api-key; provisioning needs a technician or admin key."


class ApiNotFoundError(ApiError):
    pass


class ApiUnreachableError(ProvisioningError):
    hint = "Check CITYOPS_API_URL / --api and the network."


class BalenaError(ProvisioningError):
    pass


class BalenaUnreachableError(BalenaError):
    hint = "Check api_endpoint in <balena data dir>/balena.cfg and the network."


class BalenaAuthError(BalenaError):
    hint = "Set BALENA_API_KEY (or --balena-token) to a valid balena API key."


class FleetNotFoundError(BalenaError):
    hint = "Check --fleet: use the fleet slug (org/fleet) shown in the balena dashboard."


class InputError(ProvisioningError):
    pass
